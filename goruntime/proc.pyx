# cython: language_level=3
# proc: the scheduler (runtime/proc.go) and the M thread class; see proc.pxd.
from libc.stdlib cimport free
from libc.stdint cimport uint32_t
from goruntime.sys cimport (pthread_cond_init, pthread_cond_destroy, pthread_cond_signal,
    pthread_cond_broadcast, pthread_mutex_init, pthread_mutex_destroy, pthread_create,
    pthread_join, pthread_mutex_lock, pthread_mutex_unlock, pthread_t, load32, store32, load64,
    store64, cas64, alloc_aligned, thread_cputime, GR_ASSERT, load_relaxed32, load_acquire32,
    store_relaxed32, xadd32, cpu_relax, loadp, storep, sched_yield)
from goruntime.lock cimport (mutex_init, mutex_destroy, lock, unlock, cond_wait, mutex_stats,
    thread_lock_wait_ns, SITE_ACQUIREP, SITE_RELEASEP, SITE_STW)
from goruntime.mcache cimport make_MCache
from goruntime.trace cimport tracebuf_t, trace_current, trace_attach, trace_detach, trace_put, EV_P
from goruntime.runtime2 cimport P_IDLE, P_RUNNING, P_SYSCALL, P_GCSTOP
from goruntime.runtime2 import PStatus

cdef extern from "<sys/resource.h>" nogil:
    cdef struct timeval:
        long tv_sec
        long tv_usec
    cdef struct rusage:
        timeval ru_utime
        timeval ru_stime
        long ru_nvcsw
        long ru_nivcsw
    int getrusage(int who, rusage* usage)
    int RUSAGE_THREAD

cdef extern from "<unistd.h>" nogil:
    long gettid()
    long sysconf(int name)
    int _SC_NPROCESSORS_ONLN

# Waiting for a stop-the-world or for the restart after one spins before it
# sleeps on a condition variable (see gcstopm and stopTheWorld).
cdef enum:
    STOP_SPIN_NS = 20000            # the stopper, waiting for the Ps to stop
    RESTART_SPIN_NS = 200000        # a parked M, waiting for the world to restart

cdef extern from "<time.h>" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec* ts)
    int CLOCK_REALTIME

cdef extern from "<pthread.h>" nogil:
    int pthread_timedjoin_np(pthread_t thread, void** retval, const timespec* abstime)

# The fork generation: bumped in the child of every fork(), by a pthread_atfork
# handler (so also for forks that Python's os.register_at_fork never sees). A
# Runtime, and each M, remembers the generation it was made in; in a child they
# are unusable: the threads that ran the Ms, and held the runtime's locks, do
# not exist there.
cdef extern from *:
    """
    #include <pthread.h>
    static volatile uint64_t gr_forkgen = 0;
    static void gr_forkgen_child(void) { gr_forkgen++; }
    static int gr_forkgen_register(void) { return pthread_atfork(NULL, NULL, gr_forkgen_child); }
    """
    uint64_t gr_forkgen
    int gr_forkgen_register() nogil

if gr_forkgen_register() != 0:
    raise ImportError("goruntime.proc: pthread_atfork failed")


cdef uint64_t fork_generation() noexcept nogil:
    return gr_forkgen


cdef inline uint64_t _status(uint64_t token, int state) noexcept nogil:
    return (token << 8) | <uint64_t>state


cdef int sched_init(runtime_t* rt) noexcept nogil:
    cdef int i
    mutex_init(&rt.sched.lock)
    pthread_cond_init(&rt.sched.pidle_cond, NULL)
    pthread_cond_init(&rt.sched.stop_cond, NULL)
    pthread_cond_init(&rt.sched.sweep_cond, NULL)
    pthread_mutex_init(&rt.sched.gc_sema, NULL)
    # Idle list in id order, P0 on top.
    for i in range(rt.gomaxprocs - 1, -1, -1):
        rt.allp[i].link = rt.sched.pidle
        rt.sched.pidle = rt.allp[i]
        store64(&rt.allp[i].status, _status(0, P_IDLE))
    rt.sched.npidle = rt.gomaxprocs
    rt.sched.forkgen = gr_forkgen
    # Spinners beyond the other CPUs would take the collector's CPU.
    rt.sched.maxspinning = <uint32_t>max(0, sysconf(_SC_NPROCESSORS_ONLN) - 1)
    return 0


