# mstats: MemStats (runtime/mstats.go). See mstats.pyx.
from libc.stdint cimport uint8_t, uint16_t, uintptr_t
from goruntime.runtime2 cimport runtime_t

cdef dict read_memstats(runtime_t* rt)

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
