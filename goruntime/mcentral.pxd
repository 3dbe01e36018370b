# mcentral: the shared free lists of one span class (Go 1.12-1.14 design). A
# real mutex guards two lists: nonempty (spans with a free object) and empty
# (spans with no free object, or cached in an mcache). The mcentral lock is
# never held while the mheap lock is taken: grow() runs unlocked.
from libc.stdint cimport uint64_t
from goruntime.lock cimport mutex_t
from goruntime.mspan cimport mspan_t, mspanlist_t
from goruntime.mheap cimport mheap_t

ctypedef struct mcentral_t:
    mutex_t lock
    int spanclass
    mspanlist_t nonempty
    mspanlist_t empty
    mheap_t* heap
    uint64_t ngrow              # spans taken from the mheap (under the lock)
    uint64_t ncache             # cacheSpan calls that found a span (under the lock)

cdef void mcentral_init(mcentral_t* c, int spanclass, mheap_t* heap) noexcept nogil
cdef mspan_t* mcentral_cacheSpan(mcentral_t* c) noexcept nogil
cdef void mcentral_uncacheSpan(mcentral_t* c, mspan_t* s) noexcept nogil
cdef mspan_t* mcentral_grow(mcentral_t* c) noexcept nogil


cdef class MCentral:
    cdef mcentral_t* c
    cdef object owner           # keeps the C array alive
