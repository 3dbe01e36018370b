"""Ps and Ms: P states inside and outside `with rt.proc():`, taking a parked P,
waiting for one, the scheduler lock, and many Python threads on few Ps (with collections
from other threads)."""
import contextlib
import queue
import random
import threading

import pytest

from goruntime import GoRuntimeError, Runtime
from goruntime.cmd.benchkernels import mcache_hit
from conftest import (OPS, assert_all_collected, assert_memstats_invariants, assert_run_result,
                      consistent, held_p, lock_counts)


# -- P states and the scheduler --------------------------------------------------------

def test_p_status_inside_and_outside_proc(rt):
    assert all(p.status.name == "P_IDLE" for p in rt.ps)
    assert [p.id for p in rt.ps] == [0, 1]
    with rt.proc():
        held = held_p(rt)
        rt.malloc(8)
        assert held_p(rt).id == held.id
        rt.gc()         # a stop-the-world takes the parked P; the sweep after it takes one back
        assert held_p(rt) and sum(p.status.name == "P_IDLE" for p in rt.ps) == 1
        rt.malloc(8)
        held_p(rt)
    assert all(p.status.name == "P_IDLE" for p in rt.ps)


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


def test_nested_proc_of_two_runtimes(rt):
    with Runtime(gomaxprocs=1, gogc=None) as other:
        with rt.proc():
            with pytest.raises(GoRuntimeError):
                with other.proc():
                    pass
            x = rt.malloc(8)                        # the outer proc is intact
        with other.proc():
            y = other.malloc(8)
            with other.proc():                      # nesting the same runtime is fine
                assert other.malloc(8) == y + 8
    rt.free(x)


def test_thread_waiting_for_a_p_is_released_by_close():
    r = Runtime(gomaxprocs=1, gogc=None)
    outcome = []
    entered = threading.Event()

    def waiter():
        entered.set()
        try:
            r.malloc(64)                            # blocks: the only P is held below
            outcome.append("allocated")
        except GoRuntimeError as e:
            outcome.append(e)

    with r.proc():
        r.malloc(8)
        t = threading.Thread(target=waiter)
        t.start()
        entered.wait()
        # close() wakes the waiter whether or not it is already blocked in acquirep.
        r.close()
    t.join()
    assert len(outcome) == 1
    assert outcome[0] == "allocated" or "closed" in str(outcome[0])


def test_exception_inside_proc_releases_the_p():
    with Runtime(gomaxprocs=2) as rt:
        with pytest.raises(ZeroDivisionError):
            with rt.proc():
                xs = [rt.malloc(s) for s in (8, 16, 100, 40000)]
                1 / 0
        consistent(rt)
        for x in xs:
            rt.free(x)
        assert consistent(rt).HeapObjects == 0


# -- Python threads --------------------------------------------------------------------

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


def py_worker(rt, wid, iters, use_proc, live, errors, barrier, window=24, midway=None):
    """Allocates iters tagged objects, keeping up to `window` live; with `midway` (an
    Event), waits half-way through for it (a collection while the workers hold objects)."""
    rng = random.Random(wid)
    mine = []
    try:
        barrier.wait()
        with (rt.proc() if use_proc else contextlib.nullcontext()):
            for seq in range(iters):
                if midway is not None and seq == iters // 2:
                    assert midway.wait(60), f"worker {wid}: no collection half-way through"
                size, noscan = rng.choice(SIZES)
                mine.append(alloc_tagged(rt, live, wid, seq, size, noscan))
                if len(mine) > window:
                    check_and_free(rt, live, mine.pop(rng.randrange(len(mine))))
            for obj in mine:
                check_and_free(rt, live, obj)
    except BaseException as e:                      # reported by the test
        errors.append((wid, e))


def gc_worker(rt, done, errors, barrier, counts, collected=None):
    """Collects until `done`; sets `collected` (an Event) after the first collection."""
    try:
        barrier.wait()
        while True:
            rt.gc()
            counts["gc"] += 1
            ms = rt.memstats()
            assert_memstats_invariants(ms)
            rt.verify()                             # a stopped world is always consistent
            if collected is not None:
                collected.set()
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
        # Each worker waits half-way for a collection: one runs while all of them hold
        # objects (and the proc() ones hold their P).
        collected = threading.Event()
        workers = [threading.Thread(target=py_worker,
                                    args=(rt, i, iters, i % 2 == 0, live, errors, barrier),
                                    kwargs={"midway": collected})
                   for i in range(nthreads)]
        collector = threading.Thread(target=gc_worker,
                                     args=(rt, done, errors, barrier, counts, collected))
        for t in workers + [collector]:
            t.start()
        for t in workers:
            t.join()
        done.set()
        collector.join()
        assert errors == []
        assert live.addrs == set() and live.allocs == nthreads * iters
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


@pytest.mark.parametrize("ms", [1, 2])
def test_bench_kernel_launches_every_m(ms):
    with Runtime(gomaxprocs=2, gogc=None) as rt:
        per_m, aggregate, share = mcache_hit(rt, ms, 64, 4)
    assert len(per_m) == ms and all(ns > 0 for ns in per_m) and aggregate > 0 and 0 <= share
