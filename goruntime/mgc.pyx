# cython: language_level=3
# mgc: the collection (runtime/mgc.go: gcStart), the sweep of each mcentral
# design and of large objects (runtime/mgcsweep.go), and the heap verifier;
# see mgc.pxd.
from libc.stdint cimport uint16_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memset
from goruntime.sys cimport (pthread_mutex_trylock, pthread_mutex_unlock,
    popcount64, nanotime, store64, load32, load64, GR_ASSERT)
from goruntime.lock cimport lock, unlock, SITE_SWEEP, SITE_FREESPAN
from goruntime.mspan cimport (mspan_t, mspanlist_t, list_insert, list_insertBack, list_remove,
    refillAllocCache, SPAN_INUSE, span_count_alloc)
from goruntime.mheap cimport mheap_t, heapregion_t, pagecache_t, mheap_freeSpanLocked, spanOf
from goruntime.sizeclasses cimport MAX_SPAN_CLASSES, PAGE_SIZE, spanClassSizeclass
from goruntime.mcentral cimport (mcentral_t, MCENTRAL_SPANSET, partialSwept, partialUnswept,
    fullSwept, fullUnswept)
from goruntime.mspanset cimport spanset_t, spanset_pop, spanset_push, spanset_reset, spanset_len, spanset_at
from goruntime.mcache cimport mcache_releaseAll
from goruntime.proc cimport stopTheWorld, startTheWorld
from goruntime.runtime2 cimport (MIN_HEAP_GOAL, NUM_PAUSES, num_mcaches, mcache_holder, gcwork_t,
    GCTRACE_OFF, GCTRACE_GO119)
from goruntime.trace cimport trace_put, EV_STW, EV_SWEEP, EV_GC, EV_COUNTERS


cdef void flushallmcaches(runtime_t* rt) noexcept nogil:
    cdef int i
    for i in range(num_mcaches(rt)):
        mcache_releaseAll(&mcache_holder(rt, i).mcache)


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


cdef uint32_t _sweepspan(mheap_t* h, mspan_t* s) noexcept nogil:
    """Go's mspan.sweep for a small span: rebuilds allocBits from this cycle's
    marks; returns how many objects it freed."""
    cdef uint32_t w, i, nfreed = 0, count = 0
    cdef uint64_t allocated
    cdef uint64_t* tmp
    GR_ASSERT(s.state == SPAN_INUSE, "sweeping a span that is not in use")
    GR_ASSERT(s.sweepgen != h.sweepgen, "sweeping a span twice in one cycle")
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
    s.sweepgen = h.sweepgen
    return nfreed


cdef void _free_spans(mheap_t* h, mspan_t* dead) noexcept nogil:
    """Returns a chain (linked by next) of empty spans' pages to the heap."""
    cdef mspan_t* nxt
    if dead == NULL:
        return
    lock(&h.lock, SITE_FREESPAN)
    while dead != NULL:
        nxt = dead.next
        mheap_freeSpanLocked(h, dead)
        dead = nxt
    unlock(&h.lock)


cdef uint64_t _sweep_central(runtime_t* rt, mcentral_t* c) noexcept nogil:
    """Sweeps every span of one mcentral; returns the live bytes left in them.

    Spans left with no object go back to the mheap, after the mcentral lock is
    dropped: the mcentral lock is never held while the mheap lock is taken."""
    cdef mheap_t* h = rt.heap
    cdef mspan_t* s
    cdef mspan_t* nxt
    cdef mspan_t* dead = NULL
    cdef mspanlist_t* lists[2]
    cdef uint64_t live = 0
    cdef int k
    cdef uint32_t nfreed
    lists[0] = &c.nonempty
    lists[1] = &c.empty
    lock(&c.lock, SITE_SWEEP)
    for k in range(2):
        s = lists[k].first
        while s != NULL:
            nxt = s.next
            if s.sweepgen != h.sweepgen:
                nfreed = _sweepspan(h, s)
                rt.nfree[spanClassSizeclass(c.spanclass)] += nfreed
                if s.allocCount == 0:
                    list_remove(lists[k], s)
                    s.next = dead
                    dead = s
                elif s.allocCount < s.nelems and lists[k] == &c.empty:
                    list_remove(&c.empty, s)
                    list_insert(&c.nonempty, s)
                elif s.allocCount == s.nelems and lists[k] == &c.nonempty:
                    list_remove(&c.nonempty, s)
                    list_insertBack(&c.empty, s)
                live += <uint64_t>s.allocCount * s.elemsize
            s = nxt
    unlock(&c.lock)
    _free_spans(h, dead)
    return live


