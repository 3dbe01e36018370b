"""mallocgc: the size class it picks, the tiny allocator, large objects, malloc(0), and
zeroing memory that is handed out again."""
import pytest

from goruntime import GoRuntimeError
from conftest import PAGE, assert_memstats_invariants, by_size, held_p, unchanged


# -- size classes ----------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 9, 17, 25, 100, 1024, 1025, 5000, 32768])
def test_malloc_uses_the_looked_up_class(rt_sc, size):
    sc = rt_sc.sizeclasses
    c = sc.size_to_class(size)
    x = rt_sc.malloc(size)
    span = rt_sc.heap.span_of(x)
    assert span.sizeclass == c
    assert span.spanclass == c << 1          # scan object
    assert span.noscan is False
    assert span.elemsize == sc.class_to_size(c)
    assert span.nelems == sc.class_to_nelems(c)
    assert span.npages == sc.class_to_npages(c)
    y = rt_sc.malloc(size, noscan=True) if size >= 16 else None
    if y is not None:
        assert rt_sc.heap.span_of(y).spanclass == (c << 1) | 1
    ms = rt_sc.memstats()
    assert by_size(ms, sc.class_to_size(c))["Mallocs"] == (2 if y else 1)


def test_zero_size_returns_one_address(rt, live):
    with unchanged(rt):
        z = rt.malloc(0)
        assert rt.malloc(0) == z
        assert rt.malloc(0, noscan=True) == z
        with rt.proc():
            assert rt.malloc(0) == z
        assert rt.read(z, 0) == b""
        rt.write(z, b"")
        with pytest.raises(GoRuntimeError):
            rt.read(z, 1)
        with pytest.raises(GoRuntimeError):
            rt.write(z, b"x")
    assert rt.heap.span_of(z) is None


# -- the tiny allocator ----------------------------------------------------------------

def test_tiny_packing_offsets_and_alignment(rt):
    with rt.proc():
        p = held_p(rt)
        x1 = rt.malloc(1, noscan=True)
        block = x1
        assert p.mcache.tiny == block and p.mcache.tinyoffset == 1
        x2 = rt.malloc(2, noscan=True)              # 2-aligned
        x4 = rt.malloc(4, noscan=True)              # 4-aligned
        x8 = rt.malloc(8, noscan=True)              # 8-aligned: fills the block
        assert [x - block for x in (x1, x2, x4, x8)] == [0, 2, 4, 8]
        assert p.mcache.tinyoffset == 16
        x12 = rt.malloc(12, noscan=True)            # does not fit: a new block
        assert x12 == block + 16
        assert p.mcache.tiny == x12 and p.mcache.tinyoffset == 12
        y4 = rt.malloc(4, noscan=True)
        assert y4 == x12 + 12
        z1 = rt.malloc(1, noscan=True)              # next block
        assert z1 == block + 32
        z3 = rt.malloc(3, noscan=True)              # odd size: no alignment
        assert z3 == z1 + 1
        z6 = rt.malloc(6, noscan=True)              # 2-aligned: 4 -> 4
        assert z6 == z1 + 4
        z2 = rt.malloc(2, noscan=True)
        assert z2 == z1 + 10
        tinyallocs = p.mcache.tinyallocs
    span = rt.heap.span_of(block)
    assert span.spanclass == (2 << 1) | 1 and span.elemsize == 16
    assert span.allocCount == 3                  # three 16 B blocks
    ms = rt.memstats()
    # Objects packed into an existing block count as tiny allocs, in Mallocs and in Frees.
    assert tinyallocs == ms.TinyAllocs == 7
    assert ms.Mallocs == 10 and ms.Frees == 7 and ms.HeapObjects == 3
    assert by_size(ms, 16)["Mallocs"] == 3
    assert ms.HeapAlloc == 3 * 16
    assert_memstats_invariants(ms, rt)


