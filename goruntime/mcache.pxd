# mcache: a P's private cache of one span per span class, plus the tiny block.
# Only the P that owns it touches it, so an allocation it serves takes no lock
# and executes no atomic read-modify-write, and every counter is a plain
# P-owned field. Only a refill reaches shared state: the mcentral, and
# heap_live with one atomic add. (The "locked" comparison mode puts each mcache
# behind its own mutex, which only its P takes; the "shared" mode has one mcache
# for every P, behind its mutex.)
#
# Go counterparts: runtime/mcache.go: mcache, allocmcache (mcache_init),
# refill, releaseAll; runtime/malloc.go: (*mcache).nextFree. Go's
# prepareForSweep and flushGen have no twin: every collection flushes every
# mcache itself, with the world stopped, before it advances sweepgen (Go's Ps
# flush theirs at their next safe point), so a cached span is never stale.
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from goruntime.mspan cimport mspan_t
from goruntime.lock cimport mutex_t
from goruntime.mheap cimport mheap_t, pagecache_t
from goruntime.mcentral cimport mcentral_t
from goruntime.sizeclasses cimport MAX_SPAN_CLASSES, MAX_SIZE_CLASSES

ctypedef struct mcache_t:
    mspan_t* alloc[MAX_SPAN_CLASSES]
    uintptr_t tiny              # current tiny block, 0 if none
    uintptr_t tinyoffset
    mspan_t* tinyspan           # the span holding the tiny block
    mcentral_t** central
    mheap_t* heap
    pagecache_t* pcache         # the owning P's page cache
    mutex_t lock                # only in the "locked" and "shared" comparison modes
    uint64_t tinyallocs         # tiny objects packed into an existing block
    uint64_t nmalloc[MAX_SIZE_CLASSES]  # small objects (and tiny blocks) by size class, counted a
                                        # span at a time: exact once the mcache is flushed
    uint64_t refills
    uint64_t large_allocs
    uint64_t large_bytes
    uint64_t freed_bytes        # freed by this P since the last collection's snapshot

cdef void mcache_init(mcache_t* c, mcentral_t** central, mheap_t* heap, pagecache_t* pcache) noexcept nogil
cdef int mcache_refill(mcache_t* c, int spc) noexcept nogil
cdef uintptr_t mcache_nextFree(mcache_t* c, int spc) noexcept nogil
cdef void mcache_releaseAll(mcache_t* c) noexcept nogil
cdef list mcache_spans(mcache_t* c)


cdef class MCache:
    cdef mcache_t* c
    cdef object owner


cdef MCache make_MCache(object owner, mcache_t* c)