cdef uint64_t _sweep_central_spanset(runtime_t* rt, mcentral_t* c) noexcept nogil:
    """The spanset mcentral's sweep: sweepgen has just advanced, so last cycle's
    swept sets are this cycle's unswept ones; drain them into the swept sets."""
    cdef mheap_t* h = rt.heap
    cdef uint32_t sg = h.sweepgen
    cdef spanset_t* sets[2]
    cdef mspan_t* s
    cdef mspan_t* dead = NULL
    cdef mspan_t* nxt
    cdef uint64_t live = 0
    cdef int k
    sets[0] = partialUnswept(c, sg)
    sets[1] = fullUnswept(c, sg)
    for k in range(2):
        s = spanset_pop(sets[k])
        while s != NULL:
            rt.nfree[spanClassSizeclass(c.spanclass)] += _sweepspan(h, s)
            if s.allocCount == 0:
                s.next = dead
                dead = s
            else:
                live += <uint64_t>s.allocCount * s.elemsize
                if s.allocCount < s.nelems:
                    spanset_push(partialSwept(c, sg), s)
                else:
                    spanset_push(fullSwept(c, sg), s)
            s = spanset_pop(sets[k])
        spanset_reset(sets[k])
    _free_spans(h, dead)
    return live


cdef uint64_t _sweep_large(runtime_t* rt) noexcept nogil:
    cdef mheap_t* h = rt.heap
    cdef mspan_t* s
    cdef mspan_t* nxt
    cdef uint64_t live = 0
    lock(&h.lock, SITE_FREESPAN)
    s = h.large.first
    while s != NULL:
        nxt = s.next
        if s.freedBits[0] & 1:
            rt.large_frees += 1
            mheap_freeSpanLocked(h, s)
        else:
            s.sweepgen = h.sweepgen
            live += s.elemsize
        s = nxt
    unlock(&h.lock)
    return live


cdef void set_heap_goal(runtime_t* rt) noexcept nogil:
    cdef uint64_t goal
    if rt.gogc < 0:
        rt.heap_goal = <uint64_t>-1
        return
    # Saturating: GOGC may be as large as 2**31-1.
    if rt.heap_marked > (<uint64_t>-1) // (<uint64_t>rt.gogc + 100):
        goal = <uint64_t>-1
    else:
        goal = rt.heap_marked * (<uint64_t>rt.gogc + 100) // 100
    rt.heap_goal = goal if goal > MIN_HEAP_GOAL else MIN_HEAP_GOAL


cdef void _gc_stopped(runtime_t* rt) noexcept nogil:
    cdef int spc
    cdef mcentral_t* c
    cdef uint64_t live = 0
    flushallmcaches(rt)
    rt.heap.sweepgen += 2
    for spc in range(2, rt.sc.num_classes * 2):
        c = rt.central[spc]
        # Most span classes hold no span at all: skip them without taking their
        # lock. (Nothing else runs: every write to an mcentral happened before
        # the world stopped.)
        if c.mode == MCENTRAL_SPANSET:
            if load64(&partialUnswept(c, rt.heap.sweepgen).index) or load64(&fullUnswept(c, rt.heap.sweepgen).index):
                live += _sweep_central_spanset(rt, c)
        elif c.nonempty.first != NULL or c.empty.first != NULL:
            live += _sweep_central(rt, c)
    live += _sweep_large(rt)
    rt.heap_marked = live
    store64(&rt.heap.heap_live, live)
    set_heap_goal(rt)