def test_tiny_block_replaced_only_when_new_one_has_more_room(rt):
    with rt.proc():
        p = held_p(rt)
        a = rt.malloc(6, noscan=True)               # block X, offset 6
        b = rt.malloc(12, noscan=True)              # 8 + 12 > 16: block Y; 12 < 6 is false
        assert b == a + 16
        assert p.mcache.tiny == a and p.mcache.tinyoffset == 6
        c = rt.malloc(2, noscan=True)               # still packed into X
        assert c == a + 6
        c4 = rt.malloc(4, noscan=True)              # 4-aligned: 8
        assert c4 == a + 8
        assert p.mcache.tinyoffset == 12
        d = rt.malloc(8, noscan=True)               # 16 + 8 > 16: block Z; 8 < 12: Z replaces X
        assert d == a + 32
        assert p.mcache.tiny == d and p.mcache.tinyoffset == 8
        e = rt.malloc(4, noscan=True)
        assert e == d + 8
    ms = rt.memstats()
    assert ms.TinyAllocs == 3 and by_size(ms, 16)["Mallocs"] == 3


def test_scan_and_16_byte_objects_are_not_tiny(rt):
    with rt.proc():
        p = held_p(rt)
        s1 = rt.malloc(1)
        s2 = rt.malloc(4)
        s3 = rt.malloc(15)
        assert s2 - s1 == 8                         # 8-byte class, one slot each
        assert rt.heap.span_of(s1).spanclass == 1 << 1
        assert rt.heap.span_of(s3).elemsize == 16
        assert rt.heap.span_of(s3).noscan is False
        n16 = rt.malloc(16, noscan=True)            # noscan but not under 16 B
        assert p.mcache.tiny == 0
        n16b = rt.malloc(16, noscan=True)
        assert n16b - n16 == 16
        assert p.mcache.tinyallocs == 0
    ms = rt.memstats()
    assert ms.TinyAllocs == 0 and ms.Mallocs == 5


def test_tiny_object_extent_is_its_requested_size(rt):
    with rt.proc():
        a = rt.malloc(3, noscan=True)
        assert rt.read(a, 3) == bytes(3)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(a, 4)                           # the rest of the block is not a's
        b = rt.malloc(4, noscan=True)               # aligned to 4: at a + 4
        assert b == a + 4
        rt.write(a, b"abc")
        rt.write(b, b"wxyz")
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.write(b, b"w" * 5)
        assert rt.read(b, 4) == b"wxyz"
        assert rt.read(a, 3) == b"abc"


def test_tiny_objects_free_individually_block_reclaimed_when_all_dead(rt):
    with rt.proc():
        keep = rt.malloc(16, noscan=True)           # slot 0 of the 16 B noscan span
        a = rt.malloc(8, noscan=True)               # tiny block in slot 1
        b = rt.malloc(8, noscan=True)
    assert a == keep + 16 and b == a + 8
    rt.write(b, b"B" * 8)
    rt.free(a)
    rt.gc()
    span = rt.heap.span_of(keep)
    assert span.allocCount == 2                  # the block lives on for b
    assert rt.read(b, 8) == b"B" * 8
    ms = rt.memstats()
    assert ms.HeapObjects == 2
    assert_memstats_invariants(ms, rt)
    rt.free(b)
    rt.gc()
    span = rt.heap.span_of(keep)
    assert span.allocCount == 1                  # the block is reclaimed
    assert span.allocBits_popcount == 1
    ms = rt.memstats()
    assert ms.HeapObjects == 1 and ms.HeapAlloc == 16
    assert by_size(ms, 16)["Frees"] == 1
    assert_memstats_invariants(ms, rt)
    # The reclaimed block is handed out again, zeroed.
    with rt.proc():
        c = rt.malloc(8, noscan=True)
        d = rt.malloc(8, noscan=True)
    assert c == a and d == a + 8
    assert rt.read(c, 8) == bytes(8) and rt.read(d, 8) == bytes(8)


def test_tiny_double_free_detected_while_block_lives(rt):
    with rt.proc():
        a = rt.malloc(4, noscan=True)
        b = rt.malloc(4, noscan=True)
    rt.free(a)
    rt.gc()                                          # b keeps the block alive
    with pytest.raises(GoRuntimeError, match="double free"):
        rt.free(a)
    with pytest.raises(GoRuntimeError):
        rt.read(a, 1)
    assert rt.read(b, 4) == bytes(4)
    rt.free(b)
    rt.gc()
    with pytest.raises(GoRuntimeError):
        rt.free(b)                                   # the block is gone
    assert rt.memstats().HeapObjects == 0


# -- large objects ---------------------------------------------------------------------