cdef void sched_destroy(runtime_t* rt) noexcept nogil:
    pthread_cond_destroy(&rt.sched.pidle_cond)
    pthread_cond_destroy(&rt.sched.stop_cond)
    pthread_cond_destroy(&rt.sched.sweep_cond)
    pthread_mutex_destroy(&rt.sched.gc_sema)
    mutex_destroy(&rt.sched.lock)


cdef inline void _take_idle(runtime_t* rt, m_t* mp) noexcept nogil:
    """Pops an idle P for mp; sched.lock held, pidle non-empty."""
    cdef p_t* pp = rt.sched.pidle
    GR_ASSERT((pp.status & 0xff) == P_IDLE, "acquirep took a P that is not idle")
    GR_ASSERT(pp.owner == NULL, "acquirep took a P that an M still owns")
    rt.sched.pidle = pp.link
    rt.sched.npidle -= 1
    rt.sched.next_token += 1
    mp.token = rt.sched.next_token
    pp.link = NULL
    pp.owner = mp
    store64(&pp.status, _status(mp.token, P_RUNNING))
    mp.p = pp
    rt.sched.p_acquires += 1


cdef inline void _trace_p_taken(m_t* mp) noexcept nogil:
    cdef tracebuf_t* tb = trace_current()
    if tb != NULL:
        tb.p_since = nanotime()
        tb.p_id = mp.p.id


cdef bint try_acquirep(runtime_t* rt, m_t* mp) noexcept nogil:
    """acquirep without waiting: False if no P is idle or the world is stopping."""
    cdef bint ok = False
    lock(&rt.sched.lock, SITE_ACQUIREP)
    if rt.sched.pidle != NULL and not rt.sched.gcwaiting and not rt.sched.closed:
        _take_idle(rt, mp)
        ok = True
    unlock(&rt.sched.lock)
    if ok:
        mp.slice_start = nanotime()
        _trace_p_taken(mp)
    return ok


cdef bint bgsweep_acquirep(runtime_t* rt, m_t* mp) noexcept nogil:
    """For the background sweeper: waits until the sweep has work and a P is idle,
    and takes that P; False once the runtime is closed. It never queues for a P
    (an M waiting would make the running ones hand theirs over): releasep and
    startTheWorld wake it. bgsweep_running is set with the P taken, under the
    lock, so that Runtime.gc() can wait for its last span (gcSweepAll)."""
    lock(&rt.sched.lock, SITE_ACQUIREP)
    while not rt.sched.closed and (rt.sched.gcwaiting or load32(&rt.heap.sweepdone)
                                   or rt.sched.pidle == NULL or rt.sched.bgsweep_paused):
        store32(&rt.sched.bgsweep_parked, 1)
        cond_wait(&rt.sched.sweep_cond, &rt.sched.lock, SITE_ACQUIREP)
    store32(&rt.sched.bgsweep_parked, 0)
    if rt.sched.closed:
        unlock(&rt.sched.lock)
        return False
    _take_idle(rt, mp)
    store32(&rt.sched.bgsweep_running, 1)
    unlock(&rt.sched.lock)
    mp.slice_start = nanotime()
    _trace_p_taken(mp)
    return True


