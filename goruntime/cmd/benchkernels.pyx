# cython: language_level=3
"""nogil kernels for `make bench`, and the plain C loops they are measured against.

Each kernel runs on M threads released together by a start gate (launch_ms)
and times only the loop under test (a span's worth of allocations at a time),
so that a refill or a gate never lands inside a timed region.

- mcache_hit: the mallocgc hit path (runtime/malloc_test.go's
  BenchmarkMalloc8/16 measure it in Go); c_span_floor is its floor, Go's
  nextFreeFast written as bare C, with the span's state in registers or (as a
  per-object call must keep it) in memory.
- c_churn: the baseline of the run() churn rows: C threads, each with a private
  live set, churning glibc malloc/free over the same size mix, with the same
  tags written and checked.
- c_fresh_touch: the baseline of the GC-off row: C threads writing objects into
  fresh mmap'd memory, so that the kernel's page faults do the work.
- batch_churn: the model's side of the Go row: each M allocates a batch of
  objects, then frees them all, and again (tools/gochurn is Go's side).
No Go counterpart in the runtime itself."""
import os
import time
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.string cimport memset
from libc.stdlib cimport malloc as c_malloc, free as c_free
from goruntime.sys cimport (nanotime, thread_cputime, cacheline_t, alloc_aligned, xadd32, load_acquire32,
    store_release32, load32, sched_yield, pthread_t, pthread_create, pthread_join, mmap, munmap,
    PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE, MAP_FAILED)
from goruntime.sizeclasses cimport MAX_SMALL_SIZE
from goruntime.sizeclasses cimport size_to_class, makeSpanClass
from goruntime.mspan cimport mspan_t
from goruntime.runtime2 cimport m_t, p_t, runtime_t
from goruntime.malloc cimport mallocgc, free_object, FREE_OK
from goruntime.mgc cimport gcTryStart
from goruntime.proc cimport safepoint
from goruntime.runtime cimport Runtime
from goruntime.workload cimport (gate_t, kernel_begin, kernel_end, M_RUNNING, launch_ms, join_ms,
    liveobj_t, sizemix_t, sizemix_pick, sizemix_init, sizemix_free, _rand, _rand_seed, _write_tag,
    _tag_ok)
from goruntime.args import check_bool, check_int
from goruntime.errors import GoRuntimeError

cdef extern from *:
    """
    /* The floor: Go's span allocation written as a plain C loop over the same
     * memory: allocCache/ctz, freeindex, a bitmap refill every 64 objects, one
     * word written per object. Returns the nanoseconds spent allocating. */
    #include <stdint.h>
    #include <time.h>
    static uint64_t gr_bench_now(void) {
        struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    static uint64_t gr_c_span_loop(uintptr_t mem, uint64_t nspans, uint32_t elemsize, uint64_t *ops) {
        uint32_t nelems = 8192 / elemsize;
        uint64_t total = 0, done = 0;
        for (uint64_t sp = 0; sp < nspans; sp++) {
            uintptr_t base = mem + sp * 8192;
            uint64_t allocBits[16] = {0};
            uint64_t allocCache = ~allocBits[0];
            uint32_t freeindex = 0;
            uint64_t t0 = gr_bench_now();
            for (;;) {
                int bit = allocCache ? __builtin_ctzll(allocCache) : 64;
                if (bit == 64) {
                    freeindex = (freeindex + 64) & ~63u;
                    if (freeindex >= nelems) break;
                    allocCache = ~allocBits[freeindex >> 6];
                    continue;
                }
                uint32_t result = freeindex + (uint32_t)bit;
                if (result >= nelems) break;
                allocCache = (allocCache >> bit) >> 1;
                freeindex = result + 1;
                if ((freeindex & 63) == 0 && freeindex != nelems)
                    allocCache = ~allocBits[freeindex >> 6];
                *(volatile uint64_t *)(base + (uintptr_t)result * elemsize) = result;
                done++;
            }
            total += gr_bench_now() - t0;
        }
        *ops = done;
        return total;
    }
    /* The same loop with the span's state in memory, as an allocator called
     * once per object must keep it: allocCache, freeindex and allocCount live in
     * a struct that every object's store might alias, so each allocation loads
     * them and stores them back (the model's nextFreeFast does just that). */
    struct gr_cspan { uint64_t allocCache; uint32_t freeindex, nelems, allocCount; uintptr_t base, elemsize; };
    static inline uintptr_t gr_cspan_alloc(struct gr_cspan *s) {
        int bit = s->allocCache ? __builtin_ctzll(s->allocCache) : 64;
        if (bit < 64) {
            uint32_t result = s->freeindex + (uint32_t)bit;
            if (result < s->nelems) {
                uint32_t freeidx = result + 1;
                if ((freeidx & 63) == 0 && freeidx != s->nelems)
                    return 0;
                s->allocCache = (s->allocCache >> 1) >> bit;
                s->freeindex = freeidx;
                s->allocCount++;
                return s->base + (uintptr_t)result * s->elemsize;
            }
        }
        return 0;
    }
    static uint64_t gr_c_span_loop_mem(uintptr_t mem, uint64_t nspans, uint32_t elemsize, uint64_t *ops) {
        uint64_t total = 0, done = 0;
        struct gr_cspan span;
        struct gr_cspan *volatile sp = &span;   /* the compiler cannot keep it in registers */
        for (uint64_t k = 0; k < nspans; k++) {
            struct gr_cspan *s = sp;
            uint64_t allocBits[16] = {0};
            s->allocCache = ~allocBits[0];
            s->freeindex = 0;
            s->nelems = 8192 / elemsize;
            s->allocCount = 0;
            s->base = mem + k * 8192;
            s->elemsize = elemsize;
            uint64_t t0 = gr_bench_now();
            for (;;) {
                uintptr_t x = gr_cspan_alloc(s);
                if (x == 0) {
                    /* the window refill of nextFreeIndex, inline */
                    uint32_t fi = (s->freeindex + 63) & ~63u;
                    if (fi >= s->nelems) break;
                    s->freeindex = fi;
                    s->allocCache = ~allocBits[fi >> 6];
                    continue;
                }
                *(uint64_t *)x = done;
                done++;
            }
            total += gr_bench_now() - t0;
        }
        *ops = done;
        return total;
    }
    """
    uint64_t c_span_loop "gr_c_span_loop"(uintptr_t mem, uint64_t nspans, uint32_t elemsize, uint64_t* ops) noexcept nogil
    uint64_t c_span_loop_mem "gr_c_span_loop_mem"(uintptr_t mem, uint64_t nspans, uint32_t elemsize, uint64_t* ops) noexcept nogil

