"""Shared fixtures and checks for the goruntime test suite (tests/test_runtime_*.py)."""
import pytest

from goruntime import Runtime

VERSIONS = ("go1.13", "go1.19")
PAGE = 8192
ARENA = 64 << 20
MAX_SMALL = 32768
NUM_PAUSES = 256

# The MemStats fields that a call which is refused must leave alone.
STAT_FIELDS = ("Mallocs", "Frees", "HeapAlloc", "HeapInuse", "HeapObjects", "HeapSys",
               "TotalAlloc", "LargeAllocs", "TinyAllocs", "NumGC")


@pytest.fixture
def rt():
    """A two-P runtime with the GC trigger off: only rt.gc() collects."""
    r = Runtime(gomaxprocs=2, gogc=None)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(params=VERSIONS)
def sc_version(request):
    """Each modelled size-class table in turn."""
    return request.param


@pytest.fixture
def rt_sc(sc_version):
    """Like `rt`, once per size-class table."""
    r = Runtime(gomaxprocs=2, gogc=None, sizeclasses=sc_version)
    try:
        yield r
    finally:
        r.close()


def stat_snapshot(ms, fields=STAT_FIELDS):
    return {f: getattr(ms, f) for f in fields}


def held_p(rt):
    """The P this thread holds inside `with rt.proc():` (parked in P_SYSCALL between calls)."""
    held = [p for p in rt.ps if p.status.name == "P_SYSCALL"]
    assert len(held) == 1, [repr(p) for p in rt.ps]
    return held[0]


def assert_memstats_invariants(ms, rt=None):
    """Checks the identities every MemStats snapshot must satisfy.

    With `rt` (only when no other thread is using it) the heap figures are also
    checked against the page allocator's own view: arenas and free runs.
    """
    assert ms.HeapIdle + ms.HeapInuse == ms.HeapSys, ms
    assert ms.Mallocs - ms.Frees == ms.HeapObjects, ms
    assert 0 <= ms.HeapObjects <= ms.Mallocs, ms
    assert 0 <= ms.HeapAlloc <= ms.HeapInuse, ms
    assert ms.Alloc == ms.HeapAlloc
    assert ms.HeapReleased <= ms.HeapIdle, ms
    assert ms.HeapInuse % PAGE == 0 and ms.HeapIdle % PAGE == 0, ms
    assert ms.HeapSys % ARENA == 0, ms
    if ms.HeapObjects == 0:
        assert ms.HeapAlloc == 0, ms

    by_mallocs = sum(b["Mallocs"] for b in ms.BySize)
    by_frees = sum(b["Frees"] for b in ms.BySize)
    assert by_mallocs <= ms.Mallocs
    assert by_frees <= ms.Frees
    sizes = [b["Size"] for b in ms.BySize]
    assert sizes == sorted(set(sizes)) and sizes[-1] == MAX_SMALL
    for b in ms.BySize:
        assert 0 <= b["Frees"] <= b["Mallocs"], b
    # Every allocation is exactly one of: a small object (or tiny block), a tiny
    # object packed into an existing block, or a large object.
    assert ms.Mallocs == by_mallocs + ms.TinyAllocs + ms.LargeAllocs, ms
    assert ms.Frees == by_frees + ms.TinyAllocs + ms.LargeFrees, ms
    assert 0 <= ms.LargeFrees <= ms.LargeAllocs
    assert ms.MCacheHits >= 0 and ms.MCacheHits + ms.Refills == by_mallocs
    assert ms.MCentralGrows <= ms.Refills
    assert ms.TotalAlloc >= ms.HeapAlloc
    assert len(ms.PauseNs) == min(ms.NumGC, NUM_PAUSES)
    assert ms.PauseTotalNs >= sum(ms.PauseNs)
    assert ms.HeapGrows * ARENA <= ms.HeapSys

    assert ms.MSpanInuse <= ms.MSpanSys
    if ms.HeapInuse == 0:
        assert ms.MSpanInuse == 0 and ms.GCSys == 0, ms

    if rt is not None:
        rt.verify()                                 # raises GoRuntimeError on a broken invariant
        arenas = rt.heap.arenas
        assert sum(size for _, size in arenas) == ms.HeapSys
        assert len(arenas) == ms.HeapGrows
        runs = rt.heap.free_runs()
        assert sum(n for _, n in runs) * PAGE == ms.HeapIdle
        # Free runs are ordered, and maximal (coalesced) within an arena.
        bases = {base for base, _ in arenas}
        for (b0, n0), (b1, _) in zip(runs, runs[1:]):
            assert b0 + n0 * PAGE < b1 or (b0 + n0 * PAGE == b1 and b1 in bases), runs


@pytest.fixture
def invariants():
    return assert_memstats_invariants