@pytest.mark.parametrize("size", [32769, 40000, 65536, 65537, 1 << 20, (3 << 20) + 5])
def test_large_object(rt, size):
    npages = -(-size // PAGE)
    ms0 = rt.memstats()
    ls0 = rt.lockstats()
    x = rt.malloc(size)
    ls1 = rt.lockstats()
    ms1 = rt.memstats()
    assert x % PAGE == 0
    span = rt.heap.span_of(x)
    assert span.base == x and span.npages == npages
    assert span.sizeclass == 0 and span.nelems == 1
    assert span.elemsize == npages * PAGE
    assert rt.heap.span_of(x + npages * PAGE - 1).base == x
    assert rt.heap.span_of(x + npages * PAGE) is None
    assert ms1.LargeAllocs - ms0.LargeAllocs == 1
    assert ms1.Mallocs - ms0.Mallocs == 1
    assert ms1.HeapInuse - ms0.HeapInuse == npages * PAGE
    assert ms1.HeapAlloc - ms0.HeapAlloc == npages * PAGE
    assert ms1.TotalAlloc - ms0.TotalAlloc == npages * PAGE
    assert ms1.Refills == ms0.Refills
    # Straight from the mheap: no mcentral lock taken, one mheap acquisition.
    assert ls1["mcentral"]["acquisitions"] == ls0["mcentral"]["acquisitions"]
    site = "runtime.largeAlloc"
    assert ls1["mheap"]["sites"][site]["acquisitions"] - \
        ls0["mheap"]["sites"].get(site, {"acquisitions": 0})["acquisitions"] == 1
    assert ls1["mheap"]["acquisitions"] - ls0["mheap"]["acquisitions"] == 1
    # Readable and writable up to the requested size, not beyond.
    assert rt.read(x, size) == bytes(size)
    rt.write(x + 0, b"\x01" * 8)
    assert rt.read(x, 8) == b"\x01" * 8
    assert_memstats_invariants(ms1, rt)
    rt.free(x)
    rt.gc()
    ms2 = rt.memstats()
    assert rt.heap.span_of(x) is None
    assert ms2.LargeFrees - ms1.LargeFrees == 1
    assert ms2.HeapInuse == ms0.HeapInuse
    assert_memstats_invariants(ms2, rt)


def test_large_noscan_object(rt):
    x = rt.malloc(50000, noscan=True)
    span = rt.heap.span_of(x)
    assert span.noscan is True and span.spanclass == 1 and span.npages == 7


# -- zeroing on reuse ------------------------------------------------------------------

def test_memory_is_zeroed_on_reuse_small(rt):
    with rt.proc():
        a = rt.malloc(64)
        keep = rt.malloc(64)
    rt.write(a, b"\xff" * 64)
    rt.write(keep, b"\xee" * 64)
    rt.free(a)
    rt.gc()
    with rt.proc():
        b = rt.malloc(64)
    assert b == a
    assert rt.read(b, 64) == bytes(64)
    assert rt.read(keep, 64) == b"\xee" * 64


def test_memory_is_zeroed_on_reuse_whole_span(rt):
    size = 512
    nelems = rt.sizeclasses.class_to_nelems(rt.sizeclasses.size_to_class(size))
    with rt.proc():
        addrs = [rt.malloc(size) for _ in range(nelems)]
    for a in addrs:
        rt.write(a, b"\x5a" * size)
        rt.free(a)
    rt.gc()
    assert rt.heap.span_of(addrs[0]) is None
    with rt.proc():
        again = [rt.malloc(size) for _ in range(nelems)]
    assert again == addrs                           # same pages, first fit
    assert rt.heap.span_of(again[0]).needzero is True
    for a in again:
        assert rt.read(a, size) == bytes(size)
    # Pages of a dead small span reused by a large object are zeroed too.
    for a in again:
        rt.write(a, b"\x77" * size)
        rt.free(a)
    rt.gc()
    big = rt.malloc(40000)
    assert big == addrs[0]
    assert rt.read(big, 40000) == bytes(40000)


def test_memory_is_zeroed_on_reuse_large(rt):
    x = rt.malloc(100000)
    rt.write(x, b"\x11" * 100000)
    rt.free(x)
    rt.gc()
    y = rt.malloc(100000)
    assert y == x
    assert rt.read(y, 100000) == bytes(100000)
