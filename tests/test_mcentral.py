"""The mcentral: refills hand out a new span from it (growing from the mheap) and take
its lock at cacheSpan."""
import pytest

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
    assert {rt.heap.span_of(a)["base"] for a in addrs[:-1]} == {first["base"]}
    assert last["base"] != first["base"]
    assert first["allocCount"] == nelems
    assert addrs[-1] == last["base"]
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
