# cython: language_level=3
from libc.string cimport memset
from goruntime.lock cimport (mutex_init, lock, unlock, mutex_stats,
    SITE_CACHESPAN, SITE_UNCACHESPAN, SITE_GROW)
from goruntime.mheap cimport mheap_alloc
from goruntime.mspan cimport list_insert, list_insertBack, list_remove, refillAllocCache


cdef void mcentral_init(mcentral_t* c, int spanclass, mheap_t* heap) noexcept nogil:
    memset(c, 0, sizeof(mcentral_t))
    mutex_init(&c.lock)
    c.spanclass = spanclass
    c.heap = heap


cdef mspan_t* mcentral_cacheSpan(mcentral_t* c) noexcept nogil:
    """A span with at least one free object, for an mcache; NULL if out of memory.

    The model sweeps every span while the world is stopped, so unlike Go 1.13
    there is never an unswept span to sweep here: the first span on nonempty
    has a free object, and empty holds only full or cached spans.
    """
    cdef mspan_t* s
    lock(&c.lock, SITE_CACHESPAN)
    s = c.nonempty.first
    if s != NULL:
        list_remove(&c.nonempty, s)
        list_insertBack(&c.empty, s)
        c.ncache += 1
        unlock(&c.lock)
    else:
        unlock(&c.lock)
        s = mcentral_grow(c)
        if s == NULL:
            return NULL
        lock(&c.lock, SITE_GROW)
        list_insertBack(&c.empty, s)
        c.ngrow += 1
        c.ncache += 1
        unlock(&c.lock)
    # Go's havespan: the cache window starts at freeindex.
    refillAllocCache(s, s.freeindex >> 6)
    s.allocCache >>= s.freeindex & 63
    return s


cdef void mcentral_uncacheSpan(mcentral_t* c, mspan_t* s) noexcept nogil:
    """Returns a span from an mcache; it moves to nonempty if it has room."""
    if s.allocCount < s.nelems:
        lock(&c.lock, SITE_UNCACHESPAN)
        list_remove(&c.empty, s)
        list_insert(&c.nonempty, s)
        unlock(&c.lock)


cdef mspan_t* mcentral_grow(mcentral_t* c) noexcept nogil:
    cdef int sizeclass = c.spanclass >> 1
    return mheap_alloc(c.heap, c.heap.sc.class_to_allocnpages[sizeclass], c.spanclass, SITE_GROW)


cdef class MCentral:
    """The central free list of one span class (a view into the Runtime's array)."""

    @property
    def spanclass(self):
        return self.c.spanclass

    @property
    def sizeclass(self):
        return self.c.spanclass >> 1

    @property
    def noscan(self):
        return bool(self.c.spanclass & 1)

    def lockstats(self):
        return mutex_stats(&self.c.lock)
