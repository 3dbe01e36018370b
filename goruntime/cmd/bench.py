"""`make bench`: the benchmark table. Every figure stands beside a baseline
measured in the same run, and targets are ratios, because these machines are
shared and noisy. Each measurement is the median of several repetitions,
alternating the variants being compared.

Groups (--only takes a comma-separated list of them):
  hit      the mcache hit path against a C span loop, 1 and 2 Ms
  churn    run() churn at 8 B (tiny), 64 B and the default mix, 2 Ms against 1 M
           on 2 Ps, beside two C threads churning malloc/free; 4 and 8 Ms on 2 Ps;
           the same with GC off, beside C threads writing fresh memory
  go       the batch churn of baselines.md against real Go 1.19 (tools/gochurn),
           on 1 P and 2 Ps, when `go` is on PATH
  pause    the stop-the-world pause per collection with 16 MiB, 128 MiB and 1 GiB
           live, on 1 P and 2 Ps: sweep="concurrent" beside sweep="stw" and real
           Go 1.19 (tools/gopause, when `go` is on PATH)
  python   rt.malloc(64) from Python against bytearray(64)
  locks    the refill path with the lock counters compiled in and out
  metadata metadata bytes per MiB of heap
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

from goruntime import Runtime
from goruntime.cmd.benchkernels import (batch_churn, c_churn, c_fresh_touch, c_span_floor,
                                        mcache_hit)
from goruntime.cmd.flags import DEFAULT_LARGE_SHARE, DEFAULT_SIZES, DEFAULT_WEIGHTS

ROOT = Path(__file__).resolve().parents[2]
# The Python modules a variant build needs beside its extensions.
PY_PACKAGES = ("goruntime", "goruntime/cmd", "stress")
SPAN = 8192
GROUPS = ("hit", "churn", "go", "pause", "python", "locks", "trace", "metadata")
LARGE_SIZES = (32769, 262144)      # run()'s default large_sizes, inclusive


# A repetition counts only if every thread it measured was on a CPU for at least
# this share of its wall time: on a shared machine another process can take a
# CPU for a while, and a ratio measured across that is not the model's.
CLEAN = 0.9
_discarded = []


def _median(xs):
    return statistics.median(xs)


def _clean_reps(name, reps, one_rep):
    """Calls one_rep() (returning (figures, CPU share)) until `reps` repetitions
    came out clean, or 4 x reps tries; returns the figures of the clean ones (of
    all, when too few were clean) and notes the discarded ones."""
    clean, dirty = [], []
    for _ in range(4 * reps):
        figures, share = one_rep()
        (clean if share >= CLEAN else dirty).append(figures)
        if len(clean) == reps:
            break
    if dirty:
        _discarded.append(f"{name}: {len(dirty)} repetition(s) discarded (a thread got under "
                          f"{CLEAN:.0%} of a CPU)" + ("" if len(clean) >= reps else "; too few clean ones, all kept"))
    return clean if len(clean) >= reps else clean + dirty


def _transpose(reps):
    """[{variant: value}] -> {variant: [values]}."""
    return {k: [r[k] for r in reps] for k in reps[0]}


def _m(rate):
    return f"{rate / 1e6:.1f}M/s"


def bench_hit_path(reps, spans):
    """mcache-hit ns/op with 1 and 2 Ms, the 2-M scaling, and the C floor."""
    def one_rep():
        fig = {"floor": c_span_floor(spans, 64), "floor_mem": c_span_floor(spans, 64, True),
               "floor2": c_span_floor(spans, 64, threads=2)}
        share = 1.0
        for ms in (1, 2):
            with Runtime(gomaxprocs=2, gogc=None) as rt:
                rt.heap.reserve(2 * spans * SPAN + (64 << 20), prefault=True)
                per_m, aggregate, sh = mcache_hit(rt, ms, 64, spans)
            fig[ms] = statistics.mean(per_m)
            fig[f"agg{ms}"] = aggregate
            share = min(share, sh)
        return fig, share

    fig = _transpose(_clean_reps("mcache hit", reps, one_rep))
    return (_median(fig["floor"]), _median(fig["floor_mem"]), _median(fig["floor2"]), _median(fig[1]),
            _median(fig[2]), _median(fig["agg1"]), _median(fig["agg2"]), _ratio(fig["agg2"], fig["agg1"]),
            2 * _ratio(fig["floor"], fig["floor2"]))


# -- run() churn: 2 Ms against 1 M ------------------------------------------------------

# The workloads of the churn rows: run()'s arguments, and the same sizes as
# C baseline ranges [(lo, hi, weight)].
def _mix_ranges():
    total = sum(DEFAULT_WEIGHTS)
    ranges = [(s, s, w / total * (1 - DEFAULT_LARGE_SHARE)) for s, w in zip(DEFAULT_SIZES, DEFAULT_WEIGHTS)]
    return ranges + [(LARGE_SIZES[0], LARGE_SIZES[1], DEFAULT_LARGE_SHARE)]


CHURN = {
    "8 B tiny": (dict(sizes=8, noscan=True), [(8, 8, 1.0)]),
    "64 B": (dict(sizes=64, noscan=True), [(64, 64, 1.0)]),
    "default mix": (dict(sizes=DEFAULT_SIZES, weights=DEFAULT_WEIGHTS, noscan=0.5,
                         large_share=DEFAULT_LARGE_SHARE), _mix_ranges()),
}


def _churn_rate(ms, duration, gogc=100, **kwargs):
    """(allocations per second of run() with `ms` Ms on 2 Ps, CPU share)."""
    with Runtime(gomaxprocs=2, gogc=gogc) as rt:
        r = rt.run(ms=ms, duration=duration, live=1024, seed=7, **kwargs)
    wall = max(m["elapsed_ns"] for m in r.per_m)
    share = sum(m["cpu_ns"] for m in r.per_m) / (wall * min(ms, 2, os.cpu_count() or 1))
    return r.allocs / r.elapsed, share


def bench_churn(reps, duration, c_duration):
    """Per workload, alternating: C 1 and 2 threads, then the model with 1 and 2
    Ms (and 4 and 8 for 64 B). Returns {workload: {variant: [rates]}}."""
    out = {}
    for name, (kwargs, ranges) in CHURN.items():
        variants = (1, 2, 4, 8) if name == "64 B" else (1, 2)

        def one_rep():
            fig, share = {}, 1.0
            for t in (1, 2):
                fig[f"c{t}"], sh = c_churn(t, ranges, c_duration)
                share = min(share, sh)
            for ms in variants:
                fig[ms], sh = _churn_rate(ms, duration, **kwargs)
                share = min(share, sh)
            return fig, share

        out[name] = _transpose(_clean_reps(f"churn {name}", reps, one_rep))
    return out


def bench_churn_gc_off(reps, duration):
    """64 B churn with GC off (every object in fresh memory), 2 Ms against 1 M,
    beside C threads writing 64 B objects into fresh memory."""
    def one_rep():
        fig, share = {}, 1.0
        for t in (1, 2):
            fig[f"c{t}"], sh = c_fresh_touch(t, 64, duration)
            share = min(share, sh)
        for ms in (1, 2):
            fig[ms], sh = _churn_rate(ms, duration, gogc=None, sizes=64, noscan=True)
            share = min(share, sh)
        return fig, share

    return _transpose(_clean_reps("churn GC off", reps, one_rep))


def _ratio(xs, ys):
    """Median of the per-repetition ratios: each pair was measured side by side."""
    return _median([x / y for x, y in zip(xs, ys)])


# -- the batch churn against real Go -------------------------------------------------------

def _go_binary(workdir, name="gochurn"):
    """Builds tools/<name>; None (with the reason) when it cannot be."""
    go = shutil.which("go")
    if go is None:
        return None, "go is not on PATH"
    out = Path(workdir) / name
    r = subprocess.run([go, "build", "-o", str(out), "main.go"], cwd=ROOT / "tools" / name,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"go build failed: {r.stderr.strip()[:200]}"
    version = subprocess.run([go, "version"], capture_output=True, text=True).stdout.split()
    return (str(out), version[2] if len(version) > 2 else "go"), None


def bench_go(reps, duration):
    """{procs: (model rates, Go rates)} for 1 and 2 Ps, and Go's version; or
    (None, the reason it cannot run)."""
    with tempfile.TemporaryDirectory() as tmp:
        built, why = _go_binary(tmp)
        if built is None:
            return None, why
        binary, version = built

        def one_rep():
            fig, share = {}, 1.0
            for procs in (1, 2):
                env = dict(os.environ, GOMAXPROCS=str(procs), GOGC="100")
                out = json.loads(subprocess.run(
                    [binary, f"-duration={duration}s", "-batch=1000", "-size=64"],
                    env=env, capture_output=True, text=True, check=True).stdout)
                fig[f"go{procs}"] = out["objects_per_sec"]
                share = min(share, out["cpu_ns"] / (out["elapsed_ns"] * min(procs, os.cpu_count() or 1)))
                with Runtime(gomaxprocs=procs, gogc=100) as rt:
                    fig[procs], sh = batch_churn(rt, procs, 64, 1000, duration)
                share = min(share, sh)
            return fig, share

        fig = _transpose(_clean_reps("batch churn vs Go", reps, one_rep))
        return {procs: (fig[procs], fig[f"go{procs}"]) for procs in (1, 2)}, version


# -- the pause against the live heap -------------------------------------------------------

PAUSE_OBJECT = 4096


def _model_pause(procs, live, sweep, duration):
    """The median stop-the-world pause (ns) of the collections in the second half
    of a run whose Ms keep `live` bytes alive in 4 KiB objects, replacing them
    one by one (the first collections happen while the live set builds up)."""
    with Runtime(gomaxprocs=procs, gogc=100, sweep=sweep) as rt:
        rt.run(ms=procs, duration=duration, sizes=PAUSE_OBJECT, noscan=True,
               live=live // PAUSE_OBJECT // procs, seed=1)
        pauses = rt.memstats().PauseNs
    return _median(pauses[len(pauses) // 2:]) if pauses else float("nan")


def bench_pause(lives, duration):
    """{(procs, live): {"concurrent": ns, "stw": ns, "go": ns or None}} and Go's
    version (or why it is missing)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        built, why = _go_binary(tmp, "gopause")
        for procs in (1, 2):
            for live in lives:
                # A bigger heap needs longer for collections after the live set is built.
                d = duration * max(1, live >> 27)
                fig = {sweep: _model_pause(procs, live, sweep, d) for sweep in ("concurrent", "stw")}
                fig["go"] = None
                if built is not None:
                    env = dict(os.environ, GOMAXPROCS=str(procs), GOGC="100")
                    r = json.loads(subprocess.run([built[0], f"-live={live}", f"-size={PAUSE_OBJECT}",
                                                   f"-duration={d}s"], env=env, capture_output=True,
                                                  text=True, check=True).stdout)
                    fig["go"] = r.get("median_pause_ns")
                out[procs, live] = fig
    return out, (built[1] if built else why)


