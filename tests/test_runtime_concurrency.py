"""Many threads on few Ps: churn kernels on M threads, Python threads allocating
with and without a held P, collections from other threads, and the lock-free
mcache path."""
import contextlib
import queue
import random
import subprocess
import sys
import threading
import zlib

import pytest

from goruntime import GoRuntimeError, Runtime
from conftest import PAGE, assert_memstats_invariants, held_p

OPS = 20000

MIXES = {
    # name: (run kwargs, whether the run allocates enough to reach a 4 MiB heap goal)
    "tiny": (dict(sizes=range(1, 16), noscan=True, live=512), False),
    "small": (dict(sizes=range(16, 4097), noscan=0.5, live=512), True),
    "weighted": (dict(sizes=[8, 24, 48, 64, 256, 1024, 9000, 32768],
                      weights=[8, 6, 6, 6, 4, 2, 1, 1], noscan=0.3, live=256), True),
    "mixed_large": (dict(sizes=range(1, 2049), noscan=0.5, large_share=0.02, live=256,
                         large_sizes=(32769, 200000)), True),
}
TOPOLOGIES = [(1, 2), (1, 8), (2, 3), (2, 8)]       # (gomaxprocs, Ms)


def assert_run_result(r, ms, ops):
    assert r.allocs == ms * ops
    assert r.frees == r.allocs                       # every kernel drops what it holds
    assert len(r.per_m) == ms
    assert sorted(m["id"] for m in r.per_m) == list(range(ms))
    for m in r.per_m:
        assert m["allocs"] == ops and m["frees"] == ops


