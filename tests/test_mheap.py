"""The mheap: the page allocator (first fit, coalescing), arenas and multi-arena
reservations, the heap cap (max_heap) and failed reservations."""
import pytest

from goruntime import GoRuntimeError, Runtime
from conftest import ARENA, PAGE, assert_memstats_invariants, consistent, unchanged


# -- the page allocator ----------------------------------------------------------------

def pages(rt, runs):
    base = rt.heap.arenas[0][0]
    return [((b - base) // PAGE, n) for b, n in runs]


def test_page_allocator_first_fit_and_coalescing(rt):
    A, B, C = (rt.malloc(8 * PAGE) for _ in range(3))
    [(base, size)] = rt.heap.arenas
    total = size // PAGE
    assert [(x - base) // PAGE for x in (A, B, C)] == [0, 8, 16]
    assert pages(rt, rt.heap.free_runs()) == [(24, total - 24)]
    rt.free(B)
    assert pages(rt, rt.heap.free_runs()) == [(24, total - 24)]   # not before the sweep
    rt.gc()
    assert pages(rt, rt.heap.free_runs()) == [(8, 8), (24, total - 24)]
    D = rt.malloc(5 * PAGE)                         # first fit: B's hole, lowest address
    assert D == B
    assert pages(rt, rt.heap.free_runs()) == [(13, 3), (24, total - 24)]
    E = rt.malloc(4 * PAGE + 1)                     # 5 pages: the 3-page hole is too small
    assert E == base + 24 * PAGE
    rt.free(A)
    rt.free(D)
    rt.gc()
    # A, D and the 3-page hole coalesce into one 16-page run.
    assert pages(rt, rt.heap.free_runs()) == [(0, 16), (29, total - 29)]
    F = rt.malloc(16 * PAGE)
    assert F == A
    for x in (C, E, F):
        rt.free(x)
    rt.gc()
    assert rt.heap.free_runs() == [(base, total)]
    ms = rt.memstats()
    assert ms.HeapInuse == 0 and ms.HeapIdle == ms.HeapSys == size
    assert_memstats_invariants(ms, rt)


def test_page_allocator_prefers_the_lowest_hole(rt):
    objs = [rt.malloc(8 * PAGE) for _ in range(6)]
    base = rt.heap.arenas[0][0]
    rt.free(objs[1])
    rt.free(objs[3])
    rt.gc()
    assert pages(rt, rt.heap.free_runs())[:2] == [(8, 8), (24, 8)]
    assert rt.malloc(5 * PAGE) == objs[1]
    assert rt.malloc(8 * PAGE) == objs[3]           # the lower hole has 3 pages left
    assert rt.malloc(5 * PAGE) == base + 48 * PAGE  # neither hole fits: the tail
    assert pages(rt, rt.heap.free_runs())[0] == (13, 3)


def test_small_spans_and_large_objects_share_the_page_heap(rt):
    small = rt.malloc(64)                           # one page
    big = rt.malloc(40000)                          # five pages
    base = rt.heap.arenas[0][0]
    assert small == base and big == base + PAGE
    rt.free(small)
    rt.gc()                                         # the empty span's page returns
    assert pages(rt, rt.heap.free_runs())[0] == (0, 1)
    assert rt.heap.span_of(small) is None
    again = rt.malloc(64)
    assert again == small


def test_free_in_free_pages_of_an_arena(rt, live):
    base, size = rt.heap.arenas[0]
    free_page = rt.heap.free_runs()[-1][0]
    with unchanged(rt):
        for addr in (free_page, base + size - 8):
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.free(addr)


# -- arenas, the heap cap and failed reservations --------------------------------------

def test_large_object_bigger_than_an_arena(rt):
    size = 100 << 20
    x = rt.malloc(size)
    span = rt.heap.span_of(x)
    assert span.npages == size // PAGE and span.base == x
    [(base, reserved)] = rt.heap.arenas
    assert base == x and reserved == 128 << 20       # one reservation of two arenas
    assert rt.read(x, 4096) == bytes(4096)
    rt.write(x, b"end")
    y = rt.malloc(64)                                # small spans use the rest of it
    assert y == x + size
    ms = rt.memstats()
    assert ms.HeapSys == 128 << 20 and ms.HeapInuse == size + PAGE
    assert_memstats_invariants(ms, rt)
    rt.free(x)
    rt.free(y)
    rt.gc()
    assert rt.heap.free_runs() == [(base, (128 << 20) // PAGE)]


def test_arena_index_maps_every_page_to_its_span(rt):
    """spanOf goes through the arena index (Go's mheap_.arenas): every page of
    every reservation, multi-arena ones included, finds the span that owns it
    and a free page finds none; addresses outside the reservations find none."""
    objs = [rt.malloc(100 << 20)]                   # one reservation of two arenas
    objs += [rt.malloc(size) for size in (8, 64, 1024, 40000, 32768, 60 << 20)]
    objs += [rt.malloc(size) for size in (64, 70 << 20)]  # a second and a third reservation
    rt.free(objs[2])
    rt.gc()                                         # free pages between spans as well
    arenas = rt.heap.arenas
    assert len(arenas) >= 3 and any(size > ARENA for _, size in arenas)
    free = {}
    for base, npages in rt.heap.free_runs():
        for i in range(npages):
            free[base + i * PAGE] = True
    spans = 0
    for base, size in arenas:
        page = base
        while page < base + size:
            span = rt.heap.span_of(page)
            if page in free:
                assert span is None, f"free page {page:#x} maps to span {span}"
                page += PAGE
                continue
            assert span is not None, f"page {page:#x} of the reservation at {base:#x} maps to no span"
            assert span.base == page, f"page {page:#x} maps to span {span.base:#x}, not its own"
            end = span.base + span.npages * PAGE
            assert end <= base + size
            for inner in range(page, end, PAGE):        # every page of the span: the same span
                assert rt.heap.span_of(inner + PAGE - 1).base == page
            spans += 1
            page = end
    assert spans >= len(objs) - 1
    lo = min(b for b, _ in arenas)
    hi = max(b + s for b, s in arenas)
    foreign = [0, 8, lo - 1, lo - PAGE, hi, hi + ARENA, 1 << 47, (1 << 48) - 8, 1 << 48,
               2**64 - 8, id(objs)]
    for addr in foreign:
        if not any(b <= addr < b + s for b, s in arenas):
            assert rt.heap.span_of(addr) is None, f"foreign address {addr:#x} maps to a span"
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.free(addr)


def test_max_heap_cap(rt):
    with Runtime(gomaxprocs=1, gogc=None, max_heap=64 << 20) as capped:
        with unchanged(capped):
            with pytest.raises(MemoryError) as info:
                capped.malloc(100 << 20)
            assert str(100 << 20) in str(info.value)
        x = capped.malloc(64)
        y = capped.malloc(1 << 20)
        capped.write(y, b"y" * 16)
        assert capped.read(x, 64) == bytes(64)
        ms = capped.memstats()
        assert ms.HeapSys == 64 << 20
        assert_memstats_invariants(ms, capped)
        with unchanged(capped):
            with pytest.raises(MemoryError):
                capped.malloc(64 << 20)            # the arena already holds other spans


def test_max_heap_below_one_arena():
    with Runtime(gomaxprocs=1, gogc=None, max_heap=1 << 20) as tiny_cap:
        for size in (8, 4096, 40000):
            with pytest.raises(MemoryError, match=str(size)):
                tiny_cap.malloc(size)
        ms = tiny_cap.memstats()
        assert ms.HeapSys == 0 and ms.Mallocs == 0
        assert_memstats_invariants(ms, tiny_cap)
        assert tiny_cap.malloc(0) == tiny_cap.malloc(0)


def test_heap_exhaustion_recovers(rt):
    size = 32768
    with Runtime(gomaxprocs=1, gogc=None, max_heap=64 << 20) as capped:
        got = []
        with pytest.raises(MemoryError):
            with capped.proc():
                for _ in range((64 << 20) // size + 1):
                    got.append(capped.malloc(size))
        assert len(got) == (64 << 20) // size       # every page used, then refused
        assert len(set(got)) == len(got)
        ms = capped.memstats()
        assert ms.HeapIdle == 0 and ms.HeapObjects == len(got)
        assert_memstats_invariants(ms, capped)
        with pytest.raises(MemoryError):
            capped.malloc(40000)
        for x in got[::2]:
            capped.free(x)
        capped.gc()
        x = capped.malloc(size)
        assert x in got[::2]
        assert capped.read(x, size) == bytes(size)
        for x2 in got[1::2] + [x]:
            capped.free(x2)
        capped.gc()
        ms = capped.memstats()
        assert ms.HeapInuse == 0 and ms.HeapObjects == 0
        assert_memstats_invariants(ms, capped)


def test_heap_cap_memoryerror_then_usable_again():
    with Runtime(gomaxprocs=2, gogc=None, max_heap=ARENA) as rt:
        small = [rt.malloc(s) for s in (8, 16, 32768)]
        big = []
        with pytest.raises(MemoryError):
            for _ in range(200):
                big.append(rt.malloc(1 << 20))
        assert 0 < len(big) < 64
        consistent(rt)
        for a in big + small:
            rt.free(a)
        rt.gc()
        rt.verify()
        ms = rt.memstats()
        assert ms.HeapObjects == 0 and ms.HeapInuse == 0 and ms.HeapSys == ARENA
        again = [rt.malloc(1 << 20) for _ in range(len(big))]
        assert len(set(again)) == len(big)
        consistent(rt)


def test_failed_reservation_is_memoryerror_once():
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        rt.heap.fail_reservations(1)
        with pytest.raises(MemoryError):
            rt.malloc(64)
        a = rt.malloc(64)
        rt.write(a, b"ok")
        assert rt.read(a, 2) == b"ok"
        consistent(rt)