cdef void bgsweep_pause(runtime_t* rt, bint paused) noexcept nogil:
    """Keeps the background sweeper from taking a P, returning once it has let go
    of the one it holds, or lets it go again: for tests that need to see spans
    left unswept, or a heap no other thread changes."""
    lock(&rt.sched.lock, SITE_ACQUIREP)
    store32(&rt.sched.bgsweep_paused, paused)
    if not paused:
        pthread_cond_signal(&rt.sched.sweep_cond)
    unlock(&rt.sched.lock)
    while paused and load32(&rt.sched.bgsweep_running):
        sched_yield()


cdef void bgsweep_wait_parked(runtime_t* rt) noexcept nogil:
    """Returns once a new background sweeper waits for work: the Runtime is then
    quiet (the sweeper's start takes the scheduler lock no later than this)."""
    # Without the scheduler lock: its counters would show this wait.
    while not load32(&rt.sched.bgsweep_parked):
        sched_yield()


cdef bint _retake(runtime_t* rt, m_t* mp) noexcept nogil:
    """Takes a P from a Python thread between two calls (P_SYSCALL), as Go's
    sysmon retakes a P from a goroutine blocked in a syscall; sched.lock held."""
    cdef int i
    cdef uint64_t s
    cdef p_t* pp
    for i in range(rt.gomaxprocs):
        pp = rt.allp[i]
        s = load64(&pp.status)
        if (s & 0xff) == P_SYSCALL:
            rt.sched.next_token += 1
            if cas64(&pp.status, s, _status(rt.sched.next_token, P_RUNNING)):
                mp.token = rt.sched.next_token
                pp.owner = mp
                mp.p = pp
                rt.sched.p_acquires += 1
                rt.sched.retakes += 1
                return True
    return False


cdef p_t* acquirep(runtime_t* rt, m_t* mp) noexcept nogil:
    """Blocks until a P is idle and the world is running; NULL once closed."""
    cdef uint64_t t0 = 0, waited
    mp.p = NULL
    lock(&rt.sched.lock, SITE_ACQUIREP)
    while (rt.sched.gcwaiting or rt.sched.pidle == NULL) and not rt.sched.closed:
        if not rt.sched.gcwaiting and _retake(rt, mp):
            break
        if t0 == 0:
            t0 = nanotime()
        store32(&rt.sched.nmwaiting, rt.sched.nmwaiting + 1)
        cond_wait(&rt.sched.pidle_cond, &rt.sched.lock, SITE_ACQUIREP)
        store32(&rt.sched.nmwaiting, rt.sched.nmwaiting - 1)
    if rt.sched.closed:
        unlock(&rt.sched.lock)
        mp.p = NULL
        return NULL
    if mp.p == NULL:
        _take_idle(rt, mp)
    if t0 != 0:
        waited = nanotime() - t0
        rt.sched.p_waits += 1
        rt.sched.p_wait_ns += waited
        mp.p_waits += 1
        mp.p_wait_ns += waited
    unlock(&rt.sched.lock)
    mp.slice_start = nanotime()
    _trace_p_taken(mp)
    return mp.p


cdef inline void _stopped_one(runtime_t* rt) noexcept nogil:
    # sched.lock held; the stopper may be spinning on stopwait without it.
    store_relaxed32(&rt.sched.stopwait, rt.sched.stopwait - 1)
    if rt.sched.stopwait == 0:
        pthread_cond_signal(&rt.sched.stop_cond)