def assert_all_collected(rt, allocs=None):
    """After a gc nothing is live: every span went back to the page heap."""
    rt.gc()
    ms = rt.memstats()
    assert ms.HeapObjects == 0 and ms.HeapAlloc == 0 and ms.HeapInuse == 0, ms
    assert ms.Mallocs == ms.Frees
    if allocs is not None:
        assert ms.Mallocs == allocs
    assert_memstats_invariants(ms, rt)
    # Each arena is one free run again: freed pages coalesced completely.
    assert rt.heap.free_runs() == [(base, size // PAGE) for base, size in rt.heap.arenas]
    assert all(p.mcache.spans() == [] for p in rt.ps)
    return ms


# -- churn kernels on M threads ---------------------------------------------------

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


@pytest.mark.parametrize("gogc", [0, 25])
def test_small_heap_goal_collects_often(gogc):
    with Runtime(gomaxprocs=2, gogc=gogc) as rt:
        r = rt.run(ms=4, ops=OPS, sizes=range(512, 8193), live=64, seed=gogc)
        assert_run_result(r, 4, OPS)
        stats = rt.memstats()
        assert stats.NumGC > 1
        assert stats.NumGC == sum(m["gcs"] for m in r.per_m)
        assert len(stats.PauseNs) == min(stats.NumGC, 256)
        assert stats.NextGC >= 4 << 20
        assert_memstats_invariants(stats, rt)
        assert_all_collected(rt, r.allocs)


def test_duration_run():
    with Runtime(gomaxprocs=2, gogc=100) as rt:
        r = rt.run(ms=3, duration=0.1, sizes=range(8, 513), noscan=0.5, live=128, seed=3)
        assert r.allocs > 0 and r.frees == r.allocs
        assert r.allocs == sum(m["allocs"] for m in r.per_m)
        stats = rt.memstats()
        assert stats.Mallocs == r.allocs
        assert_memstats_invariants(stats, rt)
        assert_all_collected(rt, r.allocs)


def test_memstats_and_gc_from_other_threads_during_a_run():
    with Runtime(gomaxprocs=2, gogc=100) as rt:
        done = threading.Event()
        snapshots, errors, gcs = [], [], [0]

        def observer():
            try:
                while True:
                    ms = rt.memstats()
                    assert_memstats_invariants(ms)
                    snapshots.append(ms)
                    rt.verify()
                    rt.gc()
                    gcs[0] += 1
                    if done.is_set():
                        break
            except BaseException as e:              # reported below
                errors.append(e)

        t = threading.Thread(target=observer)
        t.start()
        try:
            r = rt.run(ms=4, ops=OPS, sizes=[16, 64, 700, 5000], noscan=0.5, live=256,
                       large_share=0.01, seed=11)
        finally:
            done.set()
            t.join()
        assert errors == []
        assert_run_result(r, 4, OPS)
        assert gcs[0] >= 1 and snapshots
        # Snapshots are monotonic in the cumulative counters.
        for a, b in zip(snapshots, snapshots[1:]):
            assert a.Mallocs <= b.Mallocs and a.Frees <= b.Frees and a.NumGC <= b.NumGC
        stats = rt.memstats()
        assert stats.NumGC == gcs[0] + sum(m["gcs"] for m in r.per_m)
        assert_all_collected(rt, r.allocs)


def test_run_while_a_python_thread_holds_a_p():
    # The Ms must be able to take the P of a thread parked between calls.
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        with rt.proc():
            x = rt.malloc(64)
            r = rt.run(ms=2, ops=2000, live=16, seed=5)
            assert r.allocs == 4000
            y = rt.malloc(64)                       # the thread gets a P back
        assert rt.read(x, 64) == bytes(64) and rt.read(y, 64) == bytes(64)
        rt.free(x)
        rt.free(y)
        assert_all_collected(rt, 4002)


# -- Python threads ---------------------------------------------------------------

SIZES = [(1, True), (3, True), (8, True), (12, True), (8, False), (16, False), (24, True),
         (64, False), (200, False), (1000, True), (4096, False), (20000, True), (40000, False)]


class Live:
    """The addresses handed out and not yet freed, across all threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.addrs = set()
        self.allocs = 0

    def add(self, x, size):
        with self.lock:
            assert x not in self.addrs, f"address {x:#x} handed out twice while live (size {size})"
            self.addrs.add(x)
            self.allocs += 1

    def remove(self, x):
        with self.lock:
            self.addrs.remove(x)


def tag_for(wid, seq, size):
    return ((wid << 40) | seq | (1 << 63)).to_bytes(8, "little")[:min(size, 8)]


def alloc_tagged(rt, live, wid, seq, size, noscan):
    """Allocates, checks the address is not live elsewhere, and tags both ends."""
    x = rt.malloc(size, noscan=noscan)
    live.add(x, size)
    tag = tag_for(wid, seq, size)
    assert rt.read(x, len(tag)) == bytes(len(tag))  # handed out zeroed
    if size >= 16:
        rt.write(x, bytes(size - len(tag)) + tag)
    rt.write(x, tag)
    return (x, size, tag)


def check_and_free(rt, live, obj):
    x, size, tag = obj
    assert rt.read(x, len(tag)) == tag, f"object {x:#x} overwritten while live"
    if size >= 16:
        assert rt.read(x, size)[-len(tag):] == tag
    live.remove(x)                                  # before free: the slot may come back at once
    rt.free(x)


def py_worker(rt, wid, iters, use_proc, live, errors, barrier, window=24):
    rng = random.Random(wid)
    mine = []
    try:
        barrier.wait()
        with (rt.proc() if use_proc else contextlib.nullcontext()):
            for seq in range(iters):
                size, noscan = rng.choice(SIZES)
                mine.append(alloc_tagged(rt, live, wid, seq, size, noscan))
                if len(mine) > window:
                    check_and_free(rt, live, mine.pop(rng.randrange(len(mine))))
            for obj in mine:
                check_and_free(rt, live, obj)
    except BaseException as e:                      # reported by the test
        errors.append((wid, e))


def gc_worker(rt, done, errors, barrier, counts):
    try:
        barrier.wait()
        while True:
            rt.gc()
            counts["gc"] += 1
            ms = rt.memstats()
            assert_memstats_invariants(ms)
            rt.verify()                             # a stopped world is always consistent
            if done.is_set():
                break
    except BaseException as e:
        errors.append(("gc", e))


@pytest.mark.parametrize("gomaxprocs,nthreads", [(1, 4), (2, 4), (2, 6)])
def test_python_threads_with_concurrent_gc(sc_version, gomaxprocs, nthreads):
    iters = 600
    with Runtime(gomaxprocs=gomaxprocs, gogc=None, sizeclasses=sc_version) as rt:
        live, errors, done = Live(), [], threading.Event()
        counts = {"gc": 0}
        barrier = threading.Barrier(nthreads + 1)
        workers = [threading.Thread(target=py_worker,
                                    args=(rt, i, iters, i % 2 == 0, live, errors, barrier))
                   for i in range(nthreads)]
        collector = threading.Thread(target=gc_worker, args=(rt, done, errors, barrier, counts))
        for t in workers + [collector]:
            t.start()
        for t in workers:
            t.join()
        done.set()
        collector.join()
        assert errors == []
        assert live.addrs == set() and live.allocs == nthreads * iters
        assert counts["gc"] >= 1
        ms = assert_all_collected(rt, nthreads * iters)
        assert ms.NumGC == counts["gc"] + 1


def test_python_threads_with_auto_gc():
    with Runtime(gomaxprocs=2, gogc=0) as rt:
        live, errors = Live(), []
        barrier = threading.Barrier(4)
        workers = [threading.Thread(target=py_worker,
                                    args=(rt, i, 800, i % 2 == 1, live, errors, barrier, 64))
                   for i in range(4)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        assert errors == []
        assert live.addrs == set()
        assert rt.memstats().NumGC > 0              # 20 KB / 40 KB objects reach 4 MiB
        assert_all_collected(rt, 4 * 800)


def test_objects_freed_by_other_threads(sc_version):
    """Producers allocate and tag; consumers on other Ps check the tag and free."""
    nprod, ncons, per = 3, 2, 700
    with Runtime(gomaxprocs=2, gogc=None, sizeclasses=sc_version) as rt:
        live, errors, done = Live(), [], threading.Event()
        q = queue.Queue()                           # unbounded: a failed consumer cannot block producers
        counts = {"gc": 0}
        barrier = threading.Barrier(nprod + ncons + 1)

        def producer(wid):
            rng = random.Random(100 + wid)
            try:
                barrier.wait()
                with rt.proc():
                    for seq in range(per):
                        size, noscan = rng.choice(SIZES)
                        q.put(alloc_tagged(rt, live, wid, seq, size, noscan))
            except BaseException as e:
                errors.append((wid, e))

        def consumer(wid):
            try:
                barrier.wait()
                while True:
                    obj = q.get()
                    if obj is None:
                        break
                    check_and_free(rt, live, obj)
            except BaseException as e:
                errors.append((wid, e))

        prods = [threading.Thread(target=producer, args=(i,)) for i in range(nprod)]
        conss = [threading.Thread(target=consumer, args=(10 + i,)) for i in range(ncons)]
        collector = threading.Thread(target=gc_worker, args=(rt, done, errors, barrier, counts))
        for t in prods + conss + [collector]:
            t.start()
        for t in prods:
            t.join()
        for _ in conss:
            q.put(None)
        for t in conss:
            t.join()
        done.set()
        collector.join()
        assert errors == []
        assert live.addrs == set() and live.allocs == nprod * per
        assert_all_collected(rt, nprod * per)


def test_run_and_python_threads_together():
    with Runtime(gomaxprocs=2, gogc=100) as rt:
        live, errors = Live(), []
        barrier = threading.Barrier(3)
        workers = [threading.Thread(target=py_worker,
                                    args=(rt, i, 500, i == 0, live, errors, barrier))
                   for i in range(2)]
        for t in workers:
            t.start()
        barrier.wait()
        r = rt.run(ms=3, ops=OPS, sizes=range(8, 2049), noscan=0.5, live=256, seed=21)
        for t in workers:
            t.join()
        assert errors == []
        assert_run_result(r, 3, OPS)
        assert live.addrs == set()
        assert_all_collected(rt, r.allocs + 1000)


# -- the lock-free mcache path ----------------------------------------------------

def lock_counts(rt):
    ls = rt.lockstats()
    return {"mheap": ls["mheap"]["acquisitions"], "sched": ls["sched"]["acquisitions"],
            "mcentral": ls["mcentral"]["acquisitions"], "p_acquires": ls["sched"]["p_acquires"]}


@pytest.mark.parametrize("size,noscan", [(64, False), (64, True), (8, True), (1000, False)])
def test_mcache_hits_take_no_lock(rt_sc, size, noscan):
    rt = rt_sc
    sc = rt.sizeclasses
    nelems = 512 if (noscan and size < 16) else sc.class_to_nelems(sc.size_to_class(size))
    n = min(50, nelems - 2)
    with rt.proc():
        first = rt.malloc(size, noscan=noscan)      # warm up: refill the mcache
        p = held_p(rt)
        before = lock_counts(rt)
        refills = p.mcache.refills
        addrs = [rt.malloc(size, noscan=noscan) for _ in range(n)]
        rt.write(addrs[0], b"x")
        assert rt.read(addrs[0], 1) == b"x"
        for x in addrs[: n // 2]:
            rt.free(x)                              # frees are lock-free too
        after = lock_counts(rt)
        assert p.mcache.refills == refills
        assert held_p(rt).id == p.id
    assert after == before
    assert len(set(addrs + [first])) == n + 1
    ms = rt.memstats()
    assert ms.Refills == 1
    assert_memstats_invariants(ms, rt)


def test_calls_without_proc_take_the_scheduler_lock(rt):
    rt.malloc(64)
    before = lock_counts(rt)
    for _ in range(10):
        rt.malloc(64)
    after = lock_counts(rt)
    # Each call acquires and releases a P; the mcache itself is still lock-free.
    assert after["sched"] - before["sched"] == 20
    assert after["p_acquires"] - before["p_acquires"] == 10
    assert after["mheap"] == before["mheap"] and after["mcentral"] == before["mcentral"]


# -- close ------------------------------------------------------------------------

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
