# mcentral: the shared free lists of one span class. Two designs, chosen per
# Runtime:
#   "mutex" (Go 1.12-1.14, the default): a real mutex guards two lists,
#     nonempty (spans with a free object) and empty (spans with no free object,
#     or cached in an mcache). The lock is never held while the mheap lock is
#     taken: grow() runs unlocked.
#   "spanset" (Go 1.15+): lock-free span sets, partial and full, each split in
#     swept and unswept halves that swap roles every GC (sweepgen / 2 % 2).
#
# Go counterparts: runtime/mcentral.go (Go 1.13 for "mutex", Go 1.16 for
# "spanset"): mcentral, cacheSpan, uncacheSpan, grow, freeSpan, partialSwept,
# partialUnswept, fullSwept, fullUnswept; runtime/mgcsweep.go: the small-span
# half of (*mspan).sweep (mcentral_sweep). cacheSpan sweeps the unswept spans it
# meets, claiming each with Go's h-2 -> h-1 compare-and-swap. The sweep of a
# small span lives here, beside the lists it files the span on, because the
# sweeper (mgcsweep) imports this module and Cython's cimports cannot be circular.
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from goruntime.sys cimport cacheline_t, load32, cas32
from goruntime.lock cimport mutex_t
from goruntime.mspan cimport mspan_t, mspanlist_t, spanview_t
from goruntime.mspanset cimport spanset_t
from goruntime.mheap cimport mheap_t, pagecache_t
from goruntime.sizeclasses cimport spanClassSizeclass, spanClassNoscan

cdef enum:
    SPAN_BUDGET = 100           # Go 1.15's spanBudget: unswept spans a cacheSpan may sweep

cpdef enum MCentralMode:
    MCENTRAL_MUTEX = 0
    MCENTRAL_SPANSET = 1

# What a refill writes under the lock (the lists, and the grow count) is one
# cache line after the lock's own; each mcentral is its own aligned allocation.
ctypedef struct mcentral_t:
    mutex_t lock
    cacheline_t _lists
    mspanlist_t nonempty
    mspanlist_t empty
    uint64_t ngrow              # atomic: spans taken from the mheap
    mheap_t* heap
    cacheline_t _sets
    int spanclass
    int mode
    spanset_t partial[2]
    spanset_t full[2]
    cacheline_t _sweep
    uint64_t nfree              # atomic, by each sweep: objects freed (Go's nsmallfree)

cdef void mcentral_init(mcentral_t* c, int spanclass, mheap_t* heap, int mode) noexcept nogil
cdef void mcentral_destroy(mcentral_t* c) noexcept nogil
cdef mspan_t* mcentral_cacheSpan(mcentral_t* c, pagecache_t* pc) noexcept nogil
cdef void mcentral_uncacheSpan(mcentral_t* c, mspan_t* s) noexcept nogil
cdef uintptr_t mcentral_allocObject(mcentral_t* c, pagecache_t* pc, mspan_t** sp, bint* grew) noexcept nogil
cdef bint mcentral_sweep(mcentral_t* c, mspan_t* s, bint preserve, int by) noexcept nogil


cdef inline bint span_tryAcquire(mspan_t* s, uint32_t sg) noexcept nogil:
    """Claims an unswept span for sweeping (sweepgen h-2 -> h-1), as Go's sweepers do."""
    return load32(&s.sweepgen) == sg - 2 and cas32(&s.sweepgen, sg - 2, sg - 1)

# The lists a view can read: Go 1.13's two, or Go 1.15's two sets (each with
# both its swept and unswept halves).
cpdef enum CentralList:
    LIST_NONEMPTY = 0
    LIST_EMPTY = 1
    LIST_PARTIAL = 2
    LIST_FULL = 3

cdef spanview_t* mcentral_snapshot(mcentral_t* c, int which, size_t* n) noexcept nogil


cdef inline spanset_t* partialSwept(mcentral_t* c, uint32_t sg) noexcept nogil:
    return &c.partial[(sg // 2) % 2]


cdef inline spanset_t* partialUnswept(mcentral_t* c, uint32_t sg) noexcept nogil:
    return &c.partial[1 - (sg // 2) % 2]


cdef inline spanset_t* fullSwept(mcentral_t* c, uint32_t sg) noexcept nogil:
    return &c.full[(sg // 2) % 2]


cdef inline spanset_t* fullUnswept(mcentral_t* c, uint32_t sg) noexcept nogil:
    return &c.full[1 - (sg // 2) % 2]


cdef class MCentral:
    cdef mcentral_t* c
    cdef object owner           # keeps the C memory alive


cdef MCentral make_MCentral(object owner, mcentral_t* c)
