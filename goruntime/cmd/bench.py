"""`make bench`: the benchmark table. Every figure stands beside a baseline
measured in the same run, and targets are ratios, because these machines are
shared and noisy. Each measurement is the median of several repetitions,
alternating the variants being compared."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import timeit
from pathlib import Path

from goruntime import Runtime
from goruntime.cmd.benchkernels import c_span_floor, mcache_hit

ROOT = Path(__file__).resolve().parents[2]
# The Python modules a variant build needs beside its extensions.
PY_PACKAGES = ("goruntime", "goruntime/cmd", "stress")
SPAN = 8192


def _median(xs):
    return statistics.median(xs)


def bench_hit_path(reps, spans):
    """mcache-hit ns/op with 1 and 2 Ms, the 2-M scaling, and the C floor."""
    floor, one, two, agg1, agg2 = [], [], [], [], []
    for _ in range(reps):
        floor.append(c_span_floor(spans, 64))
        with Runtime(gomaxprocs=2, gogc=None) as rt:
            rt.heap.reserve(2 * spans * SPAN + (64 << 20), prefault=True)
            per_m, aggregate = mcache_hit(rt, 1, 64, spans)
            one.append(per_m[0])
            agg1.append(aggregate)
        with Runtime(gomaxprocs=2, gogc=None) as rt:
            rt.heap.reserve(2 * spans * SPAN + (64 << 20), prefault=True)
            per_m, aggregate = mcache_hit(rt, 2, 64, spans)
            two.append(statistics.mean(per_m))
            agg2.append(aggregate)
    return _median(floor), _median(one), _median(two), _median(agg1), _median(agg2)


def bench_python_call(reps, n):
    """rt.malloc(64) from Python inside `with rt.proc():` against bytearray(64)."""
    ours, theirs = [], []
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        rt.heap.reserve(reps * n * 64 * 2 + (64 << 20), prefault=True)
        with rt.proc():
            malloc = rt.malloc
            for _ in range(reps):
                theirs.append(min(timeit.repeat("f(64)", globals={"f": bytearray}, number=n, repeat=3)) / n * 1e9)
                ours.append(min(timeit.repeat("f(64)", globals={"f": malloc}, number=n, repeat=1)) / n * 1e9)
    return _median(ours), _median(theirs)


def _variant(name, cflags):
    """Builds the extension with extra C flags into build-<name>/ and returns that path."""
    out = ROOT / f"build-{name}"
    env = dict(os.environ, GORUNTIME_CFLAGS=cflags)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(out),
                    "--build-temp", str(out / "tmp")], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    for package in PY_PACKAGES:
        for py in (ROOT / package).glob("*.py"):
            shutil.copy2(py, out / package / py.name)
    return out


_REFILL_SNIPPET = """
import sys, json
from goruntime import Runtime
with Runtime(gomaxprocs=1) as rt:
    rt.run(ms=1, ops=20000, sizes=[2048, 4096, 8192], live=16, seed=1)
    r = rt.run(ms=1, ops={ops}, sizes=[2048, 4096, 8192], live=16, seed=2)
    locks = rt.lockstats()
json.dump({{"ns": r.per_m[0]["elapsed_ns"] / r.allocs,
           "locks": locks["mcentral"]["acquisitions"] + locks["mheap"]["acquisitions"]}}, sys.stdout)
"""


def bench_lock_counters(reps, ops):
    """The refill path (mcentral and mheap locks every few allocations), counters on vs compiled out."""
    import json

    builds = {"counters": _variant("counters", "-O3"),
              "nocounters": _variant("nocounters", "-O3 -DGORUNTIME_LOCKSTATS=0")}
    ns = {k: [] for k in builds}
    locks = 0
    for _ in range(reps):
        for name, path in builds.items():
            out = subprocess.run([sys.executable, "-c", _REFILL_SNIPPET.format(ops=ops)],
                                 env=dict(os.environ, PYTHONPATH=str(path)), cwd="/",
                                 check=True, capture_output=True, text=True).stdout
            fig = json.loads(out)
            ns[name].append(fig["ns"])
            if name == "counters":
                locks = fig["locks"]
    return _median(ns["counters"]), _median(ns["nocounters"]), locks / (ops + 20000)


def bench_metadata(duration):
    """Metadata bytes (span structures and bitmaps, mcaches, mcentrals, page tables) per MiB."""
    from goruntime.cmd.flags import DEFAULT_LARGE_SHARE, DEFAULT_SIZES, DEFAULT_WEIGHTS

    with Runtime(gomaxprocs=2) as rt:
        rt.run(ms=4, duration=duration, sizes=DEFAULT_SIZES, weights=DEFAULT_WEIGHTS, noscan=0.5,
               live=20000, large_share=DEFAULT_LARGE_SHARE, seed=3)
        ms = rt.memstats()
    meta = ms.MSpanSys + ms.GCSys + ms.MCacheSys + ms.OtherSys
    return meta, ms.HeapSys, ms.HeapInuse


def main(argv=None):
    ap = argparse.ArgumentParser(prog="goruntime.cmd.bench", description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    args = ap.parse_args(argv)
    reps = 3 if args.quick else args.reps
    spans = 4096 if args.quick else 16384

    rows = []

    def row(name, value, baseline, ratio, target, ok):
        rows.append((name, value, baseline, ratio, target, "yes" if ok else "NO"))

    floor, one, two, agg1, agg2 = bench_hit_path(reps, spans)
    row("mcache hit, fresh spans, 1 M (ns/op)", f"{one:.2f}", f"C span loop {floor:.2f}", f"{one / floor:.2f}x", "<= 1.25x", one / floor <= 1.25)
    row("mcache hit, fresh spans, 2 Ms (ns/op per M)", f"{two:.2f}", f"C span loop {floor:.2f}", f"{two / floor:.2f}x", "<= 1.25x", two / floor <= 1.25)
    row("lock-free path, 2 Ms vs 1 M (Mallocs/s)", f"{agg2 / 1e6:.0f}M", f"1 M {agg1 / 1e6:.0f}M", f"{agg2 / agg1:.2f}x", ">= 1.8x", agg2 / agg1 >= 1.8)
    ours, theirs = bench_python_call(reps, 100000 if args.quick else 300000)
    row("rt.malloc(64) from Python in proc() (ns)", f"{ours:.1f}", f"bytearray(64) {theirs:.1f}", f"{ours / theirs:.2f}x", "<= 0.6x", ours / theirs <= 0.6)
    on, off, lock_rate = bench_lock_counters(reps, 100000 if args.quick else 300000)
    row(f"refill path, {lock_rate:.2f} locks/alloc (ns/op)", f"{on:.1f}", f"counters compiled out {off:.1f}", f"{(on / off - 1) * 100:+.1f}%", "<= 3%", on / off <= 1.03)
    meta, sys_bytes, inuse = bench_metadata(1.0 if args.quick else 3.0)
    per_mib = meta / (sys_bytes / 2**20)
    row("metadata per MiB of HeapSys (bytes)", f"{per_mib:.0f}", f"HeapInuse {inuse / 2**20:.1f} MiB: {meta / (inuse / 2**20):.0f} B/MiB", f"{per_mib / 2**20 * 100:.2f}%", "<= 2%", per_mib / 2**20 <= 0.02)

    widths = [max(len(str(r[i])) for r in rows + [("benchmark", "value", "baseline (same run)", "ratio", "target", "met")]) for i in range(6)]
    header = ("benchmark", "value", "baseline (same run)", "ratio", "target", "met")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(f"\nmedians of {reps} repetitions; machine: {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
