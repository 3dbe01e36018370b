# cython: language_level=3
# mcache: refill, nextFree, releaseAll (runtime/mcache.go, runtime/malloc.go);
# see mcache.pxd. MCache is the Python view.
from libc.string cimport memset
from libc.stdint cimport int64_t
from goruntime.sys cimport xadd64, store32, GR_ASSERT
from goruntime.mgcsweep cimport deductSweepCredit
from goruntime.lock cimport mutex_init, mutex_stats
from goruntime.mcentral cimport mcentral_cacheSpan, mcentral_uncacheSpan, MCENTRAL_SPANSET
from goruntime.mspan cimport nextFreeIndex, SPAN_INUSE, spanview_t, span_copy, make_span
from goruntime.sys cimport nanotime
from goruntime.trace cimport tracebuf_t, trace_current, trace_put, EV_REFILL
from goruntime.sizeclasses cimport spanClassSizeclass, PAGE_SIZE


cdef void mcache_init(mcache_t* c, mcentral_t** central, mheap_t* heap, pagecache_t* pcache) noexcept nogil:
    cdef int i
    memset(c, 0, sizeof(mcache_t))
    mutex_init(&c.lock)
    c.central = central
    c.heap = heap
    c.pcache = pcache
    for i in range(MAX_SPAN_CLASSES):
        c.alloc[i] = &heap.emptyspan


cdef int mcache_refill(mcache_t* c, int spc) noexcept nogil:
    """Replaces the full span of class spc with one from its mcentral.

    In Go 1.13 (the mutex mcentral) the full span is not handed back: it stays
    on the mcentral's empty list until the sweeper finds free objects in it.
    Go 1.15's spanset mcentral takes it back into its full set.
    """
    cdef mspan_t* s = c.alloc[spc]
    cdef tracebuf_t* tb
    cdef uint64_t t0
    if s != &c.heap.emptyspan:
        if c.central[spc].mode == MCENTRAL_SPANSET:
            mcentral_uncacheSpan(c.central[spc], s)
        else:
            store32(&s.sweepgen, c.heap.sweepgen)       # no longer cached
    # Go's cacheSpan pays its sweep credit first, for the span it will take.
    deductSweepCredit(c.heap, c.heap.sc.class_to_allocnpages[spanClassSizeclass(spc)] * PAGE_SIZE, 0)
    tb = trace_current()
    t0 = nanotime() if tb != NULL else 0
    s = mcentral_cacheSpan(c.central[spc], c.pcache)
    if tb != NULL:
        trace_put(tb, EV_REFILL, t0, nanotime(), spc, 0)
    if s == NULL:
        c.alloc[spc] = &c.heap.emptyspan
        return -1
    GR_ASSERT(s.state == SPAN_INUSE, "refill got a span that is not in use")
    GR_ASSERT(s.spanclass == spc, "refill got a span of another span class")
    GR_ASSERT(s.allocCount < s.nelems, "refill got a span with no free slot")
    store32(&s.sweepgen, c.heap.sweepgen + 3)      # swept, then cached
    # As Go's cacheSpan: count the span's free slots as allocated up front, in
    # heap_live and (Go 1.16's smallAllocCount) in the P's counts; releaseAll
    # takes back what was not used.
    xadd64(&c.heap.heap_live, <int64_t>((s.nelems - s.allocCount) * s.elemsize))
    c.nmalloc[spanClassSizeclass(spc)] += s.nelems - s.allocCount
    c.alloc[spc] = s
    c.refills += 1
    return 0


cdef uintptr_t mcache_nextFree(mcache_t* c, int spc) noexcept nogil:
    """Go's mcache.nextFree: the slow path behind nextFreeFast; 0 if out of
    memory. A refill shows as a new span in c.alloc[spc] (Go's shouldhelpgc)."""
    cdef mspan_t* s = c.alloc[spc]
    cdef uint32_t idx = nextFreeIndex(s)
    if idx == s.nelems:
        if mcache_refill(c, spc) != 0:
            return 0
        s = c.alloc[spc]
        idx = nextFreeIndex(s)
    GR_ASSERT(idx < s.nelems, "nextFree found no free slot in a fresh span")
    s.allocCount += 1
    GR_ASSERT(s.allocCount <= s.nelems, "allocCount exceeds nelems")
    return s.startAddr + <uintptr_t>idx * s.elemsize


cdef void mcache_releaseAll(mcache_t* c) noexcept nogil:
    cdef int i
    cdef mspan_t* s
    for i in range(MAX_SPAN_CLASSES):
        s = c.alloc[i]
        if s != &c.heap.emptyspan:
            # What refill counted as allocated up front and was not (Go 1.16's releaseAll).
            c.nmalloc[spanClassSizeclass(i)] -= s.nelems - s.allocCount
            xadd64(&c.heap.heap_live, -<int64_t>((s.nelems - s.allocCount) * s.elemsize))
            mcentral_uncacheSpan(c.central[i], s)
            c.alloc[i] = &c.heap.emptyspan
    c.tiny = 0
    c.tinyoffset = 0
    c.tinyspan = NULL


cdef list mcache_spans(mcache_t* c):
    """A view (Span) of every cached span, by span class."""
    cdef spanview_t v
    cdef int i
    out = []
    for i in range(MAX_SPAN_CLASSES):
        if c.alloc[i] != &c.heap.emptyspan:
            span_copy(c.alloc[i], c.heap.sweepgen, &v)
            out.append(make_span(&v, "mcache"))
    return out


cdef object _VIEW = object()


cdef class MCache:
    """A P's span cache (a view; exact only while the world is stopped or the P idle)."""

    def __cinit__(self, token=None):
        if token is not _VIEW:
            raise TypeError("MCache objects are views of a Runtime's Ps: use Runtime.ps[i].mcache")

    def spans(self):
        if self.owner.closed:
            from goruntime.errors import GoRuntimeError
            raise GoRuntimeError("runtime closed")
        return mcache_spans(self.c)

    @property
    def tiny(self):
        return self.c.tiny

    @property
    def tinyoffset(self):
        return self.c.tinyoffset

    @property
    def tinyallocs(self):
        return self.c.tinyallocs

    @property
    def refills(self):
        return self.c.refills

    def lockstats(self):
        """The mcache's own mutex (used only in the "locked" comparison mode)."""
        return mutex_stats(&self.c.lock)


cdef MCache make_MCache(object owner, mcache_t* c):
    cdef MCache view = MCache.__new__(MCache, _VIEW)
    view.c = c
    view.owner = owner
    return view
