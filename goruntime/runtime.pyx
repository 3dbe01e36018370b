# cython: language_level=3
"""The Python face of the model: a Runtime owns one heap, its mcentrals, its Ps
and their mcaches, and lets any Python thread allocate as an M would.

No single Go file is its counterpart: a Runtime is what a Go process has in
globals, set up by mallocinit and schedinit (runtime/malloc.go, proc.go).
Its methods stand for the Go entry points: malloc for mallocgc (new, make),
gc for runtime.GC, memstats for runtime.ReadMemStats, gomaxprocs for
GOMAXPROCS, proc() for a goroutine keeping its P across calls. free, read,
write and verify have no Go counterpart: liveness is explicit here, and the
accesses are checked against the object's extent.

What keeps a Python caller from crashing or hanging the process:

- A P is the licence to touch the heap. Every call takes one (or stops the
  world) only after its arguments are checked and converted, runs no Python
  code while it holds it (results and exceptions are built after it is given
  back), and gives it back on every path. close() takes every P for good, as
  a stop-the-world that never ends, and only then releases the heap: a call in
  progress finishes, a later one gets "runtime closed".
- Python code that runs inside a call anyway (a finalizer or weakref callback
  run by the cyclic GC, a signal handler) cannot re-enter the runtime while the
  thread holds a P or the world is stopped: such a call raises GoRuntimeError
  instead of waiting for itself. verify() keeps the cyclic GC off while the
  world is stopped.
- `with rt.proc():` binds the thread to a session that the thread owns (C
  thread-local storage points at it), not the context object: blocks may nest,
  exit out of order (generators, asyncio tasks), exit on another thread, or be
  dropped without __exit__; the session ends, and its P goes back, when the
  last block is gone.
- After fork() only the forking thread exists in the child: every Runtime made
  before the fork raises GoRuntimeError there; a new Runtime works.
"""
import os
import weakref
from collections.abc import Mapping
cimport cython
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free, calloc
from libc.string cimport memset, memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from goruntime.sys cimport alloc_aligned, pthread_mutex_lock, pthread_mutex_unlock, assertions_enabled
from goruntime.sizeclasses cimport MAX_SPAN_CLASSES, MAX_SMALL_SIZE
from goruntime.mheap cimport mheap_t, mheap_init, mheap_destroy, pagecache_flush, spanOf
from goruntime.mspan cimport mspan_t, spanview_t, span_copy, make_span
from goruntime.mcentral cimport (mcentral_t, mcentral_init, mcentral_destroy, mcentral_snapshot, make_MCentral,
    MCENTRAL_MUTEX, MCENTRAL_SPANSET)
from goruntime.mcache cimport mcache_init, make_MCache
from goruntime.runtime2 cimport (MCACHE_LOCKFREE, MCACHE_LOCKED, MCACHE_NONE, MCACHE_SHARED,
    SWEEP_CONCURRENT, SWEEP_STW, num_mcaches, mcache_holder, GCTRACE_OFF, GCTRACE_GO113, GCTRACE_GO119)
from goruntime.proc cimport (sched_init, sched_destroy, acquirep, try_acquirep, releasep,
    exitsyscall_fast, entersyscall, sched_close, sched_closed, sched_stats, stopTheWorld,
    startTheWorld, make_P, fork_generation, M, bgsweep_wait_parked)
from goruntime.mgc cimport gcStart, gcTryStart, gcSweepAll, bgsweep, set_heap_goal, verify_heap, gcwork_init
from goruntime.mgcsweep cimport reclaim
from goruntime.mgcscavenge cimport (scavenger_new, scavenger_start, scavenger_stop, scavenger_free,
    scavenge_step, scavenge_all, scavenger_stats)
from goruntime.sizeclasses cimport PAGE_SIZE
from goruntime.malloc cimport mallocgc, free_object, object_extent, FREE_OK, FREE_DOUBLE_FREE
from goruntime.mstats cimport (memstats_t, memstats_read, memstats_dict, heapmap_t, heapmap_fill,
    heapmap_free, heapmap_object)
from goruntime.workload cimport run_kernel
from goruntime.workload import run_config
from goruntime.trace cimport trace_t, trace_new, trace_free, trace_snapshot, trace_events, trace_copy_free, tracecopy_t
from goruntime.trace import TraceResult, BGSWEEP_TRACK
from goruntime.lock cimport mutex_stats
from goruntime.lock import SITE_NAMES, sum_lockstats
from goruntime.errors import GoRuntimeError
from goruntime.sizeclasses import normalize_version
from goruntime.args import check_int, check_bool, check_choice

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object obj, int* overflow) except? -1
    int PyGC_Enable()
    int PyGC_Disable()

# This thread's proc() session and whether it is inside a call, in C thread-local
# storage, so that each call finds them in a nanosecond. `busy` is set while the
# thread holds a P for a call or has the world stopped: a re-entrant call (from a
# finalizer, say) then raises instead of waiting for its own thread. In the child
# of a fork the forking thread starts afresh (the Runtimes it knew are unusable
# there anyway).
cdef extern from *:
    """
    #include <pthread.h>
    typedef struct { uint64_t serial; void *sess; int busy; } gr_tls_t;
    static GR_THREAD_LOCAL gr_tls_t gr_tls;
    static void gr_tls_child(void) { gr_tls.serial = 0; gr_tls.sess = 0; gr_tls.busy = 0; }
    static int gr_tls_register(void) { return pthread_atfork(NULL, NULL, gr_tls_child); }
    """
    ctypedef struct gr_tls_t:
        uint64_t serial
        void* sess
        int busy
    gr_tls_t tls "gr_tls"
    int gr_tls_register()

if gr_tls_register() != 0:
    raise ImportError("goruntime.runtime: pthread_atfork failed")

# A thread's `with rt.proc():` session: the M that holds the thread's P between
# calls (in P_SYSCALL) and the blocks entered on it. It lives as long as anyone
# refers to it: the thread while it is bound to it, and each block entered on it
# and not yet exited. Touched only with the GIL held.
ctypedef struct session_t:
    m_t m
    int active              # blocks entered and not yet exited
    int refs                # the thread's binding + one per such block


