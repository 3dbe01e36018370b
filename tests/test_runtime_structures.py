"""One structure at a time: size classes, mspan slots, the tiny allocator, mcache
refills, large objects, the page allocator and the sweeper."""
import bisect
import random

import pytest

from goruntime import GoRuntimeError, Runtime
from conftest import PAGE, MAX_SMALL, VERSIONS, assert_memstats_invariants, held_p

# size -> (size class, class size) for each table; None: a large object (class 0).
LOOKUPS = {
    "go1.13": {0: (0, None), 1: (1, 8), 8: (1, 8), 9: (2, 16), 16: (2, 16), 17: (3, 32),
               24: (3, 32), 25: (3, 32), 1024: (31, 1024), 1025: (32, 1152),
               32768: (66, 32768), 32769: (0, None)},
    "go1.19": {0: (0, None), 1: (1, 8), 8: (1, 8), 9: (2, 16), 16: (2, 16), 17: (3, 24),
               24: (3, 24), 25: (4, 32), 1024: (32, 1024), 1025: (33, 1152),
               32768: (67, 32768), 32769: (0, None)},
}
NUM_CLASSES = {"go1.13": 67, "go1.19": 68}


def by_size(ms, size):
    [entry] = [b for b in ms.BySize if b["Size"] == size]
    return entry


# -- size classes -------------------------------------------------------------

@pytest.mark.parametrize("size", sorted(LOOKUPS["go1.13"]))
def test_size_class_lookup(rt_sc, sc_version, size):
    sc = rt_sc.sizeclasses
    want_class, want_size = LOOKUPS[sc_version][size]
    assert sc.size_to_class(size) == want_class
    if want_size is not None:
        assert sc.class_to_size(want_class) == want_size


def test_size_class_tables_are_consistent(rt_sc, sc_version):
    sc = rt_sc.sizeclasses
    assert sc.num_classes == NUM_CLASSES[sc_version]
    assert sc.num_span_classes == 2 * sc.num_classes
    sizes = [sc.class_to_size(c) for c in range(1, sc.num_classes)]
    assert sizes == sorted(set(sizes)) and sizes[0] == 8 and sizes[-1] == MAX_SMALL
    for c in range(1, sc.num_classes):
        size, npages = sc.class_to_size(c), sc.class_to_npages(c)
        assert npages >= 1
        assert sc.class_to_nelems(c) == npages * PAGE // size >= 1
    # Every small size maps to the smallest class that holds it.
    for size in range(1, MAX_SMALL + 1):
        c = sc.size_to_class(size)
        assert sc.class_to_size(c) >= size
        assert c == 1 or sc.class_to_size(c - 1) < size
    assert sc.size_to_class(MAX_SMALL + 1) == 0
    assert sc.size_to_class(1 << 40) == 0
    with pytest.raises(ValueError):
        sc.class_to_size(0)
    with pytest.raises(ValueError):
        sc.class_to_size(sc.num_classes)


@pytest.mark.parametrize("size", [1, 9, 17, 25, 100, 1024, 1025, 5000, 32768])
def test_malloc_uses_the_looked_up_class(rt_sc, size):
    sc = rt_sc.sizeclasses
    c = sc.size_to_class(size)
    x = rt_sc.malloc(size)
    span = rt_sc.heap.span_of(x)
    assert span["sizeclass"] == c
    assert span["spanclass"] == c << 1          # scan object
    assert span["noscan"] is False
    assert span["elemsize"] == sc.class_to_size(c)
    assert span["nelems"] == sc.class_to_nelems(c)
    assert span["npages"] == sc.class_to_npages(c)
    y = rt_sc.malloc(size, noscan=True) if size >= 16 else None
    if y is not None:
        assert rt_sc.heap.span_of(y)["spanclass"] == (c << 1) | 1
    ms = rt_sc.memstats()
    assert by_size(ms, sc.class_to_size(c))["Mallocs"] == (2 if y else 1)


# -- mspan slots ----------------------------------------------------------------

@pytest.mark.parametrize("size", [8, 24, 48, 64, 1000, 1025, 4096, 20000, 32768])
def test_consecutive_mallocs_are_consecutive_slots(rt_sc, size):
    sc = rt_sc.sizeclasses
    c = sc.size_to_class(size)
    elemsize, nelems = sc.class_to_size(c), sc.class_to_nelems(c)
    n = min(nelems, 8)
    with rt_sc.proc():
        addrs = [rt_sc.malloc(size) for _ in range(n)]
    span = rt_sc.heap.span_of(addrs[0])
    assert span["base"] % PAGE == 0
    assert addrs[0] == span["base"]                 # a fresh span starts at slot 0
    assert addrs == [span["base"] + i * elemsize for i in range(n)]
    for a in addrs:
        assert rt_sc.heap.span_of(a)["base"] == span["base"]
    assert span["allocCount"] == n
    assert span["freeindex"] == n
    assert span["state"] == 1                       # SPAN_INUSE


def test_fresh_memory_is_zero_and_writable_to_the_slot_size(rt):
    with rt.proc():
        x = rt.malloc(40)                           # 48-byte slot
        y = rt.malloc(40)
    assert y - x == 48
    assert rt.read(x, 48) == bytes(48)
    rt.write(x, b"\xab" * 48)
    assert rt.read(x, 48) == b"\xab" * 48
    assert rt.read(y, 48) == bytes(48)              # the neighbour is untouched


