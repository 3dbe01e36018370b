# cython: language_level=3
"""Stress kernels: nogil loops in M threads that hammer the allocator in the
patterns of mimalloc-bench's larson, xmalloc-test and mstress, and catch
corruption the moment it happens. No Go counterpart: Go's runtime tests its
allocator with unit tests and the GC's own checks; these kernels play
adversarial Go programs against the model. The Ms are started by
goruntime.workload's launch_ms (stress_main picks each slot's loop).

The state lives in *slots*: each slot has a live set (objects it owns), a tag
counter, a random generator and an inbox. A phase starts one M per chosen slot;
Ms end with the phase, slots (and the objects they hold) survive it, so the
next phase's Ms free objects allocated by threads that no longer exist.

- server (larson, mstress): allocate from a size mix towards the phase's live
  target; an evicted object is dropped or, with the hand-off probability,
  pushed to another running slot's inbox; drain the own inbox every step.
- producer / consumer (xmalloc-test): producers only allocate and push to
  consumers' inboxes; consumers only free what they receive.

Every object carries a tag (slot, scan bit, sequence) at its head and tail,
written at allocation and checked when the object is dropped, by whichever M
drops it; a dropped object is poisoned before free() and fresh memory must be
zero, so a slot handed out twice, bytes overwritten, or a missed zeroing are
caught at once.

Synchronisation: an inbox is Vyukov's bounded MPMC queue (a CAS on the
position, a release store of the cell's sequence after the object is written,
an acquire load before it is read), so the hand-off orders the producer's
writes before the consumer's tag check. A kernel reaches safepoint() before
each allocation and in every waiting loop, and blocks on nothing while it
holds a P (a waiting M with Ms queued for a P hands its P over).
"""
from libc.stdint cimport int64_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport malloc as c_malloc, free as c_free
from libc.string cimport memcpy, memset
from goruntime.sys cimport (nanotime, load32, store32, xadd32, load_relaxed32, load_relaxed64,
    store_relaxed64, load_acquire64, store_release64, cas64, alloc_aligned, sched_yield, cacheline_t)
from goruntime.sizeclasses cimport TINY_SIZE
from goruntime.runtime2 cimport m_t, runtime_t
from goruntime.proc cimport handoffp, safepoint, M
from goruntime.malloc cimport mallocgc, free_object, FREE_OK
from goruntime.mgc cimport gcTryStart
from goruntime.runtime cimport Runtime
from goruntime.workload cimport (KERNEL_OK, KERNEL_OOM, KERNEL_TAG, KERNEL_FREE,
    liveobj_t, sizemix_t, sizemix_pick, sizemix_init, sizemix_free, _rand, _rand_seed, _write_tag, _tag_ok, gate_t, kernel_begin, kernel_end,
    M_RUNNING, M_CLOSED, launch_ms, join_ms, wait_ms)
from goruntime.errors import GoRuntimeError
from goruntime.args import check_int, check_number, check_share, check_seconds, check_bool, check_seed


# Violations and stops beyond workload.pyx's KernelError (kept clear of its range).
cdef enum:
    KERNEL_NOTZERO = 16     # fresh memory was not zeroed
    KERNEL_INJECTED = 17    # the injected "error inside the workload"
    KERNEL_CLOSED = 18      # the runtime was closed under the kernel

cdef enum:
    ROLE_SERVER = 0
    ROLE_PRODUCER = 1
    ROLE_CONSUMER = 2

cdef enum:
    INJECT_NONE = 0
    INJECT_ERROR = 1        # the kernel stops half-way, abandoning what it holds
    INJECT_CORRUPT = 2      # one byte of a live object is overwritten (must be caught)

cdef enum:
    POISON = 0xDEADBEEFDEADBEEF
    NOSCAN_BIT = 47
    DRAIN_BATCH = 8

ctypedef struct cell_t:
    uint64_t seq
    liveobj_t obj

# Pushers (other Ms) write enq, the owner's M pops at deq: each on its own line.
ctypedef struct inbox_t:
    cacheline_t _enq_line
    uint64_t enq
    cacheline_t _deq_line
    uint64_t deq
    cacheline_t _cells_line
    uint64_t mask
    cell_t* cells

cdef struct stress_s

# One per slot, in an array: what the slot's M writes on every step starts a
# line of its own, and the inbox others push to starts another.
ctypedef struct slot_t:
    cacheline_t _align
    int index
    int role
    int active_idx              # this slot's place in cfg.active (servers)
    stress_s* cfg
    liveobj_t* live
    size_t nlive
    size_t cap
    uint64_t seq
    uint64_t rng
    # progress, stored relaxed by the slot's M and read by Python while it runs
    uint64_t allocs
    uint64_t frees
    # figures, read after the join
    uint64_t handed
    uint64_t received
    uint64_t gcs
    uint64_t ooms
    uint64_t waits
    uint64_t phase_allocs
    # the first violation seen by this slot's M
    int err
    int err_detail
    uintptr_t err_addr
    size_t err_size
    uint64_t err_expect
    uint64_t err_found
    inbox_t inbox