cdef void gcStart(runtime_t* rt, p_t* mine, bint forced=False) noexcept nogil:
    """A full collection; the caller holds gc_sema and, if mine is not NULL, that P.

    The cycle's record (rt.work, Go's `work`) maps the model's one stop-the-world
    onto Go's three phases, as gctrace reports them:
      sweep termination  tSweepTerm .. tMark: stopping the world. Go also
                         finishes the last cycle's sweep here; the model has
                         none left (every span is swept inside the pause).
      concurrent mark    tMark .. tMarkTerm: zero. Liveness is explicit
                         (free()), so there is nothing to trace; each span's
                         marks are computed as it is swept.
      mark termination   tMarkTerm .. tEnd: the rest of the pause, _gc_stopped
                         (flush every mcache, advance sweepgen, sweep every
                         span, set the next goal): Go's gcMarkTermination with
                         gcSweep in its blocking mode.
    heap0 is heap_live as the cycle starts, heap1 at the end of the mark (the
    world stopped), heap2 the live bytes the sweep left (heap_marked)."""
    cdef gcwork_t* w = &rt.work
    w.userForced = forced
    w.maxprocs = <uint32_t>rt.gomaxprocs
    w.stwprocs = <uint32_t>(rt.gomaxprocs if rt.gomaxprocs < rt.ncpu else rt.ncpu)
    w.heap_goal = rt.heap_goal
    w.heap0 = load64(&rt.heap.heap_live)
    w.tSweepTerm = nanotime()
    stopTheWorld(rt, mine)
    w.tMark = nanotime()
    w.tMarkTerm = w.tMark
    w.heap1 = load64(&rt.heap.heap_live)
    _gc_stopped(rt)
    w.heap2 = rt.heap_marked
    w.tEnd = nanotime()
    # Go's cycleCpu: a stopped world idles stwprocs CPUs for the whole pause.
    w.totaltime += <uint64_t>w.stwprocs * (w.tEnd - w.tSweepTerm)
    rt.pause_ns[rt.numgc % NUM_PAUSES] = w.tEnd - w.tSweepTerm
    rt.pause_total_ns += w.tEnd - w.tSweepTerm
    rt.numgc += 1
    rt.last_gc_ns = w.tEnd
    if rt.trace != NULL:
        # One collection at a time (gc_sema): the GC buffer has one writer.
        trace_put(&rt.trace.gc, EV_STW, w.tSweepTerm, w.tMark, 0, 0)
        trace_put(&rt.trace.gc, EV_SWEEP, w.tMarkTerm, w.tEnd, 0, 0)
        trace_put(&rt.trace.gc, EV_GC, w.tSweepTerm, w.tEnd, rt.numgc, 0)
        trace_put(&rt.trace.gc, EV_COUNTERS, w.tEnd, rt.heap.pages_inuse * PAGE_SIZE,
                  rt.heap_marked, rt.numgc)
    startTheWorld(rt, mine)
    if rt.gctrace != GCTRACE_OFF:
        # With the world running, before gc_sema is released: the next cycle
        # cannot overwrite the record meanwhile (Go prints before worldsema).
        gctrace_print(rt)


cdef bint gcTryStart(runtime_t* rt, p_t* mine) noexcept nogil:
    """Collects unless a collection is already under way (the M will then park
    at its next safe point instead). True if this call collected."""
    if pthread_mutex_trylock(&rt.sched.gc_sema) != 0:
        return False
    if load32(&rt.sched.closed):
        # close() took every P: the world cannot be stopped again.
        pthread_mutex_unlock(&rt.sched.gc_sema)
        return False
    gcStart(rt, mine)
    pthread_mutex_unlock(&rt.sched.gc_sema)
    return True


cdef inline bint _bit(uint64_t* bits, uint32_t i) noexcept nogil:
    return (bits[i >> 6] >> (i & 63)) & 1


