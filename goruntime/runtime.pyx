# cython: language_level=3
"""The Python face of the model: a Runtime owns one heap, its mcentrals, its Ps
and their mcaches, and lets any Python thread allocate as an M would.

No single Go file is its counterpart: a Runtime is what a Go process has in
globals, set up by mallocinit and schedinit (runtime/malloc.go, proc.go).
Its methods stand for the Go entry points: malloc for mallocgc (new, make),
gc for runtime.GC, memstats for runtime.ReadMemStats, gomaxprocs for
GOMAXPROCS, proc() for a goroutine keeping its P across calls. free, read,
write and verify have no Go counterpart: liveness is explicit here, and the
accesses are checked against the object's extent."""
import os
import threading
cimport cython
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free
from libc.string cimport memset, memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize
from goruntime.sys cimport alloc_aligned, pthread_mutex_lock, pthread_mutex_unlock, assertions_enabled
from goruntime.sizeclasses cimport MAX_SPAN_CLASSES, MAX_SMALL_SIZE
from goruntime.mheap cimport mheap_t, mheap_init, mheap_destroy, pagecache_flush
from goruntime.mcentral cimport (mcentral_t, mcentral_init, mcentral_destroy, MCentral,
    MCENTRAL_MUTEX, MCENTRAL_SPANSET)
from goruntime.mcache cimport mcache_init
from goruntime.runtime2 cimport MCACHE_LOCKFREE, MCACHE_LOCKED, MCACHE_NONE
from goruntime.proc cimport (sched_init, sched_destroy, acquirep, try_acquirep, releasep,
    exitsyscall_fast, entersyscall, sched_close, sched_stats, stopTheWorld, startTheWorld,
    make_P)
from goruntime.mgc cimport gcStart, gcTryStart, set_heap_goal, verify_heap
from goruntime.malloc cimport mallocgc, free_object, object_extent, FREE_OK, FREE_DOUBLE_FREE
from goruntime.mstats cimport read_memstats
from goruntime.workload cimport run_kernel
from goruntime.workload import run_config
from goruntime.lock import sum_lockstats
from goruntime.errors import GoRuntimeError
from goruntime.sizeclasses import normalize_version

# The P a Python thread holds inside `with rt.proc():`, kept in C thread-local
# storage so that each call finds it in a nanosecond. initial-exec: a load at a
# fixed offset from the thread pointer, where the default model for a shared
# object calls __tls_get_addr on every access (24 bytes of the static TLS that
# glibc keeps spare for modules loaded later).
cdef extern from *:
    """
    typedef struct { void *rt; void *m; int depth; } gr_proc_tls_t;
    static __thread gr_proc_tls_t gr_proc_tls __attribute__((tls_model("initial-exec")));
    """
    ctypedef struct gr_proc_tls_t:
        void* rt
        void* m
        int depth
    gr_proc_tls_t proc_tls "gr_proc_tls"


cdef inline m_t* _proc_m(runtime_t* rt) noexcept nogil:
    if proc_tls.rt == <void*>rt:
        return <m_t*>proc_tls.m
    return NULL


# The comparison modes: per-P caches as Go has them, behind a mutex each, or
# absent; Go 1.13's mutex mcentral or Go 1.15's lock-free span sets; and Go
# 1.14's per-P page cache in front of the mheap. These names are the only ones:
# the tools and the CLI take their choices from here.
cdef dict _MCACHE_MODE = {"lockfree": MCACHE_LOCKFREE, "locked": MCACHE_LOCKED, "none": MCACHE_NONE}
cdef dict _MCENTRAL_MODE = {"mutex": MCENTRAL_MUTEX, "spanset": MCENTRAL_SPANSET}
MCACHE_MODES = tuple(_MCACHE_MODE)
MCENTRAL_MODES = tuple(_MCENTRAL_MODE)

# True in a `make debug` build: the model checks its invariants (GR_ASSERT in
# sys.h) and aborts on the first broken one. Never benchmark such a build.
ASSERTIONS = bool(assertions_enabled())


