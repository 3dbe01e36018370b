# cython: language_level=3
# mspan: a span's bitmaps. Go counterparts: runtime/mheap.go: newAllocBits and
# newMarkBits (span_alloc_bits: here every bitmap of a span is one allocation,
# laid out by who writes it, where Go takes them from gcBits arenas);
# runtime/mbitmap.go: countAlloc (span_count_alloc, which counts allocBits
# and freeindex, as the verifier needs). Span is the Python view: a copy
# taken by span_copy.
from libc.stdlib cimport free
from libc.string cimport memset
from goruntime.sys cimport alloc_aligned, popcount64, CACHE_LINE
from goruntime.sizeclasses cimport TINY_SPAN_CLASS, PAGE_SIZE, spanClassSizeclass, spanClassNoscan


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


cdef void span_copy(mspan_t* s, uint32_t heap_sweepgen, spanview_t* out) noexcept nogil:
    cdef uint32_t i
    out.base = s.startAddr
    out.npages = s.npages
    out.spanclass = s.spanclass
    out.state = s.state
    out.needzero = s.needzero
    out.elemsize = s.elemsize
    out.divMul = s.divMul
    out.nelems = s.nelems
    out.allocCount = s.allocCount
    out.freeindex = load_relaxed32(&s.freeindex)
    out.sweepgen = s.sweepgen
    out.heap_sweepgen = heap_sweepgen
    out.allocCache = s.allocCache
    out.allocated = 0
    if s.allocBits != NULL:
        for i in range(s.nwords):
            out.allocated += popcount64(s.allocBits[i])


# Go's mspan.sweepgen, read against the heap's sweepgen h (mheap.go).
_SWEEP_STATES = {-2: "needs sweeping", -1: "being swept", 0: "swept",
                 1: "cached before the sweep: needs sweeping", 3: "swept, then cached"}


cdef class Span:
    """A span as it was when the view was taken (a copy: it never changes, and reading
    it changes nothing). `where` says where it was found: an mcache, an mcentral list,
    the mheap's large list."""

    @property
    def base(self):
        return self.v.base

    @property
    def limit(self):
        return self.v.base + self.v.npages * PAGE_SIZE

    @property
    def npages(self):
        return self.v.npages

    @property
    def spanclass(self):
        return self.v.spanclass

    @property
    def sizeclass(self):
        return spanClassSizeclass(self.v.spanclass)

    @property
    def noscan(self):
        return bool(spanClassNoscan(self.v.spanclass))

    @property
    def elemsize(self):
        return self.v.elemsize

    @property
    def divMul(self):
        """Go's divMul: a slot's index is (offset * divMul) >> 32; 0 for a large span."""
        return self.v.divMul

    @property
    def nelems(self):
        return self.v.nelems

    @property
    def allocCount(self):
        return self.v.allocCount

    @property
    def freeindex(self):
        return self.v.freeindex

    @property
    def allocCache(self):
        return self.v.allocCache

    @property
    def allocBits_popcount(self):
        return self.v.allocated

    @property
    def needzero(self):
        return bool(self.v.needzero)

    @property
    def state(self):
        """Go's mSpanState: "inuse" or "dead"."""
        return "inuse" if self.v.state == SPAN_INUSE else "dead"

    @property
    def sweepgen(self):
        return self.v.sweepgen

    @property
    def sweep_state(self):
        """The span's sweepgen by Go's meaning, against the heap's sweepgen h: h-2 needs
        sweeping, h-1 is being swept, h is swept, h+1 was cached before the sweep and
        needs sweeping, h+3 was swept and then cached."""
        delta = (self.v.sweepgen - self.v.heap_sweepgen + 2**31) % 2**32 - 2**31
        return _SWEEP_STATES.get(delta, f"sweepgen h{delta:+d} (not a state Go defines)")

    def __repr__(self):
        kind = "noscan" if self.noscan else "scan"
        what = (f"large {self.elemsize:,} B {kind}" if self.sizeclass == 0
                else f"spanclass {self.spanclass} ({self.elemsize} B {kind})")
        pages = f"{self.npages} page{'s' if self.npages != 1 else ''}"
        return (f"<span {self.base:#x} {pages} {what}: {self.allocCount}/{self.nelems} allocated, "
                f"freeindex {self.freeindex}, {self.sweep_state}"
                + (f", in {self.where}" if self.where else "") + ">")


cdef Span make_span(spanview_t* v, str where):
    cdef Span view = Span.__new__(Span)
    view.v = v[0]
    view.where = where
    return view
