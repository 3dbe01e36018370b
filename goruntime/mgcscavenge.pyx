# cython: language_level=3
# mgcscavenge: the background scavenger (runtime/mgcscavenge.go), Go 1.13's
# design: free pages the heap is unlikely to need soon go back to the OS.
#
# The goal. The retained heap (Go's heapRetained: HeapSys - HeapReleased, the
# in-use pages plus the free pages still backed by memory) should not exceed
# (100 + retainExtraPercent)% of the heap goal, 110% of the GOGC goal the last
# collection set (Go 1.13's gcPaceScavenger). With GOGC off the goal is
# infinite and nothing is released but by free_os_memory(), as in Go.
#
# The thread. One pthread per Runtime, started with it and stopped first thing
# by close() and __dealloc__; it runs C only (no Python, no GIL) with every
# signal blocked, so Ctrl-C always reaches a Python thread. Each step it takes
# gc_sema (with trylock: it never waits behind a collection, and never holds
# up close()), sets a new goal and puts the cursor back at the top when a
# collection has run since its last step, and, while the retained heap is
# over the goal, releases one run of at most 64 KiB (Go 1.19's scavenge
# quantum) of the highest free, unreleased pages (mheap_scavenge: picked under
# the heap lock, madvise MADV_DONTNEED without it). Each wake-up runs steps
# until it has worked 1 ms or has nothing left to do (Go 1.19's
# minScavWorkTime: a wake-up costs this thread far more than one step here,
# about 100 us against 9 us), then sleeps.
#
# The pacing: about 1% of one CPU (scavengePercent). After a wake-up that
# released something the thread sleeps 99 times the CPU time it spent since
# its previous sleep (the steps, and the wake-up itself), so that it runs 1%
# of the wall-clock time; Go 1.14 made Go's scavenger pace itself this way,
# by timing its work (Go 1.13 released, at each wake-up, what kept it under a
# line of retained heap against time, drawn from an estimated cost per page).
# With nothing to do it parks: Go's scavenger sleeps until the next collection
# wakes it; this one looks again every 10 ms (a trylock and two loads, no heap
# lock), since the collection does not wake it.
#
# gc_sema around each step. A stop-the-world reader (verify, memstats,
# heapmap) reads the page bitmaps without the heap lock, and must not see a
# run in flight (out of the free bitmap, in no span). Go gets this for free:
# its scavenger is a goroutine, and the world cannot stop while it holds the
# heap lock. Here each step holds gc_sema (for about 10 us), which every
# stopped-world operation holds too; it also makes numgc and heap_goal,
# written by collections under gc_sema, safe to read. An M whose allocation
# reaches the heap goal while a step holds gc_sema does not collect
# (gcTryStart's trylock fails, as when another collection is running) and
# tries again at its next refill.
#
# free_os_memory (Go's debug.FreeOSMemory) collects, then scavenge_all
# releases every free page at once, 4 MiB per acquisition of gc_sema.
from libc.stdlib cimport free
from libc.string cimport memset
from libc.stdint cimport uint32_t, uint64_t, int64_t
from goruntime.sys cimport (pthread_mutex_init, pthread_mutex_destroy, pthread_mutex_lock,
    pthread_mutex_unlock, pthread_mutex_trylock, pthread_cond_destroy, pthread_cond_signal,
    pthread_create, pthread_join, alloc_aligned, nanotime, thread_cputime, load32, store32,
    load64, store64, xadd64, pthread_t)
from goruntime.mheap cimport mheap_t, mheap_scavenge, heap_retained
from goruntime.sizeclasses cimport PAGE_SIZE
from goruntime.proc cimport fork_generation, sched_closed

cdef extern from "<time.h>" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int CLOCK_MONOTONIC

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_condattr_t:
        pass
    int pthread_condattr_init(pthread_condattr_t* attr)
    int pthread_condattr_setclock(pthread_condattr_t* attr, int clock)
    int pthread_condattr_destroy(pthread_condattr_t* attr)
    int pthread_cond_init(pthread_cond_t* cond, const pthread_condattr_t* attr)
    int pthread_cond_timedwait(pthread_cond_t* cond, pthread_mutex_t* mu, const timespec* abstime)
    int pthread_setname_np(pthread_t thread, const char* name)

cdef extern from "<unistd.h>" nogil:
    long gettid()

cdef extern from "<signal.h>" nogil:
    ctypedef struct sigset_t:
        pass
    int sigfillset(sigset_t* s)
    int pthread_sigmask(int how, const sigset_t* s, sigset_t* old)
    int SIG_SETMASK

cdef enum:
    SCAV_IDLE_NS = 10000000         # nothing to do: look again in 10 ms
    SCAV_RETRY_NS = 1000000         # gc_sema busy (a collection): try again in 1 ms
    SCAV_BURST_NS = 1000000         # a wake-up works this long at most (Go 1.19's minScavWorkTime)
    SCAV_MAX_CRIT_NS = 10000000     # a burst counts at most 10 ms (Go's maxCrit): sleeps under 1 s
    SCAV_CRIT_GUESS_NS = 10000      # a burst that the thread clock saw take no time: Go's 10 us guess


