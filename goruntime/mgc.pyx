# cython: language_level=3
# mgc: the collection (runtime/mgc.go: gcStart), the sweep of each mcentral
# design and of large objects (runtime/mgcsweep.go), and the heap verifier;
# see mgc.pxd.
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from goruntime.sys cimport (pthread_mutex_trylock, pthread_mutex_unlock,
    popcount64, nanotime, store32, store64, load32, load64, load_relaxed32, sched_yield)
from goruntime.mspan cimport mspan_t, mspanlist_t, SPAN_INUSE, span_count_alloc
from goruntime.mheap cimport (mheap_t, heapregion_t, pagecache_t, spanOf, unsweptSpans,
    SWEEP_BY_BACKGROUND, SWEEP_BY_GC_CALL)
from goruntime.sizeclasses cimport MAX_SPAN_CLASSES, PAGE_SIZE, spanClassSizeclass
from goruntime.mcentral cimport (mcentral_t, MCENTRAL_SPANSET, partialSwept, partialUnswept,
    fullSwept, fullUnswept)
from goruntime.mspanset cimport spanset_t, spanset_len, spanset_at
from goruntime.mgcsweep cimport sweepone, finishsweep_m, sweep_start, SWEEP_NONE
from goruntime.mcache cimport mcache_releaseAll
from goruntime.proc cimport (stopTheWorld, startTheWorld, bgsweep_acquirep, releasep, safepoint,
    m_begin, m_end)
from goruntime.runtime2 cimport (MIN_HEAP_GOAL, NUM_PAUSES, SWEEP_STW, m_t, num_mcaches,
    mcache_holder, gcwork_t, GCTRACE_OFF, GCTRACE_GO119)
from goruntime.trace cimport (trace_t, trace_put, trace_attach, trace_detach, EV_STW, EV_SWEEP, EV_GC,
    EV_COUNTERS)


cdef void flushallmcaches(runtime_t* rt) noexcept nogil:
    cdef int i
    for i in range(num_mcaches(rt)):
        mcache_releaseAll(&mcache_holder(rt, i).mcache)


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


cdef uint64_t _live_heap(runtime_t* rt) noexcept nogil:
    """The bytes live at this cycle's snapshot (Go's heap_marked): heap_live once
    every mcache is flushed, less what was freed since the last snapshot. Each
    P counts its frees; the counts start over here."""
    cdef uint64_t live = load64(&rt.heap.heap_live), freed = 0
    cdef int i
    for i in range(num_mcaches(rt)):
        freed += mcache_holder(rt, i).mcache.freed_bytes
        mcache_holder(rt, i).mcache.freed_bytes = 0
    return live - freed if live > freed else 0


cdef void _gcMarkTermination(runtime_t* rt) noexcept nogil:
    """Go's mark termination, reduced to its snapshot, the world stopped: the
    mcaches flushed, the live heap taken, the next goal set, sweepgen advanced.
    With sweep="stw" the whole sweep follows, the world still stopped."""
    flushallmcaches(rt)
    rt.heap_marked = _live_heap(rt)
    store64(&rt.heap.heap_live, rt.heap_marked)
    set_heap_goal(rt)
    sweep_start(rt.heap, rt.heap_goal)
    if rt.sweep_mode == SWEEP_STW:
        finishsweep_m(rt.heap)


cdef void gcStart(runtime_t* rt, p_t* mine, bint forced=False) noexcept nogil:
    """A full collection; the caller holds gc_sema and, if mine is not NULL, that P.

    The cycle's record (rt.work, Go's `work`) maps the model's one stop-the-world
    onto Go's three phases, as gctrace reports them:
      sweep termination  tSweepTerm .. tMark: stopping the world and finishing
                         the last cycle's sweep (finishsweep_m: nothing, when
                         proportional sweeping kept pace).
      concurrent mark    tMark .. tMarkTerm: zero. Liveness is explicit
                         (free()), so there is nothing to trace: the snapshot
                         is the frees made so far.
      mark termination   tMarkTerm .. tEnd: the rest of the pause
                         (_gcMarkTermination: flush every mcache, take the live
                         heap, set the next goal, advance sweepgen; with
                         sweep="stw", sweep every span: Go's gcSweep in its
                         blocking mode).
    heap0 is heap_live as the cycle starts, heap1 with the world stopped, heap2
    the live bytes of the snapshot (heap_marked)."""
    cdef gcwork_t* w = &rt.work
    w.userForced = forced
    w.maxprocs = <uint32_t>rt.gomaxprocs
    w.stwprocs = <uint32_t>(rt.gomaxprocs if rt.gomaxprocs < rt.ncpu else rt.ncpu)
    w.heap_goal = rt.heap_goal
    w.heap0 = load64(&rt.heap.heap_live)
    w.tSweepTerm = nanotime()
    stopTheWorld(rt, mine)
    finishsweep_m(rt.heap)
    w.tMark = nanotime()
    w.tMarkTerm = w.tMark
    w.heap1 = load64(&rt.heap.heap_live)
    _gcMarkTermination(rt)
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