cdef str _span_problem(mheap_t* h, mspan_t* s, bint cached):
    """The first broken invariant of one small span, or None."""
    cdef uint32_t i, j, window
    cdef uint64_t cache
    name = f"span {s.startAddr:#x} (spanclass {s.spanclass})"
    if s.state != SPAN_INUSE:
        return f"{name} is listed but not in use"
    if span_count_alloc(s) != s.allocCount:
        return f"{name}: allocCount {s.allocCount} but {span_count_alloc(s)} slots are allocated"
    if s.freeindex == 0:
        if sum(popcount64(s.allocBits[w]) for w in range(s.nwords)) != s.allocCount:
            return f"{name}: allocCount {s.allocCount} differs from popcount(allocBits)"
    if s.freeindex < s.nelems and (s.freeindex & 63) != 0 or s.freeindex == 0:
        window = 64 - (s.freeindex & 63)
        cache = s.allocCache
        for j in range(window):
            i = s.freeindex + j
            if i >= s.nelems:
                break
            if ((cache >> j) & 1) == _bit(s.allocBits, i):
                return f"{name}: allocCache disagrees with allocBits at slot {i} (freeindex {s.freeindex})"
    for i in range(s.nelems):
        if _bit(s.freedBits, i) and not (i < s.freeindex or _bit(s.allocBits, i)):
            return f"{name}: slot {i} is freed but was never allocated"
    if cached and s.sweepgen != h.sweepgen + 3:
        return f"{name} is cached but its sweepgen is {s.sweepgen}, not {h.sweepgen + 3}"
    if not cached and s.sweepgen != h.sweepgen:
        return f"{name} is not cached but its sweepgen is {s.sweepgen}, not {h.sweepgen}"
    return None


cdef int _verify_spanset(mheap_t* h, mcentral_t* c, int spc, place, list problems) except -1:
    cdef uint32_t sg = h.sweepgen
    cdef spanset_t* st
    cdef mspan_t* s
    cdef uint64_t i
    for name, st_addr, full in (("partialSwept", <uintptr_t>partialSwept(c, sg), False),
                                ("fullSwept", <uintptr_t>fullSwept(c, sg), True),
                                ("partialUnswept", <uintptr_t>partialUnswept(c, sg), None),
                                ("fullUnswept", <uintptr_t>fullUnswept(c, sg), None)):
        st = <spanset_t*><uintptr_t>st_addr
        for i in range(spanset_len(st)):
            s = spanset_at(st, i)
            if full is None:
                problems.append(f"span {s.startAddr:#x} is unswept in mcentral[{spc}].{name} outside a collection")
                continue
            place(s.startAddr, f"mcentral[{spc}].{name}")
            if s.spanclass != spc:
                problems.append(f"span {s.startAddr:#x} of spanclass {s.spanclass} in mcentral[{spc}]")
            if full != (s.allocCount == s.nelems):
                problems.append(f"span {s.startAddr:#x} with {s.allocCount}/{s.nelems} objects is in mcentral[{spc}].{name}")
            p = _span_problem(h, s, False)
            if p:
                problems.append(p)
    return 0


