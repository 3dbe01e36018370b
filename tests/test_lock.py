"""The runtime locks (goruntime/lock.pyx): their counters add up, and contention is seen
where it must be."""
import pytest

from goruntime import MCACHE_MODES, Runtime
from goruntime.lock import mutex_layout


@pytest.mark.parametrize("mcache", MCACHE_MODES)
def test_lock_counters_add_up(mcache):
    """After a run with 32 KiB objects (a refill and a heap allocation for each), every
    lock's per-site figures add up to its own, its wait histogram counts each contended
    acquisition once, and the class figures are the sums of the instances."""
    with Runtime(gomaxprocs=2, mcache=mcache) as rt:
        r = rt.run(ms=4, ops=3000, sizes=32768, live=64, seed=1)
        ls = rt.lockstats()
    assert r.allocs == 12000
    locks = {"mheap": ls["mheap"], "sched": ls["sched"],
             **{f"mcentral[{k}]": v for k, v in ls["mcentrals"].items()},
             **{f"mcache[P{k}]": v for k, v in ls["mcaches"].items()}}
    if ls["sharedcache"] is not None:
        locks["sharedcache"] = ls["sharedcache"]
    assert (ls["sharedcache"] is not None) == (mcache == "shared")
    for name, s in locks.items():
        sites = s["sites"].values()
        assert 0 <= s["contended"] <= s["acquisitions"], name
        assert sum(v["acquisitions"] for v in sites) == s["acquisitions"], name
        assert sum(v["contended"] for v in sites) == s["contended"], name
        assert sum(v["wait_ns"] for v in sites) == s["wait_ns"], name
        assert sum(s["wait_hist"]) == s["contended"], name
        assert s["max_wait_ns"] <= s["wait_ns"], name
        assert (s["max_waiters"] > 0) == (s["contended"] > 0), name
        assert (s["owner_switches"] > 0) == (s["acquisitions"] > 0), name
        assert s["owner_switches"] <= s["acquisitions"], name
        assert s["hold_samples"] <= s["acquisitions"], name
        assert 0 <= s["spin_acquisitions"] <= s["contended"], name
        assert s["max_hold_ns_sampled"] <= s["hold_ns_sampled"], name
    for key in ("acquisitions", "contended", "wait_ns"):
        assert ls["mcentral"][key] == sum(s[key] for s in ls["mcentrals"].values()), key
        assert ls["mcache"][key] == sum(s[key] for s in ls["mcaches"].values()), key
    # Every allocation refilled from an mcentral (32 KiB: one object per span).
    assert ls["mcentral"]["acquisitions"] >= r.allocs
    if mcache == "locked":
        assert ls["mcache"]["acquisitions"] >= r.allocs
    else:
        assert ls["mcache"]["acquisitions"] == 0
    if mcache == "shared":
        assert ls["sharedcache"]["acquisitions"] >= r.allocs


def test_shared_mcache_lock_is_contended_and_per_p_locks_are_not():
    """The "shared" mode's one cache serves every P behind one lock: with 2 Ms on 2 Ps
    each allocation takes it and, sooner or later, one M waits for the other. The "locked"
    mode's per-P locks, taken only by their own P, never wait."""
    for attempt in range(10):      # the two Ms must overlap: retry on a busy machine
        with Runtime(gomaxprocs=2, mcache="shared") as rt:
            r = rt.run(ms=2, ops=50000 * (attempt + 1), sizes=64, live=256, seed=attempt + 1)
            shared = rt.lockstats()["sharedcache"]
        assert shared["acquisitions"] >= r.allocs > 0
        assert set(shared["sites"]) == {"runtime.(*sharedcache).lock"}
        if shared["contended"] > 0:
            break
    assert shared["contended"] > 0, shared
    with Runtime(gomaxprocs=2, mcache="locked") as rt:
        r = rt.run(ms=2, ops=40000, sizes=64, live=256, seed=1)
        per_p = rt.lockstats()["mcaches"]
    assert sum(s["acquisitions"] for s in per_p.values()) >= r.allocs
    assert all(s["contended"] == 0 for s in per_p.values()), per_p


def test_mcache_none_two_ms_contend_on_mcentral():
    """Without per-P caches every allocation goes to the mcentral: with 2 Ms on 2 Ps
    allocating one size, its lock is taken and, sooner or later, contended."""
    for attempt in range(6):
        with Runtime(gomaxprocs=2, mcache="none") as rt:
            r = rt.run(ms=2, ops=20000 * (attempt + 1), sizes=4096, live=256, seed=attempt + 1)
            c = rt.lockstats()["mcentral"]
        assert c["acquisitions"] >= r.allocs > 0
        if c["contended"] > 0:
            break
    assert c["contended"] > 0, c


def test_what_every_acquisition_writes_fits_two_cache_lines():
    """An acquisition writes the pthread mutex, the total, the owner and its site's
    count: all in the first two cache lines of the lock, so that two Ms taking turns
    on it move two lines between their cores; the sampled hold clock lies beyond."""
    lay = mutex_layout()
    assert lay["acquisitions"] + 8 <= 64, lay            # beside the mutex word: line 0
    for field in ("last_owner", "owner_switches"):      # line 0 with glibc's 40-byte x86-64 mutex
        assert lay[field] + 8 <= 128, (field, lay)
    assert lay["hot_sites_end"] <= 128, lay
    assert lay["hold_start"] >= 128, lay
