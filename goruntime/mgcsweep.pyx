# cython: language_level=3
# mgcsweep: the sweepers (see mgcsweep.pxd). The sweep of a small span is
# mcentral.mcentral_sweep; that of a large span is here.
from libc.stdint cimport int64_t, uint32_t, uint64_t
from goruntime.sys cimport (load32, store32, load64, store64, xadd64, cpu_relax, sched_yield,
    nanotime)
from goruntime.lock cimport SITE_FREESPAN
from goruntime.mspanset cimport spanset_t, spanset_pop, spanset_reset
from goruntime.mheap cimport (heapregion_t, mheap_freeSpan, sweepspans_push, unsweptSpans,
    SWEEP_BY_CREDIT, SWEEP_BY_RECLAIM, SWEEP_BY_ENSURE, SWEEP_BY_STW)
from goruntime.mcentral cimport (mcentral_t, mcentral_sweep, span_tryAcquire, partialUnswept,
    fullUnswept)
from goruntime.sizeclasses cimport PAGE_SIZE, spanClassSizeclass

cdef enum:
    RECLAIM_BUDGET = 100        # spans a reclaim may sweep before the heap grows anyway
    ENSURE_SPINS = 64           # spins on a span being swept elsewhere before yielding the CPU


cdef bint _sweep_large(mheap_t* h, mspan_t* s, int by) noexcept nogil:
    """Sweeps a claimed large span: frees it if its object was freed. True if freed."""
    cdef uint32_t sg = h.sweepgen
    cdef uint64_t t0 = nanotime()
    cdef bint dead = s.freedBits[0] & 1
    xadd64(&h.pages_swept, <int64_t>s.npages)
    xadd64(&h.nswept[by], 1)
    store32(&s.sweepgen, sg)
    if dead:
        xadd64(&h.large_frees, 1)
        mheap_freeSpan(h, s, SITE_FREESPAN)
    else:
        sweepspans_push(h, s)
    xadd64(&h.sweep_ns, <int64_t>(nanotime() - t0))
    return dead


cdef bint _sweep(mheap_t* h, mspan_t* s, int by) noexcept nogil:
    """Sweeps a span the caller claimed and files it (Go's s.sweep(false)).
    True if it went back to the mheap."""
    if spanClassSizeclass(s.spanclass) == 0:
        return _sweep_large(h, s, by)
    return mcentral_sweep((<mcentral_t**>h.central)[s.spanclass], s, False, by)


cdef uintptr_t _sweepone(mheap_t* h, int by, uintptr_t* freed) noexcept nogil:
    """Claims and sweeps one unswept span; its pages, or SWEEP_NONE if every span
    is swept or claimed. *freed gets the pages it gave back to the mheap."""
    cdef uint32_t sg = h.sweepgen
    cdef mspan_t* s
    cdef mcentral_t* c
    cdef spanset_t* sets[2]
    cdef uint32_t spc, n
    cdef uintptr_t npages
    cdef int k
    freed[0] = 0
    # The heap's set: every span in Go 1.13's design, large spans in Go 1.16's. A
    # span swept meanwhile by another sweeper leaves a stale entry here: its claim fails.
    s = spanset_pop(unsweptSpans(h))
    while s != NULL:
        if span_tryAcquire(s, sg):
            npages = s.npages
            if _sweep(h, s, by):
                freed[0] = npages
            return npages
        s = spanset_pop(unsweptSpans(h))
    if h.sweepspans_small:
        return SWEEP_NONE
    # Go 1.16's nextSpanForSweep: the mcentrals' unswept sets, from the first
    # span class that may still hold some.
    n = h.sc.num_classes * 2
    spc = load32(&h.sweep_central)
    while spc < n:
        c = (<mcentral_t**>h.central)[spc]
        sets[0] = fullUnswept(c, sg)
        sets[1] = partialUnswept(c, sg)
        for k in range(2):
            s = spanset_pop(sets[k])
            while s != NULL:
                if span_tryAcquire(s, sg):
                    npages = s.npages
                    if mcentral_sweep(c, s, False, by):
                        freed[0] = npages
                    return npages
                s = spanset_pop(sets[k])
        spc += 1
        if load32(&h.sweep_central) < spc:
            store32(&h.sweep_central, spc)  # a lost race only makes a later search start lower
    return SWEEP_NONE


cdef uintptr_t sweepone(mheap_t* h, int by) noexcept nogil:
    """Go's sweepone: sweeps one span and returns its pages, or SWEEP_NONE once
    the cycle's sweep is done (and marks it so). by: who sweeps (SweptBy)."""
    cdef uintptr_t freed, npages
    if load32(&h.sweepdone):
        return SWEEP_NONE
    npages = _sweepone(h, by, &freed)
    if npages == SWEEP_NONE:
        store32(&h.sweepdone, 1)
    return npages