def check_modes(mcache="lockfree", mcentral="mutex", pagecache=False):
    """Raises ValueError (TypeError for pagecache) naming a mode that does not exist."""
    if mcache not in _MCACHE_MODE:
        raise ValueError(f"mcache must be one of {', '.join(MCACHE_MODES)}, not {mcache!r}")
    if mcentral not in _MCENTRAL_MODE:
        raise ValueError(f"mcentral must be one of {', '.join(MCENTRAL_MODES)}, not {mcentral!r}")
    if not isinstance(pagecache, bool):
        raise TypeError(f"pagecache must be True or False, not {pagecache!r}")

cdef extern from "Python.h":
    size_t _PyLong_NumBits(object v) except? <size_t>-1

# Requests of 2**46 bytes or more could not be mapped even as one reservation
# (malloc tests the bit length: no Python comparison on the hot path).
cdef enum:
    MAX_REQUEST_BITS = 46


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0:
        raise ValueError(f"negative size {size}")


def _check_addr(addr):
    if isinstance(addr, bool) or not isinstance(addr, int):
        raise TypeError(f"address must be an int, not {type(addr).__name__}")


class MemStats:
    """Go's runtime.MemStats: attributes carry Go's field names and meanings."""

    def __init__(self, fields):
        self.__dict__.update(fields)

    def as_dict(self):
        return dict(self.__dict__)

    def __repr__(self):
        return (f"MemStats(HeapAlloc={self.HeapAlloc}, HeapInuse={self.HeapInuse}, "
                f"HeapSys={self.HeapSys}, Mallocs={self.Mallocs}, Frees={self.Frees}, NumGC={self.NumGC})")


cdef class _Proc:
    """`with rt.proc():` — the thread keeps one P across calls, as a goroutine
    keeps its M and P; between calls the P is in P_SYSCALL and stealable."""
    cdef Runtime owner
    cdef m_t m

    def __enter__(self):
        rt = self.owner
        rt._check_open()
        if proc_tls.depth and proc_tls.rt != <void*>rt.rt:
            raise GoRuntimeError("this thread is already inside another Runtime's proc()")
        if proc_tls.depth:
            proc_tls.depth += 1
            return self
        memset(&self.m, 0, sizeof(m_t))
        self.m.id = -1
        if not try_acquirep(rt.rt, &self.m):
            rt._begin_call()
            with nogil:
                acquirep(rt.rt, &self.m)
            rt._end_call()
            if self.m.p == NULL:
                raise GoRuntimeError("runtime closed")
        entersyscall(rt.rt, &self.m)
        proc_tls.rt = <void*>rt.rt
        proc_tls.m = <void*>&self.m
        proc_tls.depth = 1
        return self

    def __exit__(self, *exc):
        cdef m_t* mp = <m_t*>proc_tls.m
        proc_tls.depth -= 1
        if proc_tls.depth:
            return False
        proc_tls.rt = NULL
        proc_tls.m = NULL
        if not self.owner.closed and exitsyscall_fast(mp):
            releasep(self.owner.rt, mp)
        return False


