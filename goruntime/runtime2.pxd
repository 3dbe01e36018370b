# runtime2: the scheduler's structures: P (a logical processor owning an
# mcache), M (an OS thread, which needs a P to allocate), the scheduler, and
# the runtime root that ties them to the heap.
#
# Go counterparts: runtime/runtime2.go: p, m, schedt (sched_t), the P status
# constants (_Pidle, _Prunning, _Psyscall, _Pgcstop) and allp/gomaxprocs. The
# root (runtime_t) gathers what Go keeps in globals, since one process here
# may hold several Runtimes: mheap_ and the mcentrals (runtime/mheap.go),
# GOGC and the heap goal (gcController, runtime/mgcpacer.go), and the pause
# ring and free counts of memstats (runtime/mstats.go). The per-M figures
# have no Go counterpart: they feed RunResult.per_m.
from libc.stdint cimport int32_t, uint32_t, uint64_t, uintptr_t
from goruntime.sys cimport pthread_cond_t, pthread_mutex_t, pthread_t, cacheline_t
from goruntime.lock cimport mutex_t
from goruntime.mcache cimport mcache_t
from goruntime.mcentral cimport mcentral_t
from goruntime.mheap cimport mheap_t, pagecache_t
from goruntime.trace cimport trace_t
from goruntime.sizeclasses cimport sizeclasses_t, MAX_SPAN_CLASSES, MAX_SIZE_CLASSES

cpdef enum PStatus:
    P_IDLE = 0          # on the idle list
    P_RUNNING = 1       # held by an M that is allocating
    P_SYSCALL = 2       # held by a Python thread between two calls: stealable
    P_GCSTOP = 3        # taken by a stop-the-world

cpdef enum MCacheMode:
    MCACHE_LOCKFREE = 0
    MCACHE_LOCKED = 1
    MCACHE_NONE = 2
    MCACHE_SHARED = 3

cpdef enum SweepMode:
    SWEEP_CONCURRENT = 0    # Go's: the stop-the-world advances sweepgen, the Ms sweep lazily
    SWEEP_STW = 1           # the comparison mode: the whole sweep with the world stopped

cdef enum:
    NUM_PAUSES = 256    # Go's MemStats.PauseNs ring

cdef struct m
cdef struct runtime

# Each P is its own 64-byte aligned allocation (alloc_aligned), so no two Ps
# share a cache line; inside one, the lines the owning M writes on every
# allocation (the mcache) and on every span allocation (the page cache) are
# kept apart from the status line other threads write.
ctypedef struct p_t:
    mcache_t mcache
    cacheline_t _status_line
    # Written by other threads (stop-the-world steals SYSCALL Ps), and by the
    # scheduler under its lock. status is (owner token << 8 | PStatus).
    uint64_t status
    int id
    p_t* link
    m* owner
    m* parked                   # the M a stop-the-world parked with this P: it gets the P back
    cacheline_t _pcache_line
    pagecache_t pcache          # only with Runtime(pagecache=True)

# An M's figures are written on every allocation by its own thread: each M is
# its own line-aligned allocation, padded to whole lines (alloc_aligned). No
# cacheline_t here: a Python thread's m_t lives inside a Python object
# (runtime.pyx's _Proc), which is only 16-byte aligned.
cdef struct m:
    int id
    p_t* p
    uint64_t token              # proves ownership of p in its status word
    runtime* rt
    pthread_t thread
    void* work                  # the workload kernel's per-M state
    # per-M figures
    uint64_t allocs
    uint64_t frees
    uint64_t bytes
    uint64_t p_waits
    uint64_t p_wait_ns
    uint64_t handoffs
    uint64_t gcs
    uint64_t start_ns
    uint64_t end_ns
    uint64_t cpu_ns
    uint64_t lock_wait_ns       # time blocked on runtime locks (contended acquisitions)
    uint64_t tid                # the kernel's thread id
    uint64_t nvcsw              # voluntary / involuntary context switches of the thread
    uint64_t nivcsw
    uint64_t utime_ns
    uint64_t stime_ns
    uint64_t slice_start        # when this M last took its P (preemption)
    uint64_t park_start         # when a stop-the-world parked this M (gcstopm)
    uint32_t tick
    int error
    uintptr_t error_addr
    uint64_t error_expect
    uint64_t error_found

ctypedef m m_t