cdef void releasep(runtime_t* rt, m_t* mp) noexcept nogil:
    """Gives mp's P back: to the stopper during a stop-the-world, else to the idle list."""
    cdef p_t* pp = mp.p
    cdef tracebuf_t* tb = trace_current()
    if tb != NULL and tb.p_since:
        trace_put(tb, EV_P, tb.p_since, nanotime(), tb.p_id, 0)
        tb.p_since = 0
    GR_ASSERT(pp != NULL, "releasep without a P")
    GR_ASSERT(pp.owner == mp, "releasep of a P this M does not own")
    lock(&rt.sched.lock, SITE_RELEASEP)
    pp.owner = NULL
    if rt.sched.gcwaiting:
        store64(&pp.status, _status(0, P_GCSTOP))
        _stopped_one(rt)
    else:
        store64(&pp.status, _status(0, P_IDLE))
        pp.link = rt.sched.pidle
        rt.sched.pidle = pp
        rt.sched.npidle += 1
        pthread_cond_signal(&rt.sched.pidle_cond)
        # The background sweeper only takes a P no M waits for: woken now, it
        # would lose the P to that M, or take it and give it straight back.
        if rt.sched.bgsweep_parked and rt.sched.nmwaiting == 0 and not load32(&rt.heap.sweepdone):
            pthread_cond_signal(&rt.sched.sweep_cond)
    unlock(&rt.sched.lock)
    mp.p = NULL


cdef void gcstopm(runtime_t* rt, m_t* mp) noexcept nogil:
    """Parks mp for a stop-the-world.

    When no M was waiting for a P as the world stopped, mp's P comes back to mp
    when the world restarts (startTheWorld hands it over, as Go's
    startTheWorldWithSema resumes each P with the goroutine it was running), and
    mp spins for it first (for up to RESTART_SPIN_NS, and at most maxspinning Ms
    at once), as Go's Ms spin before they sleep: a collection here lasts tens of
    microseconds, about what a futex sleep and wake-up adds to it. When Ms were
    waiting for a P, mp gives its P up and queues with them, so that a
    collection stays a point where the Ps change hands."""
    cdef p_t* pp = mp.p
    cdef int i
    GR_ASSERT(pp != NULL, "gcstopm without a P")
    mp.park_start = nanotime()
    lock(&rt.sched.lock, SITE_RELEASEP)
    if not rt.sched.gcwaiting:
        # The world restarted between the safe point's relaxed read and the lock:
        # startTheWorld hands this M its P before it clears gcwaiting, so an M
        # that spun for its P may still see the last stop. Parking now would
        # count a stop that is not there, and hang the next one.
        unlock(&rt.sched.lock)
        return
    if not rt.sched.handback:
        unlock(&rt.sched.lock)
        releasep(rt, mp)
        acquirep(rt, mp)
        return
    pp.owner = NULL
    pp.parked = mp
    storep(<void**>&mp.p, NULL)
    store64(&pp.status, _status(0, P_GCSTOP))
    _stopped_one(rt)
    unlock(&rt.sched.lock)
    if xadd32(&rt.sched.nspinning, 1) <= rt.sched.maxspinning:
        while loadp(<void**>&mp.p) == NULL and not load_relaxed32(&rt.sched.closed):
            for i in range(32):
                cpu_relax()
            if nanotime() - mp.park_start >= RESTART_SPIN_NS:
                break
    xadd32(&rt.sched.nspinning, -1)
    if loadp(<void**>&mp.p) == NULL:
        lock(&rt.sched.lock, SITE_ACQUIREP)
        while mp.p == NULL and not rt.sched.closed:
            cond_wait(&rt.sched.pidle_cond, &rt.sched.lock, SITE_ACQUIREP)
        if mp.p == NULL and pp.parked == mp:
            pp.parked = NULL        # closed: the restart must not hand the P to an M that left
        unlock(&rt.sched.lock)
    if mp.p != NULL:
        mp.slice_start = nanotime()


cdef void handoffp(runtime_t* rt, m_t* mp) noexcept nogil:
    mp.handoffs += 1
    releasep(rt, mp)
    acquirep(rt, mp)


cdef void _steal_syscall_ps(runtime_t* rt, p_t* mine) noexcept nogil:
    cdef int i
    cdef uint64_t s
    cdef p_t* pp
    for i in range(rt.gomaxprocs):
        pp = rt.allp[i]
        if pp == mine:
            continue
        s = load64(&pp.status)
        if (s & 0xff) == P_SYSCALL and cas64(&pp.status, s, _status(0, P_GCSTOP)):
            pp.owner = NULL
            store_relaxed32(&rt.sched.stopwait, rt.sched.stopwait - 1)