# -- Python calls, the lock counters, metadata -------------------------------------------

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


def bench_compiled_out(reps, ops, macro):
    """The refill path (mcentral and mheap locks every few allocations) as built, against a
    build with `macro`=0: the lock counters (GORUNTIME_LOCKSTATS) or the trace hooks
    (GORUNTIME_TRACE, which stay in the build but record nothing while no trace is open)."""
    builds = {"counters": _variant("counters", "-O3"),
              "nocounters": _variant(f"no-{macro.lower()}", f"-O3 -D{macro}=0")}
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
    return _median(ns["counters"]), _median(ns["nocounters"]), locks / (ops + 20000), \
        _ratio(ns["counters"], ns["nocounters"])


def bench_metadata(duration):
    """Metadata bytes (span structures and bitmaps, mcaches, mcentrals, page tables) per MiB."""
    with Runtime(gomaxprocs=2) as rt:
        rt.run(ms=4, duration=duration, sizes=DEFAULT_SIZES, weights=DEFAULT_WEIGHTS, noscan=0.5,
               live=20000, large_share=DEFAULT_LARGE_SHARE, seed=3)
        ms = rt.memstats()
    meta = ms.MSpanSys + ms.GCSys + ms.MCacheSys + ms.OtherSys
    return meta, ms.HeapSys, ms.HeapInuse


