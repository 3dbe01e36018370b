# cython: language_level=3
"""Test-only kernels, built in place beside the tests and never shipped.

- mcache_path_probe: mallocgc's small-object path compiled on its own, so that
  test_fastpath can read its machine code back with objdump.
- tsan_canary: a deliberate data race, so that tools/tsan.py can show that its
  ThreadSanitizer setup reports one (a clean run would prove nothing otherwise).
- collect_without_sweeping, pause_background_sweeper, ensure_swept_race,
  finish_sweep: the sweep's states held still, or brought to their end, for
  tests/test_mgcsweep.py and the fuzzer's reference.
"""
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.string cimport memset
from goruntime.sys cimport (load32, xadd32, load_relaxed32, store_relaxed32,
    pthread_t, pthread_create, pthread_join, sched_yield)
from goruntime.runtime2 cimport p_t, runtime_t
from goruntime.malloc cimport mallocgc
from goruntime.sys cimport pthread_mutex_lock, pthread_mutex_unlock
from goruntime.mheap cimport spanOf
from goruntime.mgc cimport gcStart, gcSweepAll
from goruntime.runtime2 cimport m_t
from goruntime.mgcsweep cimport ensureSwept
from goruntime.proc cimport bgsweep_pause
from goruntime.runtime cimport Runtime


cdef uintptr_t mcache_path_probe(runtime_t* rt, p_t* pp, size_t size, bint noscan) noexcept nogil:
    """mallocgc's small-object path by itself, compiled as one function so that
    tests can read its machine code: everything but the out-of-line refill."""
    cdef bint gc = False
    return mallocgc(rt, pp, size, noscan, &gc)


# Taking the address keeps the compiler from dropping or inlining the probe.
cdef void* _probe_address = <void*>mcache_path_probe


def probe_symbol():
    """The C symbol of mcache_path_probe, for disassembly."""
    return "__pyx_f_5tests_11testkernels_mcache_path_probe"


# --- a positive control for ThreadSanitizer --------------------------------------

ctypedef struct canary_t:
    uint32_t ready
    uint32_t go
    uint64_t counter            # written by two threads without synchronisation
    uint64_t n


cdef void* _canary_main(void* arg) noexcept nogil:
    cdef canary_t* c = <canary_t*>arg
    cdef uint64_t i
    xadd32(&c.ready, 1)
    while load_relaxed32(&c.go) == 0:
        sched_yield()
    for i in range(c.n):
        c.counter += 1          # the deliberate data race
    return NULL


def tsan_canary(uint64_t n=1000):
    """Races on purpose: two threads increment one plain counter, released
    together by a relaxed start gate. Under ThreadSanitizer this must produce
    a data-race report (tools/tsan.py checks that its setup can see one);
    returns the counter, often less than 2 * n."""
    cdef canary_t c
    cdef pthread_t t[2]
    cdef int i
    memset(&c, 0, sizeof(c))
    c.n = n
    with nogil:
        for i in range(2):
            pthread_create(&t[i], NULL, _canary_main, &c)
        while load32(&c.ready) < 2:
            sched_yield()
        store_relaxed32(&c.go, 1)
        for i in range(2):
            pthread_join(t[i], NULL)
    return c.counter


# --- the sweep's states, held still -------------------------------------------

def collect_without_sweeping(Runtime rt):
    """A collection as the heap trigger starts one: the stop-the-world only, which
    advances sweepgen and leaves every span to the sweepers (Runtime.gc() also
    sweeps them all before it returns)."""
    rt._check_call()
    with nogil:
        pthread_mutex_lock(&rt.rt.sched.gc_sema)
        gcStart(rt.rt, NULL)
        pthread_mutex_unlock(&rt.rt.sched.gc_sema)


def finish_sweep(Runtime rt):
    """Sweeps every span the last collection left, on this thread with a P, as
    Runtime.gc() does after its pause, without a collection of its own: MemStats
    then counts no object freed before that collection."""
    cdef m_t scratch
    cdef m_t* mp
    rt._check_call()
    mp = rt._enter(&scratch)
    with nogil:
        gcSweepAll(rt.rt)
    rt._leave(mp)


def pause_background_sweeper(Runtime rt, bint paused):
    """Keeps the background sweeper off the Ps (True), or lets it sweep again."""
    rt._check_call()
    with nogil:
        bgsweep_pause(rt.rt, paused)


ctypedef struct ensure_race_t:
    runtime_t* rt
    uintptr_t addr
    uint32_t ready
    uint32_t go


cdef void* _ensure_main(void* arg) noexcept nogil:
    cdef ensure_race_t* r = <ensure_race_t*>arg
    xadd32(&r.ready, 1)
    while load_relaxed32(&r.go) == 0:
        sched_yield()
    ensureSwept(r.rt.heap, spanOf(r.rt.heap, r.addr))
    return NULL


def ensure_swept_race(Runtime rt, uintptr_t addr, int nthreads=4):
    """nthreads threads released together each make sure the span holding addr is
    swept (free, read and write do it): one claims and sweeps it, the others
    wait for it. The caller keeps the world running and no collection starts."""
    cdef ensure_race_t r
    cdef pthread_t t[16]
    cdef int i, n = min(nthreads, 16)
    rt._check_call()
    if spanOf(rt.rt.heap, addr) == NULL:
        raise ValueError(f"no span holds {addr:#x}")
    r.rt = rt.rt
    r.addr = addr
    r.ready = 0
    r.go = 0
    with nogil:
        for i in range(n):
            pthread_create(&t[i], NULL, _ensure_main, &r)
        while load32(&r.ready) < <uint32_t>n:
            sched_yield()
        store_relaxed32(&r.go, 1)
        for i in range(n):
            pthread_join(t[i], NULL)
