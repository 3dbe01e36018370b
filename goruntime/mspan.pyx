# cython: language_level=3
# mspan: a span's bitmaps. Go counterparts: runtime/mheap.go: newAllocBits and
# newMarkBits (span_alloc_bits: here every bitmap of a span is one allocation,
# laid out by who writes it, where Go takes them from gcBits arenas);
# runtime/mbitmap.go: countAlloc (span_count_alloc, which counts allocBits
# and freeindex, as the verifier needs). Span is the Python view: a copy
# taken by span_copy.
from libc.stdlib cimport free
from libc.string cimport memset
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from goruntime.sys cimport alloc_aligned, popcount64, CACHE_LINE, GR_ASSERT
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


cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* A 16 B tiny block dies only when every object packed into it is dead: its
     * freed marks equal its start marks (the low 16 bits of its tinyObjs word).
     * The mask of the dead ones among n <= 64 blocks: eight at a time with SSE2
     * (every x86-64 has it), one at a time elsewhere and for the tail. */
    static inline uint64_t gr_tiny_dead(const uint32_t *o, const uint16_t *f, uint32_t n) {
        uint64_t dead = 0;
        uint32_t j = 0;
    #if defined(__SSE2__)
        const __m128i low = _mm_set1_epi32(0xFFFF), zero = _mm_setzero_si128();
        for (; j + 8 <= n; j += 8) {
            __m128i o0 = _mm_loadu_si128((const __m128i *)(o + j));
            __m128i o1 = _mm_loadu_si128((const __m128i *)(o + j + 4));
            __m128i ff = _mm_loadu_si128((const __m128i *)(f + j));
            __m128i d0 = _mm_andnot_si128(_mm_cmpeq_epi32(o0, zero),
                                          _mm_cmpeq_epi32(_mm_and_si128(o0, low), _mm_unpacklo_epi16(ff, zero)));
            __m128i d1 = _mm_andnot_si128(_mm_cmpeq_epi32(o1, zero),
                                          _mm_cmpeq_epi32(_mm_and_si128(o1, low), _mm_unpackhi_epi16(ff, zero)));
            uint64_t m = (uint64_t)_mm_movemask_ps(_mm_castsi128_ps(d0))
                       | ((uint64_t)_mm_movemask_ps(_mm_castsi128_ps(d1)) << 4);
            dead |= m << j;
        }
    #endif
        for (; j < n; j++)
            dead |= (uint64_t)((o[j] != 0) & ((o[j] & 0xFFFF) == f[j])) << j;
        return dead;
    }
    /* Sets the dead blocks' bits in freedBits and clears their marks. */
    static inline void gr_sweep_tiny_blocks(uint32_t *objs, uint16_t *freed, uint64_t *freedBits,
                                            uint32_t nelems) {
        for (uint32_t base = 0; base < nelems; base += 64) {
            uint32_t n = nelems - base < 64 ? nelems - base : 64;
            uint32_t *o = objs + base;
            uint16_t *f = freed + base;
            uint64_t dead = gr_tiny_dead(o, f, n);
            if (dead == 0)
                continue;
            freedBits[base >> 6] |= dead;
            if (dead == (n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1))) {
                memset(o, 0, n * sizeof(uint32_t));
                memset(f, 0, n * sizeof(uint16_t));
                continue;
            }
            for (uint32_t j = 0; j < n; j++) {
                uint32_t keep = (uint32_t)0 - (uint32_t)(((dead >> j) & 1) ^ 1);
                o[j] &= keep;
                f[j] &= (uint16_t)keep;
            }
        }
    }
    """
    void sweep_tiny_blocks "gr_sweep_tiny_blocks"(uint32_t* objs, uint16_t* freed, uint64_t* freedBits,
                                                  uint32_t nelems) noexcept nogil


cdef inline uint64_t _below(uint32_t freeindex, uint32_t word) noexcept nogil:
    """Mask of the slots of bitmap word `word` that lie below freeindex."""
    cdef uint32_t lo = word * 64
    if freeindex >= lo + 64:
        return ~(<uint64_t>0)
    if freeindex <= lo:
        return 0
    return ((<uint64_t>1) << (freeindex - lo)) - 1


cdef uint32_t span_sweep_bits(mspan_t* s) noexcept nogil:
    """The bitmap half of Go's mspan.sweep for a small span: the new allocBits are
    the allocated slots less the freed ones (the model's gcmarkBits), freedBits
    starts over, and the allocation state is rewound to slot 0. Returns how many
    objects it freed. The caller owns the span (it claimed it: sweepgen h-1, or
    the world is stopped) and stores its sweepgen afterwards."""
    cdef uint32_t w, i, nfreed = 0, count = 0
    cdef uint64_t allocated
    cdef uint64_t* tmp
    GR_ASSERT(s.state == SPAN_INUSE, "sweeping a span that is not in use")
    if s.tinyObjs != NULL:
        sweep_tiny_blocks(s.tinyObjs, s.tinyFreed, s.freedBits, s.nelems)
    for w in range(s.nwords):
        allocated = s.allocBits[w] | _below(s.freeindex, w)
        s.gcmarkBits[w] = allocated & ~s.freedBits[w]
        nfreed += popcount64(allocated & s.freedBits[w])
        count += popcount64(s.gcmarkBits[w])
        s.freedBits[w] = 0
    tmp = s.allocBits
    s.allocBits = s.gcmarkBits
    s.gcmarkBits = tmp
    memset(s.gcmarkBits, 0, s.nwords * 8)
    GR_ASSERT(count <= s.nelems, "a swept span holds more objects than slots")
    s.freeindex = 0
    s.allocCount = count
    refillAllocCache(s, 0)
    if nfreed:
        s.needzero = 1
    return nfreed


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
