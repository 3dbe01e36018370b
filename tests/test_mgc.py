"""The collector: sweeping (freed slots and pages come back only after a gc), collection
counts and pauses, and GC pacing (GOGC, the heap goal)."""
import pytest

from goruntime import Runtime
from conftest import (OPS, PAGE, assert_all_collected, assert_memstats_invariants,
                      assert_run_result, by_size)


# -- sweeping --------------------------------------------------------------------------

def test_sweep_reclaims_freed_slots(rt):
    with rt.proc():
        addrs = [rt.malloc(64) for _ in range(10)]
    for a in addrs[2:5]:
        rt.free(a)
    span = rt.heap.span_of(addrs[0])
    assert span.allocCount == 10                 # frees wait for the sweeper
    ms = rt.memstats()
    assert ms.HeapObjects == 10 and ms.Frees == 0
    rt.gc()
    span = rt.heap.span_of(addrs[0])
    assert span.allocCount == 7
    assert span.allocBits_popcount == 7
    assert span.freeindex == 0
    ms = rt.memstats()
    assert ms.HeapObjects == 7 and ms.Frees == 3 and ms.HeapAlloc == 7 * 64
    assert by_size(ms, 64)["Frees"] == 3
    assert ms.NumGC == 1
    assert_memstats_invariants(ms, rt)
    # The surviving objects are still readable; the freed ones are not.
    for a in addrs[:2] + addrs[5:]:
        assert rt.read(a, 64) == bytes(64)


def test_fully_freed_span_returns_its_pages(rt):
    with rt.proc():
        addrs = [rt.malloc(256) for _ in range(5)]
    ms0 = rt.memstats()
    for a in addrs:
        rt.free(a)
    rt.gc()
    ms1 = rt.memstats()
    assert rt.heap.span_of(addrs[0]) is None
    assert ms0.HeapInuse - ms1.HeapInuse == PAGE
    assert ms1.HeapInuse == 0 and ms1.HeapObjects == 0 and ms1.HeapAlloc == 0
    assert ms1.Frees == ms1.Mallocs == 5
    assert_memstats_invariants(ms1, rt)


def test_freed_slot_is_reused_only_after_gc(rt):
    with rt.proc():
        a = rt.malloc(64)
        keep = rt.malloc(64)
        rt.free(a)
        # A whole span's worth and more: never the freed slot.
        later = [rt.malloc(64) for _ in range(200)]
    assert a not in later and keep not in later
    assert len(set(later)) == len(later)
    for x in later:
        rt.free(x)
    rt.gc()
    assert rt.heap.span_of(keep).allocCount == 1
    with rt.proc():
        again = [rt.malloc(64) for _ in range(3)]
    # Now the swept slots come back, lowest first, around the live one.
    assert again == [a, keep + 64, keep + 128]


def test_freed_large_pages_are_reused_only_after_gc(rt):
    x = rt.malloc(40000)
    rt.free(x)
    y = rt.malloc(40000)
    assert y != x and rt.heap.span_of(x).base == x
    rt.gc()
    assert rt.heap.span_of(x) is None
    assert rt.malloc(40000) == x


# -- collections and pacing ------------------------------------------------------------

def test_gc_counts_and_pauses(rt):
    for i in range(1, 4):
        rt.gc()
        ms = rt.memstats()
        assert ms.NumGC == i
        assert len(ms.PauseNs) == i
    assert ms.LastGC > 0
    assert_memstats_invariants(ms, rt)


def test_gogc_paces_collections():
    mib = 1 << 20
    with Runtime(gomaxprocs=1, gogc=100) as r:
        assert r.memstats().NextGC == 4 * mib      # the minimum heap goal
        xs = []
        for k in range(1, 10):
            xs.append(r.malloc(mib))               # 128 pages: exactly 1 MiB of heap
            # The heap reaches 4 MiB at the 4th object, then 2 x 4 MiB at the 8th.
            assert r.memstats().NumGC == (0 if k < 4 else 1 if k < 8 else 2), k
        ms = r.memstats()
        assert ms.NextGC == 16 * mib
        assert ms.HeapAlloc == 9 * mib
        for x in xs:
            r.free(x)
        r.gc()
        ms = r.memstats()
        assert ms.NextGC == 4 * mib and ms.HeapAlloc == 0 and ms.NumGC == 3
        assert_memstats_invariants(ms, r)


@pytest.mark.parametrize("gogc,goal_mib", [(50, 18), (100, 24), (200, 36)])
def test_heap_goal_after_gc(gogc, goal_mib):
    mib = 1 << 20
    with Runtime(gomaxprocs=1, gogc=gogc) as r:
        for _ in range(3):
            r.malloc(4 * mib)
        r.gc()
        ms = r.memstats()
        assert ms.HeapAlloc == 12 * mib
        assert ms.NextGC == goal_mib * mib
        assert ms.HeapLive == ms.HeapAlloc          # right after a collection


def test_gc_off_never_collects_on_its_own(rt):
    xs = [rt.malloc(1 << 20) for _ in range(40)]
    ms = rt.memstats()
    assert ms.NumGC == 0 and ms.NextGC == 0
    assert ms.HeapAlloc == 40 << 20
    for x in xs:
        rt.free(x)


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
