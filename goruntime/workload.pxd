# workload: the pieces every workload kernel shares (workload.pyx's churn
# kernel, stress/kernels.pyx and goruntime/cmd/benchkernels.pyx): error codes,
# the live-object record, the RNG and its seeding, the tag each object carries
# from its allocation to its drop, and the launch of Ms behind a start gate.
#
# No Go counterpart: a kernel plays the Go program, a loop of allocations on
# one goroutine pinned to its M. Written once here so that every kernel starts,
# seeds and checks the same way.
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy
from goruntime.sys cimport xadd32, load_acquire32, load_relaxed32, sched_yield
from goruntime.runtime2 cimport m_t, runtime_t
from goruntime.proc cimport acquirep, releasep, m_begin, m_end

cpdef enum KernelError:
    KERNEL_OK = 0
    KERNEL_OOM = 1
    KERNEL_TAG = 2          # an object's bytes changed while it was live
    KERNEL_FREE = 3         # free() refused an object the kernel owned
    KERNEL_CLOSED = 4       # the runtime was closed under the kernel

ctypedef struct liveobj_t:
    uintptr_t addr
    size_t size
    uint64_t tag

cdef inline uint64_t _rand(uint64_t* state) noexcept nogil:
    # xorshift64*: plenty for picking sizes, and reproducible from a seed.
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * <uint64_t>0x2545F4914F6CDD1DULL


# A size distribution, the one every kernel draws from: ranges [lo, hi] picked
# by weight, then a size uniformly within the range (lo == hi: that size).
ctypedef struct sizemix_t:
    int n
    size_t* lo
    size_t* hi
    uint64_t* cum           # cumulative weights, scaled to 2^32; the last is 2^32


cdef inline size_t sizemix_pick(sizemix_t* mix, uint64_t* rng) noexcept nogil:
    cdef uint64_t r
    cdef int lo = 0, hi = mix.n - 1, mid
    if hi > 0:
        r = _rand(rng) >> 32
        while lo < hi:
            mid = (lo + hi) // 2
            if r < mix.cum[mid]:
                hi = mid
            else:
                lo = mid + 1
    if mix.hi[lo] == mix.lo[lo]:
        return mix.lo[lo]
    return mix.lo[lo] + _rand(rng) % (mix.hi[lo] - mix.lo[lo] + 1)


cdef inline uint64_t _rand_seed(object seed, uint64_t i) except 0:
    """The starting state of generator i (an M, a stress slot) of a run seeded
    with `seed` (any int): distinct per i, the same for the same (seed, i), and
    never 0, the one state xorshift cannot leave."""
    cdef uint64_t x = seed & 0xFFFFFFFFFFFFFFFF
    x ^= <uint64_t>0x9E3779B97F4A7C15ULL * (i + 1)
    return x if x else 1


cdef inline void _write_tag(uintptr_t x, size_t size, uint64_t tag) noexcept nogil:
    if size >= 8:
        memcpy(<void*>x, &tag, 8)
        if size >= 16:
            memcpy(<void*>(x + size - 8), &tag, 8)
    else:
        memcpy(<void*>x, &tag, size)


cdef inline bint _tag_ok(liveobj_t* o, uint64_t* found) noexcept nogil:
    cdef uint64_t head = 0, tail = 0
    if o.size >= 8:
        memcpy(&head, <void*>o.addr, 8)
        if o.size >= 16:
            memcpy(&tail, <void*>(o.addr + o.size - 8), 8)
            if tail != o.tag:
                found[0] = tail
                return False
        found[0] = head
        return head == o.tag
    memcpy(&head, <void*>o.addr, o.size)
    found[0] = head
    return head == (o.tag & ((<uint64_t>1 << (8 * o.size)) - 1))


# --- launching Ms -------------------------------------------------------------

ctypedef void* (*kernel_fn)(void*) noexcept nogil

# The start gate: launch_ms opens it once every M it started waits at it, so
# that the kernels' nogil sections overlap from their first allocation (on 2
# cores a thread created late would otherwise run alone for a while).
ctypedef struct gate_t:
    uint32_t ready      # Ms waiting at the gate
    uint32_t go         # release store: the gate is open
    uint32_t abort      # stored before go when the launch failed: Ms return at once

cpdef enum KernelStart:
    M_RUNNING = 0       # past the gate, figures started, holding a P
    M_ABORTED = 1       # the launch failed: return without touching the runtime
    M_CLOSED = 2        # the runtime closed before a P was free (figures closed)


cdef inline int kernel_begin(gate_t* g, runtime_t* rt, m_t* mp) noexcept nogil:
    """What every kernel does first: wait at the start gate, start the M's
    figures on its own thread, take a P."""
    xadd32(&g.ready, 1)
    while load_acquire32(&g.go) == 0:
        sched_yield()
    if load_relaxed32(&g.abort):
        return M_ABORTED
    m_begin(mp)
    if acquirep(rt, mp) == NULL:
        m_end(mp)
        return M_CLOSED
    return M_RUNNING


cdef inline void kernel_end(runtime_t* rt, m_t* mp) noexcept nogil:
    """What every kernel does last: give back its P (if it still holds one)
    and close its figures."""
    if mp.p != NULL:
        releasep(rt, mp)
    m_end(mp)


cdef list launch_ms(runtime_t* rt, gate_t* gate, object ids, kernel_fn fn, void* work, size_t stride)
cdef void join_ms(list workers) noexcept
cdef int wait_ms(list workers, uint32_t* stop, object progress=*) except -1
cdef object run_kernel(runtime_t* rt, dict config, object progress=*)
cdef int sizemix_init(sizemix_t* mix, list ranges) except -1
cdef void sizemix_free(sizemix_t* mix) noexcept