cdef struct stress_s:
    runtime_t* rt
    sizemix_t mix
    uint64_t noscan_below
    slot_t* slots
    # this phase
    int nactive
    int* active                 # slot ids of the Ms running (hand-off targets)
    int nconsumers
    int* consumers
    uint32_t nproducers
    size_t target               # servers: live objects to move towards
    size_t keep                 # servers: live objects kept when the phase ends
    uint64_t handoff_below
    uint64_t gc_below
    uint64_t ops                # per M; 0: run for duration_ns
    uint64_t duration_ns
    bint oom_ok                 # OOM: shed half the live set and collect, not fail
    int inject
    int inject_slot
    uint64_t inject_after
    gate_t gate
    # the phase protocol (atomics), read by every M at every step: off the line
    # of the gate, which every M writes as it starts. (Padding, not cacheline_t:
    # a stress_t lives inside a Python object, which is only 16-byte aligned.)
    char _pad[64]
    uint32_t stop               # wind down: finish the phase cleanly
    uint32_t abort              # a violation: every M leaves at once
    uint32_t done               # Ms (producers) past their last hand-off
    uint32_t finished           # Ms that returned

ctypedef stress_s stress_t


# --- the inbox: Vyukov's bounded MPMC queue ----------------------------------

cdef int inbox_init(inbox_t* q, size_t cap) noexcept nogil:
    cdef size_t n = 1, i
    while n < cap:
        n <<= 1
    q.cells = <cell_t*>alloc_aligned(n * sizeof(cell_t))
    if q.cells == NULL:
        return -1
    for i in range(n):
        q.cells[i].seq = i
    q.mask = n - 1
    q.enq = 0
    q.deq = 0
    return 0


cdef bint inbox_push(inbox_t* q, liveobj_t* obj) noexcept nogil:
    cdef uint64_t pos = load_relaxed64(&q.enq)
    cdef cell_t* c
    cdef int64_t dif
    while True:
        c = &q.cells[pos & q.mask]
        dif = <int64_t>(load_acquire64(&c.seq) - pos)
        if dif == 0:
            if cas64(&q.enq, pos, pos + 1):
                break
        elif dif < 0:
            return False        # full
        pos = load_relaxed64(&q.enq)
    c.obj = obj[0]
    store_release64(&c.seq, pos + 1)
    return True


cdef bint inbox_pop(inbox_t* q, liveobj_t* obj) noexcept nogil:
    cdef uint64_t pos = load_relaxed64(&q.deq)
    cdef cell_t* c
    cdef int64_t dif
    while True:
        c = &q.cells[pos & q.mask]
        dif = <int64_t>(load_acquire64(&c.seq) - (pos + 1))
        if dif == 0:
            if cas64(&q.deq, pos, pos + 1):
                break
        elif dif < 0:
            return False        # empty
        pos = load_relaxed64(&q.deq)
    obj[0] = c.obj
    store_release64(&c.seq, pos + q.mask + 1)
    return True


# --- objects -------------------------------------------------------------------