ctypedef struct hitbench_t:
    runtime_t* rt
    size_t size
    uint64_t spans          # spans each M fills
    gate_t gate
    # per-M results, indexed by m.id, written once as each M ends
    uint64_t ns[64]
    uint64_t ops[64]
    uint64_t cpu[64]        # per mille of the loops' wall time the M was on a CPU


cdef void* _hit_main(void* arg) noexcept nogil:
    cdef m_t* mp = <m_t*>arg
    cdef hitbench_t* b = <hitbench_t*>mp.work
    cdef runtime_t* rt = b.rt
    cdef size_t size = b.size   # a local: b's results line is written by Ms that finish first
    cdef p_t* pp
    cdef bint gc = False
    cdef uintptr_t x
    cdef mspan_t* s
    cdef uint64_t k, i, n, t0, ns = 0, ops = 0, cpu0, w0
    cdef int spc
    if kernel_begin(&b.gate, rt, mp) != M_RUNNING:
        return NULL
    pp = mp.p
    spc = makeSpanClass(size_to_class(rt.sc, size), True)
    cpu0 = thread_cputime()
    w0 = nanotime()
    for k in range(b.spans):
        # Untimed: the allocation that refills the span from its mcentral.
        x = mallocgc(rt, pp, size, True, &gc)
        if x == 0:
            break               # out of memory (a capped heap): mcache_hit raises
        (<uint64_t*>x)[0] = 0
        s = pp.mcache.alloc[spc]
        n = s.nelems - s.allocCount
        t0 = nanotime()
        for i in range(n):
            x = mallocgc(rt, pp, size, True, &gc)
            (<uint64_t*>x)[0] = i
        ns += nanotime() - t0
        ops += n
    cpu0 = thread_cputime() - cpu0
    w0 = nanotime() - w0
    kernel_end(rt, mp)
    b.ns[mp.id] = ns
    b.ops[mp.id] = ops
    b.cpu[mp.id] = cpu0 * 1000 // max(1, w0)       # per mille of the loop's wall time
    return NULL