cdef tuple verify_heap(runtime_t* rt):
    """Checks the heap's invariants; the world is stopped. Returns the problems found.

    It builds Python objects with the world stopped, so the caller keeps every
    other Python code out meanwhile (Runtime.verify: the cyclic GC, whose
    finalizers could call back into the runtime, is off, and the GIL is held
    throughout).

    Every in-use span is in exactly one place (an mcache, an mcentral list or
    the large list) and owns exactly the pages that point at it; a page is free
    exactly when no span owns it; each span's counts and bitmaps agree."""
    cdef mheap_t* h = rt.heap
    cdef mspan_t* s
    cdef mcentral_t* c
    cdef heapregion_t* r
    cdef mspanlist_t* lst
    cdef pagecache_t* pc
    cdef int i, j, spc
    cdef uint32_t k
    cdef size_t pg
    problems = []
    places = {}
    listed = {}

    def place(uintptr_t addr, where):
        if addr in places:
            problems.append(f"span {addr:#x} is in two places: {places[addr]} and {where}")
        places[addr] = where

    for i in range(num_mcaches(rt)):
        for spc in range(MAX_SPAN_CLASSES):
            s = mcache_holder(rt, i).mcache.alloc[spc]
            if s == &h.emptyspan:
                continue
            place(s.startAddr, f"P{i}'s mcache" if i < rt.gomaxprocs else "the shared mcache")
            if s.spanclass != spc:
                problems.append(f"span {s.startAddr:#x} of spanclass {s.spanclass} cached as {spc}")
            p = _span_problem(h, s, True)
            if p:
                problems.append(p)
    for spc in range(2, rt.sc.num_classes * 2):
        c = rt.central[spc]
        if c.mode == MCENTRAL_SPANSET:
            _verify_spanset(h, c, spc, place, problems)
            continue
        for which in ("nonempty", "empty"):
            lst = &c.nonempty if which == "nonempty" else &c.empty
            s = lst.first
            n = 0
            while s != NULL:
                n += 1
                cached = places.get(s.startAddr, "").endswith("mcache")
                if cached and which == "empty":
                    # Go 1.13: a cached span also stays on its mcentral's empty list.
                    listed[s.startAddr] = listed.get(s.startAddr, 0) + 1
                elif cached:
                    problems.append(f"cached span {s.startAddr:#x} is on mcentral[{spc}].nonempty")
                else:
                    place(s.startAddr, f"mcentral[{spc}].{which}")
                    p = _span_problem(h, s, False)
                    if p:
                        problems.append(p)
                if s.spanclass != spc:
                    problems.append(f"span {s.startAddr:#x} of spanclass {s.spanclass} on mcentral[{spc}]")
                if s.list != lst:
                    problems.append(f"span {s.startAddr:#x} on mcentral[{spc}].{which} points at another list")
                if which == "nonempty" and s.allocCount >= s.nelems:
                    problems.append(f"full span {s.startAddr:#x} on mcentral[{spc}].nonempty")
                s = s.next
            if n != lst.count:
                problems.append(f"mcentral[{spc}].{which} holds {n} spans but counts {lst.count}")
    for addr, where in places.items():
        if where.endswith("mcache") and listed.get(addr, 0) != (0 if rt.central[2].mode == MCENTRAL_SPANSET else 1):
            problems.append(f"cached span {addr:#x} is on {listed.get(addr, 0)} mcentral empty lists")
    s = h.large.first
    while s != NULL:
        place(s.startAddr, "mheap.large")
        if spanClassSizeclass(s.spanclass) != 0 or s.nelems != 1 or s.allocCount != 1 or s.freeindex != 1:
            problems.append(f"large span {s.startAddr:#x} is malformed")
        s = s.next
    # Pages against spans. A P's page cache owns its free pages outright.
    cached_pages = set()
    for i in range(num_mcaches(rt)):
        pc = &mcache_holder(rt, i).pcache
        for j in range(64):
            if (pc.cache >> j) & 1:
                cached_pages.add(pc.base + j * PAGE_SIZE)
    owners = {}
    inuse_pages = 0
    for k in range(h.nregions):
        r = &h.regions[k]
        for pg in range(r.npages):
            s = r.spans[pg]
            free = (r.free_bits[pg >> 6] >> (pg & 63)) & 1
            if s == NULL:
                if not free and (r.base + pg * PAGE_SIZE) not in cached_pages:
                    problems.append(f"page {r.base + pg * PAGE_SIZE:#x} is neither free, in a span nor in a page cache")
                continue
            if (r.base + pg * PAGE_SIZE) in cached_pages:
                problems.append(f"page {r.base + pg * PAGE_SIZE:#x} is in a page cache and in span {s.startAddr:#x}")
            inuse_pages += 1
            if free:
                problems.append(f"page {r.base + pg * PAGE_SIZE:#x} is free and in span {s.startAddr:#x}")
            addr = r.base + pg * PAGE_SIZE
            if not s.startAddr <= addr < s.startAddr + s.npages * PAGE_SIZE:
                problems.append(f"page {addr:#x} points at span {s.startAddr:#x} that does not hold it")
            owners[s.startAddr] = owners.get(s.startAddr, 0) + 1
    for addr, where in places.items():
        s = spanOf(h, addr)
        if s == NULL or s.startAddr != addr:
            problems.append(f"span {addr:#x} ({where}) is not in the page table")
        elif owners.get(addr) != s.npages:
            problems.append(f"span {addr:#x} owns {owners.get(addr, 0)} pages of {s.npages}")
    for addr in owners:
        if addr not in places:
            problems.append(f"span {addr:#x} holds pages but is in no list, mcache or large list")
    if inuse_pages != h.pages_inuse:
        problems.append(f"{inuse_pages} pages are in spans but the heap counts {h.pages_inuse}")
    return problems, len(places)


