"""The mcentral: refills hand out a new span from it (growing from the mheap) and take
its lock at cacheSpan; its lists, read as span views."""
import pytest

from goruntime import Runtime
from conftest import assert_memstats_invariants, held_p


@pytest.mark.parametrize("size", [64, 2048, 24])
def test_span_refill_moves_to_a_new_span(rt_sc, size):
    rt = rt_sc
    sc = rt.sizeclasses
    c = sc.size_to_class(size)
    spc = c << 1
    nelems = sc.class_to_nelems(c)
    ms0 = rt.memstats()
    ls0 = rt.lockstats()
    with rt.proc():
        refills0 = held_p(rt).mcache.refills
        addrs = [rt.malloc(size) for _ in range(nelems + 1)]
        refills1 = held_p(rt).mcache.refills
    ls1 = rt.lockstats()
    ms1 = rt.memstats()
    first = rt.heap.span_of(addrs[0])
    last = rt.heap.span_of(addrs[-1])
    assert {rt.heap.span_of(a).base for a in addrs[:-1]} == {first.base}
    assert last.base != first.base
    assert first.allocCount == nelems
    assert addrs[-1] == last.base
    # One refill for the first span, one when it filled up.
    assert refills1 - refills0 == 2
    assert ms1.Refills - ms0.Refills == 2
    assert ms1.MCentralGrows - ms0.MCentralGrows == 2
    assert ms1.MCacheHits - ms0.MCacheHits == nelems + 1 - 2
    central0, central1 = ls0["mcentrals"][spc], ls1["mcentrals"][spc]
    assert central1["acquisitions"] > central0["acquisitions"]
    site = "runtime.(*mcentral).cacheSpan"
    assert central1["sites"][site]["acquisitions"] - central0["sites"].get(site, {"acquisitions": 0})["acquisitions"] == 2
    assert rt.centrals[spc].lockstats()["acquisitions"] >= central1["acquisitions"]
    assert ls1["mheap"]["acquisitions"] > ls0["mheap"]["acquisitions"]
    assert_memstats_invariants(ms1, rt)


def test_list_views_show_nonempty_and_empty_as_go_13_keeps_them():
    """The mcentral's lists as span views: a cached span sits on empty (Go 1.13 keeps it
    there) and is swept-then-cached; after a collection flushed the mcache, a span with
    free slots is on nonempty and swept. Reading a view changes nothing it shows."""
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        spc = rt.sizeclasses.size_to_class(64) << 1
        central = rt.centrals[spc]
        assert repr(central) == f"<mcentral[{spc}] 64 B scan (mutex)>"
        xs = [rt.malloc(64) for _ in range(10)]
        (cached,) = central.empty
        assert list(central.nonempty) == []
        assert cached.base <= xs[0] < cached.limit and cached.allocCount == 10
        assert cached.sweep_state == "swept, then cached" and cached.where == f"mcentral[{spc}].empty"
        locks = rt.lockstats()["mcentrals"][spc]["acquisitions"]
        again = central.empty
        assert [(s.base, s.allocCount) for s in again] == [(cached.base, 10)]
        assert rt.lockstats()["mcentrals"][spc]["acquisitions"] == locks     # the views took no counted lock
        assert [s.base for s in rt.ps[0].mcache.spans()] == [cached.base]     # nor flushed the mcache
        rt.free(xs[0])
        rt.gc()
        (swept,) = central.nonempty
        assert swept.base == cached.base and swept.allocCount == 9 and swept.sweep_state == "swept"
        assert list(central.empty) == []
        text = repr(central.nonempty)
        assert text.startswith(f"<mcentral[{spc}] (64 B scan).nonempty: 1 span, 9/128 slots allocated:")
        assert f"<span {swept.base:#x} 1 page spanclass {spc} (64 B scan): 9/128 allocated" in text
        with pytest.raises(AttributeError, match="mutex mode has nonempty and empty"):
            central.partial


def test_list_views_in_the_spanset_mode():
    with Runtime(gomaxprocs=1, gogc=None, mcentral="spanset") as rt:
        spc = rt.sizeclasses.size_to_class(64) << 1
        central = rt.centrals[spc]
        x = rt.malloc(64)
        assert list(central.partial) == [] and list(central.full) == []   # Go 1.15: a cached span is in no set
        rt.free(x)
        rt.gc()
        assert [s.allocCount for s in central.full] == [] and len(central.partial) == 0
        rt.malloc(64)
        rt.memstats()                        # flushes the mcache: the span goes back to a set
        (span,) = central.partial
        assert span.allocCount == 1 and span.where == f"mcentral[{spc}].partial"
        with pytest.raises(AttributeError, match="spanset mode has partial and full"):
            central.nonempty
