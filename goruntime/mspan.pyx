# cython: language_level=3
# mspan: a span's bitmaps. Go counterparts: runtime/mheap.go: newAllocBits and
# newMarkBits (span_alloc_bits: here every bitmap of a span is one allocation,
# laid out by who writes it, where Go takes them from gcBits arenas);
# runtime/mbitmap.go: countAlloc (span_count_alloc, which counts allocBits
# and freeindex, as the verifier needs). span_info is the Python view.
from libc.stdlib cimport free
from libc.string cimport memset
from goruntime.sys cimport alloc_aligned, popcount64, CACHE_LINE
from goruntime.sizeclasses cimport TINY_SPAN_CLASS, spanClassSizeclass, spanClassNoscan


cdef inline size_t _lines(size_t nbytes) noexcept nogil:
    return (nbytes + CACHE_LINE - 1) & ~(<size_t>CACHE_LINE - 1)


cdef int span_alloc_bits(mspan_t* s) noexcept nogil:
    """Gives s fresh bitmaps sized for s.nelems (all slots free); -1 if out of memory.

    Owner-written and foreign-written bitmaps get separate cache lines so that a
    free() on another P does not steal the line the owning mcache allocates from.
    A span structure recycled by the mheap keeps the block of its last bitmaps
    (mheap_freeSpanLocked): it is cleared and reused when it fits, so that a
    span allocation costs no C malloc in a steady state (as Go takes bitmaps
    from its gcBits arenas), and a bitmap block is never freed by one thread
    for another to allocate.
    """
    cdef size_t words = (s.nelems + 63) // 64
    cdef size_t bitmap = words * 8
    cdef bint tiny = s.spanclass == TINY_SPAN_CLASS
    cdef size_t owner = _lines(2 * bitmap + (s.nelems * 4 if tiny else 0))
    cdef size_t foreign = _lines(bitmap + (s.nelems * 2 if tiny else 0))
    cdef size_t need = owner + foreign
    cdef char* mem = <char*>s.bits
    if mem != NULL and (s.bits_size < need or s.bits_size > 4 * need):
        span_free_bits(s)       # too small, or a tiny span's block kept by a small span
        mem = NULL
    if mem == NULL:
        mem = <char*>alloc_aligned(need)
        if mem == NULL:
            return -1
        s.bits = mem
        s.bits_size = need
    else:
        memset(mem, 0, need)
    s.nwords = <uint32_t>words
    s.allocBits = <uint64_t*>mem
    s.gcmarkBits = <uint64_t*>(mem + bitmap)
    s.tinyObjs = <uint32_t*>(mem + 2 * bitmap) if tiny else NULL
    s.freedBits = <uint64_t*>(mem + owner)
    s.tinyFreed = <uint16_t*>(mem + owner + bitmap) if tiny else NULL
    s.allocCache = ~(<uint64_t>0)
    s.freeindex = 0
    s.allocCount = 0
    return 0


cdef void span_free_bits(mspan_t* s) noexcept nogil:
    free(s.bits)
    s.bits = NULL
    s.bits_size = 0
    s.allocBits = s.gcmarkBits = s.freedBits = NULL
    s.tinyObjs = NULL
    s.tinyFreed = NULL


cdef uint32_t span_count_alloc(mspan_t* s) noexcept nogil:
    """Allocated slots by the bitmap invariant: below freeindex, or allocBits set."""
    cdef uint32_t n = s.freeindex
    cdef uint32_t i
    for i in range(s.freeindex, s.nelems):
        if (s.allocBits[i >> 6] >> (i & 63)) & 1:
            n += 1
    return n


cdef dict span_info(mspan_t* s):
    return {
        "base": s.startAddr,
        "npages": s.npages,
        "spanclass": s.spanclass,
        "sizeclass": spanClassSizeclass(s.spanclass),
        "noscan": spanClassNoscan(s.spanclass),
        "elemsize": s.elemsize,
        "divMul": s.divMul,
        "nelems": s.nelems,
        "freeindex": s.freeindex,
        "allocCount": s.allocCount,
        "allocCache": s.allocCache,
        "sweepgen": s.sweepgen,
        "state": s.state,
        "needzero": bool(s.needzero),
        "allocBits_popcount": sum(popcount64(s.allocBits[i]) for i in range(s.nwords)) if s.allocBits else 0,
    }
