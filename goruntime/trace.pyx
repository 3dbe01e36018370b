# cython: language_level=3
# trace: the buffers behind rt.trace(), and the Perfetto writer; see trace.pxd.
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset
from goruntime.sys cimport (pthread_mutex_init, pthread_mutex_destroy, pthread_mutex_lock,
    pthread_mutex_unlock, nanotime)

# The buffer of the M running on this thread, if it records.
cdef extern from *:
    """
    static GR_THREAD_LOCAL void *gr_trace_buf;
    """
    void* tls_trace_buf "gr_trace_buf"


cdef tracebuf_t* trace_tls() noexcept nogil:
    return <tracebuf_t*>tls_trace_buf


cdef int _buf_init(tracebuf_t* b, int mid, uint32_t cap) noexcept nogil:
    memset(b, 0, sizeof(tracebuf_t))
    b.mid = mid
    b.cap = cap
    b.ev = <traceev_t*>malloc(cap * sizeof(traceev_t))
    return 0 if b.ev != NULL else -1


cdef trace_t* trace_new(uint32_t per_buf) noexcept nogil:
    cdef trace_t* t = <trace_t*>calloc(1, sizeof(trace_t))
    if t == NULL:
        return NULL
    pthread_mutex_init(&t.lock, NULL)
    t.per_buf = per_buf
    t.start_ns = nanotime()
    if _buf_init(&t.gc, -1, per_buf) != 0:
        trace_free(t)
        return NULL
    return t


cdef void trace_free(trace_t* t) noexcept nogil:
    """Frees t and the traces retired behind it."""
    cdef uint32_t i
    if t == NULL:
        return
    trace_free(<trace_t*>t.retired)
    for i in range(t.nbufs):
        free(t.bufs[i].ev)
        free(t.bufs[i])
    free(t.bufs)
    free(t.gc.ev)
    pthread_mutex_destroy(&t.lock)
    free(t)


cdef void trace_attach(trace_t* t, int mid) noexcept nogil:
    """Gives the calling M a buffer in t and makes it the thread's current one; an M
    that cannot have one (out of memory) records nothing."""
    global tls_trace_buf
    cdef tracebuf_t* b = <tracebuf_t*>malloc(sizeof(tracebuf_t))
    cdef tracebuf_t** grown
    if b == NULL or _buf_init(b, mid, t.per_buf) != 0:
        free(b)
        return
    pthread_mutex_lock(&t.lock)
    if t.nbufs == t.capbufs:
        grown = <tracebuf_t**>realloc(t.bufs, (2 * t.capbufs + 8) * sizeof(tracebuf_t*))
        if grown == NULL:
            pthread_mutex_unlock(&t.lock)
            free(b.ev)
            free(b)
            return
        t.bufs = grown
        t.capbufs = 2 * t.capbufs + 8
    t.bufs[t.nbufs] = b
    t.nbufs += 1
    pthread_mutex_unlock(&t.lock)
    tls_trace_buf = b


cdef void trace_detach() noexcept nogil:
    global tls_trace_buf
    tls_trace_buf = NULL


cdef int trace_snapshot(trace_t* t, tracecopy_t* out) noexcept nogil:
    cdef uint32_t i
    cdef size_t at = 0, k
    cdef tracebuf_t* b
    memset(out, 0, sizeof(tracecopy_t))
    out.n = t.gc.n
    out.dropped = t.gc.dropped
    for i in range(t.nbufs):
        out.n += t.bufs[i].n
        out.dropped += t.bufs[i].dropped
    out.ev = <traceev_t*>malloc((out.n + 1) * sizeof(traceev_t))
    out.mid = <int*>malloc((out.n + 1) * sizeof(int))
    if out.ev == NULL or out.mid == NULL:
        trace_copy_free(out)
        return -1
    for i in range(t.nbufs + 1):
        b = &t.gc if i == t.nbufs else t.bufs[i]
        memcpy(&out.ev[at], b.ev, b.n * sizeof(traceev_t))
        for k in range(b.n):
            out.mid[at + k] = b.mid
        at += b.n
    return 0


cdef object trace_events(tracecopy_t* c):
    """(M id, kind, start, end, arg, arg2) for each copied event; M id -1 is the collections'."""
    cdef size_t i
    return [(c.mid[i], c.ev[i].kind, c.ev[i].start, c.ev[i].end, c.ev[i].arg, c.ev[i].arg2)
            for i in range(c.n)]


cdef void trace_copy_free(tracecopy_t* c) noexcept nogil:
    free(c.ev)
    free(c.mid)
    c.ev = NULL
    c.mid = NULL


# -- Perfetto ---------------------------------------------------------------------------------

SLICE_NAMES = {EV_P: "holding a P", EV_REFILL: "refill (cacheSpan)", EV_GROW: "grow (mcentral from mheap)",
               EV_LARGE: "large object (mheap)", EV_STW: "stop the world", EV_SWEEP: "mark termination",
               EV_GC: "GC (world stopped)"}
