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
from collections.abc import Mapping
cimport cython
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free
from libc.string cimport memset, memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize
from goruntime.sys cimport alloc_aligned, pthread_mutex_lock, pthread_mutex_unlock, assertions_enabled
from goruntime.sizeclasses cimport MAX_SPAN_CLASSES, MAX_SMALL_SIZE
from goruntime.mheap cimport mheap_t, mheap_init, mheap_destroy, pagecache_flush
from goruntime.mspan cimport spanview_t, make_span
from goruntime.mcentral cimport (mcentral_t, mcentral_init, mcentral_destroy, mcentral_snapshot, MCentral,
    MCENTRAL_MUTEX, MCENTRAL_SPANSET)
from goruntime.mcache cimport mcache_init, make_MCache
from goruntime.runtime2 cimport MCACHE_LOCKFREE, MCACHE_LOCKED, MCACHE_NONE, MCACHE_SHARED, num_mcaches, mcache_holder
from goruntime.proc cimport (sched_init, sched_destroy, acquirep, try_acquirep, releasep,
    exitsyscall_fast, entersyscall, sched_close, sched_stats, stopTheWorld, startTheWorld,
    make_P)
from goruntime.mgc cimport gcStart, gcTryStart, set_heap_goal, verify_heap
from goruntime.malloc cimport mallocgc, free_object, object_extent, FREE_OK, FREE_DOUBLE_FREE
from goruntime.mstats cimport read_memstats, heapmap_t, heapmap_fill, heapmap_free, heapmap_object
from goruntime.workload cimport run_kernel
from goruntime.trace cimport trace_t, trace_new, trace_free, trace_snapshot, trace_events, trace_copy_free, tracecopy_t
from goruntime.trace import TraceResult
from goruntime.lock import SITE_NAMES
from goruntime.workload import run_config
from goruntime.lock import sum_lockstats
from goruntime.errors import GoRuntimeError
from goruntime.sizeclasses import normalize_version