# Every Runtime by serial, for a thread whose binding outlived its blocks.
_RUNTIMES = weakref.WeakValueDictionary()
cdef uint64_t _last_serial = 0


# The comparison modes: per-P caches as Go has them, behind a mutex each, or
# absent; Go 1.13's mutex mcentral or Go 1.15's lock-free span sets; and Go
# 1.14's per-P page cache in front of the mheap. These names are the only ones:
# the tools and the CLI take their choices from here.
cdef dict _MCACHE_MODE = {"lockfree": MCACHE_LOCKFREE, "locked": MCACHE_LOCKED, "shared": MCACHE_SHARED,
                          "none": MCACHE_NONE}
cdef dict _MCENTRAL_MODE = {"mutex": MCENTRAL_MUTEX, "spanset": MCENTRAL_SPANSET}
MCACHE_MODES = tuple(_MCACHE_MODE)
# The lock classes of lockstats(): all mcentrals, the mheap, the scheduler, the
# per-P mcache locks ("locked" mode), the shared cache's lock ("shared" mode)
# and the span sets' spine locks.
LOCK_CLASSES = ("mcentral", "mheap", "sched", "mcache", "sharedcache", "spanset")
MCENTRAL_MODES = tuple(_MCENTRAL_MODE)
# Go's sweep, concurrent with the Ms, or all of it with the world stopped.
cdef dict _SWEEP_MODE = {"concurrent": SWEEP_CONCURRENT, "stw": SWEEP_STW}
SWEEP_MODES = tuple(_SWEEP_MODE)

# True in a `make debug` build: the model checks its invariants (GR_ASSERT in
# sys.h) and aborts on the first broken one. Never benchmark such a build.
ASSERTIONS = bool(assertions_enabled())


def check_modes(mcache="lockfree", mcentral="mutex", pagecache=False, sweep="concurrent"):
    """Raises ValueError (TypeError for a value of the wrong type) naming a mode that does not exist."""
    check_choice("mcache", mcache, MCACHE_MODES)
    check_choice("mcentral", mcentral, MCENTRAL_MODES)
    check_bool("pagecache", pagecache)
    check_choice("sweep", sweep, SWEEP_MODES)

# Requests this large could not be mapped even as one reservation.
cdef long long MAX_REQUEST = (<long long>1) << 46
# read() copies into a bytes object made before it takes the P up to this size;
# a longer read checks the extent first, so that a wild n fails as an overrun.
cdef long long READ_PREALLOC = 1 << 20

cdef str _REENTRANT = ("re-entrant call into the runtime: this thread is inside a runtime call that "
                       "holds a P or has stopped the world (a finalizer, weakref callback or signal "
                       "handler called back in); call it after the outer call returns")
cdef str _FORKED = "runtime unusable after fork: create a new Runtime in the child"


cdef inline int _count_arg(str name, object value, long long hi, long long* out) except -1:
    """A size or byte count: an int between 0 and hi, checked before any P is taken."""
    cdef int ovf = 0
    cdef long long v
    if type(value) is not int:
        value = check_int(name, value)
    v = PyLong_AsLongLongAndOverflow(value, &ovf)
    if ovf != 0 or v < 0 or v > hi:
        check_int(name, value, 0, hi)           # raises the ValueError naming the range
    out[0] = v
    return 0


cdef inline uintptr_t _addr_arg(object addr) except? 0:
    """An address as the C value, or 0 for an int that cannot be one (a bad pointer)."""
    if type(addr) is not int:
        addr = check_int("addr", addr)
    if 0 < addr < 2**64:
        return <uintptr_t>addr
    return 0


def _bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


class BySizeEntry(tuple):
    """One entry of MemStats.BySize, as Go's: Size, Mallocs, Frees (and, for old code,
    entry["Size"] too)."""
    __slots__ = ()
    _FIELDS = ("Size", "Mallocs", "Frees")

    def __new__(cls, Size, Mallocs, Frees):
        return super().__new__(cls, (Size, Mallocs, Frees))

    Size = property(lambda self: tuple.__getitem__(self, 0))
    Mallocs = property(lambda self: tuple.__getitem__(self, 1))
    Frees = property(lambda self: tuple.__getitem__(self, 2))

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._FIELDS.index(key))
        return tuple.__getitem__(self, key)

    def as_dict(self):
        return dict(zip(self._FIELDS, self))

    def __repr__(self):
        return f"BySize(Size={self.Size}, Mallocs={self.Mallocs}, Frees={self.Frees})"


class MemStats(Mapping):
    """Go's runtime.MemStats, one snapshot: attributes carry Go's field names and meanings
    (BySize entries too), and it reads as a mapping of those names. It never changes:
    build a new one to alter a field (MemStats({**ms, "NumGC": 3}))."""

    __slots__ = ("_fields",)

    def __init__(self, fields):
        fields = dict(fields)
        fields["BySize"] = tuple(b if isinstance(b, BySizeEntry) else BySizeEntry(b["Size"], b["Mallocs"], b["Frees"])
                                 for b in fields.get("BySize", ()))
        object.__setattr__(self, "_fields", fields)

    def __getattr__(self, name):
        try:
            return object.__getattribute__(self, "_fields")[name]
        except KeyError:
            raise AttributeError(f"MemStats has no field {name!r}") from None

    def __setattr__(self, name, value):
        raise AttributeError("a MemStats snapshot is read-only")

    def __getitem__(self, name):
        return self._fields[name]

    def __iter__(self):
        return iter(self._fields)

    def __len__(self):
        return len(self._fields)

    def as_dict(self):
        """The fields as plain JSON-able values (BySize entries as dicts)."""
        out = dict(self._fields)
        out["BySize"] = [b.as_dict() for b in out["BySize"]]
        return out

    def __repr__(self):
        return (f"MemStats(HeapAlloc={_bytes(self.HeapAlloc)}, HeapInuse={_bytes(self.HeapInuse)}, "
                f"HeapIdle={_bytes(self.HeapIdle)}, HeapSys={_bytes(self.HeapSys)}, "
                f"HeapObjects={self.HeapObjects:,}, Mallocs={self.Mallocs:,}, Frees={self.Frees:,}, "
                f"NumGC={self.NumGC}, PauseTotalNs={self.PauseTotalNs / 1e6:.3f} ms)")