cdef void gcSweepAll(runtime_t* rt) noexcept nogil:
    """Runtime.gc()'s end, as Go's runtime.GC ends: sweeps until no span is left,
    the caller holding a P. A collection starting meanwhile finishes the sweep
    itself, with the world stopped."""
    while not load_relaxed32(&rt.sched.gcwaiting):
        if sweepone(rt.heap, SWEEP_BY_GC_CALL) == SWEEP_NONE:
            break
    # The background sweeper may still be on its last span.
    while load32(&rt.sched.bgsweep_running) and not load_relaxed32(&rt.sched.gcwaiting):
        sched_yield()


cdef void* bgsweep(void* arg) noexcept nogil:
    """Go's bgsweep: the background sweeper, an M of its own. It sweeps one span
    at a time while a P is idle, giving the P back as soon as an M waits for
    one (Go's bgsweep yields after each span), and sleeps when the sweep is
    done or every P is busy: proportional sweeping then does the work."""
    cdef m_t* mp = <m_t*>arg
    cdef runtime_t* rt = mp.rt
    cdef trace_t* traced = NULL
    m_begin(mp)
    while bgsweep_acquirep(rt, mp):
        # It outlives traces: it joins the one being recorded, if any (the
        # field changes only with the world stopped, and it holds a P).
        if rt.trace != traced:
            traced = rt.trace
            if traced != NULL:
                trace_attach(traced, mp.id)
            else:
                trace_detach()
        while (safepoint(rt, mp) and mp.p != NULL and not load_relaxed32(&rt.sched.nmwaiting)
               and not load32(&rt.sched.bgsweep_paused)):
            if sweepone(rt.heap, SWEEP_BY_BACKGROUND) == SWEEP_NONE:
                break
            mp.allocs += 1          # its figure: spans swept
        if mp.p != NULL:
            releasep(rt, mp)
        store32(&rt.sched.bgsweep_running, 0)
    m_end(mp)
    return NULL


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
    if not cached and s.sweepgen != h.sweepgen and s.sweepgen != h.sweepgen - 2:
        return (f"{name} is not cached but its sweepgen is {s.sweepgen}, neither {h.sweepgen} (swept) "
                f"nor {h.sweepgen - 2} (unswept)")
    return None


cdef str _unswept_problem(mheap_t* h, mspan_t* s, set queued):
    """Whether an unswept span can still be found by the sweepers."""
    if s.sweepgen != h.sweepgen - 2:
        return None
    if load32(&h.sweepdone):
        return f"span {s.startAddr:#x} is unswept but the sweep is done"
    if queued is not None and <uintptr_t>s not in queued and not h.sweepspans_lost:
        return f"span {s.startAddr:#x} is unswept but not on the unswept sweepSpans set"
    return None


cdef int _verify_spanset(mheap_t* h, mcentral_t* c, int spc, place, list problems) except -1:
    cdef uint32_t sg = h.sweepgen
    cdef spanset_t* st
    cdef mspan_t* s
    cdef uint64_t i
    for name, st_addr, full, unswept in (
            ("partialSwept", <uintptr_t>partialSwept(c, sg), False, False),
            ("fullSwept", <uintptr_t>fullSwept(c, sg), True, False),
            ("partialUnswept", <uintptr_t>partialUnswept(c, sg), False, True),
            ("fullUnswept", <uintptr_t>fullUnswept(c, sg), True, True)):
        st = <spanset_t*><uintptr_t>st_addr
        for i in range(spanset_len(st)):
            s = spanset_at(st, i)
            if unswept and s.sweepgen != sg - 2:
                continue        # a stale copy of a span swept where it lay (filed elsewhere)
            if unswept and load32(&h.sweepdone):
                problems.append(f"span {s.startAddr:#x} is unswept in mcentral[{spc}].{name} "
                                f"but the sweep is done")
            if not unswept and s.sweepgen != sg:
                problems.append(f"span {s.startAddr:#x} in mcentral[{spc}].{name} has sweepgen "
                                f"{s.sweepgen}, not {sg}")
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
    # The unswept sweepSpans set: in the mutex design every unswept span is
    # there, in the spanset design every unswept large span.
    queued = set()
    for k in range(spanset_len(unsweptSpans(h))):
        queued.add(<uintptr_t>spanset_at(unsweptSpans(h), k))

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
                    p = _span_problem(h, s, False) or _unswept_problem(h, s, queued)
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
        if s.sweepgen != h.sweepgen and s.sweepgen != h.sweepgen - 2:
            problems.append(f"large span {s.startAddr:#x} has sweepgen {s.sweepgen}, not {h.sweepgen} or "
                            f"{h.sweepgen - 2}")
        p = _unswept_problem(h, s, queued)
        if p:
            problems.append(p)
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

