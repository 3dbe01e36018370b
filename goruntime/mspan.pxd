# mspan: a run of pages holding objects of one span class, with its allocation
# bitmaps. The metadata lives in C memory owned by the mheap; the fields the
# owning mcache touches on every allocation come first, in one cache line, and
# the bitmaps other Ps write to (freedBits, tinyFreed) sit in lines of their own.
#
# Go counterparts: runtime/mheap.go: mspan, mSpanState, mSpanList and its
# insert, insertBack, remove, (*mspan).objIndex (span_objindex, with Go
# 1.20's divMul); runtime/malloc.go: nextFreeFast; runtime/mbitmap.go:
# nextFreeIndex, refillAllocCache, isFree (slot_allocated). freedBits,
# tinyObjs and tinyFreed have no Go counterpart: Go learns what is dead by
# marking, the model from explicit frees, which may come from any P.
#
# Invariants (checked by mgc.verify_heap):
#   - slot i is allocated  <=>  i < freeindex or allocBits[i] is set;
#   - allocCache is the complement of allocBits from freeindex to the next
#     64-slot boundary, shifted so that bit 0 stands for slot freeindex;
#   - allocCount == number of allocated slots;
#   - a freed slot (freedBits[i]) is allocated; it becomes free only when the
#     sweeper rebuilds allocBits, never by touching the owner's mcache;
#   - an in-use span is in exactly one place: an mcache, an mcentral list, or
#     (large spans) the mheap's large list.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from goruntime.sys cimport ctz64, load_relaxed32, store_relaxed32, load_relaxed64

cpdef enum SpanState:
    SPAN_DEAD = 0
    SPAN_INUSE = 1

cdef struct mspan

cdef struct mspanlist:
    mspan* first
    mspan* last
    uint32_t count

cdef struct mspan:
    uint64_t allocCache
    uint32_t freeindex          # stored relaxed: frees on other Ps read it
    uint32_t nelems
    uint32_t allocCount
    uint32_t divMul             # Go's divMul: slot = (offset * divMul) >> 32; 0 for a large span
    uint16_t spanclass
    uint8_t needzero
    uint8_t state
    uintptr_t startAddr
    uintptr_t elemsize
    uint64_t* allocBits
    uint32_t* tinyObjs          # tiny span class only, per 16 B block: object first
                                # bytes (low 16 bits) and last bytes (high 16 bits)

    mspan* next
    mspan* prev
    mspanlist* list
    uintptr_t npages
    uintptr_t limit             # end of the object(s): base + size for a large object
    uint32_t sweepgen
    uint32_t nwords             # 64-bit words per bitmap
    uint64_t* gcmarkBits
    uint64_t* freedBits         # atomic OR by free(); consumed by the sweeper
    uint16_t* tinyFreed         # atomic OR by free() of a tiny object
    void* bits                  # the one allocation holding all of the bitmaps
    size_t bits_size

ctypedef mspan mspan_t
ctypedef mspanlist mspanlist_t

cdef int span_alloc_bits(mspan_t* s) noexcept nogil
cdef void span_free_bits(mspan_t* s) noexcept nogil
cdef uint32_t span_count_alloc(mspan_t* s) noexcept nogil
cdef uint32_t span_sweep_bits(mspan_t* s) noexcept nogil

# A span's fields copied out in C, under whatever keeps it still (a lock, the
# world stopped), so that the Python view is built afterwards: no Python code
# runs while a runtime lock is held.
ctypedef struct spanview_t:
    uintptr_t base
    uintptr_t npages
    uint16_t spanclass
    uint8_t state
    uint8_t needzero
    uintptr_t elemsize
    uint32_t divMul
    uint32_t nelems
    uint32_t allocCount
    uint32_t freeindex
    uint32_t sweepgen
    uint32_t heap_sweepgen
    uint32_t allocated          # set bits of allocBits
    uint64_t allocCache

cdef void span_copy(mspan_t* s, uint32_t heap_sweepgen, spanview_t* out) noexcept nogil


cdef class Span:
    cdef spanview_t v
    cdef readonly str where


cdef Span make_span(spanview_t* v, str where)