# -- gctrace: GODEBUG=gctrace=1 ----------------------------------------------
# The line of Go's gcMarkTermination, formatted in C (no Python code runs in a
# collection, which holds gc_sema and perhaps a P) and written to the process's
# fd 2 with write(2), so that it reaches the real stderr whatever sys.stderr is.

cdef extern from *:
    """
    #include <inttypes.h>
    #include <stdio.h>
    #include <errno.h>
    #include <unistd.h>
    #include <sched.h>
    /* Go's itoaDiv: val / 10^dec with dec decimals. */
    static void gr_itoa_div(char *buf, size_t n, uint64_t val, int dec) {
        uint64_t p = 1;
        for (int i = 0; i < dec; i++)
            p *= 10;
        if (dec == 0)
            snprintf(buf, n, "%" PRIu64, val);
        else
            snprintf(buf, n, "%" PRIu64 ".%0*" PRIu64, val / p, dec, val % p);
    }
    /* Go's fmtNSAsMS: whole milliseconds from 10 ms up, else two significant
     * digits of the microseconds, at most three decimals ("0" under 1 us). */
    static void gr_fmt_ns_as_ms(char *buf, size_t n, uint64_t ns) {
        uint64_t x;
        int dec = 3;
        if (ns >= 10000000) {
            gr_itoa_div(buf, n, ns / 1000000, 0);
            return;
        }
        x = ns / 1000;
        if (x == 0) {
            snprintf(buf, n, "0");
            return;
        }
        for (; x >= 100; x /= 10)
            dec--;
        gr_itoa_div(buf, n, x, dec);
    }
    #define GR_GCTRACE_MAX 512
    /* One gctrace line, newline included, into buf (GR_GCTRACE_MAX bytes);
     * returns its length. clock: sweep termination, mark, mark termination;
     * cpu: sweep termination, assist, background mark, idle mark, mark
     * termination (ns). go119 adds stacks and globals (the model has neither). */
    static int gr_gctrace_format(char *buf, uint32_t num, uint64_t since_ns, int util,
                                 const uint64_t clock[3], const uint64_t cpu[5],
                                 uint64_t heap0, uint64_t heap1, uint64_t heap2, uint64_t goal,
                                 int go119, uint32_t procs, int forced) {
        char at[32], c[3][24], u[5][24], extra[64];
        int len;
        gr_itoa_div(at, sizeof at, since_ns / 1000000, 3);
        for (int i = 0; i < 3; i++)
            gr_fmt_ns_as_ms(c[i], sizeof c[i], clock[i]);
        for (int i = 0; i < 5; i++)
            gr_fmt_ns_as_ms(u[i], sizeof u[i], cpu[i]);
        extra[0] = 0;
        if (go119)
            snprintf(extra, sizeof extra, "%d MB stacks, %d MB globals, ", 0, 0);
        len = snprintf(buf, GR_GCTRACE_MAX,
                       "gc %" PRIu32 " @%ss %d%%: %s+%s+%s ms clock, %s+%s/%s/%s+%s ms cpu, "
                       "%" PRIu64 "->%" PRIu64 "->%" PRIu64 " MB, %" PRIu64 " MB goal, %s%" PRIu32 " P%s\\n",
                       num, at, util, c[0], c[1], c[2], u[0], u[1], u[2], u[3], u[4],
                       heap0 >> 20, heap1 >> 20, heap2 >> 20, goal >> 20, extra, procs,
                       forced ? " (forced)" : "");
        return len < GR_GCTRACE_MAX ? len : GR_GCTRACE_MAX - 1;
    }
    /* All of buf to fd 2: one write(2) unless interrupted or short. */
    static void gr_write_stderr(const char *buf, int len) {
        while (len > 0) {
            ssize_t k = write(2, buf, (size_t)len);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return;
            buf += k;
            len -= (int)k;
        }
    }
    /* Go's ncpu: the CPUs this process may run on. */
    static int gr_ncpu(void) {
    #if defined(__linux__) && defined(CPU_COUNT)
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
            return CPU_COUNT(&set);
    #endif
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (int)n : 1;
    }
    """
    enum: GR_GCTRACE_MAX
    int gctrace_format "gr_gctrace_format"(char* buf, uint32_t num, uint64_t since_ns, int util,
                                           const uint64_t* clock, const uint64_t* cpu,
                                           uint64_t heap0, uint64_t heap1, uint64_t heap2, uint64_t goal,
                                           int go119, uint32_t procs, int forced) noexcept nogil
    void write_stderr "gr_write_stderr"(const char* buf, int len) noexcept nogil
    int gr_ncpu() noexcept nogil


