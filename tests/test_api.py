"""The public Runtime API: construction, bad arguments and bad pointers (a clean exception
of the right type, the heap left as it was), read / write, verify(), run(), close(), and
a random walk against a model of the heap."""
import bisect
import random
import subprocess
import sys
import threading
import zlib

import pytest

from goruntime import GoRuntimeError, Runtime
from conftest import (OPS, PAGE, assert_all_collected, assert_memstats_invariants,
                      assert_run_result, stat_snapshot, unchanged)


# -- construction ----------------------------------------------------------------------

def test_runtime_shape():
    with Runtime(gomaxprocs=3, gogc=50, sizeclasses="go1.19") as r:
        assert r.gomaxprocs == 3 and r.gogc == 50
        assert [p.id for p in r.ps] == [0, 1, 2]
        assert len(r.centrals) == r.sizeclasses.num_span_classes
        assert [c.spanclass for c in r.centrals] == list(range(r.sizeclasses.num_span_classes))
        assert all(c.sizeclass == c.spanclass >> 1 and c.noscan == bool(c.spanclass & 1)
                   for c in r.centrals)
        assert r.heap.arenas == [] and r.heap.free_runs() == []
        ms = r.memstats()
        assert ms.HeapSys == 0 and ms.Mallocs == 0 and len(ms.BySize) == 67
        assert_memstats_invariants(ms, r)
    with Runtime(gomaxprocs=1, gogc=None) as r:
        assert r.gogc is None and not r.closed
    assert r.closed


@pytest.mark.parametrize("gomaxprocs", [0, -1, 1025])
def test_bad_gomaxprocs(gomaxprocs):
    with pytest.raises(ValueError):
        Runtime(gomaxprocs=gomaxprocs)


@pytest.mark.parametrize("gomaxprocs", ["2", 2.0, True])
def test_non_int_gomaxprocs(gomaxprocs):
    with pytest.raises(TypeError):
        Runtime(gomaxprocs=gomaxprocs)


@pytest.mark.parametrize("kwargs", [{"gogc": -1}, {"gogc": 2**31}, {"max_heap": 0}, {"max_heap": -1},
                                    {"max_heap": 2**64}])
def test_bad_gogc_and_max_heap(kwargs):
    [name] = kwargs
    with pytest.raises(ValueError, match=f"{name} must be an int between"):
        Runtime(gomaxprocs=1, **kwargs)


@pytest.mark.parametrize("kwargs", [{"gogc": "100"}, {"gogc": 1.5}, {"gogc": True},
                                    {"max_heap": 1.5}, {"max_heap": "64M"}, {"max_heap": False}])
def test_mistyped_gogc_and_max_heap(kwargs):
    [name] = kwargs
    with pytest.raises(TypeError, match=f"{name} must be an int"):
        Runtime(gomaxprocs=1, **kwargs)


# -- malloc arguments ------------------------------------------------------------------

@pytest.mark.parametrize("size", [-1, -8, -(2**70)])
def test_negative_size(rt, live, size):
    with unchanged(rt):
        with pytest.raises(ValueError):
            rt.malloc(size)
        with pytest.raises(ValueError):
            rt.malloc(size, noscan=True)


@pytest.mark.parametrize("size", ["8", 8.0, None, b"8", [8], True, 8 + 0j])
def test_non_int_size(rt, live, size):
    with unchanged(rt):
        with pytest.raises(TypeError):
            rt.malloc(size)


@pytest.mark.parametrize("size", [2**45, 2**46, 2**50, 2**63, 2**64, 2**100])
def test_huge_size_is_memory_error(rt, live, size):
    with unchanged(rt):
        with pytest.raises(MemoryError) as info:
            rt.malloc(size)
        assert str(size) in str(info.value)
    # Still usable afterwards.
    x = rt.malloc(100)
    assert rt.read(x, 100) == bytes(100)


# -- free ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,offset", [("small", 8), ("small", 1), ("small", 63),
                                         ("large", 8), ("large", PAGE), ("large", 39999),
                                         ("tiny", 1), ("tiny", 2)])