ctypedef struct sched_t:
    mutex_t lock
    # Read by every M at every safe point; written only to stop or start the
    # world, when an M starts or stops waiting for a P, and on close.
    cacheline_t _safepoint_line
    uint32_t gcwaiting          # set while a stop-the-world is in progress
    uint32_t nmwaiting          # read without the lock by Ms deciding to hand off
    uint32_t closed
    cacheline_t _locked_line
    # Under the lock.
    pthread_cond_t pidle_cond   # Ms waiting for a P, or for the world to restart
    pthread_cond_t stop_cond    # the stopper waiting for Ps
    p_t* pidle
    uint32_t npidle
    uint32_t stopwait           # written under the lock with atomic stores: the stopper spins on it
    uint32_t nspinning          # atomic: Ms spinning for the world to restart (gcstopm)
    uint32_t maxspinning        # CPUs less one: more spinners would slow the collector
    bint handback               # this stop-the-world gives each P back to its M (gcstopm)
    uint64_t next_token
    uint64_t p_acquires
    uint64_t p_waits
    uint64_t p_wait_ns
    uint64_t retakes            # Ps taken from Python threads between calls
    pthread_cond_t sweep_cond   # the background sweeper, waiting for work and an idle P
    uint32_t bgsweep_parked     # it waits on sweep_cond (written under the lock)
    uint32_t bgsweep_running    # atomic: it holds a P
    uint32_t bgsweep_paused     # atomic; tests: it takes no P (proc.bgsweep_pause)
    pthread_mutex_t gc_sema     # one collection at a time (Go's work.startSema)
    uint64_t forkgen            # proc.fork_generation() when the runtime was made

# One collection's record (Go's `work` in runtime/mgc.go): what the cycle
# measured, written by gcStart under gc_sema (one collection at a time) and read
# by gctrace once the world runs again. The model has one stop-the-world per
# cycle; gcStart maps it onto Go's three phases (see mgc.pyx, gcStart):
#   sweep termination  tSweepTerm .. tMark: stopping the world (nothing is left
#                      unswept between collections, so that is all it does)
#   concurrent mark    tMark .. tMarkTerm: 0, liveness is explicit (free())
#   mark termination   tMarkTerm .. tEnd: the rest of the pause (flush the
#                      mcaches, advance sweepgen, sweep, set the next goal)
# A sweep that runs outside the pause adds its time to totaltime, and may
# move tMark to the sweepgen flip.
ctypedef struct gcwork_t:
    uint64_t init_ns            # nanotime when the Runtime was made (Go's runtimeInitTime)
    uint64_t tSweepTerm         # nanotime: the cycle starts stopping the world
    uint64_t tMark              # sweep termination done
    uint64_t tMarkTerm          # mark termination starts
    uint64_t tEnd               # the pause ends (before the world restarts)
    uint64_t heap0              # heap_live when the cycle started
    uint64_t heap1              # heap_live at the end of the mark (the world stopped)
    uint64_t heap2              # heap_marked: live bytes after the cycle
    uint64_t heap_goal          # the goal this cycle ran against (Go's lastHeapGoal)
    uint64_t totaltime          # GC CPU ns since init_ns (Go's work.totaltime)
    uint32_t stwprocs           # min(gomaxprocs, ncpu): CPUs a stopped world idles
    uint32_t maxprocs           # gomaxprocs
    bint userForced             # rt.gc(), not the heap trigger

cdef struct runtime:
    sched_t sched
    # Read on every allocation and free; written when the Runtime is made
    # (heap_goal: by each collection).
    cacheline_t _read_mostly
    mheap_t* heap
    p_t** allp
    int gomaxprocs
    # The "shared" mode's one cache for every P, with its page cache; its
    # other P fields are unused. NULL in the other modes.
    p_t* shared
    trace_t* trace              # NULL unless rt.trace() records: Ms starting now attach
    trace_t* traces_done        # finished traces (Ms may still write to them), freed last
    int mcache_mode
    int sweep_mode
    const sizeclasses_t* sc
    # GC pacing (Go's gcController, reduced to GOGC)
    int gogc                    # -1: off
    uint64_t heap_goal
    uint64_t zerobase           # Go's zerobase: the address of every zero-byte object
    mcentral_t* central[MAX_SPAN_CLASSES]
    # Written by collections.
    cacheline_t _gc_line
    uint64_t heap_marked
    uint32_t numgc
    uint64_t pause_total_ns
    uint64_t pause_ns[NUM_PAUSES]
    uint64_t last_gc_ns
    # The current (or last) collection's record, and GODEBUG=gctrace=1
    # (mgc.pyx: gcwork_init, gctrace_print).
    gcwork_t work
    int ncpu                    # CPUs this process may run on (Go's ncpu)
    int gctrace                 # GCTRACE_OFF, GCTRACE_GO113 or GCTRACE_GO119: the line's format

ctypedef runtime runtime_t

cdef enum:
    GCTRACE_OFF = 0
    GCTRACE_GO113 = 1
    GCTRACE_GO119 = 2       # adds ", 0 MB stacks, 0 MB globals"

cdef enum:
    MIN_HEAP_GOAL = 4 << 20
    PREEMPT_NS = 10000000       # Go's forcePreemptNS: 10 ms time slices


cdef inline int num_mcaches(runtime_t* rt) noexcept nogil:
    """The Ps' mcaches, and in the "shared" mode the one they all share."""
    return rt.gomaxprocs + (rt.shared != NULL)


cdef inline p_t* mcache_holder(runtime_t* rt, int i) noexcept nogil:
    """The holder of mcache i of num_mcaches: P i, or the shared cache last."""
    return rt.allp[i] if i < rt.gomaxprocs else rt.shared