cdef void stopTheWorld(runtime_t* rt, p_t* mine) noexcept nogil:
    """Takes every P but mine (the caller's own P, or NULL) and returns once all are stopped.

    A running M parks at its next safe point, within an allocation or so: the
    stopper first spins (the lock dropped) for up to STOP_SPIN_NS, and sleeps on
    stop_cond only if the Ps take longer (an M descheduled, a Python thread
    between calls that has not been robbed yet)."""
    cdef p_t* pp
    cdef uint64_t t0
    cdef int i
    lock(&rt.sched.lock, SITE_STW)
    store32(&rt.sched.gcwaiting, 1)
    rt.sched.handback = rt.sched.nmwaiting == 0     # see gcstopm
    store_relaxed32(&rt.sched.stopwait, <uint32_t>(rt.gomaxprocs - (1 if mine != NULL else 0)))
    while rt.sched.pidle != NULL:
        pp = rt.sched.pidle
        rt.sched.pidle = pp.link
        pp.link = NULL
        store64(&pp.status, _status(0, P_GCSTOP))
        store_relaxed32(&rt.sched.stopwait, rt.sched.stopwait - 1)
    rt.sched.npidle = 0
    _steal_syscall_ps(rt, mine)
    t0 = 0
    while rt.sched.stopwait > 0:
        if t0 == 0:
            t0 = nanotime()
        if nanotime() - t0 < STOP_SPIN_NS:
            unlock(&rt.sched.lock)
            for i in range(64):
                if load_relaxed32(&rt.sched.stopwait) == 0:
                    break
                cpu_relax()
            lock(&rt.sched.lock, SITE_STW)
        else:
            cond_wait(&rt.sched.stop_cond, &rt.sched.lock, SITE_STW)
        _steal_syscall_ps(rt, mine)
    unlock(&rt.sched.lock)


cdef void startTheWorld(runtime_t* rt, p_t* mine) noexcept nogil:
    """Gives each P back to the M parked with it (gcstopm), the others to the
    idle list, and wakes the Ms waiting."""
    cdef int i
    cdef p_t* pp
    cdef m_t* mp
    cdef uint64_t now = nanotime(), waited
    lock(&rt.sched.lock, SITE_STW)
    for i in range(rt.gomaxprocs - 1, -1, -1):
        pp = rt.allp[i]
        if pp == mine:
            continue
        mp = <m_t*>pp.parked
        pp.parked = NULL
        if mp != NULL and not rt.sched.closed:
            rt.sched.next_token += 1
            mp.token = rt.sched.next_token
            pp.owner = mp
            store64(&pp.status, _status(mp.token, P_RUNNING))
            rt.sched.p_acquires += 1
            waited = now - mp.park_start
            rt.sched.p_waits += 1
            rt.sched.p_wait_ns += waited
            mp.p_waits += 1
            mp.p_wait_ns += waited
            storep(<void**>&mp.p, pp)       # the M may be spinning on it: the last write
            continue
        store64(&pp.status, _status(0, P_IDLE))
        pp.link = rt.sched.pidle
        rt.sched.pidle = pp
        rt.sched.npidle += 1
    store32(&rt.sched.gcwaiting, 0)
    pthread_cond_broadcast(&rt.sched.pidle_cond)
    if rt.sched.bgsweep_parked and not load32(&rt.heap.sweepdone):
        pthread_cond_signal(&rt.sched.sweep_cond)     # a new sweep, or an idle P
    unlock(&rt.sched.lock)


cdef bint exitsyscall_fast(m_t* mp) noexcept nogil:
    """A Python thread re-enters the runtime: keeps its P unless a stop-the-world took it."""
    return mp.p != NULL and cas64(&mp.p.status, _status(mp.token, P_SYSCALL),
                                  _status(mp.token, P_RUNNING))