def test_free_interior_pointer(rt, live, kind, offset):
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.free(live[kind] + offset)
    # The object itself is intact and still freeable exactly once.
    rt.free(live[kind])
    with pytest.raises(GoRuntimeError, match="double free"):
        rt.free(live[kind])


def test_free_past_a_large_objects_size(rt, live):
    big = live["large"]                             # 40000 bytes in a 5-page span
    assert rt.heap.span_of(big + 5 * PAGE - 8).base == big
    with unchanged(rt):
        for addr in (big + 40000, big + 5 * PAGE - 8, big + 5 * PAGE):
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.free(addr)
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.read(addr, 1)


def test_pointers_of_another_runtime(rt, live):
    with Runtime(gomaxprocs=1, gogc=None) as other:
        foreign = [other.malloc(64), other.malloc(4, noscan=True), other.malloc(40000)]
        theirs = stat_snapshot(other.memstats())
        with unchanged(rt):
            for x in foreign:
                with pytest.raises(GoRuntimeError, match="bad pointer"):
                    rt.free(x)
                with pytest.raises(GoRuntimeError, match="bad pointer"):
                    rt.read(x, 1)
                with pytest.raises(GoRuntimeError, match="bad pointer"):
                    rt.write(x, b"x")
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            other.free(live["small"])
        assert stat_snapshot(other.memstats()) == theirs
        for x in foreign:
            other.free(x)


@pytest.mark.parametrize("kind", ["small", "tiny", "large"])
def test_double_free(rt, live, kind):
    rt.free(live[kind])
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="double free"):
            rt.free(live[kind])
        with pytest.raises(GoRuntimeError):
            rt.read(live[kind], 1)
        with pytest.raises(GoRuntimeError):
            rt.write(live[kind], b"x")


def test_free_after_sweep_is_refused(rt, live):
    rt.free(live["small"])
    rt.gc()
    with unchanged(rt):
        with pytest.raises(GoRuntimeError):
            rt.free(live["small"])
    rt.free(live["other"])                          # the neighbour is unaffected


@pytest.mark.parametrize("addr", [0, 8, 4096, -1, -(2**63), 2**64, 2**70])
def test_free_outside_the_heap(rt, live, addr):
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.free(addr)


@pytest.mark.parametrize("addr", ["0x10", 8.0, None, True])
def test_free_non_int_address(rt, live, addr):
    with unchanged(rt):
        with pytest.raises(TypeError):
            rt.free(addr)


# -- read / write ----------------------------------------------------------------------

@pytest.mark.parametrize("addr", [0, 8, -1, 2**64, 2**70])
def test_read_write_bad_pointer(rt, live, addr):
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.read(addr, 1)
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.write(addr, b"x")


def test_read_write_interior_and_unallocated(rt, live):
    small = live["small"]
    span = rt.heap.span_of(small)
    beyond = span.base + (span.freeindex + 1) * span.elemsize
    with unchanged(rt):
        for addr in (small + 8, live["large"] + PAGE, beyond, live["tiny"] + 1):
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.read(addr, 1)
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.write(addr, b"x")
    assert rt.read(small, 64) == b"S" * 64


def test_read_write_past_the_object(rt, live):
    small, big = live["small"], live["large"]
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(small, 65)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.write(small, b"\x01" * 65)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(big, 40001)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.write(big, bytes(40001))
        # A tiny object ends where the next one in its block starts.
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(live["tiny"], 5)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.write(live["tiny"], b"12345")
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(live["tiny2"], 13)             # the last one reaches the block end: 12 bytes
    # A refused write writes nothing.
    assert rt.read(small, 64) == b"S" * 64
    assert rt.read(live["other"], 64) == bytes(64)
    assert rt.read(big, 40000) == bytes(40000)
    assert rt.read(live["tiny"], 4) == bytes(4)