# -- the table ----------------------------------------------------------------------------

HEADER = ("benchmark", "value", "baseline (same run)", "ratio", "target", "met")


def print_table(rows, reps):
    widths = [max(len(str(r[i])) for r in rows + [HEADER]) for i in range(len(HEADER))]
    print("  ".join(h.ljust(w) for h, w in zip(HEADER, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(f"\nmedians of {reps} repetitions (ratios: medians of the per-repetition ratios); "
          f"machine: {os.cpu_count()} CPUs")
    for note in _discarded:
        print(f"note: {note}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="goruntime.cmd.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    ap.add_argument("--only", default=",".join(GROUPS), help=f"groups to run, of {','.join(GROUPS)}")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    if only - set(GROUPS):
        ap.error(f"unknown groups {sorted(only - set(GROUPS))}; choose from {','.join(GROUPS)}")
    reps = 3 if args.quick else args.reps
    spans = 4096 if args.quick else 16384
    duration = 0.25 if args.quick else 0.5          # per model churn run
    c_duration = 0.15 if args.quick else 0.3        # per C baseline run

    rows = []

    def row(name, value, baseline, ratio, target, ok):
        rows.append((name, value, baseline, ratio, target, "—" if ok is None else "yes" if ok else "NO"))

    if "hit" in only:
        floor, floor_mem, floor2, one, two, agg1, agg2, scale, c_scale = bench_hit_path(reps, spans)
        base = f"C span loop {floor:.2f} (state in memory {floor_mem:.2f})"
        row("mcache hit, fresh spans, 1 M (ns/op)", f"{one:.2f}", base, f"{one / floor:.2f}x", "<= 1.25x", one / floor <= 1.25)
        # Two cores streaming through fresh spans share the memory's bandwidth: the
        # floor of this row is the C loop on two threads at once.
        row("mcache hit, fresh spans, 2 Ms (ns/op per M)", f"{two:.2f}", f"C span loop, 2 threads {floor2:.2f}",
            f"{two / floor2:.2f}x", "<= 1.25x", two / floor2 <= 1.25)
        row("mcache hit path, 2 Ms vs 1 M (Mallocs/s)", _m(agg2), f"1 M {_m(agg1)}; C loop 2 vs 1 thread {c_scale:.2f}x",
            f"{scale:.2f}x", ">= 1.8x", scale >= 1.8)

    if "churn" in only:
        churn = bench_churn(reps, duration, c_duration)
        for name, fig in churn.items():
            scale = _ratio(fig[2], fig[1])
            c_scale = _ratio(fig["c2"], fig["c1"])
            row(f"run() churn {name}, gogc=100: 2 Ms vs 1 M on 2 Ps",
                f"{_m(_median(fig[2]))} (1 M {_m(_median(fig[1]))})",
                f"C malloc/free 2 vs 1 thread {c_scale:.2f}x",
                f"{scale:.2f}x", ">= 1.8x", scale >= 1.8)
        fig = churn["64 B"]
        for ms in (4, 8):
            rel = _ratio(fig[ms], fig[2])
            row(f"run() churn 64 B, gogc=100: {ms} Ms vs 2 Ms on 2 Ps", _m(_median(fig[ms])),
                f"2 Ms {_m(_median(fig[2]))}", f"{rel:.2f}x", ">= 0.9x", rel >= 0.9)
        off = bench_churn_gc_off(reps, duration / 2)
        scale = _ratio(off[2], off[1])
        row("run() churn 64 B, GC off (fresh memory): 2 Ms vs 1 M",
            f"{_m(_median(off[2]))} (1 M {_m(_median(off[1]))})",
            f"C fresh-memory writes 2 vs 1 thread {_ratio(off['c2'], off['c1']):.2f}x",
            f"{scale:.2f}x", "report: page faults", None)

    if "go" in only:
        fig, version = bench_go(reps, duration)
        if fig is None:
            row("batch churn 1000 x 64 B vs real Go", f"skipped: {version}", "—", "—", ">= 1.0x", None)
        else:
            for procs in (1, 2):
                ours, go = fig[procs]
                rel = _ratio(ours, go)
                row(f"batch churn 1000 x 64 B, gogc=100, {procs} P (objects/s)", _m(_median(ours)),
                    f"{version} {_m(_median(go))}", f"{rel:.2f}x", ">= 1.0x", rel >= 1.0)

    if "pause" in only:
        lives = [16 << 20, 128 << 20] + ([] if args.quick else [1 << 30])
        pauses, go = bench_pause(lives, 1.0 if args.quick else 2.0)
        for procs in (1, 2):
            flat = pauses[procs, lives[0]]["concurrent"]
            for live in lives:
                fig = pauses[procs, live]
                go_text = f"{go} {fig['go'] / 1e3:.0f}" if fig["go"] else f"Go: {go}"
                rel = fig["concurrent"] / flat
                row(f"GC pause, {live >> 20} MiB live, {procs} P (us, median)", f"{fig['concurrent'] / 1e3:.0f}",
                    f"sweep=stw {fig['stw'] / 1e3:.0f}; {go_text}", f"{rel:.2f}x",
                    f"flat: <= 2x the {lives[0] >> 20} MiB pause", rel <= 2.0)

    if "python" in only:
        ours, theirs = bench_python_call(reps, 100000 if args.quick else 300000)
        row("rt.malloc(64) from Python in proc() (ns)", f"{ours:.1f}", f"bytearray(64) {theirs:.1f}", f"{ours / theirs:.2f}x", "<= 0.6x", ours / theirs <= 0.6)

    if "locks" in only:
        on, off, lock_rate, rel = bench_compiled_out(reps, 100000 if args.quick else 300000, "GORUNTIME_LOCKSTATS")
        row(f"refill path, {lock_rate:.2f} locks/alloc (ns/op)", f"{on:.1f}", f"counters compiled out {off:.1f}", f"{(rel - 1) * 100:+.1f}%", "<= 3%", rel <= 1.03)

    if "trace" in only:
        # The hit path has no trace hook; the refill path has them all (refill, grow, lock waits).
        on, off, _, rel = bench_compiled_out(reps, 100000 if args.quick else 300000, "GORUNTIME_TRACE")
        row("refill path, trace hooks with no trace open (ns/op)", f"{on:.1f}", f"hooks compiled out {off:.1f}", f"{(rel - 1) * 100:+.1f}%", "<= 3%", rel <= 1.03)

    if "metadata" in only:
        meta, sys_bytes, inuse = bench_metadata(1.0 if args.quick else 3.0)
        per_mib = meta / (sys_bytes / 2**20)
        row("metadata per MiB of HeapSys (bytes)", f"{per_mib:.0f}", f"HeapInuse {inuse / 2**20:.1f} MiB: {meta / (inuse / 2**20):.0f} B/MiB", f"{per_mib / 2**20 * 100:.2f}%", "<= 2%", per_mib / 2**20 <= 0.02)

    print_table(rows, reps)


if __name__ == "__main__":
    main()
