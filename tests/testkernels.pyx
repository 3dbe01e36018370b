# cython: language_level=3
"""Test-only kernels, built in place beside the tests and never shipped.

- mcache_path_probe: mallocgc's small-object path compiled on its own, so that
  test_fastpath can read its machine code back with objdump.
- tsan_canary: a deliberate data race, so that tools/tsan.py can show that its
  ThreadSanitizer setup reports one (a clean run would prove nothing otherwise).
"""
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.string cimport memset
from goruntime.sys cimport (load32, xadd32, load_relaxed32, store_relaxed32,
    pthread_t, pthread_create, pthread_join, sched_yield)
from goruntime.runtime2 cimport p_t, runtime_t
from goruntime.malloc cimport mallocgc


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