def test_read_write_bad_arguments(rt, live):
    small = live["small"]
    with unchanged(rt):
        with pytest.raises(ValueError):
            rt.read(small, -1)
        with pytest.raises(TypeError):
            rt.read(small, "8")
        with pytest.raises(TypeError):
            rt.read(small, 8.0)
        with pytest.raises(TypeError):
            rt.read("0x10", 8)
        with pytest.raises(TypeError):
            rt.write(small, "text")
        with pytest.raises(TypeError):
            rt.write(small, 12)
        with pytest.raises(TypeError):
            rt.write(None, b"x")
        # Never a raw OverflowError from a C conversion: the parameter and its range.
        with pytest.raises(ValueError, match="n must be an int between 0 and 2"):
            rt.read(small, 2**64)
        with pytest.raises(ValueError, match="n must be an int between 0 and 2"):
            rt.read(small, 2**70)
    assert rt.read(small, 64) == b"S" * 64


# -- verify ----------------------------------------------------------------------------

def test_verify_counts_in_use_spans(rt):
    assert rt.verify() == 0
    with rt.proc():
        for _ in range(3):
            rt.malloc(64)                            # one span
        for _ in range(4):
            rt.malloc(4, noscan=True)                # one tiny span
        rt.malloc(40000)                             # one large span
        # Checked while the spans are still cached by this thread's P.
        assert rt.verify() == 3
    rt.memstats()                                    # flushed to the mcentrals
    assert rt.verify() == 3


# -- run(): churn kernels on M threads -------------------------------------------------

MIXES = {
    # name: (run kwargs, whether the run allocates enough to reach a 4 MiB heap goal)
    "tiny": (dict(sizes=range(1, 16), noscan=True, live=512), False),
    "small": (dict(sizes=range(16, 4097), noscan=0.5, live=512), True),
    "weighted": (dict(sizes=[8, 24, 48, 64, 256, 1024, 9000, 32768],
                      weights=[8, 6, 6, 6, 4, 2, 1, 1], noscan=0.3, live=256), True),
    "mixed_large": (dict(sizes=range(1, 2049), noscan=0.5, large_share=0.02, live=256,
                         large_sizes=range(32769, 200001)), True),
}
TOPOLOGIES = [(1, 2), (1, 8), (2, 3), (2, 8)]       # (gomaxprocs, Ms)


