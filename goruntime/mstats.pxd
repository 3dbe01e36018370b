# mstats: MemStats (runtime/mstats.go). See mstats.pyx.
from libc.stdint cimport uint8_t, uint16_t, uint64_t, uintptr_t
from goruntime.runtime2 cimport runtime_t, NUM_PAUSES
from goruntime.mheap cimport SWEEP_BY_COUNT
from goruntime.sizeclasses cimport MAX_SIZE_CLASSES

# What memstats_read copies with the world stopped; memstats_dict turns it into
# MemStats fields once the world runs again, so that no Python object is made
# (and no Python code, a finalizer say, can run) while the world is stopped.
ctypedef struct memstats_t:
    uint64_t pages
    uint64_t alloc
    uint64_t objects
    uint64_t free_pages
    uint64_t scav_pages
    uint64_t tiny
    uint64_t large
    uint64_t large_bytes
    uint64_t refills
    uint64_t grows
    uint64_t mallocs[MAX_SIZE_CLASSES]
    uint64_t frees[MAX_SIZE_CLASSES]
    uint64_t large_frees
    uint64_t heap_sys
    uint64_t nspans_inuse
    uint64_t nspans_alloc
    uint64_t bits_bytes
    uint64_t table_bytes
    uint64_t heap_grows
    uint64_t pcache_refills
    uint64_t pcache_allocs
    uint64_t heap_live
    uint64_t heap_goal
    int gogc
    uint64_t last_gc_ns
    uint64_t numgc
    uint64_t pause_total_ns
    uint64_t pause_ns[NUM_PAUSES]
    uint64_t sweep_ns
    uint64_t nswept[SWEEP_BY_COUNT]

cdef void memstats_read(runtime_t* rt, memstats_t* st) noexcept nogil
cdef dict memstats_dict(runtime_t* rt, memstats_t* st)


# Where each page of the heap is, for the heap map: which structure holds its
# span (or that it is free), and the span's class.
cpdef enum PagePlace:
    PAGE_FREE = 0
    PAGE_PAGECACHE = 1          # free, but owned by a P's page cache
    PAGE_MCACHE = 2
    PAGE_NONEMPTY = 3
    PAGE_EMPTY = 4
    PAGE_PARTIAL = 5
    PAGE_FULL = 6
    PAGE_LARGE = 7

ctypedef struct heapmap_t:
    size_t nregions
    size_t total                # pages over every region
    uintptr_t* bases            # per region, in address order
    size_t* npages
    uint8_t* place              # per page: a PagePlace
    uint16_t* spanclass         # per page: its span's class (0 when free)

cdef int heapmap_fill(runtime_t* rt, heapmap_t* m) noexcept nogil
cdef void heapmap_free(heapmap_t* m) noexcept nogil
cdef object heapmap_object(heapmap_t* m)
