# cython: language_level=3
# lock: the counting mutex's slow path (runtime/lock_futex.go's lock2 past its
# first attempt: mutex_lock_slow), its snapshots, and the names of its call
# sites (Go function names, for the profiles). See lock.pxd.
from libc.string cimport memset, memcpy
from goruntime.sys cimport pthread_mutex_init, pthread_mutex_destroy, cpu_relax, sched_yield
from goruntime.trace cimport tracebuf_t, trace_current, trace_put, EV_LOCKWAIT


cdef void mutex_init(mutex_t* mu) noexcept nogil:
    memset(mu, 0, sizeof(mutex_t))
    pthread_mutex_init(&mu.m, NULL)


cdef void mutex_destroy(mutex_t* mu) noexcept nogil:
    pthread_mutex_destroy(&mu.m)


# Each thread's total wait on runtime locks, for per-M figures.
cdef extern from *:
    """
    static GR_THREAD_LOCAL uint64_t gr_thread_lock_wait_ns;
    """
    uint64_t tls_lock_wait_ns "gr_thread_lock_wait_ns"


cdef uint64_t thread_lock_wait_ns() noexcept nogil:
    return tls_lock_wait_ns


cdef void mutex_lock_slow(mutex_t* mu, int site) noexcept nogil:
    # Only reached when trylock failed: the clock is read here and nowhere else
    # on the acquire path. Go's lock2: spin a little (the holder is running on
    # another core and will be done soon), yield once, then sleep.
    global tls_lock_wait_ns
    cdef uint32_t waiting = xadd32(&mu.waiters, 1)
    cdef uint64_t t0 = nanotime()
    cdef int i, j
    cdef bint got = False
    for i in range(ACTIVE_SPIN):
        for j in range(ACTIVE_SPIN_CNT):
            cpu_relax()
        if pthread_mutex_trylock(&mu.m) == 0:
            got = True
            break
    if not got:
        sched_yield()
        got = pthread_mutex_trylock(&mu.m) == 0
    if got:
        mu.spin_acquisitions += 1
    else:
        pthread_mutex_lock(&mu.m)
    cdef uint64_t waited = nanotime() - t0
    xadd32(&mu.waiters, -1)
    tls_lock_wait_ns += waited
    cdef tracebuf_t* tb = trace_current()
    if tb != NULL:
        trace_put(tb, EV_LOCKWAIT, t0, t0 + waited, <uintptr_t>mu, site)
    mu.contended += 1
    mu.site_contended[site] += 1
    mu.wait_ns += waited
    mu.site_wait_ns[site] += waited
    if waited > mu.max_wait_ns:
        mu.max_wait_ns = waited
    if waiting > mu.max_waiters:
        mu.max_waiters = waiting
    mu.wait_hist[min(log2_64(waited), WAIT_HIST_BUCKETS - 1)] += 1


cdef void mutex_snapshot(mutex_t* mu, mutex_t* out) noexcept nogil:
    """Copies the counters under the mutex itself, without counting the visit."""
    pthread_mutex_lock(&mu.m)
    memcpy(out, mu, sizeof(mutex_t))
    pthread_mutex_unlock(&mu.m)


SITE_NAMES = {
    SITE_CACHESPAN: "runtime.(*mcentral).cacheSpan",
    SITE_UNCACHESPAN: "runtime.(*mcentral).uncacheSpan",
    SITE_GROW: "runtime.(*mcentral).grow",
    SITE_LARGE: "runtime.largeAlloc",
    SITE_SWEEP: "runtime.(*mcentral).freeSpan",
    SITE_FREESPAN: "runtime.(*mheap).freeSpan",
    SITE_ACQUIREP: "runtime.acquirep",
    SITE_RELEASEP: "runtime.releasep",
    SITE_STW: "runtime.stopTheWorld",
    SITE_MCACHE: "runtime.(*mcache).lock",
    SITE_PCACHE: "runtime.(*pageAlloc).allocToCache",
    SITE_OTHER: "runtime.lock",
    SITE_SHARED: "runtime.(*sharedcache).lock",
    # Go 1.15's spanSet.spineLock (Go 1.13's gcSweepBuf has the same one).
    SITE_SPINE: "runtime.(*spanSet).spineLock",
    SITE_SCAVENGE: "runtime.(*mheap).scavengeLocked",
}


cdef dict mutex_stats(mutex_t* mu):
    """The counters of one mutex as a dict (GIL held; takes the mutex briefly)."""
    cdef mutex_t s
    cdef int i
    with nogil:
        mutex_snapshot(mu, &s)
    sites = {}
    for i in range(NUM_SITES):
        if s.site_acquisitions[i] or s.site_contended[i]:
            sites[SITE_NAMES[i]] = {"acquisitions": s.site_acquisitions[i],
                                    "contended": s.site_contended[i],
                                    "wait_ns": s.site_wait_ns[i]}
    scale = (s.acquisitions / s.hold_samples) if s.hold_samples else 0.0
    return {
        "acquisitions": s.acquisitions,
        "contended": s.contended,
        "wait_ns": s.wait_ns,
        "max_wait_ns": s.max_wait_ns,
        "hold_ns_sampled": s.hold_ns,
        "hold_samples": s.hold_samples,
        "hold_ns_est": int(s.hold_ns * scale),
        "max_hold_ns_sampled": s.max_hold_ns,
        "owner_switches": s.owner_switches,
        "spin_acquisitions": s.spin_acquisitions,
        "max_waiters": s.max_waiters,
        "wait_hist": [s.wait_hist[i] for i in range(WAIT_HIST_BUCKETS)],
        "sites": sites,
    }


_SUMMED = ("acquisitions", "contended", "wait_ns", "hold_ns_sampled", "hold_samples",
             "hold_ns_est", "owner_switches")
_MAXED = ("max_wait_ns", "max_hold_ns_sampled", "max_waiters")


def sum_lockstats(stats):
    """One lock-class total over several locks (e.g. every mcentral)."""
    total = {k: 0 for k in _SUMMED + _MAXED}
    total["wait_hist"] = None
    total["sites"] = {}
    total["spin_acquisitions"] = 0
    for s in stats:
        for k in _SUMMED:
            total[k] += s[k]
        # Profiles saved before the lock spun have no spin count.
        total["spin_acquisitions"] += s.get("spin_acquisitions", 0)
        for k in _MAXED:
            total[k] = max(total[k], s[k])
        if total["wait_hist"] is None:
            total["wait_hist"] = list(s["wait_hist"])
        else:
            total["wait_hist"] = [a + b for a, b in zip(total["wait_hist"], s["wait_hist"])]
        for site, v in s["sites"].items():
            t = total["sites"].setdefault(site, {"acquisitions": 0, "contended": 0, "wait_ns": 0})
            for k in t:
                t[k] += v[k]
    total["wait_hist"] = total["wait_hist"] or []
    return total


def mutex_layout():
    """Byte offsets of the mutex_t fields every acquisition writes, and the
    size of the struct: lock.pxd promises them in its first two cache lines."""
    cdef mutex_t mu
    cdef size_t base = <size_t>&mu
    return {"sizeof": sizeof(mutex_t), "acquisitions": <size_t>&mu.acquisitions - base,
            "last_owner": <size_t>&mu.last_owner - base, "owner_switches": <size_t>&mu.owner_switches - base,
            "hot_sites_end": <size_t>&mu.site_acquisitions[SITE_UNCACHESPAN + 1] - base,
            "hold_start": <size_t>&mu.hold_start - base}
