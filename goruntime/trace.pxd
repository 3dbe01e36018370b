# trace: a timeline of what each M did on the runtime's slow paths, written as
# a Perfetto trace. Go counterpart: runtime/trace.go (traceEvent, the per-P
# traceBuf, traceGCSTWStart/Done, traceGCSweepStart/Done), much reduced: the
# model records slices (a start and an end) on the paths that are not the
# mcache hit, and its buffers are bounded (events past the end are counted,
# not kept).
#
# Recording is off unless a Runtime has a trace_t (rt.trace). An M attaches a
# buffer of its own when it starts (m_begin) and finds it through a
# thread-local pointer afterwards, so a hook off the fast path costs one call
# that returns NULL when nothing records. The hit path has no hook at all.
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from goruntime.sys cimport pthread_mutex_t

cpdef enum TraceEvent:
    EV_P = 0            # the M held a P (arg: P id)
    EV_REFILL = 1       # mcache.refill: a span from the mcentral (arg: span class)
    EV_GROW = 2         # mcentral.grow: a span from the mheap (arg: span class)
    EV_LARGE = 3        # a large object from the mheap (arg: bytes)
    EV_LOCKWAIT = 4     # waited for a contended lock (arg: the mutex's address, arg2: call site)
    EV_STW = 5          # stopping the world
    EV_SWEEP = 6        # mark termination: the mcaches flushed, the snapshot, sweepgen advanced
    EV_GC = 7           # a whole collection, stop to start (arg: its number)
    EV_COUNTERS = 8     # at a collection's end: arg HeapAlloc, end HeapInuse, arg2 NumGC

ctypedef struct traceev_t:
    uint64_t start
    uint64_t end
    uint64_t arg
    uint32_t arg2
    uint8_t kind

ctypedef struct tracebuf_t:
    int mid                     # the M's id; -1 for the collections' buffer
    uint32_t n
    uint32_t cap
    uint64_t dropped            # events past cap
    uint64_t p_since            # when the M took its P (0: holds none)
    uint32_t p_id
    traceev_t* ev

cdef struct trace_s:
    trace_s* retired            # the runtime's finished traces, freed with it
    pthread_mutex_t lock        # guards bufs / nbufs
    tracebuf_t** bufs
    uint32_t nbufs
    uint32_t capbufs
    uint32_t per_buf            # events per buffer
    uint64_t start_ns
    tracebuf_t gc               # written under the collection lock (gc_sema)

ctypedef trace_s trace_t

cdef trace_t* trace_new(uint32_t per_buf) noexcept nogil
cdef void trace_free(trace_t* t) noexcept nogil
cdef void trace_attach(trace_t* t, int mid) noexcept nogil
cdef void trace_detach() noexcept nogil
cdef tracebuf_t* trace_tls() noexcept nogil

# -DGORUNTIME_TRACE=0 compiles every hook out (the bench's comparison build).
cdef extern from *:
    """
    #ifndef GORUNTIME_TRACE
    #define GORUNTIME_TRACE 1
    #endif
    """
    bint TRACE_COMPILED "GORUNTIME_TRACE"


cdef inline tracebuf_t* trace_current() noexcept nogil:
    """The calling M's buffer, or NULL when it records nothing."""
    if TRACE_COMPILED:
        return trace_tls()
    return NULL


cdef inline void trace_put(tracebuf_t* b, uint8_t kind, uint64_t start, uint64_t end,
                           uint64_t arg, uint32_t arg2) noexcept nogil:
    cdef traceev_t* e
    if b.n >= b.cap:
        b.dropped += 1
        return
    e = &b.ev[b.n]
    e.kind = kind
    e.start = start
    e.end = end
    e.arg = arg
    e.arg2 = arg2
    b.n += 1


# All events of a trace, copied in one piece (with the world stopped) so that
# the Python objects are built afterwards.
ctypedef struct tracecopy_t:
    size_t n
    traceev_t* ev
    int* mid                    # the M of each event
    uint64_t dropped

cdef int trace_snapshot(trace_t* t, tracecopy_t* out) noexcept nogil
cdef object trace_events(tracecopy_t* c)
cdef void trace_copy_free(tracecopy_t* c) noexcept nogil