def mcache_hit(Runtime rt not None, ms, size, spans_per_m):
    """ns per allocation on the mcache-hit path, per M, with `ms` Ms on their own Ps.

    Returns (ns_per_op of each M, aggregate allocations per second, the least
    share of its time an M was on a CPU: under 1 when other work took it)."""
    if not 1 <= ms <= min(64, rt.gomaxprocs):
        raise ValueError("need 1 <= ms <= min(64, gomaxprocs)")
    cdef hitbench_t b
    cdef int i
    ms = check_int("ms", ms, 1, min(64, rt.gomaxprocs))
    # Small noscan objects past the tiny allocator, each with room for the word written.
    size = check_int("size", size, 16, MAX_SMALL_SIZE)
    spans_per_m = check_int("spans_per_m", spans_per_m, 1, 1 << 20)
    if rt.modes["mcache"] != "lockfree":
        raise ValueError("mcache_hit measures the lock-free mcache: Runtime(mcache='lockfree')")
    rt._check_call()
    memset(&b, 0, sizeof(hitbench_t))
    b.rt = rt.rt
    b.size = size
    b.spans = spans_per_m
    join_ms(launch_ms(rt.rt, &b.gate, range(ms), _hit_main, &b, 0))
    if any(b.ops[i] < spans_per_m for i in range(ms)):
        raise GoRuntimeError("mcache_hit: an M ran out of memory or found the runtime closed")
    per_m = [<double>b.ns[i] / b.ops[i] for i in range(ms)]
    wall = max(b.ns[i] for i in range(ms)) / 1e9
    share = min(b.cpu[i] for i in range(ms)) / 1000.0
    return per_m, sum(b.ops[i] for i in range(ms)) / wall, share


def c_span_floor(nspans, elemsize, in_memory=False, threads=1):
    """ns per allocation of the plain C span loop over nspans 8 KiB spans of its own
    (mapped and prefaulted, so that no page fault is timed), per thread, with
    `threads` threads at once (each with spans of its own: what the machine's
    memory gives two cores streaming through fresh spans); in_memory: with the
    span's state loaded and stored back for each object."""
    spans = check_int("nspans", nspans, 1, 1 << 16)
    size = check_int("elemsize", elemsize, 8, 8192)
    fn = _c_span_mem_main if check_bool("in_memory", in_memory) else _c_span_main
    threads = check_int("threads", threads, 1, 64)
    rate, _, _ = _c_run(threads, fn, [(8, 8, 1.0)], 0.0, 1, size, spans * 8192)
    return threads * 1e9 / rate


# --- the C baselines of the scaling rows ---------------------------------------------

# One per thread, in an aligned array: each thread's counters and RNG on lines of
# their own, as the model's mwork_t.
ctypedef struct cthread_t:
    cacheline_t _align
    sizemix_t* mix
    uint64_t rng
    uint64_t ops
    uint64_t ns
    uint64_t cpu            # thread CPU time over the same loop
    uint64_t duration_ns
    size_t live
    uintptr_t mem           # c_fresh_touch: this thread's fresh memory
    size_t mem_size
    size_t objsize
    uint32_t error
    uint32_t* ready
    uint32_t* go


cdef void _c_gate(cthread_t* t) noexcept nogil:
    xadd32(t.ready, 1)
    while load_acquire32(t.go) == 0:
        sched_yield()


cdef void* _c_churn_main(void* arg) noexcept nogil:
    """malloc/free churn with a private live set: the run() churn kernel's loop
    with glibc's malloc in place of mallocgc, and no safe points."""
    cdef cthread_t* t = <cthread_t*>arg
    cdef liveobj_t* live = <liveobj_t*>c_malloc(t.live * sizeof(liveobj_t))
    cdef size_t nlive = 0, slot, size
    cdef uint64_t seq = 0, t0, deadline, found = 0
    cdef uintptr_t x
    cdef liveobj_t obj
    if live == NULL:
        t.error = 1
    _c_gate(t)
    if live == NULL:
        return NULL
    t.cpu = thread_cputime()
    t0 = nanotime()
    deadline = t0 + t.duration_ns
    while True:
        if (seq & 255) == 0 and nanotime() >= deadline:
            break
        size = sizemix_pick(t.mix, &t.rng)
        _rand(&t.rng)                   # the kernel's noscan draw
        x = <uintptr_t>c_malloc(size)
        if x == 0:
            t.error = 1
            break
        seq += 1
        obj.addr = x
        obj.size = size
        obj.tag = seq
        _write_tag(x, size, seq)
        if nlive < t.live:
            live[nlive] = obj
            nlive += 1
        else:
            slot = _rand(&t.rng) % t.live
            if not _tag_ok(&live[slot], &found):
                t.error = 2
                break
            c_free(<void*>live[slot].addr)
            live[slot] = obj
    t.ns = nanotime() - t0
    t.cpu = thread_cputime() - t.cpu
    t.ops = seq
    for slot in range(nlive):
        c_free(<void*>live[slot].addr)
    c_free(live)
    return NULL