cdef inline uint32_t span_objindex(mspan_t* s, uintptr_t offset) noexcept nogil:
    """The slot holding byte `offset` of the span (offset < nelems * elemsize):
    a multiply and a shift, exact for every offset within a span of any size
    class (Go checks this in mksizeclasses.go); a large span has one slot."""
    return <uint32_t>((<uint64_t>offset * s.divMul) >> 32)


cdef inline void refillAllocCache(mspan_t* s, uint32_t whichWord) noexcept nogil:
    s.allocCache = ~s.allocBits[whichWord]


cdef inline uintptr_t nextFreeFast(mspan_t* s) noexcept nogil:
    """Go's nextFreeFast: the next free slot from allocCache, or 0."""
    cdef int theBit = ctz64(s.allocCache)
    cdef uint32_t result, freeidx
    if theBit < 64:
        result = s.freeindex + <uint32_t>theBit
        if result < s.nelems:
            freeidx = result + 1
            if (freeidx & 63) == 0 and freeidx != s.nelems:
                return 0
            # Two shifts: '>> 64' is undefined in C (Go defines it as 0). The
            # shift by one first, so that it runs beside the ctz: the cache goes
            # through memory from one call to the next, and this is the chain.
            s.allocCache = (s.allocCache >> 1) >> theBit
            store_relaxed32(&s.freeindex, freeidx)
            s.allocCount += 1
            return s.startAddr + <uintptr_t>result * s.elemsize
    return 0


cdef inline uint32_t nextFreeIndex(mspan_t* s) noexcept nogil:
    """Go's nextFreeIndex: the index of the next free slot, nelems if full."""
    cdef uint32_t sfreeindex = s.freeindex
    cdef uint32_t snelems = s.nelems
    cdef uint64_t aCache
    cdef int bitIndex
    cdef uint32_t result
    if sfreeindex == snelems:
        return sfreeindex
    aCache = s.allocCache
    bitIndex = ctz64(aCache)
    while bitIndex == 64:
        sfreeindex = (sfreeindex + 64) & ~(<uint32_t>63)
        if sfreeindex >= snelems:
            store_relaxed32(&s.freeindex, snelems)
            return snelems
        refillAllocCache(s, sfreeindex >> 6)
        aCache = s.allocCache
        bitIndex = ctz64(aCache)
    result = sfreeindex + <uint32_t>bitIndex
    if result >= snelems:
        store_relaxed32(&s.freeindex, snelems)
        return snelems
    s.allocCache = (s.allocCache >> bitIndex) >> 1
    sfreeindex = result + 1
    if (sfreeindex & 63) == 0 and sfreeindex != snelems:
        refillAllocCache(s, sfreeindex >> 6)
    store_relaxed32(&s.freeindex, sfreeindex)
    return result


cdef inline bint slot_allocated(mspan_t* s, uint32_t idx) noexcept nogil:
    """Whether slot idx is allocated; safe to call from a P that does not own s."""
    if idx < load_relaxed32(&s.freeindex):
        return True
    return (s.allocBits[idx >> 6] >> (idx & 63)) & 1


cdef inline bint slot_freed(mspan_t* s, uint32_t idx) noexcept nogil:
    return (load_relaxed64(&s.freedBits[idx >> 6]) >> (idx & 63)) & 1


cdef inline void list_insert(mspanlist_t* l, mspan_t* s) noexcept nogil:
    s.prev = NULL
    s.next = l.first
    if l.first != NULL:
        l.first.prev = s
    else:
        l.last = s
    l.first = s
    s.list = l
    l.count += 1


cdef inline void list_insertBack(mspanlist_t* l, mspan_t* s) noexcept nogil:
    s.next = NULL
    s.prev = l.last
    if l.last != NULL:
        l.last.next = s
    else:
        l.first = s
    l.last = s
    s.list = l
    l.count += 1


cdef inline void list_remove(mspanlist_t* l, mspan_t* s) noexcept nogil:
    if s.prev != NULL:
        s.prev.next = s.next
    else:
        l.first = s.next
    if s.next != NULL:
        s.next.prev = s.prev
    else:
        l.last = s.prev
    s.next = NULL
    s.prev = NULL
    s.list = NULL
    l.count -= 1
