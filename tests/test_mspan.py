"""mspan: consecutive slots, freeindex and allocCount, the slot size, the tail waste."""
import pytest

from goruntime import GoRuntimeError
from conftest import PAGE, unchanged


@pytest.mark.parametrize("size", [8, 24, 48, 64, 1000, 1025, 4096, 20000, 32768])
def test_consecutive_mallocs_are_consecutive_slots(rt_sc, size):
    sc = rt_sc.sizeclasses
    c = sc.size_to_class(size)
    elemsize, nelems = sc.class_to_size(c), sc.class_to_nelems(c)
    n = min(nelems, 8)
    with rt_sc.proc():
        addrs = [rt_sc.malloc(size) for _ in range(n)]
    span = rt_sc.heap.span_of(addrs[0])
    assert span.base % PAGE == 0
    assert addrs[0] == span.base                 # a fresh span starts at slot 0
    assert addrs == [span.base + i * elemsize for i in range(n)]
    for a in addrs:
        assert rt_sc.heap.span_of(a).base == span.base
    assert span.allocCount == n
    assert span.freeindex == n
    assert span.state == "inuse"


def test_fresh_memory_is_zero_and_writable_to_the_slot_size(rt):
    with rt.proc():
        x = rt.malloc(40)                           # 48-byte slot
        y = rt.malloc(40)
    assert y - x == 48
    assert rt.read(x, 48) == bytes(48)
    rt.write(x, b"\xab" * 48)
    assert rt.read(x, 48) == b"\xab" * 48
    assert rt.read(y, 48) == bytes(48)              # the neighbour is untouched


def test_free_slot_beyond_freeindex(rt, live):
    small = live["small"]
    span = rt.heap.span_of(small)
    beyond = span.base + (span.freeindex + 3) * span.elemsize
    last = span.base + (span.nelems - 1) * span.elemsize
    with unchanged(rt):
        for addr in (beyond, last):
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.free(addr)
    # Allocating that slot later works normally.
    with rt.proc():
        got = [rt.malloc(64) for _ in range(4)]
    assert beyond in got
    rt.free(beyond)


def test_free_and_read_in_a_spans_tail_waste(rt):
    # 48-byte slots: 170 fit in a page, the last 32 bytes belong to no object.
    with rt.proc():
        x = rt.malloc(48)
    span = rt.heap.span_of(x)
    assert span.nelems * span.elemsize < PAGE
    tail = span.base + span.nelems * span.elemsize
    assert rt.heap.span_of(tail).base == span.base
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.free(tail)
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.read(tail, 1)


def test_object_index_by_multiplication_is_exact(rt_sc):
    """free, read and write find an object's slot as Go does since 1.20:
    (offset * divMul) >> 32, divMul = 2**32 // size rounded up. It is monotonic in the
    offset, so being exact at both ends of every slot of every span of every size
    class makes it exact everywhere; the spans carry that divMul."""
    sc = rt_sc.sizeclasses
    for c in range(1, sc.num_classes):
        size, nelems = sc.class_to_size(c), sc.class_to_nelems(c)
        div_mul = (2**32 - 1) // size + 1
        for i in range(nelems):
            for off in (i * size, i * size + size - 1):
                assert (off * div_mul) >> 32 == i, (sc.version, c, size, off)
    with rt_sc.proc():
        for size in (48, 1152, 27264 if sc.version == "go1.19" else 28672):
            x = rt_sc.malloc(size)
            span = rt_sc.heap.span_of(x)
            assert span.divMul == (2**32 - 1) // span.elemsize + 1
            rt_sc.free(x)
        big = rt_sc.malloc(40000)
        assert rt_sc.heap.span_of(big).divMul == 0