cdef void gcwork_init(runtime_t* rt, int gctrace) noexcept nogil:
    """Called once as the Runtime is made: the GC's clock starts (Go's
    runtimeInitTime), ncpu is read, gctrace (GCTRACE_*) chooses the line."""
    rt.work.init_ns = nanotime()
    rt.ncpu = gr_ncpu()
    rt.gctrace = gctrace


cdef int gctrace_line(runtime_t* rt, char* buf) noexcept nogil:
    """The last collection's gctrace line (rt.work) into buf; its length.

    As Go: the percent is the GC's CPU time since the Runtime was made over the
    CPU time the Ps had (elapsed x gomaxprocs), truncated; each stop-the-world
    phase's CPU is its wall time x stwprocs; the model's mark has no assists,
    no background workers and no idle workers, so those three are 0."""
    cdef gcwork_t* w = &rt.work
    cdef uint64_t clock[3]
    cdef uint64_t cpu[5]
    cdef uint64_t avail = (w.tEnd - w.init_ns) * <uint64_t>rt.gomaxprocs
    cdef int util = <int>(100.0 * w.totaltime / avail) if avail else 0
    clock[0] = w.tMark - w.tSweepTerm
    clock[1] = w.tMarkTerm - w.tMark
    clock[2] = w.tEnd - w.tMarkTerm
    cpu[0] = clock[0] * w.stwprocs
    cpu[1] = 0
    cpu[2] = 0
    cpu[3] = 0
    cpu[4] = clock[2] * w.stwprocs
    return gctrace_format(buf, rt.numgc, w.tSweepTerm - w.init_ns, util, clock, cpu,
                          w.heap0, w.heap1, w.heap2, w.heap_goal, rt.gctrace == GCTRACE_GO119,
                          w.maxprocs, w.userForced)


cdef void gctrace_print(runtime_t* rt) noexcept nogil:
    """Writes the last collection's gctrace line to fd 2, in one write(2)."""
    cdef char buf[GR_GCTRACE_MAX]
    write_stderr(buf, gctrace_line(rt, buf))


def format_gctrace(*, num, since_ns, util, clock, cpu, heap, goal, procs, go119=False, forced=False):
    """The gctrace line these figures make (ns; heap: (heap0, heap1, heap2) bytes),
    without its newline: the C formatter, for tests."""
    cdef char buf[GR_GCTRACE_MAX]
    cdef uint64_t c[3]
    cdef uint64_t u[5]
    cdef int i, n
    for i in range(3):
        c[i] = clock[i]
    for i in range(5):
        u[i] = cpu[i]
    n = gctrace_format(buf, num, since_ns, util, c, u, heap[0], heap[1], heap[2], goal,
                       bool(go119), procs, bool(forced))
    return buf[:n].decode()[:-1]