ctypedef uint64_t (*span_loop_fn)(uintptr_t mem, uint64_t nspans, uint32_t elemsize, uint64_t* ops) noexcept nogil


cdef void _c_span(cthread_t* t, span_loop_fn loop) noexcept nogil:
    """A C span loop over this thread's memory, prefaulted before the gate;
    t.ns is the loop's own timing (allocation only)."""
    cdef uintptr_t a = t.mem
    cdef uint64_t ops = 0
    while a < t.mem + t.mem_size:
        (<char*>a)[0] = 0
        a += 4096
    _c_gate(t)
    t.cpu = thread_cputime()
    t.ns = loop(t.mem, t.mem_size // 8192, <uint32_t>t.objsize, &ops)
    t.cpu = thread_cputime() - t.cpu
    t.ops = ops


cdef void* _c_span_main(void* arg) noexcept nogil:
    _c_span(<cthread_t*>arg, c_span_loop)
    return NULL


cdef void* _c_span_mem_main(void* arg) noexcept nogil:
    _c_span(<cthread_t*>arg, c_span_loop_mem)
    return NULL


cdef void* _c_fresh_main(void* arg) noexcept nogil:
    """Writes a tag into each objsize-byte object of fresh (never touched)
    memory, in address order: every 4 KiB brings a page fault."""
    cdef cthread_t* t = <cthread_t*>arg
    cdef uintptr_t x = t.mem, end = t.mem + t.mem_size
    cdef uint64_t t0, deadline, n = 0
    _c_gate(t)
    t.cpu = thread_cputime()
    t0 = nanotime()
    deadline = t0 + t.duration_ns
    while x + t.objsize <= end:
        if (n & 255) == 0 and nanotime() >= deadline:
            break
        _write_tag(x, t.objsize, n)
        x += t.objsize
        n += 1
    t.ns = nanotime() - t0
    t.cpu = thread_cputime() - t.cpu
    t.ops = n
    return NULL


cdef object _c_run(int nthreads, void* (*fn)(void*) noexcept nogil, list ranges, double duration,
                   size_t live, size_t objsize, size_t mem_per_thread):
    """Runs fn on nthreads pthreads released together; returns (ops/s, ops,
    the least share of its time a thread was on a CPU)."""
    cdef sizemix_t mix
    cdef cthread_t* ts = NULL
    cdef pthread_t tids[64]
    cdef uint32_t ready = 0, go = 0
    cdef int i, started = 0
    cdef void* mem
    cdef uint64_t ops = 0, ns = 0
    cdef double share = 1.0
    if not 1 <= nthreads <= 64:
        raise ValueError("1 to 64 threads")
    mix.n = 0
    mix.lo = mix.hi = NULL
    mix.cum = NULL
    try:
        sizemix_init(&mix, ranges)
        ts = <cthread_t*>alloc_aligned(nthreads * sizeof(cthread_t))
        if ts == NULL:
            raise MemoryError()
        for i in range(nthreads):
            ts[i].mix = &mix
            ts[i].rng = _rand_seed(1, i)
            ts[i].duration_ns = <uint64_t>(duration * 1e9)
            ts[i].live = live
            ts[i].objsize = objsize
            ts[i].ready = &ready
            ts[i].go = &go
            if mem_per_thread:
                mem = mmap(NULL, mem_per_thread, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                if mem == MAP_FAILED:
                    raise MemoryError()
                ts[i].mem = <uintptr_t>mem
                ts[i].mem_size = mem_per_thread
        with nogil:
            for i in range(nthreads):
                if pthread_create(&tids[i], NULL, fn, &ts[i]) != 0:
                    break
                started += 1
            while load32(&ready) < <uint32_t>started:
                sched_yield()
            store_release32(&go, 1)
            for i in range(started):
                pthread_join(tids[i], NULL)
        if started < nthreads:
            raise OSError("cannot start a thread")
        for i in range(nthreads):
            if ts[i].error:
                raise RuntimeError(f"C baseline thread {i} failed ({ts[i].error})")
            ops += ts[i].ops
            ns = max(ns, ts[i].ns)
            share = min(share, <double>ts[i].cpu / max(1, ts[i].ns))
    finally:
        if ts != NULL:
            for i in range(nthreads):
                if ts[i].mem:
                    munmap(<void*>ts[i].mem, ts[i].mem_size)
            c_free(ts)
        sizemix_free(&mix)
    return ops / (ns / 1e9), ops, min(1.0, share)


def c_churn(int nthreads, list ranges, double duration, size_t live=1024):
    """(objects per second, CPU share) of nthreads C threads churning glibc
    malloc/free over the size mix `ranges` ([(lo, hi, weight)]), each keeping
    `live` objects; the share is the least of the threads' CPU time over wall
    time (under 1 when other work took their CPU)."""
    rate, _, share = _c_run(nthreads, _c_churn_main, ranges, duration, live, 0, 0)
    return rate, share


def c_fresh_touch(int nthreads, size_t objsize, double duration, size_t mem_per_thread=1 << 30):
    """(objects per second, CPU share) of nthreads C threads writing
    objsize-byte objects into fresh memory (mem_per_thread bytes each, mapped,
    never touched)."""
    rate, _, share = _c_run(nthreads, _c_fresh_main, [(8, 8, 1.0)], duration, 1, objsize, mem_per_thread)
    return rate, share


# --- the model's batch churn (Go's side: tools/gochurn) -------------------------------

ctypedef struct batchm_t:
    cacheline_t _align
    uintptr_t* objs
    uint64_t objects
    uint64_t ns
    uint64_t cpu
    uint32_t error

ctypedef struct batchbench_t:
    runtime_t* rt
    size_t size
    size_t batch
    uint64_t duration_ns
    batchm_t* per_m
    gate_t gate


cdef void* _batch_main(void* arg) noexcept nogil:
    """allocate `batch` objects (noscan), free them all, and again; a safe point
    before each allocation, a collection when the heap reaches its goal, as the
    churn kernel does."""
    cdef m_t* mp = <m_t*>arg
    cdef batchbench_t* b = <batchbench_t*>mp.work
    cdef batchm_t* w = &b.per_m[mp.id]
    cdef runtime_t* rt = b.rt
    cdef size_t i, n = b.batch, size = b.size
    cdef uint64_t t0, deadline, objects = 0
    cdef uintptr_t x
    cdef bint gc
    if kernel_begin(&b.gate, rt, mp) != M_RUNNING:
        return NULL
    w.cpu = thread_cputime()
    t0 = nanotime()
    deadline = t0 + b.duration_ns
    while nanotime() < deadline and w.error == 0:
        for i in range(n):
            if not safepoint(rt, mp):
                w.error = 3
                break
            gc = False
            x = mallocgc(rt, mp.p, size, True, &gc)
            if x == 0:
                w.error = 1
                break
            w.objs[i] = x
            if gc:
                gcTryStart(rt, mp.p)
        if w.error:
            break
        for i in range(n):
            if free_object(rt, &mp.p.mcache, w.objs[i]) != FREE_OK:
                w.error = 2
                break
        objects += n
    w.ns = nanotime() - t0
    w.cpu = thread_cputime() - w.cpu
    w.objects = objects
    kernel_end(rt, mp)
    return NULL


def batch_churn(Runtime rt not None, int ms, size_t size, size_t batch, double duration):
    """(objects per second, CPU share) of `ms` Ms each allocating `batch`
    noscan objects of `size` bytes, freeing them all, and again, for `duration`
    seconds. The share is the Ms' CPU time over min(ms, CPUs) times the wall
    time."""
    if not 1 <= ms <= 64:
        raise ValueError("1 to 64 Ms")
    cdef batchbench_t b
    cdef int i
    cdef uint64_t objects = 0, ns = 0, cpu = 0
    b.rt = rt.rt
    b.size = size
    b.batch = batch
    b.duration_ns = <uint64_t>(duration * 1e9)
    b.per_m = <batchm_t*>alloc_aligned(ms * sizeof(batchm_t))
    if b.per_m == NULL:
        raise MemoryError()
    try:
        for i in range(ms):
            b.per_m[i].objs = <uintptr_t*>c_malloc(batch * sizeof(uintptr_t))
            if b.per_m[i].objs == NULL:
                raise MemoryError()
        join_ms(launch_ms(rt.rt, &b.gate, range(ms), _batch_main, &b, 0))
        for i in range(ms):
            if b.per_m[i].error:
                raise RuntimeError(f"batch churn: M {i} failed ({b.per_m[i].error})")
            objects += b.per_m[i].objects
            ns = max(ns, b.per_m[i].ns)
            cpu += b.per_m[i].cpu
    finally:
        for i in range(ms):
            c_free(b.per_m[i].objs)
        c_free(b.per_m)
    return objects / (ns / 1e9), min(1.0, cpu / (max(1, ns) * min(ms, os.cpu_count() or 1)))


def bench_layout():
    """sizeof of the per-thread and per-M structures of these kernels (tests:
    whole cache lines, so that neighbours in an array never share one)."""
    return {"cthread_t": sizeof(cthread_t), "batchm_t": sizeof(batchm_t)}
