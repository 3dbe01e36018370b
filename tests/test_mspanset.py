"""The span-set mcentral (Go 1.19's partial / full spanSets, Runtime(mcentral="spanset")):
no mcentral mutex, and swept spans are reused."""
import pytest

from goruntime import Runtime
from conftest import assert_memstats_invariants


@pytest.mark.parametrize("mcache", ["lockfree", "none"])
def test_spanset_takes_no_mcentral_mutex(mcache):
    with Runtime(gomaxprocs=2, mcache=mcache, mcentral="spanset") as rt:
        r = rt.run(ms=3, ops=5000, sizes=[16, 256, 4096, 32768], noscan=0.5, live=256, seed=5)
        rt.gc()
        ls = rt.lockstats()
        ms = rt.memstats()
    assert r.allocs == 15000 and ms.Mallocs >= r.allocs and ms.NumGC >= 1
    assert ls["mcentral"]["acquisitions"] == 0, ls["mcentral"]["sites"]
    assert all(s["acquisitions"] == 0 for s in ls["mcentrals"].values())


@pytest.mark.parametrize("mcache", ["lockfree", "none"])
def test_spanset_mcentral_reuses_swept_spans(mcache):
    """A span left with one live object stays in use (in a partial set) and its freed
    slots are handed out again after the sweep; an emptied span goes back to the heap."""
    with Runtime(gomaxprocs=2, gogc=None, mcentral="spanset", mcache=mcache) as rt:
        sc = rt.sizeclasses
        nelems = sc.class_to_nelems(sc.size_to_class(64))
        with rt.proc():
            addrs = [rt.malloc(64) for _ in range(2 * nelems)]
        first, second = rt.heap.span_of(addrs[0]), rt.heap.span_of(addrs[nelems])
        assert first.base != second.base
        assert first.allocCount == second.allocCount == nelems
        for a in addrs[1:]:
            rt.free(a)                              # the first span keeps addrs[0]
        rt.gc()
        assert rt.heap.span_of(addrs[0]).allocCount == 1
        assert rt.heap.span_of(addrs[nelems]) is None
        assert rt.verify() == 1
        ms = rt.memstats()
        assert ms.HeapObjects == 1 and ms.HeapInuse == 8192
        assert_memstats_invariants(ms, rt)
        with rt.proc():
            again = [rt.malloc(64) for _ in range(nelems - 1)]
        assert again == addrs[1:nelems]             # the partly used span first, lowest slot first