# -- proc() sessions ------------------------------------------------------------

cdef inline session_t* _bound(Runtime rt) noexcept:
    """This thread's session on rt, if it is bound to one."""
    if tls.serial == rt.serial:
        return <session_t*>tls.sess
    return NULL


cdef void _unref(session_t* s) noexcept:
    s.refs -= 1
    if s.refs == 0:
        free(s)


cdef void _unbind() noexcept:
    """Forgets this thread's session (its P already given back, or stolen)."""
    cdef session_t* s = <session_t*>tls.sess
    tls.serial = 0
    tls.sess = NULL
    if s != NULL:
        _unref(s)


cdef int _settle(Runtime rt) except -1:
    """Before this thread enters a block of rt: a binding left from before is
    forgotten if its Runtime is closed or gone, and ended (its P given back) if
    its last block exited on another thread. Raises if the thread is still
    inside a block of another Runtime."""
    cdef session_t* s = <session_t*>tls.sess
    cdef Runtime other
    if s == NULL:
        return 0
    other = rt if tls.serial == rt.serial else _RUNTIMES.get(tls.serial)
    if other is None or not other._usable():
        _unbind()
        return 0
    if s.active > 0:
        if other is rt:
            return 0
        raise GoRuntimeError("this thread is already inside another Runtime's proc(): "
                             "leave that block first")
    if exitsyscall_fast(&s.m):
        releasep(other.rt, &s.m)
    _unbind()
    return 0


cdef void _drop(Runtime rt, session_t* s) noexcept:
    """One block of session s (a session of rt) is over, exited or dropped, on any
    thread. The last one on the session's own thread gives the P back now; after
    the last one exits on another thread, the session's thread gives it back at
    its next call or block (the P stays stealable meanwhile)."""
    s.active -= 1
    if s.active == 0 and <void*>s == tls.sess and not tls.busy:
        if rt._usable() and exitsyscall_fast(&s.m):
            releasep(rt.rt, &s.m)
        _unbind()
    _unref(s)


@cython.no_gc_clear
@cython.final
cdef class _Proc:
    """`with rt.proc():` — the thread keeps one P across calls, as a goroutine
    keeps its M and P; between calls the P is in P_SYSCALL and stealable.

    The P belongs to the thread's session, not to this object: blocks may nest,
    exit in any order or on another thread, and one object may be entered by
    several threads; a block dropped without __exit__ ends when the object is
    freed."""
    cdef Runtime owner
    cdef list entries           # the sessions this object entered, one per open block

    def __cinit__(self, Runtime owner not None):
        self.owner = owner
        self.entries = []

    def __enter__(self):
        cdef Runtime rt = self.owner
        cdef session_t* s
        rt._check_call()
        _settle(rt)
        s = _bound(rt)
        if s != NULL:
            s.active += 1
            s.refs += 1
            self.entries.append(<uintptr_t>s)
            return self
        s = <session_t*>calloc(1, sizeof(session_t))
        if s == NULL:
            raise MemoryError("cannot allocate a proc() session")
        s.m.id = -1
        if not try_acquirep(rt.rt, &s.m):
            with nogil:
                acquirep(rt.rt, &s.m)
            if s.m.p == NULL:
                free(s)
                raise GoRuntimeError("runtime closed")
        entersyscall(rt.rt, &s.m)
        s.active = 1
        s.refs = 2
        tls.serial = rt.serial
        tls.sess = s
        self.entries.append(<uintptr_t>s)
        return self

    def __exit__(self, *exc):
        cdef Py_ssize_t i, n = len(self.entries)
        cdef uintptr_t mine = <uintptr_t>tls.sess
        if n == 0:
            raise GoRuntimeError("proc(): __exit__ without a matching __enter__")
        # This thread's own block if it has one here, else the last entered.
        i = n - 1
        while i >= 0 and self.entries[i] != mine:
            i -= 1
        if i < 0:
            i = n - 1
        _drop(self.owner, <session_t*><uintptr_t>self.entries.pop(i))
        return False

    def __dealloc__(self):
        if self.entries is None or self.owner is None:
            return
        while self.entries:
            _drop(self.owner, <session_t*><uintptr_t>self.entries.pop())


# -- copies made with the world stopped ------------------------------------------------
# Each is C only, so that no Python code runs while the world is stopped; the
# caller builds the Python result once it runs again.

ctypedef struct central_copy_t:
    int spanclass
    int which
    size_t n
    spanview_t* spans


cdef int _copy_memstats(runtime_t* rt, void* arg) noexcept nogil:
    memstats_read(rt, <memstats_t*>arg)
    return 0


cdef int _copy_central(runtime_t* rt, void* arg) noexcept nogil:
    cdef central_copy_t* c = <central_copy_t*>arg
    c.spans = mcentral_snapshot(rt.central[c.spanclass], c.which, &c.n)
    return 0 if c.spans != NULL else -1


cdef int _copy_heapmap(runtime_t* rt, void* arg) noexcept nogil:
    return heapmap_fill(rt, <heapmap_t*>arg)


cdef int _copy_trace(runtime_t* rt, void* arg) noexcept nogil:
    return trace_snapshot(rt.traces_done, <tracecopy_t*>arg)


cdef class _Trace:
    """`with rt.trace(path):` (see Runtime.trace)."""
    cdef Runtime owner
    cdef object path
    cdef uint32_t per_buf
    cdef public object result

    def __cinit__(self, Runtime owner, path, uint32_t per_buf):
        self.owner = owner
        self.path = path
        self.per_buf = per_buf

    def __enter__(self):
        self.owner._trace_start(self.per_buf)
        return self

    def __exit__(self, *exc):
        self.result = self.owner._trace_stop()
        if self.path is not None:
            self.result.write_perfetto(self.path)
        return False


ctypedef struct span_at_t:
    uintptr_t addr
    bint found
    spanview_t v


