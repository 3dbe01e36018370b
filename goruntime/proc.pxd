# proc: Ms acquire and release Ps through the scheduler lock; stop-the-world
# takes every P. An M waiting for a P blocks on a condition variable. The one
# exception is a collection's pause: the stopper spins (the lock dropped) for
# the Ps to stop, and, when no M waits for a P, each parked M spins for the P
# the restart hands back to it (at most CPUs - 1 spinners, for at most 200 us)
# before it sleeps: a pause lasts tens of microseconds, about what a futex
# sleep and wake-up would add to it on each side.
#
# A Python thread between two calls inside `with rt.proc():` holds its P in
# P_SYSCALL, like a goroutine in a system call: a stop-the-world steals it with
# a CAS, and the thread's next call notices (its CAS back to P_RUNNING fails)
# and acquires a P again.
#
# Go counterparts: runtime/proc.go: acquirep, releasep, handoffp, gcstopm,
# stopTheWorldWithSema, startTheWorldWithSema, entersyscall, exitsyscallfast,
# retake (sysmon taking a P from a syscall: _retake), schedinit/procresize
# (sched_init), newm/mstart (M.start); forcePreemptNS (PREEMPT_NS).
# safepoint stands for the checks a goroutine meets at its preemption points
# (a pending stop-the-world parks it; a slice used up with Ms waiting hands the
# P over). try_acquirep, m_begin/m_end and sched_close have no counterpart:
# they serve Python callers, per-M figures and Runtime.close().
from libc.stdint cimport uint64_t
from goruntime.sys cimport load_relaxed32, nanotime
from goruntime.runtime2 cimport p_t, m_t, runtime_t, PREEMPT_NS

cdef int sched_init(runtime_t* rt) noexcept nogil
cdef void sched_destroy(runtime_t* rt) noexcept nogil
cdef p_t* acquirep(runtime_t* rt, m_t* mp) noexcept nogil
cdef bint try_acquirep(runtime_t* rt, m_t* mp) noexcept nogil
cdef bint bgsweep_acquirep(runtime_t* rt, m_t* mp) noexcept nogil
cdef void bgsweep_wait_parked(runtime_t* rt) noexcept nogil
cdef void bgsweep_pause(runtime_t* rt, bint paused) noexcept nogil
cdef void releasep(runtime_t* rt, m_t* mp) noexcept nogil
cdef void gcstopm(runtime_t* rt, m_t* mp) noexcept nogil
cdef void handoffp(runtime_t* rt, m_t* mp) noexcept nogil
cdef void stopTheWorld(runtime_t* rt, p_t* mine) noexcept nogil
cdef void startTheWorld(runtime_t* rt, p_t* mine) noexcept nogil
cdef bint exitsyscall_fast(m_t* mp) noexcept nogil
cdef void entersyscall(runtime_t* rt, m_t* mp) noexcept nogil
cdef void sched_close(runtime_t* rt) noexcept nogil
cdef bint sched_closed(runtime_t* rt) noexcept nogil
cdef uint64_t fork_generation() noexcept nogil
cdef dict sched_stats(runtime_t* rt)
cdef void m_begin(m_t* mp) noexcept nogil
cdef void m_end(m_t* mp) noexcept nogil


cdef inline bint safepoint(runtime_t* rt, m_t* mp) noexcept nogil:
    """An M's check before each allocation: park for a stop-the-world, or hand
    the P to a waiting M after a 10 ms slice. False once the runtime is closed
    (the M still holds its P then, unless it was parked)."""
    if load_relaxed32(&rt.sched.gcwaiting):
        gcstopm(rt, mp)
        return mp.p != NULL
    mp.tick += 1
    if (mp.tick & 255) == 0:
        if load_relaxed32(&rt.sched.closed):
            return False
        if load_relaxed32(&rt.sched.nmwaiting) != 0 and nanotime() - mp.slice_start >= PREEMPT_NS:
            handoffp(rt, mp)
            return mp.p != NULL
    return True


cdef class P:
    cdef p_t* p
    cdef object owner


cdef P make_P(object owner, p_t* p)


cdef class M:
    cdef m_t* m
    cdef bint started
    cdef uint64_t forkgen
    cdef int start(self, runtime_t* rt, void* (*fn)(void*) noexcept nogil, void* work) noexcept
    cdef void join(self) noexcept nogil
    cdef bint timed_join(self, uint64_t timeout_ns) noexcept nogil