@pytest.mark.parametrize("gogc", [None, 100], ids=["gcoff", "gogc100"])
@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize("gomaxprocs,ms", TOPOLOGIES, ids=[f"P{p}M{m}" for p, m in TOPOLOGIES])
def test_churn(sc_version, gomaxprocs, ms, mix, gogc):
    kwargs, heavy = MIXES[mix]
    seed = zlib.crc32(f"{sc_version}/{gomaxprocs}/{ms}/{mix}/{gogc}".encode())
    with Runtime(gomaxprocs=gomaxprocs, gogc=gogc, sizeclasses=sc_version) as rt:
        r = rt.run(ms=ms, ops=OPS, seed=seed, **kwargs)
        assert_run_result(r, ms, OPS)
        assert r.config["seed"] == seed and r.config["gomaxprocs"] == gomaxprocs
        stats = rt.memstats()
        assert_memstats_invariants(stats, rt)
        assert stats.Mallocs == r.allocs             # one count per kernel allocation
        # Every collection was started by a kernel M that reached the heap goal.
        assert stats.NumGC == sum(m["gcs"] for m in r.per_m)
        if gogc is None:
            assert stats.NumGC == 0
        elif heavy:
            assert stats.NumGC > 0
        if kwargs.get("large_share"):
            assert stats.LargeAllocs > 0
        if mix == "tiny":
            assert stats.TinyAllocs > 0
        assert_all_collected(rt, r.allocs)
        # The runtime is reusable: a second run on the same heap.
        r2 = rt.run(ms=ms, ops=OPS // 4, seed=seed + 1, **kwargs)
        assert_run_result(r2, ms, OPS // 4)
        assert_all_collected(rt, r.allocs + r2.allocs)


def test_duration_run():
    with Runtime(gomaxprocs=2, gogc=100) as rt:
        r = rt.run(ms=3, duration=0.1, sizes=range(8, 513), noscan=0.5, live=128, seed=3)
        assert r.allocs > 0 and r.frees == r.allocs
        assert r.allocs == sum(m["allocs"] for m in r.per_m)
        stats = rt.memstats()
        assert stats.Mallocs == r.allocs
        assert_memstats_invariants(stats, rt)
        assert_all_collected(rt, r.allocs)


def test_workload_out_of_memory_is_reported_and_recovers():
    with Runtime(gomaxprocs=2, gogc=None, max_heap=64 << 20) as capped:
        with pytest.raises(MemoryError):
            capped.run(ms=2, ops=3000, live=3000, sizes=32768, seed=7)
        capped.gc()
        ms = capped.memstats()
        # The M that ran out of memory still dropped what it held.
        assert ms.HeapObjects == 0 and ms.HeapInuse == 0
        assert_memstats_invariants(ms, capped)
        r = capped.run(ms=2, ops=500, live=16, sizes=64, seed=8)
        assert r.allocs == 1000


@pytest.mark.parametrize("kwargs", [
    {"ms": 0, "ops": 10}, {"ms": -1, "ops": 10}, {"ops": 0}, {"ops": -5},
    {"ops": 10, "duration": 1.0}, {"duration": 0}, {"duration": -1},
    {"ops": 10, "sizes": 0}, {"ops": 10, "sizes": (1 << 30) + 1}, {"ops": 10, "sizes": range(64, 8)},
    {"ops": 10, "sizes": []}, {"ops": 10, "sizes": [8, 16], "weights": [1]},
    {"ops": 10, "sizes": [8, 16], "weights": [0, 0]}, {"ops": 10, "noscan": 1.5},
    {"ops": 10, "large_share": -0.1}, {"ops": 10, "live": -1},
    {"ops": 10, "large_sizes": range(1000, 2001)}, {"ops": 10, "large_sizes": range(40000, 40000)},
    {"ops": 10, "kernel": "nope"},
])
def test_bad_run_arguments(rt, live, kwargs):
    with unchanged(rt):
        with pytest.raises(ValueError):
            rt.run(**kwargs)


@pytest.mark.parametrize("kwargs", [{"ops": 10, "sizes": "64"}, {"ops": 10, "sizes": (8.0, 16)},
                                    {"ops": 10, "sizes": [8, None]}])
def test_bad_run_argument_types(rt, live, kwargs):
    with unchanged(rt):
        with pytest.raises(TypeError):
            rt.run(**kwargs)


# -- close -----------------------------------------------------------------------------

CLOSED_CALLS = {
    "malloc": lambda rt, x: rt.malloc(64),
    "malloc0": lambda rt, x: rt.malloc(0),
    "malloc_large": lambda rt, x: rt.malloc(1 << 20),
    "free": lambda rt, x: rt.free(x),
    "read": lambda rt, x: rt.read(x, 8),
    "write": lambda rt, x: rt.write(x, b"x"),
    "gc": lambda rt, x: rt.gc(),
    "memstats": lambda rt, x: rt.memstats(),
    "lockstats": lambda rt, x: rt.lockstats(),
    "proc": lambda rt, x: rt.proc(),
    "run": lambda rt, x: rt.run(ms=1, ops=10),
    "enter": lambda rt, x: rt.__enter__(),
    "free_runs": lambda rt, x: rt.heap.free_runs(),
    "span_of": lambda rt, x: rt.heap.span_of(x),
    "arenas": lambda rt, x: rt.heap.arenas,
    "heap_lockstats": lambda rt, x: rt.heap.lockstats(),
}


@pytest.mark.parametrize("call", sorted(CLOSED_CALLS))
def test_calls_after_close_raise(call):
    r = Runtime(gomaxprocs=2, gogc=None)
    x = r.malloc(64)
    r.close()
    assert r.closed
    with pytest.raises(GoRuntimeError, match="closed"):
        CLOSED_CALLS[call](r, x)
    r.close()                                       # idempotent


def test_close_inside_proc_then_calls_raise():
    r = Runtime(gomaxprocs=1, gogc=None)
    with r.proc():
        x = r.malloc(64)
        r.close()
        with pytest.raises(GoRuntimeError, match="closed"):
            r.malloc(64)
        with pytest.raises(GoRuntimeError, match="closed"):
            r.free(x)


def test_context_manager_closes():
    with Runtime(gomaxprocs=1, gogc=None) as r:
        r.malloc(8)
    assert r.closed
    with pytest.raises(GoRuntimeError, match="closed"):
        r.malloc(8)
    with pytest.raises(GoRuntimeError, match="closed"):
        with r:
            pass


def test_close_stops_a_running_workload_early():
    ms, ops = 2, 3_000_000
    rt = Runtime(gomaxprocs=2, gogc=None)
    outcome = {}

    def runner():
        try:
            outcome["result"] = rt.run(ms=ms, ops=ops, sizes=64, live=64, seed=1)
        except GoRuntimeError as e:
            outcome["error"] = e

    t = threading.Thread(target=runner)
    t.start()
    # Wait (spinning, not sleeping) until both Ms hold a P and allocate.
    while t.is_alive() and not all(p.status.name == "P_RUNNING" for p in rt.ps):
        pass
    rt.close()
    t.join()
    if "error" in outcome:
        assert "closed" in str(outcome["error"])
    else:
        # "Waits for running workloads, which stop early."
        assert outcome["result"].allocs < ms * ops
    with pytest.raises(GoRuntimeError, match="closed"):
        rt.malloc(8)


CLOSE_RACE = """
import sys, threading
from goruntime import Runtime, GoRuntimeError
kind, rounds = sys.argv[1], int(sys.argv[2])
for i in range(rounds):
    r = Runtime(gomaxprocs=2, gogc=None)
    started = threading.Event()
    errors = []
    def worker():
        started.set()
        try:
            while True:
                if kind == "gc":
                    r.gc()
                elif kind == "memstats":
                    r.memstats()
                elif kind == "large":
                    r.free(r.malloc(1 << 20))
                else:
                    r.free(r.malloc(64))
        except GoRuntimeError as e:
            if "closed" not in str(e):
                errors.append(repr(e))
        except BaseException as e:
            errors.append(repr(e))
    t = threading.Thread(target=worker, daemon=True)
    t.start()
    started.wait()
    r.close()
    t.join(10)
    if t.is_alive():
        print(f"round {i}: the {kind} thread is stuck after close()", flush=True)
        import os; os._exit(3)
    if errors:
        print(f"round {i}: {errors[0]}", flush=True)
        sys.exit(2)
print("OK")
"""


@pytest.mark.parametrize("kind", ["gc", "memstats", "large", "small"])
def test_close_while_other_threads_call_in(kind):
    """close() racing with calls from another thread: each call either completes
    or raises GoRuntimeError("runtime closed"); nothing touches the released heap.
    Run in a child interpreter so that a crash or a hang fails this test only."""
    try:
        proc = subprocess.run([sys.executable, "-c", CLOSE_RACE, kind, "150"],
                              capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"close() racing with {kind}: the child hung\n{e.stdout}")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), \
        f"rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


# -- a random walk against a model of the heap -----------------------------------------

MODEL_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 25, 32, 48, 64, 100, 128, 256, 500,
               1024, 1025, 2048, 4000, 8192, 10000, 32768, 32769, 50000, 100000]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_against_a_model(rt_sc, seed):
    """Random mallocs, writes, frees, collections and snapshots, checked against a
    plain Python model: live objects never overlap, keep their bytes, start zeroed,
    and freed memory is not handed out again before a collection."""
    rt = rt_sc
    rng = random.Random(seed)
    live = {}                       # addr -> (size, contents)
    starts = []                     # sorted live and freed-but-unswept extents: (addr, end)
    unswept = set()                 # freed since the last gc
    mallocs = 0

    def overlaps(a, end):
        i = bisect.bisect_left(starts, (a, 0))
        for j in (i - 1, i):
            if 0 <= j < len(starts):
                b, e = starts[j]
                if b < end and a < e:
                    return (b, e)
        return None

    def drop(a):
        size, data = live.pop(a)
        assert rt.read(a, size) == data, f"object {a:#x} changed while live"
        rt.free(a)
        unswept.add(a)

    with rt.proc():
        for step in range(3000):
            op = rng.random()
            if op < 0.55 or not live:
                size = rng.choice(MODEL_SIZES)
                noscan = rng.random() < 0.5
                a = rt.malloc(size, noscan=noscan)
                mallocs += 1
                hit = overlaps(a, a + size)
                assert hit is None, f"step {step}: [{a:#x}, +{size}) overlaps {hit}"
                assert rt.read(a, size) == bytes(size), f"step {step}: {a:#x} not zeroed"
                data = rng.randbytes(size)
                rt.write(a, data)
                live[a] = (size, data)
                bisect.insort(starts, (a, a + size))
            elif op < 0.93:
                drop(rng.choice(list(live)))
            elif op < 0.97:
                rt.gc()
                # Swept: the freed extents may be reused from now on.
                starts = sorted((a, a + live[a][0]) for a in live)
                unswept.clear()
            else:
                ms = rt.memstats()
                assert_memstats_invariants(ms, rt if op > 0.995 else None)
                assert ms.Mallocs == mallocs
        for a in list(live):
            drop(a)
    rt.gc()
    ms = rt.memstats()
    assert ms.HeapObjects == 0 and ms.HeapInuse == 0 and ms.Mallocs == ms.Frees == mallocs
    assert_memstats_invariants(ms, rt)


