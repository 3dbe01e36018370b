# lock: the runtime's mutex, a real pthread mutex that counts, like jemalloc's
# mutex profiling and Linux lockstat, how it was used. Counters are written
# only by the holder, so they need no atomics; the clock is read only when
# trylock fails (contended path) and on one acquisition in HOLD_SAMPLE_EVERY
# (hold time), so the uncontended cost is the same single CAS as
# pthread_mutex_lock. What every acquisition writes lies in the mutex's first
# two cache lines (the pthread mutex, the total, the owner, and the hot call
# sites' counts): when two Ms take turns on a lock, the counters move between
# their cores with the mutex word and one line more, not with four.
#
# A contended acquisition spins before it sleeps, as Go's lock2 does
# (runtime/lock_futex.go: active_spin = 4 rounds of procyield(30), then one
# osyield, then the futex): a runtime lock is held for well under a
# microsecond, while sleeping on the futex and being woken costs tens of them.
#
# Go counterparts: runtime/runtime2.go: mutex; runtime/lock_futex.go: lock
# (lock2), unlock. The counters have none before Go 1.22 added runtime locks to
# the mutex profile (runtime/mprof.go); each acquisition is charged to a call
# site named after the Go function that takes the lock (SITE_NAMES in
# lock.pyx, the one list of those names: the profile tool reads it).
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from goruntime.sys cimport (pthread_mutex_t, pthread_cond_t, pthread_mutex_lock,
    pthread_mutex_trylock, pthread_mutex_unlock, pthread_cond_wait,
    lockstats_enabled, nanotime, thread_id, xadd32, log2_64)

# Where a lock was taken from: the call sites a contention profile attributes
# acquisitions and waits to.
# Sites 0..7 are the ones an allocation can reach: their counts share the
# mutex's second cache line.
cpdef enum LockSite:
    SITE_CACHESPAN = 0      # mcache.refill -> mcentral.cacheSpan
    SITE_GROW = 1           # mcentral.grow -> mheap.alloc
    SITE_LARGE = 2          # large object -> mheap.alloc
    SITE_PCACHE = 3         # per-P page cache refill -> mheap (Go 1.14)
    SITE_MCACHE = 4         # the per-P mcache lock of the "locked" comparison mode
    SITE_ACQUIREP = 5       # acquirep
    SITE_RELEASEP = 6       # releasep / handoff
    SITE_UNCACHESPAN = 7    # mcache.releaseAll -> mcentral.uncacheSpan
    SITE_SWEEP = 8          # sweeper filing a span on its mcentral (Go 1.13: mcentral.freeSpan)
    SITE_FREESPAN = 9       # sweeper -> mheap.freeSpan
    SITE_STW = 10           # stopTheWorld / startTheWorld
    SITE_OTHER = 11
    SITE_SHARED = 12        # the one cache every P shares in the "shared" comparison mode
    SITE_SPINE = 13         # a span set's spine lock (mspanset.pyx)
    SITE_SCAVENGE = 14      # the scavenger (and free_os_memory) picking and returning pages
    NUM_SITES = 15

cdef enum:
    WAIT_HIST_BUCKETS = 40      # log2(ns) buckets: 1 ns .. ~9 minutes
    HOLD_SAMPLE_EVERY = 64      # power of two
    ACTIVE_SPIN = 4             # Go's active_spin: rounds of spinning ...
    ACTIVE_SPIN_CNT = 30        # ... of procyield(active_spin_cnt) each

ctypedef struct mutex_t:
    # Written by every acquisition: line 0 (with glibc's 40-byte mutex on
    # x86-64; 48 on arm64 spills owner_switches over) ...
    pthread_mutex_t m
    uint64_t acquisitions
    uintptr_t last_owner
    uint64_t owner_switches
    # ... and line 1, which holds the counts of sites 0..7 (every site an
    # allocation reaches; lock.pyx checks that mutex_t keeps this layout).
    uint64_t site_acquisitions[NUM_SITES]
    # Written on contention or one acquisition in HOLD_SAMPLE_EVERY only.
    uint64_t hold_start         # set while a sampled hold is being timed
    uint64_t contended
    uint32_t waiters            # atomic: threads blocked in lock() right now
    uint32_t max_waiters
    uint64_t wait_ns
    uint64_t max_wait_ns
    uint64_t hold_samples
    uint64_t hold_ns            # sum over sampled holds only
    uint64_t max_hold_ns
    uint64_t spin_acquisitions  # contended acquisitions won while spinning
    uint64_t wait_hist[WAIT_HIST_BUCKETS]
    uint64_t site_contended[NUM_SITES]
    uint64_t site_wait_ns[NUM_SITES]

cdef void mutex_init(mutex_t* mu) noexcept nogil
cdef void mutex_destroy(mutex_t* mu) noexcept nogil
cdef void mutex_snapshot(mutex_t* mu, mutex_t* out) noexcept nogil
cdef void mutex_lock_slow(mutex_t* mu, int site) noexcept nogil
cdef uint64_t thread_lock_wait_ns() noexcept nogil


cdef inline void _acquired(mutex_t* mu, int site) noexcept nogil:
    cdef uintptr_t me = thread_id()
    mu.acquisitions += 1
    mu.site_acquisitions[site] += 1
    if me != mu.last_owner:
        mu.owner_switches += 1
        mu.last_owner = me
    if (mu.acquisitions & (HOLD_SAMPLE_EVERY - 1)) == 0:
        mu.hold_start = nanotime()


cdef inline void lock(mutex_t* mu, int site) noexcept nogil:
    if not lockstats_enabled():
        pthread_mutex_lock(&mu.m)
        return
    if pthread_mutex_trylock(&mu.m) != 0:
        mutex_lock_slow(mu, site)
    _acquired(mu, site)


cdef inline void _releasing(mutex_t* mu) noexcept nogil:
    # The sampling test reads line 0 only: hold_start is touched on sampled
    # acquisitions alone (the holder's own acquisitions count picks them).
    cdef uint64_t held
    if (mu.acquisitions & (HOLD_SAMPLE_EVERY - 1)) == 0 and mu.hold_start != 0:
        held = nanotime() - mu.hold_start
        mu.hold_start = 0
        mu.hold_samples += 1
        mu.hold_ns += held
        if held > mu.max_hold_ns:
            mu.max_hold_ns = held


cdef inline void unlock(mutex_t* mu) noexcept nogil:
    if lockstats_enabled():
        _releasing(mu)
    pthread_mutex_unlock(&mu.m)


cdef inline void cond_wait(pthread_cond_t* cond, mutex_t* mu, int site) noexcept nogil:
    """pthread_cond_wait on mu, accounted as a release and a re-acquisition."""
    if lockstats_enabled():
        _releasing(mu)
    pthread_cond_wait(cond, &mu.m)
    if lockstats_enabled():
        _acquired(mu, site)

cdef dict mutex_stats(mutex_t* mu)