cdef inline bint _zeroed(uintptr_t x, size_t size, uint64_t* found) noexcept nogil:
    """Fresh memory reads zero at the head, the middle and the tail (where the
    tags and poison of earlier tenants of the slot were)."""
    cdef uint64_t w = 0
    if size < 8:
        memcpy(&w, <void*>x, size)
        found[0] = w
        return w == 0
    memcpy(&w, <void*>x, 8)
    if w == 0 and size >= 16:
        memcpy(&w, <void*>(x + size - 8), 8)
        if w == 0 and size >= 32:
            memcpy(&w, <void*>(x + (size // 2 & ~(<size_t>7))), 8)
    found[0] = w
    return w == 0


cdef inline void _fail(stress_t* cfg, slot_t* sl, int err, liveobj_t* o, uint64_t found, int detail) noexcept nogil:
    if sl.err == KERNEL_OK:
        sl.err = err
        sl.err_detail = detail
        sl.err_found = found
        if o == NULL:
            sl.err_size = <size_t>found
        else:
            sl.err_addr = o.addr
            sl.err_size = o.size
            sl.err_expect = o.tag
    store32(&cfg.abort, 1)


cdef inline bint _drop(stress_t* cfg, slot_t* sl, m_t* mp, liveobj_t* o) noexcept nogil:
    """Checks an object's tag, poisons it and frees it; False on a violation.
    The caller holds a P."""
    cdef uint64_t found = 0
    cdef int r
    if not _tag_ok(o, &found):
        _fail(cfg, sl, KERNEL_TAG, o, found, 0)
        return False
    _write_tag(o.addr, o.size, POISON)
    r = free_object(cfg.rt, &mp.p.mcache, o.addr)
    if r != FREE_OK:
        _fail(cfg, sl, KERNEL_FREE, o, 0, r)
        return False
    mp.frees += 1
    store_relaxed64(&sl.frees, sl.frees + 1)
    return True


cdef inline void _maybe_gc(stress_t* cfg, slot_t* sl, m_t* mp, bint triggered) noexcept nogil:
    """A collection when the heap reached its goal, or at a random moment."""
    if not triggered and not (cfg.gc_below and (_rand(&sl.rng) >> 32) < cfg.gc_below):
        return
    if mp.p != NULL and gcTryStart(cfg.rt, mp.p):
        mp.gcs += 1
        sl.gcs += 1


cdef bint _shed(stress_t* cfg, slot_t* sl, m_t* mp) noexcept nogil:
    """Out of memory with oom_ok: drop half the live set and collect."""
    cdef size_t keep = sl.nlive // 2
    sl.ooms += 1
    if sl.nlive == 0:
        sched_yield()           # others hold the heap: let them shed first
    while sl.nlive > keep:
        sl.nlive -= 1
        if not _drop(cfg, sl, mp, &sl.live[sl.nlive]):
            return False
    if gcTryStart(cfg.rt, mp.p):
        mp.gcs += 1
        sl.gcs += 1
    return True


cdef int _alloc(stress_t* cfg, slot_t* sl, m_t* mp) noexcept nogil:
    """Allocates one tagged object into the live set; 1 done, 0 out of memory
    (shed, oom_ok), -1 violation or injected stop. The caller holds a P and
    has passed a safe point; the live set has room."""
    cdef size_t size = sizemix_pick(&cfg.mix, &sl.rng)
    cdef bint noscan = (_rand(&sl.rng) >> 32) < cfg.noscan_below
    cdef bint gc = False
    cdef uint64_t found = 0
    cdef liveobj_t* o
    cdef uintptr_t x = mallocgc(cfg.rt, mp.p, size, noscan, &gc)
    if x == 0:
        if cfg.oom_ok:
            return 0 if _shed(cfg, sl, mp) else -1
        _fail(cfg, sl, KERNEL_OOM, NULL, size, 0)
        return -1
    o = &sl.live[sl.nlive]
    o.addr = x
    o.size = size
    if not _zeroed(x, size, &found):
        o.tag = 0
        _fail(cfg, sl, KERNEL_NOTZERO, o, found, 0)
        return -1
    sl.seq += 1
    o.tag = ((<uint64_t>(sl.index + 1) << 48) | (<uint64_t>noscan << NOSCAN_BIT)
             | (sl.seq & ((<uint64_t>1 << NOSCAN_BIT) - 1)))
    _write_tag(x, size, o.tag)
    sl.nlive += 1
    mp.allocs += 1
    mp.bytes += size
    sl.phase_allocs += 1
    store_relaxed64(&sl.allocs, sl.allocs + 1)
    if cfg.inject != INJECT_NONE and sl.index == cfg.inject_slot and sl.phase_allocs == cfg.inject_after:
        if cfg.inject == INJECT_ERROR:
            _fail(cfg, sl, KERNEL_INJECTED, o, 0, 0)
            return -1
        # Overwrite a byte of a random live object, as a stray write would;
        # the M that drops it (maybe another one) must notice.
        o = &sl.live[_rand(&sl.rng) % sl.nlive]
        (<unsigned char*>o.addr)[0] ^= 0x5A
    _maybe_gc(cfg, sl, mp, gc)
    return 1


cdef int _drain(stress_t* cfg, slot_t* sl, m_t* mp, size_t limit) noexcept nogil:
    """Drops up to limit objects from the inbox; how many, or -1 on a violation."""
    cdef liveobj_t o
    cdef int n = 0
    while limit == 0 or <size_t>n < limit:
        if not inbox_pop(&sl.inbox, &o):
            break
        sl.received += 1
        if not _drop(cfg, sl, mp, &o):
            return -1
        n += 1
    return n


cdef void _drain_until_done(stress_t* cfg, slot_t* sl, m_t* mp, uint32_t ndone, size_t batch) noexcept nogil:
    """Frees what reaches the slot's inbox, `batch` objects a turn (0: all there
    are), until `ndone` Ms have counted themselves done and nothing more can
    arrive; then the last drain. A safe point every turn: a steady stream of
    objects to free must not hold off a stop-the-world."""
    cdef int r
    while not load_relaxed32(&cfg.abort):
        if not safepoint(cfg.rt, mp):
            sl.err = KERNEL_CLOSED
            return
        if load32(&cfg.done) == ndone:
            _drain(cfg, sl, mp, 0)
            return
        r = _drain(cfg, sl, mp, batch)
        if r < 0:
            return
        if r == 0 and not _wait_step(cfg.rt, mp, sl):
            sl.err = KERNEL_CLOSED
            return


cdef inline int _pick_other(stress_t* cfg, slot_t* sl) noexcept nogil:
    """A random running server slot other than sl, or -1."""
    if cfg.nactive < 2:
        return -1
    return cfg.active[(sl.active_idx + 1 + <int>(_rand(&sl.rng) % <uint64_t>(cfg.nactive - 1))) % cfg.nactive]


cdef bint _evict(stress_t* cfg, slot_t* sl, m_t* mp, bint may_hand) noexcept nogil:
    """Takes a random object out of the live set and drops it or hands it over."""
    cdef size_t i = _rand(&sl.rng) % sl.nlive
    cdef liveobj_t o = sl.live[i]
    cdef int other
    sl.nlive -= 1
    sl.live[i] = sl.live[sl.nlive]
    if may_hand and cfg.handoff_below and (_rand(&sl.rng) >> 32) < cfg.handoff_below:
        other = _pick_other(cfg, sl)
        if other >= 0 and inbox_push(&cfg.slots[other].inbox, &o):
            sl.handed += 1
            return True
    return _drop(cfg, sl, mp, &o)


cdef inline bint _wait_step(runtime_t* rt, m_t* mp, slot_t* sl) noexcept nogil:
    """One turn of a waiting loop: a safe point, then the P to an M queued for
    one (it may be the M we wait for), else a yield. False once closed."""
    sl.waits += 1
    if not safepoint(rt, mp):
        return False
    if load_relaxed32(&rt.sched.nmwaiting) != 0:
        handoffp(rt, mp)
        return mp.p != NULL
    sched_yield()
    return True


cdef inline bint _should_stop(stress_t* cfg, m_t* mp, slot_t* sl, uint64_t n, uint64_t deadline) noexcept nogil:
    if load_relaxed32(&cfg.abort) or load_relaxed32(&cfg.stop):
        return True
    if cfg.ops:
        return n >= cfg.ops
    return (n & 31) == 0 and nanotime() >= deadline


cdef bint _kernel_start(stress_t* cfg, m_t* mp, slot_t* sl, uint64_t* deadline) noexcept nogil:
    """kernel_begin, plus the phase's bookkeeping. False: the kernel returns at once."""
    cdef int r = kernel_begin(&cfg.gate, cfg.rt, mp)
    if r != M_RUNNING:
        if r == M_CLOSED:
            sl.err = KERNEL_CLOSED
        xadd32(&cfg.finished, 1)
        return False
    deadline[0] = mp.start_ns + cfg.duration_ns
    return True


cdef void _leave(stress_t* cfg, m_t* mp) noexcept nogil:
    kernel_end(cfg.rt, mp)
    xadd32(&cfg.finished, 1)


cdef void* server_main(void* arg) noexcept nogil:
    """larson / mstress: move the live set towards the target, evicting (and
    handing over) as it goes; at the end keep `keep` objects and drain the inbox
    until every M of the phase is past its last hand-off."""
    cdef m_t* mp = <m_t*>arg
    cdef slot_t* sl = <slot_t*>mp.work
    cdef stress_t* cfg = sl.cfg
    cdef runtime_t* rt = cfg.rt
    cdef uint64_t n = 0, deadline
    if not _kernel_start(cfg, mp, sl, &deadline):
        return NULL
    while not _should_stop(cfg, mp, sl, n, deadline):
        n += 1
        if not safepoint(rt, mp):
            sl.err = KERNEL_CLOSED
            break
        if _drain(cfg, sl, mp, DRAIN_BATCH) < 0:
            break
        if sl.nlive > cfg.target:
            if not _evict(cfg, sl, mp, True):
                break
            continue
        if sl.nlive == cfg.target and sl.nlive > 0:
            if not _evict(cfg, sl, mp, True):
                break
        elif sl.nlive == 0 and cfg.target == 0:
            break               # nothing left to do but drain
        if _alloc(cfg, sl, mp) < 0:
            break
    if mp.p != NULL and not load_relaxed32(&cfg.abort):
        # The phase ends: trim to `keep` (no more hand-offs), then drain until
        # everyone has stopped handing over.
        while sl.nlive > cfg.keep:
            sl.nlive -= 1
            if not _drop(cfg, sl, mp, &sl.live[sl.nlive]):
                break
        xadd32(&cfg.done, 1)
        _drain_until_done(cfg, sl, mp, cfg.nactive, 0)
    _leave(cfg, mp)
    return NULL


cdef bint _push_any(stress_t* cfg, slot_t* sl) noexcept nogil:
    """Hands the newest backlog object to some consumer; False if all are full."""
    cdef int start = <int>(_rand(&sl.rng) % cfg.nconsumers), i
    for i in range(cfg.nconsumers):
        if inbox_push(&cfg.slots[cfg.consumers[(start + i) % cfg.nconsumers]].inbox,
                      &sl.live[sl.nlive - 1]):
            sl.nlive -= 1
            sl.handed += 1
            return True
    return False


cdef void* producer_main(void* arg) noexcept nogil:
    """xmalloc-test's allocating side: allocate into a small backlog and hand
    every object to a consumer; never free."""
    cdef m_t* mp = <m_t*>arg
    cdef slot_t* sl = <slot_t*>mp.work
    cdef stress_t* cfg = sl.cfg
    cdef runtime_t* rt = cfg.rt
    cdef uint64_t n = 0, deadline
    cdef size_t backlog = cfg.target if 0 < cfg.target <= sl.cap else sl.cap
    cdef int r
    if not _kernel_start(cfg, mp, sl, &deadline):
        return NULL
    while not _should_stop(cfg, mp, sl, n, deadline):
        n += 1
        if not safepoint(rt, mp):
            sl.err = KERNEL_CLOSED
            break
        if sl.nlive < backlog:
            r = _alloc(cfg, sl, mp)
            if r < 0:
                break
            if r == 0:
                _maybe_gc(cfg, sl, mp, True)
        while sl.nlive and _push_any(cfg, sl):
            pass
        if sl.nlive == backlog and not _wait_step(rt, mp, sl):
            sl.err = KERNEL_CLOSED
            break
    # Hand over the rest of the backlog, then tell the consumers.
    while mp.p != NULL and sl.nlive and not load_relaxed32(&cfg.abort):
        if not _push_any(cfg, sl) and not _wait_step(rt, mp, sl):
            sl.err = KERNEL_CLOSED
            break
    if mp.p != NULL and not load_relaxed32(&cfg.abort):
        xadd32(&cfg.done, 1)
    _leave(cfg, mp)
    return NULL


cdef void* consumer_main(void* arg) noexcept nogil:
    """xmalloc-test's freeing side: free what arrives until every producer is done."""
    cdef m_t* mp = <m_t*>arg
    cdef slot_t* sl = <slot_t*>mp.work
    cdef stress_t* cfg = sl.cfg
    cdef uint64_t deadline
    if not _kernel_start(cfg, mp, sl, &deadline):
        return NULL
    _drain_until_done(cfg, sl, mp, cfg.nproducers, 64)
    _leave(cfg, mp)
    return NULL


cdef void* stress_main(void* arg) noexcept nogil:
    """The kernel of every M a phase starts: its slot's role picks the loop."""
    cdef slot_t* sl = <slot_t*>(<m_t*>arg).work
    if sl.role == ROLE_PRODUCER:
        return producer_main(arg)
    if sl.role == ROLE_CONSUMER:
        return consumer_main(arg)
    return server_main(arg)


# --- the Python side -------------------------------------------------------------

def slot_layout():
    """sizeof of a slot and offsets in it (tests: slots and their inbox ends on
    lines of their own)."""
    cdef slot_t sl
    cdef size_t base = <size_t>&sl
    return {"slot_t": sizeof(slot_t), "inbox.enq": <size_t>&sl.inbox.enq - base,
            "inbox.deq": <size_t>&sl.inbox.deq - base, "inbox.mask": <size_t>&sl.inbox.mask - base,
            "err_found_end": <size_t>&sl.err_found - base + 8}

ROLES = ("server", "producer", "consumer")    # in ROLE_* order

# What the kernels' error codes mean, for reports.
ERRORS = {KERNEL_OOM: "oom", KERNEL_TAG: "tag", KERNEL_FREE: "free", KERNEL_NOTZERO: "notzero",
          KERNEL_INJECTED: "injected", KERNEL_CLOSED: "closed"}
FREE_RESULTS = {1: "bad pointer", 2: "double free"}

# The default size mix: (lo, hi, weight); every boundary of the allocator's
# paths appears on its own: tiny (noscan < 16 B), exactly 16 B, exactly 32 KiB
# (the largest small object) and 32 KiB + 1 (the smallest large one).
DEFAULT_MIX = (
    (1, 15, 18.0),
    (16, 16, 10.0),
    (17, 256, 30.0),
    (257, 2048, 15.0),
    (2049, 32767, 5.0),
    (32768, 32768, 2.0),
    (32769, 32769, 2.0),
    (32770, 131072, 1.0),
    (131073, 1 << 20, 0.05),
)


def _check_mix(mix):
    """A size mix: (lo, hi, weight) ranges, 1 <= lo <= hi <= 1 GiB, weights >= 0 and not all 0."""
    if isinstance(mix, (str, bytes)) or not hasattr(mix, "__iter__"):
        raise TypeError(f"mix must be a list of (lo, hi, weight) ranges, not {type(mix).__name__}")
    out = []
    for r in mix:
        if isinstance(r, (str, bytes)) or not hasattr(r, "__len__") or len(r) != 3:
            raise TypeError(f"mix: each range is a (lo, hi, weight) tuple, not {r!r}")
        lo = check_int("mix lo", r[0], 1, 1 << 30)
        hi = check_int("mix hi", r[1], lo, 1 << 30)
        out.append((lo, hi, check_number("mix weight", r[2], 0.0)))
    if not out or sum(w for *_, w in out) <= 0:
        raise ValueError(f"bad size mix {mix!r}: give at least one range, weights not all 0")
    return out


def heap_objects(objs, packs):
    """How many heap objects the objects (addr, size, tag, ...) are after a
    collection: live tiny objects sharing a 16 B block are one, whichever Stress
    holds them (every M packs into its P's block, or in the "shared" mode into
    the one block of the shared cache). packs: the runtime has a tiny allocator
    (not Runtime(mcache="none"))."""
    tiny_blocks = set()
    other = 0
    for o in objs:
        addr, size, tag = o[0], o[1], o[2]
        if packs and size < TINY_SIZE and (tag >> NOSCAN_BIT) & 1:
            tiny_blocks.add(addr & ~(TINY_SIZE - 1))
        else:
            other += 1
    return other + len(tiny_blocks)


cdef class Stress:
    """Slots and their objects on one Runtime, and the phases that run Ms over them.

    Stress(rt, nslots, cap=..., inbox=..., mix=DEFAULT_MIX, noscan=0.5, seed=0).
    start(...) launches one M per chosen slot and returns at once; poll
    finished(), then join(). Between phases no M runs and every object the
    slots hold is known (held(), objects(), release_all()).
    """
    cdef Runtime rt
    cdef stress_t cfg
    cdef slot_t* slots
    cdef list workers
    cdef int* active
    cdef int* consumers
    cdef bint running
    cdef readonly int nslots
    cdef readonly uint64_t phases
    cdef readonly object seed

    def __cinit__(self, Runtime rt not None, nslots, *, cap=4096, inbox=1024,
                  mix=DEFAULT_MIX, noscan=0.5, seed=0):
        cdef int i
        self.slots = NULL
        self.active = NULL
        self.consumers = NULL
        self.workers = []
        self.running = False
        memset(&self.cfg, 0, sizeof(stress_t))
        # Every argument before any C memory.
        nslots = check_int("nslots", nslots, 1, 4096)
        cap = check_int("cap", cap, 1, 1 << 24)
        inbox = check_int("inbox", inbox, 1, 1 << 24)
        noscan = check_share("noscan", noscan)
        seed = check_int("seed", seed)
        ranges = _check_mix(mix)
        rt._check_call()
        sizemix_init(&self.cfg.mix, ranges)
        self.rt = rt
        self.seed = seed
        self.nslots = nslots
        self.cfg.rt = rt.rt
        self.cfg.noscan_below = <uint64_t>(noscan * 4294967296.0)
        self.slots = <slot_t*>alloc_aligned(nslots * sizeof(slot_t))
        self.active = <int*>c_malloc(nslots * sizeof(int))
        self.consumers = <int*>c_malloc(nslots * sizeof(int))
        if self.slots == NULL or self.active == NULL or self.consumers == NULL:
            raise MemoryError()
        self.cfg.slots = self.slots
        self.cfg.active = self.active
        self.cfg.consumers = self.consumers
        for i in range(nslots):
            self.slots[i].index = i
            self.slots[i].cfg = &self.cfg
            self.slots[i].cap = cap
            self.slots[i].rng = _rand_seed(seed, i)
            self.slots[i].live = <liveobj_t*>c_malloc(cap * sizeof(liveobj_t))
            if self.slots[i].live == NULL or inbox_init(&self.slots[i].inbox, inbox) != 0:
                raise MemoryError()

    def __dealloc__(self):
        cdef int i
        if self.running:
            store32(&self.cfg.abort, 1)
            join_ms(self.workers)
        if self.slots != NULL:
            for i in range(self.nslots):
                c_free(self.slots[i].live)
                c_free(self.slots[i].inbox.cells)
            c_free(self.slots)
        c_free(self.active)
        c_free(self.consumers)
        sizemix_free(&self.cfg.mix)

    def start(self, slots, *, roles=None, target=0, keep=None, handoff=0.0, gc_rate=0.0,
              duration=None, ops=None, oom_ok=False, inject=None, inject_slot=None, inject_after=None):
        """Starts one M per slot in `slots` (roles: one Role each, default servers).

        Servers move their live set towards `target` objects, evicting a random
        object per new one and handing it to another running slot with
        probability `handoff`; they keep `keep` (default target) when the phase
        ends. Producers need at least one consumer among the slots. gc_rate: the
        chance per allocation that the M starts a collection. The phase runs
        `duration` seconds or `ops` steps per M. inject: "error" (stop half-way)
        or "corrupt" (overwrite a live object), in slot inject_slot (default 0)
        after inject_after (default 0) allocations of this phase.
        """
        cdef int nprod = 0, ncons = 0
        cdef stress_t* cfg
        cdef slot_t* sl
        if self.running:
            raise GoRuntimeError("a phase is already running")
        # Every argument is checked and converted before the phase is touched.
        if isinstance(slots, (str, bytes)) or not hasattr(slots, "__iter__"):
            raise TypeError(f"slots must be a list of slot ids, not {type(slots).__name__}")
        slots = [check_int("slots", s, 0, self.nslots - 1) for s in slots]
        if not slots or len(set(slots)) != len(slots):
            raise ValueError(f"slots must be distinct slot ids in 0..{self.nslots - 1}")
        if roles is None:
            roles = ["server"] * len(slots)
        if isinstance(roles, str) or len(roles) != len(slots) or not all(r in ROLES for r in roles):
            raise ValueError(f"one role per slot, each one of {ROLES}")
        roles = [ROLES.index(r) for r in roles]
        nprod = roles.count(ROLE_PRODUCER)
        ncons = roles.count(ROLE_CONSUMER)
        if nprod and not ncons:
            raise ValueError("producers need a consumer")
        if nprod and roles.count(ROLE_SERVER):
            # The phase protocol counts producers; servers and producers do not mix.
            raise ValueError("a phase runs servers, or producers and consumers")
        if (duration is None) == (ops is None):
            raise ValueError("give duration or ops")
        if ops is not None:
            ops = check_int("ops", ops, 1, 1 << 62)
        else:
            duration = check_seconds("duration", duration)
        cap = min(self.slots[s].cap for s in slots)
        target = check_int("target", target, 0, cap)
        keep = target if keep is None else check_int("keep", keep, 0, cap)
        handoff = check_share("handoff", handoff)
        gc_rate = check_share("gc_rate", gc_rate)
        oom_ok = check_bool("oom_ok", oom_ok)
        kinds = {None: INJECT_NONE, "error": INJECT_ERROR, "corrupt": INJECT_CORRUPT}
        if inject not in kinds:
            raise ValueError(f"inject must be one of {sorted(k for k in kinds if k)}")
        if inject is None and (inject_slot is not None or inject_after is not None):
            raise ValueError("inject_slot and inject_after go with inject")
        inject_slot = check_int("inject_slot", 0 if inject_slot is None else inject_slot, 0, self.nslots - 1)
        inject_after = check_int("inject_after", 0 if inject_after is None else inject_after, 0, 1 << 62)
        self.rt._check_call()
        cfg = &self.cfg
        cfg.nactive = 0
        cfg.nconsumers = 0
        for s, role in zip(slots, roles):
            sl = &self.slots[s]
            sl.role = role
            sl.phase_allocs = sl.handed = sl.received = sl.gcs = sl.ooms = sl.waits = 0
            if role == ROLE_SERVER:
                self.slots[s].active_idx = cfg.nactive
                self.active[cfg.nactive] = s
                cfg.nactive += 1
            elif role == ROLE_CONSUMER:
                self.consumers[cfg.nconsumers] = s
                cfg.nconsumers += 1
        cfg.nproducers = nprod
        cfg.target = target
        cfg.keep = keep
        cfg.handoff_below = <uint64_t>(handoff * 4294967296.0)
        cfg.gc_below = <uint64_t>(gc_rate * 4294967296.0)
        cfg.ops = ops or 0
        cfg.duration_ns = <uint64_t>(duration * 1e9) if duration is not None else 0
        cfg.oom_ok = oom_ok
        cfg.inject = kinds[inject]
        cfg.inject_slot = inject_slot
        cfg.inject_after = inject_after
        cfg.stop = cfg.abort = cfg.done = cfg.finished = 0
        self.workers = []
        # M ids are slot ids: join() finds each M's slot by it.
        self.workers = launch_ms(self.rt.rt, &cfg.gate, slots, stress_main, self.slots, sizeof(slot_t))
        self.running = True
        self.phases += 1

    def finished(self):
        """True when every M of the phase has returned (join() will not wait)."""
        return not self.running or load32(&self.cfg.finished) >= <uint32_t>len(self.workers)

    def stop(self):
        """Asks the running phase to wind down cleanly (as if its time were up)."""
        store32(&self.cfg.stop, 1)

    def abort(self):
        """Makes every M leave at once, abandoning what it holds."""
        store32(&self.cfg.abort, 1)

    def join(self):
        """Waits for the phase's Ms; returns their stats (M.stats() plus the slot's figures).

        Ctrl-C while it waits winds the phase down as stop() does; the Ms are
        joined and the KeyboardInterrupt is raised then."""
        cdef M m
        cdef slot_t* sl
        if not self.running:
            return []
        try:
            wait_ms(self.workers, &self.cfg.stop)
        finally:
            join_ms(self.workers)
            self.running = False
        stats = []
        for m in self.workers:
            st = m.stats()
            sl = &self.slots[m.m.id]
            st.update(slot=sl.index, role=ROLES[sl.role], phase_allocs=sl.phase_allocs,
                      handed=sl.handed, received=sl.received, slot_gcs=sl.gcs, ooms=sl.ooms,
                      waits=sl.waits)
            stats.append(st)
        return stats

    def errors(self):
        """The violations recorded in the slots, as dicts; call between phases."""
        cdef slot_t* sl
        cdef int i
        if self.running:
            raise GoRuntimeError("a phase is running")
        out = []
        for i in range(self.nslots):
            sl = &self.slots[i]
            if sl.err != KERNEL_OK:
                out.append({"slot": i, "kind": ERRORS.get(sl.err, str(sl.err)), "addr": sl.err_addr,
                            "size": sl.err_size, "expect": sl.err_expect, "found": sl.err_found,
                            "free_result": FREE_RESULTS.get(sl.err_detail, sl.err_detail)})
        return out

    def clear_errors(self):
        cdef int i
        for i in range(self.nslots):
            self.slots[i].err = KERNEL_OK

    def progress(self):
        """(allocations, frees) so far over all slots; safe while Ms run."""
        cdef uint64_t a = 0, f = 0
        cdef int i
        for i in range(self.nslots):
            a += load_relaxed64(&self.slots[i].allocs)
            f += load_relaxed64(&self.slots[i].frees)
        return a, f

    def _objects(self):
        cdef int i
        cdef size_t j
        cdef slot_t* sl
        cdef liveobj_t o
        if self.running:
            raise GoRuntimeError("a phase is running")
        objs = []
        for i in range(self.nslots):
            sl = &self.slots[i]
            for j in range(sl.nlive):
                objs.append((sl.live[j].addr, sl.live[j].size, sl.live[j].tag, i, "live"))
            # Inboxes hold objects only after an aborted phase.
            j = load_relaxed64(&sl.inbox.deq)
            while j != load_relaxed64(&sl.inbox.enq):
                o = sl.inbox.cells[j & sl.inbox.mask].obj
                objs.append((o.addr, o.size, o.tag, i, "inbox"))
                j += 1
        return objs

    def objects(self):
        """Every object the slots hold: (addr, size, tag, slot, where)."""
        return self._objects()

    def held(self):
        """(objects, heap objects): what the slots hold, and how many heap
        objects that is after a collection (live tiny objects sharing a 16 B
        block are one heap object, as in Go's HeapObjects)."""
        objs = self._objects()
        return len(objs), heap_objects(objs, self.rt.modes["mcache"] != "none")

    def release_all(self):
        """Checks and frees every object the slots hold, from this thread
        through the Python API (rt.free); returns how many. Raises
        GoRuntimeError on a broken tag."""
        cdef liveobj_t o
        cdef uint64_t found = 0
        cdef int i
        objs = self._objects()
        with self.rt.proc():
            for addr, size, tag, slot, where in objs:
                o.addr = addr
                o.size = size
                o.tag = tag
                if not _tag_ok(&o, &found):
                    raise GoRuntimeError(f"slot {slot} ({where}): object {addr:#x} ({size} B) was overwritten "
                                         f"while live: tag {tag:#x} became {found:#x}")
                _write_tag(o.addr, o.size, POISON)
                self.rt.free(addr)
        for i in range(self.nslots):
            self.slots[i].nlive = 0
            while inbox_pop(&self.slots[i].inbox, &o):
                pass
        return len(objs)
