# mgcsweep: sweeping concurrent with the mutators, as Go 1.13 does it.
#
# A collection's stop-the-world only advances h.sweepgen by 2 (mgc.gcStart):
# every in-use span is then unswept, and is swept later by whoever needs it
# first, each sweeper claiming a span with a compare-and-swap of its sweepgen
# from h-2 to h-1 (mcentral.span_tryAcquire):
#   - mcentral.cacheSpan, for the span it is about to cache (lazy sweeping);
#   - the mheap, which reclaims pages by sweeping before it grows (reclaim);
#   - every refill and large allocation, in proportion to the bytes it
#     allocates, so that the sweep ends before the next cycle starts
#     (deductSweepCredit, paced by sweep_start);
#   - the background sweeper M (mgc.bgsweep), one span at a time, when a P is
#     idle;
#   - free(), read() and write(), on the span of the object they touch
#     (ensureSwept): a free after the cycle's snapshot belongs to the next
#     cycle, so the span is swept with the frees made before the snapshot
#     first.
# Span states (mspan.sweepgen against h): h-2 needs sweeping, h-1 is being
# swept, h is swept, h+3 was swept and then cached. Go's h+1 (cached before the
# sweep began) never lasts here: the stop-the-world flushes every mcache
# before it advances sweepgen, where Go's Ps flush theirs at their next safe
# point.
#
# Go counterparts: runtime/mgcsweep.go: sweepone, (*mspan).ensureSwept,
# deductSweepCredit, finishsweep_m; runtime/mgc.go: gcSweep (sweep_start) and
# gcPaceSweeper (its pacing); runtime/mheap.go: (*mheap).reclaim. Go 1.13
# finds unswept spans in mheap_.sweepSpans, Go 1.16 in the mcentrals'
# unswept sets: the model follows the design of its mcentral.
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from goruntime.sys cimport load32
from goruntime.mspan cimport mspan_t
from goruntime.mheap cimport mheap_t

cdef enum:
    SWEEP_NONE = -1             # sweepone: nothing was left to sweep (Go's ^uintptr(0))

cdef uintptr_t sweepone(mheap_t* h, int by) noexcept nogil
cdef void ensureSwept(mheap_t* h, mspan_t* s) noexcept nogil
cdef void deductSweepCredit(mheap_t* h, uintptr_t spanBytes, uintptr_t callerSweepPages) noexcept nogil
cdef void reclaim(void* h, size_t npages) noexcept nogil
cdef void finishsweep_m(mheap_t* h) noexcept nogil
cdef void sweep_start(mheap_t* h, uint64_t heap_goal) noexcept nogil


cdef inline bint span_swept(mheap_t* h, mspan_t* s) noexcept nogil:
    """s needs no sweeping this cycle: swept (h), or swept and then cached (h+3).
    Inline, so that a free finds a swept span without a call into this module."""
    cdef uint32_t sg = h.sweepgen
    cdef uint32_t spg = load32(&s.sweepgen)
    return spg == sg or spg == sg + 3