cdef class Runtime:
    """A model Go runtime: `Runtime(gomaxprocs=N, sizeclasses="go1.13", gogc=100)`.

    gomaxprocs Ps each own an mcache; mcentrals (one per span class) and the
    mheap are shared. gogc=None turns the GC trigger off; max_heap caps HeapSys
    in bytes (whole 64 MiB arenas).
    """

    def __cinit__(self, gomaxprocs=None, sizeclasses="go1.13", gogc=100, max_heap=None,
                  mcache="lockfree", mcentral="mutex", pagecache=False):
        self.rt = NULL
        self.closed = True
        if gomaxprocs is None:
            gomaxprocs = os.cpu_count() or 1
        if isinstance(gomaxprocs, bool) or not isinstance(gomaxprocs, int):
            raise TypeError("gomaxprocs must be an int")
        if not 1 <= gomaxprocs <= 1024:
            raise ValueError(f"gomaxprocs must be between 1 and 1024, not {gomaxprocs}")
        if gogc is not None and (isinstance(gogc, bool) or not isinstance(gogc, int) or gogc < 0):
            raise ValueError(f"gogc must be a non-negative int or None, not {gogc!r}")
        if max_heap is not None and (not isinstance(max_heap, int) or max_heap <= 0):
            raise ValueError(f"max_heap must be a positive number of bytes, not {max_heap!r}")
        check_modes(mcache, mcentral, pagecache)
        self.modes = {"mcache": mcache, "mcentral": mcentral, "pagecache": pagecache}
        self.sizeclasses = SizeClasses(normalize_version(sizeclasses))
        rt = <runtime_t*>alloc_aligned(sizeof(runtime_t))
        if rt == NULL:
            raise MemoryError("cannot allocate the runtime")
        self.rt = rt
        rt.sc = &self.sizeclasses.t
        rt.gomaxprocs = gomaxprocs
        rt.gogc = -1 if gogc is None else gogc
        rt.mcache_mode = _MCACHE_MODE[mcache]
        self.heap = MHeap.__new__(MHeap)
        rt.heap = <mheap_t*>alloc_aligned(sizeof(mheap_t))
        if rt.heap == NULL:
            raise MemoryError("cannot allocate the mheap")
        if mheap_init(rt.heap, rt.sc, max_heap or 0) != 0:
            mheap_destroy(rt.heap)
            free(rt.heap)
            rt.heap = NULL
            raise MemoryError("cannot map the mheap's arena index")
        rt.heap.pagecache = bool(pagecache)
        self.heap.h = rt.heap
        centrals = []
        for spc in range(rt.sc.num_classes * 2):
            rt.central[spc] = <mcentral_t*>alloc_aligned(sizeof(mcentral_t))
            if rt.central[spc] == NULL:
                raise MemoryError("cannot allocate an mcentral")
            mcentral_init(rt.central[spc], spc, rt.heap, _MCENTRAL_MODE[mcentral])
            view = MCentral.__new__(MCentral)
            (<MCentral>view).c = rt.central[spc]
            (<MCentral>view).owner = self
            centrals.append(view)
        self.centrals = tuple(centrals)
        rt.allp = <p_t**>alloc_aligned(gomaxprocs * sizeof(p_t*))
        if rt.allp == NULL:
            raise MemoryError("cannot allocate allp")
        ps = []
        for i in range(gomaxprocs):
            rt.allp[i] = <p_t*>alloc_aligned(sizeof(p_t))
            if rt.allp[i] == NULL:
                raise MemoryError("cannot allocate a P")
            rt.allp[i].id = i
            mcache_init(&rt.allp[i].mcache, rt.central, rt.heap, &rt.allp[i].pcache)
            ps.append(make_P(self, rt.allp[i]))
        self.ps = tuple(ps)
        sched_init(rt)
        set_heap_goal(rt)
        self._calls = threading.Condition()
        self._inflight = 0
        self._ready = True
        self.closed = False

    def __dealloc__(self):
        cdef runtime_t* rt = self.rt
        if rt == NULL:
            return
        if not self.closed:
            sched_close(rt)
        self._release_heap()
        if self._ready:
            sched_destroy(rt)
        for spc in range(MAX_SPAN_CLASSES):
            if rt.central[spc] != NULL:
                mcentral_destroy(rt.central[spc])
                free(rt.central[spc])
        if rt.allp != NULL:
            for i in range(rt.gomaxprocs):
                free(rt.allp[i])
            free(rt.allp)
        free(rt)
        self.rt = NULL

    def _release_heap(self):
        cdef int i
        if self.heap is not None and self.heap.h != NULL:
            for i in range(self.rt.gomaxprocs if self._ready else 0):
                pagecache_flush(self.heap.h, &self.rt.allp[i].pcache)
            mheap_destroy(self.heap.h)
            free(self.heap.h)
            self.heap.h = NULL

    # -- the calling protocol ------------------------------------------------

    cdef void _check_open(self) except *:
        if self.closed:
            raise GoRuntimeError("runtime closed")

    cdef p_t* _enter(self, m_t* scratch) except NULL:
        """Gives the calling thread a RUNNING P for one call (see _leave)."""
        self._check_open()
        cdef m_t* mp = _proc_m(self.rt)
        if mp != NULL:
            if exitsyscall_fast(mp):
                return mp.p
            mp.p = NULL             # taken by a stop-the-world
        else:
            mp = scratch
            memset(mp, 0, sizeof(m_t))
            mp.id = -1
            if try_acquirep(self.rt, mp):
                return mp.p
        self._begin_call()
        with nogil:
            acquirep(self.rt, mp)
        self._end_call()
        if mp.p == NULL:
            raise GoRuntimeError("runtime closed")
        return mp.p

    cdef void _leave(self, m_t* mp) noexcept:
        cdef m_t* tls = _proc_m(self.rt)
        if tls != NULL:
            entersyscall(self.rt, tls)
        else:
            releasep(self.rt, mp)

    # A call that releases the GIL is counted in flight, so that close() can
    # wait for it before it releases the heap. Both run with the GIL held.
    cdef void _begin_call(self) except *:
        self._check_open()
        self._inflight += 1

    cdef void _end_call(self) noexcept:
        self._inflight -= 1
        if self.closed and self._inflight == 0:
            with self._calls:
                self._calls.notify_all()

    # -- allocation ----------------------------------------------------------

    @cython.binding(False)
    def malloc(self, size, noscan=False):
        """Allocates size bytes (Go's mallocgc) and returns the object's address.

        noscan=True means the object holds no pointers: under 16 B it may be
        packed by the tiny allocator. The memory is zeroed, as Go's is.
        """
        cdef size_t n
        cdef m_t scratch
        cdef bint gc = False
        cdef bint ns = noscan
        cdef uintptr_t x
        cdef p_t* pp
        if type(size) is not int:
            _check_size(size)
        if size < 0:
            raise ValueError(f"negative size {size}")
        if _PyLong_NumBits(size) > MAX_REQUEST_BITS:
            raise MemoryError(f"cannot allocate {size} bytes: larger than the heap can map")
        n = size
        pp = self._enter(&scratch)
        if n > MAX_SMALL_SIZE:
            self._begin_call()
            with nogil:     # a large object may need zeroing: not under the GIL
                x = mallocgc(self.rt, pp, n, ns, &gc)
            self._end_call()
        else:
            x = mallocgc(self.rt, pp, n, ns, &gc)
        if gc:
            self._begin_call()
            with nogil:
                gcTryStart(self.rt, pp)
            self._end_call()
        self._leave(&scratch)
        if x == 0:
            raise MemoryError(f"cannot allocate {size} bytes: the heap cannot grow")
        return x

    def free(self, addr):
        """Marks the object at addr dead; its slot is reused after the next gc()."""
        _check_addr(addr)
        cdef m_t scratch
        cdef int err = 1
        cdef p_t* pp = self._enter(&scratch)
        if 0 < addr < 2**64:
            err = free_object(self.rt, <uintptr_t>addr)
        self._leave(&scratch)
        if err == FREE_DOUBLE_FREE:
            raise GoRuntimeError(f"double free of {addr:#x}")
        if err != FREE_OK:
            raise GoRuntimeError(f"bad pointer {addr:#x}: not the start of a live object")

    cdef int _check_extent(self, object addr, size_t want) except -1:
        """Raises unless `want` bytes from addr lie in one live object; the caller holds a P."""
        cdef size_t size = 0
        cdef int err = 1
        if addr == <uintptr_t>&self.rt.zerobase:
            size = 0
            err = FREE_OK
        elif 0 < addr < 2**64:
            err = object_extent(self.rt, <uintptr_t>addr, &size)
        if err != FREE_OK:
            raise GoRuntimeError(f"bad pointer {addr:#x}: not the start of a live object")
        if want > size:
            raise GoRuntimeError(f"access of {want} bytes at {addr:#x} overruns the object ({size} bytes)")
        return 0

    def read(self, addr, n):
        """The first n bytes of the live object at addr."""
        _check_addr(addr)
        _check_size(n)
        cdef m_t scratch
        cdef p_t* pp = self._enter(&scratch)
        try:
            self._check_extent(addr, n)
            return PyBytes_FromStringAndSize(<char*><uintptr_t>addr, n)
        finally:
            self._leave(&scratch)

    def write(self, addr, data):
        """Writes bytes into the live object at addr, from its start."""
        _check_addr(addr)
        cdef const unsigned char[:] view = memoryview(data).cast("B")
        cdef m_t scratch
        cdef p_t* pp = self._enter(&scratch)
        try:
            self._check_extent(addr, view.shape[0])
            if view.shape[0]:
                memcpy(<void*><uintptr_t>addr, &view[0], view.shape[0])
        finally:
            self._leave(&scratch)

    def proc(self):
        """Context manager: the calling thread holds one P for the whole block."""
        self._check_open()
        ctx = _Proc.__new__(_Proc)
        (<_Proc>ctx).owner = self
        return ctx

    # -- the world stopped ---------------------------------------------------

    def gc(self):
        """A full stop-the-world collection: flush every mcache, sweep every span."""
        self._begin_call()
        with nogil:
            pthread_mutex_lock(&self.rt.sched.gc_sema)
            gcStart(self.rt, NULL)
            pthread_mutex_unlock(&self.rt.sched.gc_sema)
        self._end_call()

    cdef object _world_stopped(self, fn):
        """fn() with every P stopped and the collection lock held, so that no
        collection runs meanwhile (Go's stopTheWorld under worldsema)."""
        self._begin_call()
        with nogil:
            pthread_mutex_lock(&self.rt.sched.gc_sema)
            stopTheWorld(self.rt, NULL)
        try:
            return fn()
        finally:
            with nogil:
                startTheWorld(self.rt, NULL)
                pthread_mutex_unlock(&self.rt.sched.gc_sema)
            self._end_call()

    def memstats(self):
        """A consistent MemStats snapshot, read with the world stopped (as Go's ReadMemStats)."""
        return MemStats(self._world_stopped(lambda: read_memstats(self.rt)))

    def verify(self):
        """Stops the world and checks every heap invariant (see mgc.verify_heap).

        Returns the number of in-use spans checked; raises GoRuntimeError naming
        the first broken invariant."""
        problems, nspans = self._world_stopped(lambda: verify_heap(self.rt))
        if problems:
            raise GoRuntimeError(f"heap invariant broken: {problems[0]}"
                                 + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        return nspans

    def lockstats(self):
        """Counters of every runtime lock: mheap, scheduler, each mcentral, and all mcentrals summed."""
        self._check_open()
        per_central = {}
        for view in self.centrals[2:]:
            stats = (<MCentral>view).lockstats()
            stats["sizeclass"] = view.sizeclass
            stats["noscan"] = view.noscan
            stats["size"] = self.sizeclasses.class_to_size(view.sizeclass)
            per_central[view.spanclass] = stats
        per_mcache = {p.id: p.mcache.lockstats() for p in self.ps}
        return {
            "mheap": self.heap.lockstats(),
            "sched": sched_stats(self.rt),
            "mcentral": sum_lockstats(per_central.values()),
            "mcentrals": per_central,
            "mcache": sum_lockstats(per_mcache.values()),
            "mcaches": per_mcache,
        }

    # -- workloads -----------------------------------------------------------

    def run(self, **kwargs):
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
        """
        config = run_config(gomaxprocs=self.gomaxprocs, sizeclasses=self.sizeclasses.version,
                            gogc=self.gogc, **kwargs)
        self._begin_call()
        try:
            return run_kernel(self.rt, config)
        finally:
            self._end_call()

    # -- lifetime -------------------------------------------------------------

    @property
    def gomaxprocs(self):
        return self.rt.gomaxprocs

    @property
    def gogc(self):
        return None if self.rt.gogc < 0 else self.rt.gogc

    def close(self):
        """Releases the heap. Waits for calls in flight on other threads (running
        workloads stop at their next safe point); any later call raises."""
        if self.closed:
            return
        self.closed = True
        with nogil:
            sched_close(self.rt)
        with self._calls:
            while self._inflight:
                self._calls.wait()
        self._release_heap()

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False