COUNTERS = ("HeapAlloc", "HeapInuse", "NumGC")
GC_TRACK = -1                   # the M id of the collections' events
BGSWEEP_TRACK = -2              # the background sweeper's M (mgc.bgsweep)
_SEQ = 7


class TraceResult:
    """What one rt.trace() recorded: events as (M id, kind, start ns, end ns, arg, arg2),
    M id -1 for the collections; dropped, the events that did not fit a buffer."""

    def __init__(self, events, dropped, locks, sites, start_ns):
        self.events = events
        self.dropped = dropped
        self.locks = locks          # mutex address -> (lock class, name)
        self.sites = sites          # call site id -> name
        self.start_ns = start_ns

    def count(self, kind):
        return sum(1 for e in self.events if e[1] == kind)

    def lock_waits(self):
        """(lock class, site name) -> contended waits recorded."""
        out = {}
        for mid, kind, start, end, arg, arg2 in self.events:
            if kind == EV_LOCKWAIT:
                key = (self.locks.get(arg, ("?", hex(arg)))[0], self.sites.get(arg2, str(arg2)))
                out[key] = out.get(key, 0) + 1
        return out

    def __repr__(self):
        ms = sorted({e[0] for e in self.events if e[0] >= 0})
        return (f"<TraceResult {len(self.events):,} events on {len(ms)} Ms and the GC track, "
                f"{self.dropped} dropped>")

    def write_perfetto(self, path):
        """Writes a Perfetto protobuf trace (opens in ui.perfetto.dev): a track per M, a GC
        track and counter tracks, built with Perfetto's own Python package."""
        try:
            from perfetto.trace_builder.proto_builder import TraceProtoBuilder
            from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent
        except ImportError as e:
            raise ImportError("writing a trace needs Perfetto's Python package: pip install perfetto") from e
        builder = TraceProtoBuilder()

        def descriptor(uuid, name, counter=False):
            p = builder.add_packet()
            p.track_descriptor.uuid = uuid
            p.track_descriptor.name = name
            if counter:
                p.track_descriptor.counter.SetInParent()
            p.trusted_packet_sequence_id = _SEQ

        def slice_event(uuid, start, end, name, args):
            for ts, kind in ((start, TrackEvent.TYPE_SLICE_BEGIN), (end, TrackEvent.TYPE_SLICE_END)):
                p = builder.add_packet()
                p.timestamp = ts
                p.trusted_packet_sequence_id = _SEQ
                p.track_event.type = kind
                p.track_event.track_uuid = uuid
                if kind == TrackEvent.TYPE_SLICE_BEGIN:
                    p.track_event.name = name
                    for key, value in args.items():
                        a = p.track_event.debug_annotations.add()
                        a.name = key
                        if isinstance(value, int):
                            a.int_value = value
                        else:
                            a.string_value = str(value)

        mids = sorted({e[0] for e in self.events if e[0] >= 0})
        uuids = {mid: 1000 + mid for mid in mids}
        uuids[GC_TRACK] = 999
        uuids[BGSWEEP_TRACK] = 998
        for mid in mids:
            descriptor(uuids[mid], f"M{mid}")
        descriptor(uuids[GC_TRACK], "GC")
        if any(e[0] == BGSWEEP_TRACK for e in self.events):
            descriptor(uuids[BGSWEEP_TRACK], "background sweeper")
        counter_uuid = {name: 900 + i for i, name in enumerate(COUNTERS)}
        for name, uuid in counter_uuid.items():
            descriptor(uuid, name, counter=True)
        # Slices nest on a track only if sorted by start (longer first at a tie).
        for mid, kind, start, end, arg, arg2 in sorted(self.events, key=lambda e: (e[0], e[2], -e[3])):
            uuid = uuids[mid]
            if kind == EV_COUNTERS:
                for name, value in zip(COUNTERS, (arg, end, arg2)):
                    p = builder.add_packet()
                    p.timestamp = start
                    p.trusted_packet_sequence_id = _SEQ
                    p.track_event.type = TrackEvent.TYPE_COUNTER
                    p.track_event.track_uuid = counter_uuid[name]
                    p.track_event.counter_value = value
            elif kind == EV_LOCKWAIT:
                cls, lock_name = self.locks.get(arg, ("?", hex(arg)))
                slice_event(uuid, start, end, f"wait: {lock_name} lock",
                            {"lock": cls, "site": self.sites.get(arg2, str(arg2))})
            else:
                args = {EV_P: {"P": arg}, EV_REFILL: {"spanclass": arg}, EV_GROW: {"spanclass": arg},
                        EV_LARGE: {"bytes": arg}, EV_GC: {"gc": arg}}.get(kind, {})
                slice_event(uuid, start, end, SLICE_NAMES[kind], args)
        with open(path, "wb") as f:
            f.write(builder.serialize())
        return path