cdef void entersyscall(runtime_t* rt, m_t* mp) noexcept nogil:
    # The store and the load below pair with stopTheWorld's store of gcwaiting
    # and its load of the status (all sequentially consistent): either the
    # stopper sees P_SYSCALL and steals the P, or we see gcwaiting and wake it.
    store64(&mp.p.status, _status(mp.token, P_SYSCALL))
    if load32(&rt.sched.gcwaiting):
        lock(&rt.sched.lock, SITE_STW)
        pthread_cond_signal(&rt.sched.stop_cond)
        unlock(&rt.sched.lock)
    elif load32(&rt.sched.nmwaiting):
        # An M is waiting for a P: let it retake this one.
        lock(&rt.sched.lock, SITE_RELEASEP)
        pthread_cond_signal(&rt.sched.pidle_cond)
        unlock(&rt.sched.lock)


cdef void sched_close(runtime_t* rt) noexcept nogil:
    """Closes the scheduler for good: takes every P, as a stop-the-world that never
    ends, and returns once none is held. Ms waiting for a P give up (acquirep
    returns NULL); Ms holding one give it back at their next safe point; a Python
    thread's call finishes and releases its P; a P parked in P_SYSCALL is stolen.
    Since the heap is touched only by threads holding a P, the caller may release
    the heap afterwards. gc_sema first: no collection, verify or memstats runs
    meanwhile, and one that was waiting sees `closed` once it gets the semaphore.
    Idempotent; never called by a thread that holds a P of rt (it would wait for
    itself)."""
    cdef p_t* pp
    pthread_mutex_lock(&rt.sched.gc_sema)
    lock(&rt.sched.lock, SITE_STW)
    store32(&rt.sched.closed, 1)
    if not rt.sched.gcwaiting:
        store32(&rt.sched.gcwaiting, 1)
        rt.sched.stopwait = rt.gomaxprocs
        while rt.sched.pidle != NULL:
            pp = rt.sched.pidle
            rt.sched.pidle = pp.link
            pp.link = NULL
            store64(&pp.status, _status(0, P_GCSTOP))
            rt.sched.stopwait -= 1
        rt.sched.npidle = 0
    pthread_cond_broadcast(&rt.sched.pidle_cond)
    pthread_cond_broadcast(&rt.sched.sweep_cond)
    _steal_syscall_ps(rt, NULL)
    while rt.sched.stopwait > 0:
        cond_wait(&rt.sched.stop_cond, &rt.sched.lock, SITE_STW)
        _steal_syscall_ps(rt, NULL)
    unlock(&rt.sched.lock)
    pthread_mutex_unlock(&rt.sched.gc_sema)


cdef bint sched_closed(runtime_t* rt) noexcept nogil:
    return load32(&rt.sched.closed) != 0


cdef void m_begin(m_t* mp) noexcept nogil:
    """Starts an M's figures: called on its own thread before its first allocation."""
    mp.tid = gettid()
    if mp.rt.trace != NULL:
        trace_attach(mp.rt.trace, mp.id)
    mp.start_ns = nanotime()
    mp.cpu_ns = thread_cputime()
    mp.lock_wait_ns = thread_lock_wait_ns()


cdef void m_end(m_t* mp) noexcept nogil:
    """Closes an M's figures on its own thread (the kernel's view of psutil's per-thread times)."""
    cdef rusage ru
    trace_detach()
    mp.end_ns = nanotime()
    mp.cpu_ns = thread_cputime() - mp.cpu_ns
    mp.lock_wait_ns = thread_lock_wait_ns() - mp.lock_wait_ns
    if getrusage(RUSAGE_THREAD, &ru) == 0:
        mp.nvcsw = ru.ru_nvcsw
        mp.nivcsw = ru.ru_nivcsw
        mp.utime_ns = <uint64_t>ru.ru_utime.tv_sec * 1000000000 + <uint64_t>ru.ru_utime.tv_usec * 1000
        mp.stime_ns = <uint64_t>ru.ru_stime.tv_sec * 1000000000 + <uint64_t>ru.ru_stime.tv_usec * 1000


