# mspanset: Go 1.15's spanSet, the lock-free bag of spans behind the "spanset"
# mcentral. A growable spine points at fixed blocks of 512 slots; one 64-bit
# word packs head (high 32 bits) and tail (low 32): push claims a slot with an
# atomic add on the tail, pop claims one with a CAS on the head. Only growing
# the spine, and clearing the slot of a block emptied by its 512th pop, take a
# lock (spineLock), never the common path.
#
# Go counterparts: runtime/mspanset.go: spanSet, spanSetBlock, headTailIndex,
# push, pop, reset. Unlike Go, an emptied block is freed rather than kept in a
# pool (spanSetBlockPool), and an outgrown spine is kept until reset, since a
# reader may still hold it; spanset_len and spanset_at exist for the verifier
# and MemStats, which walk a set with the world stopped.
from libc.stdint cimport uint32_t, uint64_t
from goruntime.lock cimport mutex_t
from goruntime.mspan cimport mspan_t

cdef enum:
    SPANSET_BLOCK_ENTRIES = 512
    SPANSET_INIT_SPINE_CAP = 256

ctypedef struct spansetblock_t:
    uint32_t popped                     # atomic: slots popped; the block is freed at 512
    mspan_t* spans[SPANSET_BLOCK_ENTRIES]

ctypedef struct spanset_t:
    uint64_t index                      # atomic: head << 32 | tail
    spansetblock_t** spine              # atomic pointer; old spines are kept until reset
    uint64_t spineLen                   # atomic
    uint64_t spineCap                   # under spineLock
    mutex_t spineLock
    void* retired                       # spines replaced by a larger one

cdef void spanset_init(spanset_t* b) noexcept nogil
cdef void spanset_destroy(spanset_t* b) noexcept nogil
cdef int spanset_push(spanset_t* b, mspan_t* s) noexcept nogil
cdef mspan_t* spanset_pop(spanset_t* b) noexcept nogil
cdef void spanset_reset(spanset_t* b) noexcept nogil
cdef uint64_t spanset_len(spanset_t* b) noexcept nogil
cdef mspan_t* spanset_at(spanset_t* b, uint64_t i) noexcept nogil