cdef void ensureSwept(mheap_t* h, mspan_t* s) noexcept nogil:
    """Go's (*mspan).ensureSwept: returns once s is swept (or no longer in use).
    The caller holds a P, so no collection can start meanwhile."""
    cdef uint32_t sg = h.sweepgen
    cdef int spins = 0
    if span_swept(h, s):
        return
    if span_tryAcquire(s, sg):
        _sweep(h, s, SWEEP_BY_ENSURE)
        return
    while load32(&s.sweepgen) == sg - 1:
        spins += 1
        if spins < ENSURE_SPINS:
            cpu_relax()
        else:
            sched_yield()


cdef void deductSweepCredit(mheap_t* h, uintptr_t spanBytes, uintptr_t callerSweepPages) noexcept nogil:
    """Proportional sweeping: before taking spanBytes more of the heap, sweep
    until pages_swept keeps pace with the bytes allocated since the cycle began,
    so that every span is swept before heap_live reaches the next goal."""
    cdef uint64_t live, grown
    cdef int64_t target
    if load32(&h.sweepdone) or h.sweep_pages_per_byte == 0:
        return
    live = load64(&h.heap_live)
    grown = live - h.sweep_heap_live_basis if live > h.sweep_heap_live_basis else 0
    target = <int64_t>(h.sweep_pages_per_byte * <double>(grown + spanBytes)) - <int64_t>callerSweepPages
    while target > <int64_t>load64(&h.pages_swept):
        if sweepone(h, SWEEP_BY_CREDIT) == SWEEP_NONE:
            break


cdef void reclaim(void* hv, size_t npages) noexcept nogil:
    """Go's (*mheap).reclaim: before the heap grows by npages, sweep until that
    many pages came back to it, or RECLAIM_BUDGET spans were swept. (Go 1.13
    finds the spans with no live object from its page bitmaps; the model sweeps
    whatever comes next, work the cycle owes anyway.)"""
    cdef mheap_t* h = <mheap_t*>hv
    cdef uintptr_t got = 0, freed
    cdef int budget = RECLAIM_BUDGET
    while got < npages and budget > 0 and not load32(&h.sweepdone):
        if _sweepone(h, SWEEP_BY_RECLAIM, &freed) == SWEEP_NONE:
            store32(&h.sweepdone, 1)
            break
        got += freed
        budget -= 1


cdef void _sweep_walk(mheap_t* h) noexcept nogil:
    """Sweeps every unswept span by walking the page tables: the fallback for
    a span that missed sweepSpans because a push ran out of memory."""
    cdef uint32_t k
    cdef size_t pg
    cdef heapregion_t* r
    cdef mspan_t* s
    for k in range(h.nregions):
        r = &h.regions[k]
        pg = 0
        while pg < r.npages:
            s = r.spans[pg]
            if s == NULL or s.startAddr != r.base + pg * PAGE_SIZE:
                pg += 1
                continue
            pg += s.npages
            if span_tryAcquire(s, h.sweepgen):
                _sweep(h, s, SWEEP_BY_STW)


cdef void finishsweep_m(mheap_t* h) noexcept nogil:
    """With the world stopped, before a cycle starts: sweeps what the last
    cycle's sweepers left (nothing, when proportional sweeping kept pace), and
    empties the unswept sets, stale entries included."""
    cdef uintptr_t freed
    cdef uint32_t spc, sg = h.sweepgen
    cdef mcentral_t* c
    while _sweepone(h, SWEEP_BY_STW, &freed) != SWEEP_NONE:
        pass
    if load32(&h.sweepspans_lost):
        _sweep_walk(h)
        store32(&h.sweepspans_lost, 0)
    store32(&h.sweepdone, 1)
    spanset_reset(unsweptSpans(h))
    if not h.sweepspans_small:
        for spc in range(h.sc.num_classes * 2):
            c = (<mcentral_t**>h.central)[spc]
            spanset_reset(partialUnswept(c, sg))
            spanset_reset(fullUnswept(c, sg))


cdef void sweep_start(mheap_t* h, uint64_t heap_goal) noexcept nogil:
    """Go's gcSweep and gcPaceSweeper, with the world stopped and every mcache
    flushed: advance sweepgen, which makes every in-use span unswept, and pace
    proportional sweeping so that the sweep ends 1 MiB before heap_live reaches
    heap_goal."""
    cdef uint64_t live = load64(&h.heap_live)
    cdef double distance = PAGE_SIZE
    h.sweepgen += 2
    store64(&h.pages_swept, 0)
    store32(&h.sweep_central, 0)
    store32(&h.sweepdone, 0)
    if heap_goal > live + (1 << 20) + PAGE_SIZE:
        distance = <double>(heap_goal - live - (1 << 20))     # GOGC off: about 2**64, no pace
    h.sweep_pages_per_byte = <double>load64(&h.pages_inuse) / distance
    h.sweep_heap_live_basis = live