cdef dict sched_stats(runtime_t* rt):
    stats = mutex_stats(&rt.sched.lock)
    stats.update(p_acquires=rt.sched.p_acquires, p_waits=rt.sched.p_waits,
                 p_wait_ns=rt.sched.p_wait_ns, retakes=rt.sched.retakes)
    return stats




# Views are made only by the Runtime that owns their C memory: P.__new__(P) from
# Python, without this token, raises instead of giving a view of nothing.
cdef object _VIEW = object()


cdef class P:
    """A logical processor: the right to allocate, and the mcache that goes with it."""

    def __cinit__(self, token=None):
        if token is not _VIEW:
            raise TypeError("P objects are views of a Runtime's Ps: use Runtime.ps")

    @property
    def id(self):
        return self.p.id

    @property
    def status(self):
        return PStatus(load64(&self.p.status) & 0xff)

    @property
    def mcache(self):
        return make_MCache(self.owner, &self.p.mcache)

    def __repr__(self):
        return f"<P {self.id} {self.status.name}>"


cdef P make_P(object owner, p_t* p):
    cdef P view = P.__new__(P, _VIEW)
    view.p = p
    view.owner = owner
    return view


cdef class M:
    """An OS thread that runs a workload kernel; it must hold a P to allocate."""

    def __cinit__(self, int id):
        self.m = <m_t*>alloc_aligned(sizeof(m_t))
        if self.m == NULL:
            raise MemoryError("cannot allocate an M")
        self.m.id = id

    def __dealloc__(self):
        if self.started:
            with nogil:
                self.join()
        free(self.m)

    cdef int start(self, runtime_t* rt, void* (*fn)(void*) noexcept nogil, void* work) noexcept:
        self.m.rt = rt
        self.m.work = work
        self.forkgen = gr_forkgen
        if pthread_create(&self.m.thread, NULL, fn, self.m) != 0:
            return -1
        self.started = True
        return 0

    cdef void join(self) noexcept nogil:
        # In the child of a fork the thread does not exist: joining it would wait forever.
        if self.started and self.forkgen == gr_forkgen:
            pthread_join(self.m.thread, NULL)
        self.started = False

    cdef bint timed_join(self, uint64_t timeout_ns) noexcept nogil:
        """Joins the thread if it ends within timeout_ns; True once joined."""
        cdef timespec ts
        cdef uint64_t ns
        if not self.started or self.forkgen != gr_forkgen:
            self.started = False
            return True
        clock_gettime(CLOCK_REALTIME, &ts)
        ns = <uint64_t>ts.tv_nsec + timeout_ns
        ts.tv_sec += <long>(ns // 1000000000)
        ts.tv_nsec = <long>(ns % 1000000000)
        if pthread_timedjoin_np(self.m.thread, NULL, &ts) == 0:
            self.started = False
            return True
        return False

    def stats(self):
        m = self.m
        return {
            "id": m.id, "allocs": m.allocs, "frees": m.frees, "bytes": m.bytes,
            "elapsed_ns": m.end_ns - m.start_ns if m.end_ns else 0,
            "cpu_ns": m.cpu_ns, "p_waits": m.p_waits, "p_wait_ns": m.p_wait_ns,
            "handoffs": m.handoffs, "gcs": m.gcs, "lock_wait_ns": m.lock_wait_ns,
            "tid": m.tid, "voluntary_ctx_switches": m.nvcsw, "involuntary_ctx_switches": m.nivcsw,
            "utime_ns": m.utime_ns, "stime_ns": m.stime_ns,
        }