# -- tiny allocator ---------------------------------------------------------------

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
    assert span["spanclass"] == (2 << 1) | 1 and span["elemsize"] == 16
    assert span["allocCount"] == 3                  # three 16 B blocks
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
        assert rt.heap.span_of(s1)["spanclass"] == 1 << 1
        assert rt.heap.span_of(s3)["elemsize"] == 16
        assert rt.heap.span_of(s3)["noscan"] is False
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
    assert span["allocCount"] == 2                  # the block lives on for b
    assert rt.read(b, 8) == b"B" * 8
    ms = rt.memstats()
    assert ms.HeapObjects == 2
    assert_memstats_invariants(ms, rt)
    rt.free(b)
    rt.gc()
    span = rt.heap.span_of(keep)
    assert span["allocCount"] == 1                  # the block is reclaimed
    assert span["allocBits_popcount"] == 1
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


# -- mcache refill, mcentral ------------------------------------------------------

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


def test_mcache_spans_view_and_flush(rt):
    with rt.proc():
        x = rt.malloc(64)
        y = rt.malloc(100, noscan=True)
        spans = held_p(rt).mcache.spans()
    by_class = {s["spanclass"]: s for s in spans}
    assert set(by_class) == {rt.sizeclasses.size_to_class(64) << 1,
                             rt.sizeclasses.size_to_class(100) << 1 | 1}
    assert by_class[rt.sizeclasses.size_to_class(64) << 1]["base"] == x
    assert by_class[rt.sizeclasses.size_to_class(100) << 1 | 1]["base"] == y
    rt.memstats()                                   # flushes every mcache
    assert all(p.mcache.spans() == [] for p in rt.ps)
    assert all(p.mcache.tiny == 0 for p in rt.ps)
    assert all(p.status.name == "P_IDLE" for p in rt.ps)
    # The flushed span is picked up again where it left off.
    with rt.proc():
        assert rt.malloc(64) == x + 64


# -- large objects ----------------------------------------------------------------

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
    assert span["base"] == x and span["npages"] == npages
    assert span["sizeclass"] == 0 and span["nelems"] == 1
    assert span["elemsize"] == npages * PAGE
    assert rt.heap.span_of(x + npages * PAGE - 1)["base"] == x
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
    assert span["noscan"] is True and span["spanclass"] == 1 and span["npages"] == 7


# -- page allocator ---------------------------------------------------------------

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


# -- sweeping ---------------------------------------------------------------------

def test_sweep_reclaims_freed_slots(rt):
    with rt.proc():
        addrs = [rt.malloc(64) for _ in range(10)]
    for a in addrs[2:5]:
        rt.free(a)
    span = rt.heap.span_of(addrs[0])
    assert span["allocCount"] == 10                 # frees wait for the sweeper
    ms = rt.memstats()
    assert ms.HeapObjects == 10 and ms.Frees == 0
    rt.gc()
    span = rt.heap.span_of(addrs[0])
    assert span["allocCount"] == 7
    assert span["allocBits_popcount"] == 7
    assert span["freeindex"] == 0
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
    assert rt.heap.span_of(keep)["allocCount"] == 1
    with rt.proc():
        again = [rt.malloc(64) for _ in range(3)]
    # Now the swept slots come back, lowest first, around the live one.
    assert again == [a, keep + 64, keep + 128]


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
    assert rt.heap.span_of(again[0])["needzero"] is True
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


def test_gc_counts_and_pauses(rt):
    for i in range(1, 4):
        rt.gc()
        ms = rt.memstats()
        assert ms.NumGC == i
        assert len(ms.PauseNs) == i
    assert ms.LastGC > 0
    assert_memstats_invariants(ms, rt)


def test_p_status_inside_and_outside_proc(rt):
    assert all(p.status.name == "P_IDLE" for p in rt.ps)
    assert [p.id for p in rt.ps] == [0, 1]
    with rt.proc():
        held = held_p(rt)
        rt.malloc(8)
        assert held_p(rt).id == held.id
        rt.gc()                                     # a stop-the-world takes the parked P
        assert all(p.status.name == "P_IDLE" for p in rt.ps)
        rt.malloc(8)                                # the next call gets a P back
        held_p(rt)
    assert all(p.status.name == "P_IDLE" for p in rt.ps)


@pytest.mark.parametrize("version", ["1.13", 1.19, "go1.19"])
def test_sizeclasses_name_forms(version):
    with Runtime(gomaxprocs=1, sizeclasses=version, gogc=None) as r:
        assert r.sizeclasses.version in VERSIONS
        assert r.sizeclasses.version.endswith(str(version).removeprefix("go"))


# -- GC pacing --------------------------------------------------------------------

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


# -- more large-object and tiny cases -----------------------------------------------

def test_freed_large_pages_are_reused_only_after_gc(rt):
    x = rt.malloc(40000)
    rt.free(x)
    y = rt.malloc(40000)
    assert y != x and rt.heap.span_of(x)["base"] == x
    rt.gc()
    assert rt.heap.span_of(x) is None
    assert rt.malloc(40000) == x


def test_large_object_bigger_than_an_arena(rt):
    size = 100 << 20
    x = rt.malloc(size)
    span = rt.heap.span_of(x)
    assert span["npages"] == size // PAGE and span["base"] == x
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


# -- the heap verifier --------------------------------------------------------------

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


# -- a random walk against a model of the heap ----------------------------------------

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