def _bytes_per_m(seed, ms=2):
    with Runtime(gomaxprocs=2, gogc=None) as rt:
        r = rt.run(ms=ms, ops=2000, sizes=range(1, 4097), live=64, seed=seed)
    return [m["bytes"] for m in sorted(r.per_m, key=lambda m: m["id"])]


def test_churn_seeding_is_reproducible_and_distinct_per_m():
    # Sizes come only from each M's generator, so its byte count is a
    # function of (seed, M id), whatever the interleaving.
    first = _bytes_per_m(seed=12345)
    assert first == _bytes_per_m(seed=12345)
    assert first[0] != first[1]
    assert first != _bytes_per_m(seed=54321)


def test_seeds_beyond_64_bits_and_negative_seeds_are_accepted():
    # Only the low 64 bits of a seed count.
    assert _bytes_per_m(seed=(1 << 64) + 7) == _bytes_per_m(seed=7)
    assert len(_bytes_per_m(seed=-1)) == 2


def test_large_sizes_is_a_range_never_a_pair(rt, live):
    """A (lo, hi) pair would read as a list of two sizes elsewhere: only a range is taken."""
    with unchanged(rt):
        with pytest.raises(TypeError, match="large_sizes must be a range"):
            rt.run(ops=10, large_sizes=(40000, 50000))
    r = rt.run(ms=1, ops=200, sizes=64, large_share=0.5, large_sizes=range(40000, 40001), seed=1)
    assert r.config["large_sizes"] == {"range": [40000, 40000]}


def test_reprs_say_what_they_are():
    with Runtime(gomaxprocs=2, gogc=50, mcache="shared", pagecache=True) as rt:
        assert repr(rt) == ("<Runtime GOMAXPROCS=2 sizeclasses=go1.13 GOGC=50 mcache=shared "
                            "mcentral=mutex pagecache=True>")
        r = rt.run(ms=2, ops=1000, sizes=64, seed=5)
        assert repr(r).startswith("RunResult(churn: 2,000 allocs, 2,000 frees by 2 Ms in ")
        assert repr(r).endswith(", seed 5)")
        x = rt.malloc(100)
        span = rt.span_of(x)
        assert span.base == rt.heap.span_of(x).base <= x < span.limit
        assert repr(span).startswith(f"<span {span.base:#x} 1 page spanclass 16 (112 B scan): 1/73 allocated")
        assert rt.span_of(12345) is None
    assert repr(rt).endswith(" closed>")