cdef uint64_t retained_goal(runtime_t* rt) noexcept nogil:
    """Go's retained goal: the heap goal plus retainExtraPercent, in whole pages;
    no limit with GOGC off. Caller holds gc_sema (the goal is the last collection's)."""
    cdef uint64_t g = rt.heap_goal
    if rt.gogc < 0 or g >= (<uint64_t>1 << 62):
        return <uint64_t>-1
    g += g * RETAIN_EXTRA_PERCENT // 100
    return (g + PAGE_SIZE - 1) & ~(<uint64_t>PAGE_SIZE - 1)


cdef size_t scavenge_step(scavenger_t* s, bint* idle) noexcept nogil:
    """One pacing step: returns the pages released, and sets *idle when there is
    nothing to do (retained heap within the goal, or no free unreleased page left
    below the cursor). The caller holds gc_sema and the runtime is not closed."""
    cdef runtime_t* rt = s.rt
    cdef mheap_t* h = rt.heap
    cdef uint64_t retained, goal, want
    cdef size_t released = 0, taken
    cdef bint reset = False
    if s.fresh or rt.numgc != s.numgc:
        # A new cycle: a new goal, and the cursor back at the top (applied by the
        # next release, under the heap lock it takes anyway: a step with nothing
        # to do never takes the heap lock).
        s.fresh = False
        s.numgc = rt.numgc
        store64(&s.goal, retained_goal(rt))
        s.reset = True
        s.exhausted = False
    goal = load64(&s.goal)
    retained = heap_retained(h)
    store64(&s.retained, retained)
    idle[0] = True
    if retained <= goal or s.exhausted:
        # Within the goal, or nothing left below the cursor this cycle (Go parks
        # until the next collection): no heap lock.
        xadd64(&s.parks, 1)
        return 0
    want = (retained - goal + PAGE_SIZE - 1) // PAGE_SIZE
    if want > SCAV_STEP_PAGES:
        want = SCAV_STEP_PAGES
    reset = s.reset
    s.reset = False
    taken = mheap_scavenge(h, <size_t>want, reset, &released)
    if taken == 0:
        s.exhausted = True
        xadd64(&s.parks, 1)
        return 0
    idle[0] = False
    xadd64(&s.steps, 1)
    xadd64(&s.released_bytes, <int64_t>(released * PAGE_SIZE))
    return released


cdef int scavenge_all(scavenger_t* s, uint64_t* released) noexcept nogil:
    """Releases every free, unreleased page (Go's scavengeAll), 4 MiB at a time,
    each under gc_sema; *released is the bytes released. -1 if the runtime was
    closed meanwhile (it stops there)."""
    cdef runtime_t* rt = s.rt
    cdef size_t taken, rel
    cdef bint reset = True
    released[0] = 0
    while True:
        pthread_mutex_lock(&rt.sched.gc_sema)
        if sched_closed(rt):
            pthread_mutex_unlock(&rt.sched.gc_sema)
            return -1
        taken = mheap_scavenge(rt.heap, SCAV_ALL_CHUNK_PAGES, reset, &rel)
        pthread_mutex_unlock(&rt.sched.gc_sema)
        reset = False
        if taken == 0:
            break
        released[0] += rel * PAGE_SIZE
    xadd64(&s.all_bytes, <int64_t>released[0])
    return 0


