# cython: language_level=3
"""nogil kernels for `make bench`, and the plain C loop they are measured against.

Each kernel runs on M threads released together by a start gate (launch_ms)
and times only the loop under test (a span's worth of allocations at a time),
so that a refill or a gate never lands inside a timed region.

No Go counterpart in the runtime itself: mcache_hit measures what
runtime/malloc_test.go's BenchmarkMalloc8/16 measure in Go, the mallocgc hit
path, and c_span_loop is the floor, Go's nextFreeFast written as bare C."""
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.string cimport memset
from goruntime.sys cimport (nanotime, mmap, munmap, PROT_READ, PROT_WRITE, MAP_PRIVATE,
    MAP_ANONYMOUS, MAP_FAILED)
from goruntime.sizeclasses cimport MAX_SMALL_SIZE
from goruntime.sizeclasses cimport size_to_class, makeSpanClass
from goruntime.mspan cimport mspan_t
from goruntime.runtime2 cimport m_t, p_t, runtime_t
from goruntime.malloc cimport mallocgc
from goruntime.runtime cimport Runtime
from goruntime.workload cimport gate_t, kernel_begin, kernel_end, M_RUNNING, launch_ms, join_ms
from goruntime.args import check_int
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
    """
    uint64_t c_span_loop "gr_c_span_loop"(uintptr_t mem, uint64_t nspans, uint32_t elemsize, uint64_t* ops) noexcept nogil

ctypedef struct hitbench_t:
    runtime_t* rt
    size_t size
    uint64_t spans          # spans each M fills
    gate_t gate
    # per-M results, indexed by m.id, written once as each M ends
    uint64_t ns[64]
    uint64_t ops[64]


cdef void* _hit_main(void* arg) noexcept nogil:
    cdef m_t* mp = <m_t*>arg
    cdef hitbench_t* b = <hitbench_t*>mp.work
    cdef runtime_t* rt = b.rt
    cdef size_t size = b.size   # a local: b's results line is written by Ms that finish first
    cdef p_t* pp
    cdef bint gc = False
    cdef uintptr_t x
    cdef mspan_t* s
    cdef uint64_t k, i, n, t0, ns = 0, ops = 0
    cdef int spc
    if kernel_begin(&b.gate, rt, mp) != M_RUNNING:
        return NULL
    pp = mp.p
    spc = makeSpanClass(size_to_class(rt.sc, size), True)
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
    kernel_end(rt, mp)
    b.ns[mp.id] = ns
    b.ops[mp.id] = ops
    return NULL


def mcache_hit(Runtime rt not None, ms, size, spans_per_m):
    """ns per allocation on the mcache-hit path, per M, with `ms` Ms on their own Ps.

    Returns (ns_per_op of each M, aggregate allocations per second)."""
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
    return per_m, sum(b.ops[i] for i in range(ms)) / wall


def c_span_floor(nspans, elemsize):
    """ns per allocation of the plain C span loop over nspans 8 KiB spans of its own
    (mapped and prefaulted here, so that no page fault is timed)."""
    cdef uint64_t ops = 0, ns, spans = check_int("nspans", nspans, 1, 1 << 16)
    cdef uint32_t size = check_int("elemsize", elemsize, 8, 8192)
    cdef uintptr_t mem, a
    cdef size_t nbytes = <size_t>spans * 8192
    cdef void* p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if p == MAP_FAILED:
        raise MemoryError(f"cannot map {nbytes} bytes")
    mem = <uintptr_t>p
    try:
        with nogil:
            a = mem
            while a < mem + nbytes:
                (<char*>a)[0] = 0
                a += 4096
            ns = c_span_loop(mem, spans, size, &ops)
    finally:
        munmap(p, nbytes)
    return <double>ns / ops