cdef int _copy_span_at(runtime_t* rt, void* arg) noexcept nogil:
    cdef span_at_t* a = <span_at_t*>arg
    cdef mspan_t* s = spanOf(rt.heap, a.addr)
    a.found = s != NULL
    if s != NULL:
        span_copy(s, rt.heap.sweepgen, &a.v)
    return 0


@cython.no_gc_clear
cdef class Runtime:
    """A model Go runtime: `Runtime(gomaxprocs=N, sizeclasses="go1.13", gogc=100)`.

    gomaxprocs Ps each own an mcache; mcentrals (one per span class) and the
    mheap are shared. gogc=None turns the GC trigger off; max_heap caps HeapSys
    in bytes (whole 64 MiB arenas). gctrace=True prints Go's GODEBUG=gctrace=1
    line for each collection to the process's stderr (fd 2), in the format of
    the size-class table's Go version. scavenger=False leaves out the background
    scavenger's thread (free_os_memory() and scavenger_step() still release).
    """

    def __cinit__(self, gomaxprocs=None, sizeclasses="go1.13", gogc=100, max_heap=None,
                  mcache="lockfree", mcentral="mutex", pagecache=False, sweep="concurrent",
                  gctrace=False, scavenger=True):
        global _last_serial
        self.rt = NULL
        self._closed = True
        # Every argument first: nothing is allocated for a Runtime that cannot be made.
        if gomaxprocs is None:
            gomaxprocs = os.cpu_count() or 1
        gomaxprocs = check_int("gomaxprocs", gomaxprocs, 1, 1024)
        if not isinstance(sizeclasses, (str, float)):
            raise TypeError(f"sizeclasses must be a str such as 'go1.13' (or 1.13), "
                            f"not {type(sizeclasses).__name__}")
        version = normalize_version(sizeclasses)
        if gogc is not None:
            gogc = check_int("gogc", gogc, 0, 2**31 - 1)
        if max_heap is not None:
            max_heap = check_int("max_heap", max_heap, 1, 2**62)
        check_modes(mcache, mcentral, pagecache, sweep)
        pagecache = check_bool("pagecache", pagecache)
        gctrace = check_bool("gctrace", gctrace)
        scavenger = check_bool("scavenger", scavenger)
        self.modes = {"mcache": mcache, "mcentral": mcentral, "pagecache": pagecache, "sweep": sweep}
        self.sizeclasses = SizeClasses(version)
        self.heap = MHeap.__new__(MHeap)
        self.heap._runtime = weakref.ref(self)
        # C memory; a failure part-way leaves every pointer NULL or owned, for __dealloc__.
        rt = <runtime_t*>alloc_aligned(sizeof(runtime_t))
        if rt == NULL:
            raise MemoryError("cannot allocate the runtime")
        self.rt = rt
        rt.sc = &self.sizeclasses.t
        rt.gomaxprocs = gomaxprocs
        rt.gogc = -1 if gogc is None else gogc
        rt.mcache_mode = _MCACHE_MODE[mcache]
        rt.sweep_mode = _SWEEP_MODE[sweep]
        rt.heap = <mheap_t*>alloc_aligned(sizeof(mheap_t))
        if rt.heap == NULL:
            raise MemoryError("cannot allocate the mheap")
        if mheap_init(rt.heap, rt.sc, max_heap or 0) != 0:
            mheap_destroy(rt.heap)
            free(rt.heap)
            rt.heap = NULL
            raise MemoryError("cannot map the mheap's arena index")
        rt.heap.pagecache = pagecache
        rt.heap.sweepspans_small = mcentral == "mutex"
        rt.heap.central = <void**>rt.central
        if sweep == "concurrent":
            rt.heap.reclaim = reclaim
        self.heap.h = rt.heap
        for spc in range(rt.sc.num_classes * 2):
            rt.central[spc] = <mcentral_t*>alloc_aligned(sizeof(mcentral_t))
            if rt.central[spc] == NULL:
                raise MemoryError("cannot allocate an mcentral")
            mcentral_init(rt.central[spc], spc, rt.heap, _MCENTRAL_MODE[mcentral])
        rt.allp = <p_t**>alloc_aligned(gomaxprocs * sizeof(p_t*))
        if rt.allp == NULL:
            raise MemoryError("cannot allocate allp")
        for i in range(gomaxprocs):
            rt.allp[i] = <p_t*>alloc_aligned(sizeof(p_t))
            if rt.allp[i] == NULL:
                raise MemoryError("cannot allocate a P")
            rt.allp[i].id = i
            mcache_init(&rt.allp[i].mcache, rt.central, rt.heap, &rt.allp[i].pcache)
        if mcache == "shared":
            rt.shared = <p_t*>alloc_aligned(sizeof(p_t))
            if rt.shared == NULL:
                raise MemoryError("cannot allocate the shared mcache")
            rt.shared.id = -1
            mcache_init(&rt.shared.mcache, rt.central, rt.heap, &rt.shared.pcache)
        sched_init(rt)
        set_heap_goal(rt)
        gcwork_init(rt, GCTRACE_OFF if not gctrace else
                    GCTRACE_GO119 if version == "go1.19" else GCTRACE_GO113)
        self.scav = scavenger_new(rt)
        if self.scav == NULL:
            sched_destroy(rt)
            raise MemoryError("cannot allocate the scavenger")
        if sweep == "concurrent":
            self._bgsweep = M(BGSWEEP_TRACK)
            if (<M>self._bgsweep).start(rt, bgsweep, NULL) != 0:
                self._bgsweep = None
                sched_close(rt)
                sched_destroy(rt)
                raise GoRuntimeError("cannot start the background sweeper")
            with nogil:
                bgsweep_wait_parked(rt)
        _last_serial += 1
        self.serial = _last_serial
        _RUNTIMES[self.serial] = self
        self._ready = True
        self._closed = False
        if scavenger and scavenger_start(self.scav) != 0:
            raise MemoryError("cannot start the scavenger's thread")

    def __dealloc__(self):
        # Without close(): nothing can be running (a call, a block, a workload
        # would hold a reference), so taking the Ps back is immediate.
        cdef runtime_t* rt = self.rt
        cdef bint forked
        if rt == NULL:
            return
        forked = self._ready and rt.sched.forkgen != fork_generation()
        if self.scav != NULL:
            with nogil:
                scavenger_stop(self.scav)       # no wait in a fork's child
        if self._ready and not self._closed and not forked:
            with nogil:
                sched_close(rt)
        self._join_bgsweep()
        self._closed = True
        self._release_heap()
        scavenger_free(self.scav)
        self.scav = NULL
        if self._ready and not forked:
            # In a fork's child a condition variable may count waiters that do
            # not exist there, and destroying it would wait for them.
            sched_destroy(rt)
        for spc in range(MAX_SPAN_CLASSES):
            if rt.central[spc] != NULL:
                mcentral_destroy(rt.central[spc])
                free(rt.central[spc])
        if rt.allp != NULL:
            for i in range(rt.gomaxprocs):
                free(rt.allp[i])
            free(rt.allp)
        free(rt.shared)
        trace_free(rt.traces_done)
        trace_free(rt.trace)
        free(rt)                    # rt.heap belongs to the MHeap view
        self.rt = NULL

    cdef void _release_heap(self) noexcept:
        """Unmaps the heap; every P is stopped for good (or the runtime never ran)."""
        cdef int i
        cdef bint forked
        if self.heap is None or self.heap.h == NULL:
            return
        forked = self._ready and self.rt.sched.forkgen != fork_generation()
        if self._ready and not forked:
            for i in range(num_mcaches(self.rt)):
                pagecache_flush(self.heap.h, &mcache_holder(self.rt, i).pcache)
        mheap_destroy(self.heap.h)
        free(self.heap.h)
        self.heap.h = NULL
        self.rt.heap = NULL

    # -- views ----------------------------------------------------------------
    # Made on demand, so that no view is referenced by the Runtime: a Runtime is
    # never in a reference cycle, and `del rt` releases its arenas at once.

    @property
    def ps(self):
        """The Ps, as views (P.id, P.status, P.mcache)."""
        return tuple(make_P(self, self.rt.allp[i]) for i in range(self.rt.gomaxprocs))

    @property
    def centrals(self):
        """The mcentrals, one per span class, as views."""
        return tuple(make_MCentral(self, self.rt.central[spc]) for spc in range(self.rt.sc.num_classes * 2))

    @property
    def shared_mcache(self):
        """The "shared" mode's one cache for every P (an MCache view), else None."""
        return make_MCache(self, &self.rt.shared.mcache) if self.rt.shared != NULL else None

    @property
    def closed(self):
        """True after close(), and in the child of a fork (where every call raises)."""
        return self._closed or self.rt.sched.forkgen != fork_generation()

    # -- the calling protocol ------------------------------------------------
    # A call: check and convert the arguments; _check_call; _enter (a P, or
    # "runtime closed"); C only; _leave; then build the result or the exception.

    cdef bint _usable(self) noexcept:
        return not self._closed and self.rt.sched.forkgen == fork_generation()

    cdef int _check_call(self) except -1:
        if self.rt.sched.forkgen != fork_generation():
            if self._closed:
                raise GoRuntimeError("runtime closed")
            raise GoRuntimeError(_FORKED)
        if self._closed:
            raise GoRuntimeError("runtime closed")
        if tls.busy:
            raise GoRuntimeError(_REENTRANT)
        return 0

    cdef m_t* _enter(self, m_t* scratch) except NULL:
        """The calling thread's M, holding a RUNNING P for one call (see _leave):
        its proc() session's, or scratch. Runs no Python code once it has the P."""
        cdef m_t* mp
        cdef session_t* s = _bound(self)
        if s != NULL:
            mp = &s.m
            if exitsyscall_fast(mp):
                tls.busy = 1
                return mp
            mp.p = NULL             # taken by a stop-the-world or an M that waited
        else:
            mp = scratch
            memset(mp, 0, sizeof(m_t))
            mp.id = -1
            if try_acquirep(self.rt, mp):
                tls.busy = 1
                return mp
        with nogil:
            acquirep(self.rt, mp)
        if mp.p == NULL:
            raise GoRuntimeError("runtime closed")
        tls.busy = 1
        return mp

    cdef void _leave(self, m_t* mp) noexcept:
        cdef session_t* s = <session_t*>tls.sess
        tls.busy = 0
        if s != NULL and mp == &s.m:
            if s.active > 0:
                entersyscall(self.rt, mp)
                return
            # The session's last block exited on another thread meanwhile.
            releasep(self.rt, mp)
            _unbind()
            return
        releasep(self.rt, mp)

    cdef int _extent(self, uintptr_t addr, size_t want) noexcept:
        """0 if `want` bytes from addr lie in one live object, 1 for a bad pointer,
        2 for an overrun; the caller holds a P."""
        cdef size_t size = 0
        if addr == <uintptr_t>&self.rt.zerobase:
            size = 0
        elif addr == 0 or object_extent(self.rt, addr, &size) != FREE_OK:
            return 1
        return 2 if want > size else 0

    # -- allocation ----------------------------------------------------------

    def malloc(self, size, noscan=False):
        """Allocates size bytes (Go's mallocgc) and returns the object's address.

        noscan=True means the object holds no pointers: under 16 B it may be
        packed by the tiny allocator. The memory is zeroed, as Go's is.
        """
        cdef m_t scratch
        cdef m_t* mp
        cdef bint gc = False
        cdef bint ns
        cdef uintptr_t x
        cdef long long n
        cdef int ovf = 0
        if type(size) is not int:
            size = check_int("size", size)
        n = PyLong_AsLongLongAndOverflow(size, &ovf)
        if ovf < 0 or (ovf == 0 and n < 0):
            raise ValueError(f"size must be an int of at least 0 bytes, not {size}")
        if ovf > 0 or n >= MAX_REQUEST:
            raise MemoryError(f"cannot allocate {size} bytes: larger than the heap can map")
        if noscan is False:
            ns = False
        elif noscan is True:
            ns = True
        else:
            ns = check_bool("noscan", noscan)
        self._check_call()
        mp = self._enter(&scratch)
        if n > MAX_SMALL_SIZE:
            with nogil:     # a large object may need zeroing: not under the GIL
                x = mallocgc(self.rt, mp.p, <size_t>n, ns, &gc)
        else:
            x = mallocgc(self.rt, mp.p, <size_t>n, ns, &gc)
        if gc:
            with nogil:
                gcTryStart(self.rt, mp.p)
        self._leave(mp)
        if x == 0:
            raise MemoryError(f"cannot allocate {size} bytes: the heap cannot grow")
        return x

    def free(self, addr):
        """Marks the object at addr dead; its slot is reused after the next gc()."""
        cdef m_t scratch
        cdef m_t* mp
        cdef int err = 1
        cdef uintptr_t a = _addr_arg(addr)
        self._check_call()
        if a != 0:
            mp = self._enter(&scratch)
            err = free_object(self.rt, &mp.p.mcache, a)
            self._leave(mp)
        if err == FREE_DOUBLE_FREE:
            raise GoRuntimeError(f"double free of {addr:#x}")
        if err != FREE_OK:
            raise GoRuntimeError(f"bad pointer {addr:#x}: not the start of a live object")

    def read(self, addr, n):
        """The first n bytes of the live object at addr."""
        cdef m_t scratch
        cdef m_t* mp
        cdef long long want
        cdef int err = 0
        cdef bytes out = None
        cdef uintptr_t a = _addr_arg(addr)
        _count_arg("n", n, MAX_REQUEST, &want)
        self._check_call()
        if want > READ_PREALLOC:
            mp = self._enter(&scratch)
            err = self._extent(a, <size_t>want)
            self._leave(mp)
            if err == 0:
                out = PyBytes_FromStringAndSize(NULL, want)
        else:
            out = PyBytes_FromStringAndSize(NULL, want)
        if out is not None:
            mp = self._enter(&scratch)
            err = self._extent(a, <size_t>want)
            if err == 0 and want:
                memcpy(PyBytes_AS_STRING(out), <void*>a, <size_t>want)
            self._leave(mp)
        if err == 1:
            raise GoRuntimeError(f"bad pointer {addr:#x}: not the start of a live object")
        if err == 2:
            raise GoRuntimeError(f"access of {want} bytes at {addr:#x} overruns the object")
        return out

    def write(self, addr, data):
        """Writes bytes into the live object at addr, from its start."""
        cdef m_t scratch
        cdef m_t* mp
        cdef int err
        cdef const unsigned char[:] view
        cdef uintptr_t a = _addr_arg(addr)
        try:
            view = memoryview(data).cast("B")
        except TypeError as e:
            raise TypeError(f"data must be a C-contiguous bytes-like object, not {type(data).__name__}: "
                            f"{e}") from None
        cdef size_t n = view.shape[0]
        self._check_call()
        mp = self._enter(&scratch)
        err = self._extent(a, n)
        if err == 0 and n:
            memcpy(<void*>a, &view[0], n)
        self._leave(mp)
        if err == 1:
            raise GoRuntimeError(f"bad pointer {addr:#x}: not the start of a live object")
        if err == 2:
            raise GoRuntimeError(f"access of {n} bytes at {addr:#x} overruns the object")

    def proc(self):
        """Context manager: the calling thread holds one P for the whole block."""
        self._check_call()
        return _Proc(self)

    # -- the world stopped ---------------------------------------------------

    def gc(self):
        """A full collection, as Go's runtime.GC: the world stops for the snapshot
        (and, with sweep="stw", the whole sweep); then this thread sweeps what is
        left, so that every span is swept when it returns."""
        cdef bint done = False
        cdef m_t scratch
        cdef m_t* mp
        self._check_call()
        with nogil:
            pthread_mutex_lock(&self.rt.sched.gc_sema)
            if not sched_closed(self.rt):
                gcStart(self.rt, NULL, True)      # forced, as runtime.GC()
                done = True
            pthread_mutex_unlock(&self.rt.sched.gc_sema)
        if not done:
            raise GoRuntimeError("runtime closed")
        if self.rt.sweep_mode == SWEEP_CONCURRENT:
            mp = self._enter(&scratch)
            with nogil:
                gcSweepAll(self.rt)
            self._leave(mp)

    def free_os_memory(self):
        """Go's debug.FreeOSMemory: a collection, then every free page goes back to
        the OS at once (madvise MADV_DONTNEED), whatever the scavenger's goal.
        Returns the bytes released. The pages stay mapped: reusing one faults in a
        zero page, and the span that reuses it is zeroed again (it lies below its
        arena's zeroedBase)."""
        cdef uint64_t released = 0
        cdef int err
        self.gc()
        with nogil:
            err = scavenge_all(self.scav, &released)
        if err:
            raise GoRuntimeError("runtime closed")
        return released

    def scavenger_step(self):
        """One step of the background scavenger, run on the calling thread, with
        no pacing sleep: if the retained heap (HeapSys - HeapReleased) is over
        110% of the heap goal, releases at most 64 KiB of the highest free pages.
        Returns the bytes released, 0 when there is nothing to do. For tests and
        teaching; with Runtime(scavenger=False) it is the only background release."""
        cdef size_t pages = 0
        cdef bint idle = True, done = False
        self._check_call()
        with nogil:
            pthread_mutex_lock(&self.rt.sched.gc_sema)
            if not sched_closed(self.rt):
                pages = scavenge_step(self.scav, &idle)
                done = True
            pthread_mutex_unlock(&self.rt.sched.gc_sema)
        if not done:
            raise GoRuntimeError("runtime closed")
        return pages * PAGE_SIZE

    def scavenger_stats(self):
        """The scavenger's figures: running (its thread), tid (its kernel thread id), goal (bytes of retained
        heap it aims at, None with GOGC off or before its first step), retained
        (HeapSys - HeapReleased now), released (bytes released by its steps),
        free_os_memory_released, steps, parks (steps with nothing to do), cpu_ns
        (its thread's CPU time), busy_cpu_ns / busy_wall_ns and their ratio
        cpu_share (while it had work: the pacing aims at 1%), last_sleep_ns."""
        self._check_call()
        return scavenger_stats(self.scav)

    def memstats(self):
        """A consistent MemStats snapshot, read with the world stopped (as Go's ReadMemStats).
        Like Go 1.13's updatememstats it flushes every mcache first, so the spans they held
        go back to their mcentrals (the views of mcaches and mcentrals never flush)."""
        cdef memstats_t st
        self._check_call()
        self._stopped(_copy_memstats, &st)
        return MemStats(memstats_dict(self.rt, &st))

    cdef int _stopped(self, stopped_fn fn, void* arg) except -1:
        """fn(rt, arg), C only, with the world stopped under the collection lock (Go's
        stopTheWorld under worldsema); raises "runtime closed" if it is, MemoryError if
        fn returns -1."""
        cdef int err = 0
        cdef bint done = False
        with nogil:
            pthread_mutex_lock(&self.rt.sched.gc_sema)
            if not sched_closed(self.rt):
                stopTheWorld(self.rt, NULL)
                err = fn(self.rt, arg)
                startTheWorld(self.rt, NULL)
                done = True
            pthread_mutex_unlock(&self.rt.sched.gc_sema)
        if not done:
            raise GoRuntimeError("runtime closed")
        if err:
            raise MemoryError("out of memory copying the runtime's state")
        return 0

    def _central_list(self, int spanclass, int which, str where):
        """Span views of one mcentral list, copied with the world stopped; for MCentral's
        list properties."""
        cdef central_copy_t c
        cdef size_t i
        self._check_call()
        if not 0 <= spanclass < self.rt.sc.num_classes * 2:
            raise ValueError(f"span class {spanclass} out of range")
        c.spanclass = spanclass
        c.which = which
        c.spans = NULL
        self._stopped(_copy_central, &c)
        try:
            return [make_span(&c.spans[i], where) for i in range(c.n)]
        finally:
            free(c.spans)

    def span_of(self, addr):
        """A view (goruntime.mspan.Span) of the in-use span holding addr, or None. Copied
        with the world stopped: a sweeper may be rewriting the span meanwhile."""
        cdef span_at_t a
        a.addr = _addr_arg(addr)
        self._check_call()
        if a.addr == 0:
            return None
        self._stopped(_copy_span_at, &a)
        return make_span(&a.v, "") if a.found else None

    def heapmap(self):
        """Where every page of the heap is now (goruntime.mstats.HeapMap): in a span held
        by an mcache, on an mcentral list, a large object, or free. Read with the world
        stopped; unlike memstats() it flushes no mcache."""
        cdef heapmap_t m
        self._check_call()
        self._stopped(_copy_heapmap, &m)
        try:
            return heapmap_object(&m)
        finally:
            heapmap_free(&m)

    def trace(self, path=None, *, events_per_m=1 << 18):
        """Records a timeline while the block runs: `with rt.trace("run.pftrace"): rt.run(...)`.

        Each M that starts inside the block records, in a buffer of its own (events_per_m
        events; later ones are counted as dropped), when it held a P, its refills, grows,
        large objects and contended lock waits; the collections record their stop-the-world
        and sweep. On exit the block's TraceResult is in the context object's .result, and
        with a path it is written as a Perfetto trace (ui.perfetto.dev opens it)."""
        events_per_m = check_int("events_per_m", events_per_m, 1, 1 << 24)
        self._check_call()
        return _Trace(self, path, events_per_m)

    cdef int _trace_start(self, uint32_t per_buf) except -1:
        self._check_call()
        if self.rt.trace != NULL:
            raise GoRuntimeError("a trace is already recording on this runtime")
        self.rt.trace = trace_new(per_buf)
        if self.rt.trace == NULL:
            raise MemoryError("cannot allocate the trace buffers")
        return 0

    cdef object _trace_stop(self):
        """Stops recording and returns the TraceResult. The buffers are copied with the
        world stopped; Ms still running keep writing to theirs, so a finished trace is
        freed only with the Runtime."""
        cdef trace_t* t = self.rt.trace
        cdef tracecopy_t copy
        self.rt.trace = NULL
        t.retired = self.rt.traces_done
        self.rt.traces_done = t
        self._check_call()
        self._stopped(_copy_trace, &copy)
        try:
            events = trace_events(&copy)
        finally:
            trace_copy_free(&copy)
        return TraceResult(events, copy.dropped, self._lock_names(), dict(SITE_NAMES), t.start_ns)

    cdef dict _lock_names(self):
        """Each runtime mutex's address -> (lock class, name), for the trace's lock waits."""
        names = {<uintptr_t>&self.rt.heap.lock: ("mheap", "mheap"),
                 <uintptr_t>&self.rt.sched.lock: ("sched", "sched")}
        cdef int spc, i, k
        for k in range(2):
            names[<uintptr_t>&self.rt.heap.sweepSpans[k].spineLock] = ("spanset", f"mheap.sweepSpans[{k}]")
        for spc in range(2, self.rt.sc.num_classes * 2):
            names[<uintptr_t>&self.rt.central[spc].lock] = ("mcentral", f"mcentral[{spc}]")
            for k in range(2):
                names[<uintptr_t>&self.rt.central[spc].partial[k].spineLock] = ("spanset", f"mcentral[{spc}].partial[{k}]")
                names[<uintptr_t>&self.rt.central[spc].full[k].spineLock] = ("spanset", f"mcentral[{spc}].full[{k}]")
        for i in range(self.rt.gomaxprocs):
            names[<uintptr_t>&self.rt.allp[i].mcache.lock] = ("mcache", f"mcache[P{i}]")
        if self.rt.shared != NULL:
            names[<uintptr_t>&self.rt.shared.mcache.lock] = ("sharedcache", "shared mcache")
        return names

    def __repr__(self):
        m = self.modes
        gogc = "off" if self.rt == NULL or self.rt.gogc < 0 else self.rt.gogc
        return (f"<Runtime GOMAXPROCS={self.rt.gomaxprocs} sizeclasses={self.sizeclasses.version} "
                f"GOGC={gogc} mcache={m['mcache']} mcentral={m['mcentral']} pagecache={m['pagecache']}"
                + (" closed>" if self.closed else ">"))

    def verify(self):
        """Stops the world and checks every heap invariant (see mgc.verify_heap).

        Returns the number of in-use spans checked; raises GoRuntimeError naming
        the first broken invariant."""
        cdef bint stopped = False
        cdef int gc_was_on
        self._check_call()
        with nogil:
            pthread_mutex_lock(&self.rt.sched.gc_sema)
            if not sched_closed(self.rt):
                stopTheWorld(self.rt, NULL)
                stopped = True
            else:
                pthread_mutex_unlock(&self.rt.sched.gc_sema)
        if not stopped:
            raise GoRuntimeError("runtime closed")
        # The verifier is Python: no other Python code may run meanwhile.
        tls.busy = 1
        gc_was_on = PyGC_Disable()
        try:
            problems, nspans = verify_heap(self.rt)
        finally:
            if gc_was_on:
                PyGC_Enable()
            tls.busy = 0
            with nogil:
                startTheWorld(self.rt, NULL)
                pthread_mutex_unlock(&self.rt.sched.gc_sema)
        if problems:
            raise GoRuntimeError(f"heap invariant broken: {problems[0]}"
                                 + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        return nspans

    def lockstats(self):
        """Counters of every runtime lock: mheap, scheduler, each mcentral, and all mcentrals summed."""
        self._check_call()
        per_central = {}
        for view in self.centrals[2:]:
            stats = view.lockstats()
            stats["sizeclass"] = view.sizeclass
            stats["noscan"] = view.noscan
            stats["size"] = self.sizeclasses.class_to_size(view.sizeclass)
            per_central[view.spanclass] = stats
        per_mcache = {p.id: p.mcache.lockstats() for p in self.ps}
        shared = self.shared_mcache
        return {
            "mheap": self.heap.lockstats(),
            "sched": sched_stats(self.rt),
            "mcentral": sum_lockstats(per_central.values()),
            "mcentrals": per_central,
            "mcache": sum_lockstats(per_mcache.values()),
            "mcaches": per_mcache,
            # The one lock of the "shared" mode, taken by every allocating P.
            "sharedcache": shared.lockstats() if shared is not None else None,
            # The spine locks of every span set: the mheap's sweepSpans (Go 1.13's
            # gcSweepBuf.spineLock) and the spanset mcentrals' (Go 1.15's
            # spanSet.spineLock), taken when a set adds a block or frees an emptied one.
            "spanset": self._spine_lockstats(),
        }

    def _spine_lockstats(self):
        cdef int spc, k
        stats = []
        for k in range(2):
            stats.append(mutex_stats(&self.rt.heap.sweepSpans[k].spineLock))
        for spc in range(2, self.rt.sc.num_classes * 2):
            for k in range(2):
                stats.append(mutex_stats(&self.rt.central[spc].partial[k].spineLock))
                stats.append(mutex_stats(&self.rt.central[spc].full[k].spineLock))
        return sum_lockstats(stats)

    # -- workloads -----------------------------------------------------------

    def run(self, *, progress=None, **kwargs):
        """Runs the churn kernel on `ms` new M threads (default: twice GOMAXPROCS)
        for `duration` seconds (default 1) or `ops` allocations per M, and returns
        a RunResult. Each M allocates, tags and keeps a bounded live set of
        `live` objects, dropping a random one for each new one.

        sizes: an int (every object that size), a range with step 1 (uniform:
        range(16, 1025) is 16..1024 B), or a list or tuple of sizes drawn with
        `weights` (one per size; default equal). Sizes run from 1 B to 1 GiB;
        those over 32 KiB take the large path. noscan: a bool or the share of
        noscan objects. large_share: the share of allocations that are large
        objects besides `sizes`, sized uniformly in the range large_sizes
        (default range(32769, 262145)). seed: any int; the same seed gives each
        M the same sizes. The result's config writes sizes as the int,
        {"range": [lo, hi]} or {"sizes": [...], "weights": [...]}.

        Ctrl-C (KeyboardInterrupt) stops the Ms at their next safe point, within
        milliseconds; the exception reaches the caller with the figures so far
        in its `partial` attribute (a RunResult), and the runtime stays usable.
        close() from another thread stops the Ms too; run() then raises
        GoRuntimeError("runtime closed"). progress, a callable without arguments, is
        called about every 50 ms while the Ms run (a progress bar, say).
        """
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be callable, not {type(progress).__name__}")
        config = run_config(gomaxprocs=self.gomaxprocs, sizeclasses=self.sizeclasses.version,
                            gogc=self.gogc, **kwargs)
        self._check_call()
        return run_kernel(self.rt, config, progress)

    # -- lifetime -------------------------------------------------------------

    @property
    def gomaxprocs(self):
        return self.rt.gomaxprocs

    @property
    def gogc(self):
        return None if self.rt.gogc < 0 else self.rt.gogc

    @property
    def gctrace(self):
        return self.rt.gctrace != GCTRACE_OFF

    def close(self):
        """Releases the heap. Takes every P for good first: calls in progress on
        other threads finish (a call waiting for a P gets "runtime closed"),
        running workloads stop at their next safe point. Any later call raises
        GoRuntimeError("runtime closed"). Idempotent."""
        if self._closed:
            return
        if self.rt.sched.forkgen != fork_generation():
            # The child of a fork: its locks may be held by threads that do not
            # exist here (the scavenger's too); only the memory is given back.
            self._closed = True
            scavenger_stop(self.scav)
            self._release_heap()
            return
        if tls.busy:
            raise GoRuntimeError(_REENTRANT)
        self._closed = True
        with nogil:
            # The scavenger first: it touches the heap without a P.
            scavenger_stop(self.scav)
            sched_close(self.rt)
        self._join_bgsweep()
        self._release_heap()

    cdef void _join_bgsweep(self) noexcept:
        """Waits for the background sweeper, which leaves once the scheduler is
        closed (in a fork's child it does not exist: nothing to wait for)."""
        cdef M m = self._bgsweep
        if m is not None:
            with nogil:
                m.join()
            self._bgsweep = None

    def __enter__(self):
        self._check_call()
        return self

    def __exit__(self, *exc):
        self.close()
        return False