cdef void* _bgscavenge(void* arg) noexcept nogil:
    """The scavenger thread (Go's bgscavenge): C only, every signal blocked."""
    cdef scavenger_t* s = <scavenger_t*>arg
    cdef runtime_t* rt = s.rt
    cdef uint64_t wake = nanotime(), now, cpu, crit, sleep, burst0, prev_end = 0
    cdef uint64_t cpu_prev = thread_cputime()
    cdef bint idle, busy, was_busy = False
    cdef size_t pages
    cdef timespec ts
    store64(&s.tid, <uint64_t>gettid())
    pthread_mutex_lock(&s.mu)
    while True:
        while not s.stop:
            now = nanotime()
            if now >= wake:
                break
            ts.tv_sec = <long>(wake // 1000000000)
            ts.tv_nsec = <long>(wake % 1000000000)
            pthread_cond_timedwait(&s.cond, &s.mu, &ts)
        if s.stop:
            break
        pthread_mutex_unlock(&s.mu)
        # A burst: steps until there is nothing to do or the burst has worked
        # SCAV_BURST_NS, gc_sema taken (with trylock) and dropped around each one.
        burst0 = thread_cputime()
        pages = 0
        idle = False
        busy = False
        while True:
            if pthread_mutex_trylock(&rt.sched.gc_sema) != 0:
                busy = True             # a collection or a stopped-world reader
                break
            if sched_closed(rt):
                idle = True
            else:
                pages += scavenge_step(s, &idle)
            pthread_mutex_unlock(&rt.sched.gc_sema)
            if idle or thread_cputime() - burst0 >= SCAV_BURST_NS or load32(&s.stop):
                break
        now = nanotime()
        cpu = thread_cputime()
        crit = cpu - cpu_prev           # the burst, and the wake-up that led to it
        cpu_prev = cpu
        store64(&s.cpu_ns, cpu)
        if pages == 0:
            wake = now + (SCAV_RETRY_NS if busy else SCAV_IDLE_NS)
            was_busy = False
        else:
            # Run scavengePercent of the time: sleep 99x the CPU time the burst took.
            if crit == 0:
                crit = SCAV_CRIT_GUESS_NS
            if crit > SCAV_MAX_CRIT_NS:
                crit = SCAV_MAX_CRIT_NS
            sleep = crit * (100 // SCAVENGE_PERCENT - 1)
            store64(&s.last_sleep_ns, sleep)
            if was_busy:
                xadd64(&s.busy_cpu_ns, <int64_t>crit)
                xadd64(&s.busy_wall_ns, <int64_t>(now - prev_end))
            was_busy = True
            prev_end = now
            wake = now + sleep
        pthread_mutex_lock(&s.mu)
    pthread_mutex_unlock(&s.mu)
    return NULL


cdef scavenger_t* scavenger_new(runtime_t* rt) noexcept nogil:
    """The scavenger's state (no thread yet), or NULL if out of memory."""
    cdef scavenger_t* s = <scavenger_t*>alloc_aligned(sizeof(scavenger_t))
    cdef pthread_condattr_t attr
    if s == NULL:
        return NULL
    s.rt = rt
    s.fresh = True
    s.goal = <uint64_t>-1
    s.forkgen = fork_generation()
    pthread_mutex_init(&s.mu, NULL)
    pthread_condattr_init(&attr)
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
    pthread_cond_init(&s.cond, &attr)
    pthread_condattr_destroy(&attr)
    return s


cdef int scavenger_start(scavenger_t* s) noexcept nogil:
    """Starts the thread, with every signal blocked in it; -1 if it cannot be created."""
    cdef sigset_t every, old
    cdef int err
    if load32(&s.started):
        return 0
    s.start_ns = nanotime()
    sigfillset(&every)
    pthread_sigmask(SIG_SETMASK, &every, &old)
    err = pthread_create(&s.thread, NULL, _bgscavenge, s)
    pthread_sigmask(SIG_SETMASK, &old, NULL)
    if err != 0:
        return -1
    pthread_setname_np(s.thread, "gr-scavenger")
    store32(&s.started, 1)
    return 0


cdef void scavenger_stop(scavenger_t* s) noexcept nogil:
    """Stops the thread and waits for it (a step in progress finishes first: one
    madvise of at most 64 KiB). Idempotent. In the child of a fork the thread does
    not exist, and its mutex may be held by it: nothing is waited for or locked."""
    if s == NULL or not load32(&s.started):
        return
    store32(&s.started, 0)
    if s.forkgen != fork_generation():
        return
    pthread_mutex_lock(&s.mu)
    store32(&s.stop, 1)
    pthread_cond_signal(&s.cond)
    pthread_mutex_unlock(&s.mu)
    pthread_join(s.thread, NULL)


cdef void scavenger_free(scavenger_t* s) noexcept nogil:
    """Frees a stopped scavenger. In a fork's child the mutex and condition variable
    are not destroyed: the thread that used them does not exist there (destroying
    a condition variable with a waiter would wait for it)."""
    if s == NULL:
        return
    if s.forkgen == fork_generation():
        pthread_cond_destroy(&s.cond)
        pthread_mutex_destroy(&s.mu)
    free(s)


cdef dict scavenger_stats(scavenger_t* s):
    """The scavenger's figures (atomic loads). Every value is read before any
    Python object is made: making one may run a finalizer that closes the
    runtime."""
    cdef uint64_t v[13]
    v[0] = load32(&s.started)
    v[1] = load64(&s.tid)
    v[2] = load64(&s.goal)
    v[3] = heap_retained(s.rt.heap) if s.rt.heap != NULL else 0
    v[4] = load64(&s.released_bytes)
    v[5] = load64(&s.all_bytes)
    v[6] = load64(&s.steps)
    v[7] = load64(&s.parks)
    v[8] = load64(&s.cpu_ns)
    v[9] = load64(&s.busy_cpu_ns)
    v[10] = load64(&s.busy_wall_ns)
    v[11] = load64(&s.last_sleep_ns)
    return {
        "running": bool(v[0]),
        "tid": v[1] or None,
        "goal": None if v[2] == <uint64_t>-1 else v[2],
        "retained": v[3],
        "released": v[4],
        "free_os_memory_released": v[5],
        "steps": v[6],
        "parks": v[7],
        "cpu_ns": v[8],
        "busy_cpu_ns": v[9],
        "busy_wall_ns": v[10],
        "cpu_share": <double>v[9] / <double>v[10] if v[10] else 0.0,
        "last_sleep_ns": v[11],
    }