# The P a Python thread holds inside `with rt.proc():`, kept in C thread-local
# storage so that each call finds it in a nanosecond.
cdef extern from *:
    """
    typedef struct { void *rt; void *m; int depth; } gr_proc_tls_t;
    static __thread gr_proc_tls_t gr_proc_tls;
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
cdef dict _MCACHE_MODE = {"lockfree": MCACHE_LOCKFREE, "locked": MCACHE_LOCKED, "shared": MCACHE_SHARED,
                          "none": MCACHE_NONE}
cdef dict _MCENTRAL_MODE = {"mutex": MCENTRAL_MUTEX, "spanset": MCENTRAL_SPANSET}
MCACHE_MODES = tuple(_MCACHE_MODE)
# The lock classes of lockstats(): all mcentrals, the mheap, the scheduler, the
# per-P mcache locks ("locked" mode) and the shared cache's lock ("shared" mode).
LOCK_CLASSES = ("mcentral", "mheap", "sched", "mcache", "sharedcache")
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

# Requests this large could not be mapped even as one reservation.
cdef object MAX_REQUEST = 1 << 46


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0:
        raise ValueError(f"negative size {size}")


def _check_addr(addr):
    if isinstance(addr, bool) or not isinstance(addr, int):
        raise TypeError(f"address must be an int, not {type(addr).__name__}")


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
        mheap_init(rt.heap, rt.sc, max_heap or 0)
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
        if mcache == "shared":
            rt.shared = <p_t*>alloc_aligned(sizeof(p_t))
            if rt.shared == NULL:
                raise MemoryError("cannot allocate the shared mcache")
            rt.shared.id = -1
            mcache_init(&rt.shared.mcache, rt.central, rt.heap, &rt.shared.pcache)
            self.shared_mcache = make_MCache(self, &rt.shared.mcache)
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
        free(rt.shared)
        trace_free(rt.traces_done)
        trace_free(rt.trace)
        free(rt)
        self.rt = NULL

    def _release_heap(self):
        cdef int i
        if self.heap is not None and self.heap.h != NULL:
            for i in range(num_mcaches(self.rt) if self._ready else 0):
                pagecache_flush(self.heap.h, &mcache_holder(self.rt, i).pcache)
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
        if size >= MAX_REQUEST:
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

    def _central_list(self, int spanclass, int which, str where):
        """Span views of one mcentral list, copied with the world stopped (nothing but C
        runs meanwhile) and built once it restarts; for MCentral's list properties."""
        cdef spanview_t* copies = NULL
        cdef size_t i, n = 0
        if not 0 <= spanclass < self.rt.sc.num_classes * 2:
            raise ValueError(f"span class {spanclass} out of range")
        self._begin_call()
        try:
            with nogil:
                pthread_mutex_lock(&self.rt.sched.gc_sema)
                stopTheWorld(self.rt, NULL)
                copies = mcentral_snapshot(self.rt.central[spanclass], which, &n)
                startTheWorld(self.rt, NULL)
                pthread_mutex_unlock(&self.rt.sched.gc_sema)
        finally:
            self._end_call()
        if copies == NULL:
            raise MemoryError("cannot copy the span list")
        try:
            return [make_span(&copies[i], where) for i in range(n)]
        finally:
            free(copies)

    def trace(self, path=None, *, events_per_m=1 << 18):
        """Records a timeline while the block runs: `with rt.trace("run.pftrace"): rt.run(...)`.

        Each M that starts inside the block records, in a buffer of its own (events_per_m
        events; later ones are counted as dropped), when it held a P, its refills, grows,
        large objects and contended lock waits; the collections record their stop-the-world
        and sweep. On exit the block's TraceResult is in the context object's .result, and
        with a path it is written as a Perfetto trace (ui.perfetto.dev opens it)."""
        if isinstance(events_per_m, bool) or not isinstance(events_per_m, int) or not 1 <= events_per_m <= 1 << 24:
            raise ValueError(f"events_per_m must be an int in 1..{1 << 24}, not {events_per_m!r}")
        self._check_open()
        return _Trace(self, path, events_per_m)

    cdef int _trace_start(self, uint32_t per_buf) except -1:
        if self.rt.trace != NULL:
            raise GoRuntimeError("a trace is already recording on this runtime")
        self.rt.trace = trace_new(per_buf)
        if self.rt.trace == NULL:
            raise MemoryError("cannot allocate the trace buffers")
        return 0

    cdef object _trace_stop(self):
        """Stops recording and returns the TraceResult. The buffers are copied with the
        world stopped; Ms still running keep writing to theirs, so those are freed only
        with the Runtime."""
        cdef trace_t* t = self.rt.trace
        cdef tracecopy_t copy
        cdef int err = 0
        self.rt.trace = NULL
        t.retired = self.rt.traces_done
        self.rt.traces_done = t
        if self.closed:
            raise GoRuntimeError("runtime closed")
        self._begin_call()
        try:
            with nogil:
                pthread_mutex_lock(&self.rt.sched.gc_sema)
                stopTheWorld(self.rt, NULL)
                err = trace_snapshot(t, &copy)
                startTheWorld(self.rt, NULL)
                pthread_mutex_unlock(&self.rt.sched.gc_sema)
        finally:
            self._end_call()
        if err:
            raise MemoryError("cannot copy the trace")
        try:
            events = trace_events(&copy)
        finally:
            trace_copy_free(&copy)
        return TraceResult(events, copy.dropped, self._lock_names(), dict(SITE_NAMES), t.start_ns)

    cdef dict _lock_names(self):
        """Each runtime mutex's address -> (lock class, name), for the trace's lock waits."""
        names = {<uintptr_t>&self.rt.heap.lock: ("mheap", "mheap"),
                 <uintptr_t>&self.rt.sched.lock: ("sched", "sched")}
        cdef int spc, i
        for spc in range(2, self.rt.sc.num_classes * 2):
            names[<uintptr_t>&self.rt.central[spc].lock] = ("mcentral", f"mcentral[{spc}]")
        for i in range(self.rt.gomaxprocs):
            names[<uintptr_t>&self.rt.allp[i].mcache.lock] = ("mcache", f"mcache[P{i}]")
        if self.rt.shared != NULL:
            names[<uintptr_t>&self.rt.shared.mcache.lock] = ("sharedcache", "shared mcache")
        return names

    def heapmap(self):
        """Where every page of the heap is now (goruntime.mstats.HeapMap): in a span held
        by an mcache, on an mcentral list, a large object, or free. Read with the world
        stopped; unlike memstats() it flushes no mcache."""
        cdef heapmap_t m
        cdef int err
        self._begin_call()
        try:
            with nogil:
                pthread_mutex_lock(&self.rt.sched.gc_sema)
                stopTheWorld(self.rt, NULL)
                err = heapmap_fill(self.rt, &m)
                startTheWorld(self.rt, NULL)
                pthread_mutex_unlock(&self.rt.sched.gc_sema)
        finally:
            self._end_call()
        if err:
            raise MemoryError("cannot copy the heap map")
        try:
            return heapmap_object(&m)
        finally:
            heapmap_free(&m)

    def span_of(self, addr):
        """A view (goruntime.mspan.Span) of the in-use span holding addr, or None."""
        self._check_open()
        return self.heap.span_of(addr)

    def memstats(self):
        """A consistent MemStats snapshot, read with the world stopped (as Go's ReadMemStats).
        Like Go 1.13's updatememstats it flushes every mcache first, so the spans they held
        go back to their mcentrals (the views of mcaches and mcentrals never flush)."""
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

    def __repr__(self):
        m = self.modes
        gogc = "off" if self.rt == NULL or self.rt.gogc < 0 else self.rt.gogc
        return (f"<Runtime GOMAXPROCS={len(self.ps)} sizeclasses={self.sizeclasses.version} GOGC={gogc} "
                f"mcache={m['mcache']} mcentral={m['mcentral']} pagecache={m['pagecache']}"
                + (" closed>" if self.closed else ">"))

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
