"""The runtime locks (goruntime/lock.pyx): their counters add up, and contention is seen
where it must be."""
import pytest

from goruntime import Runtime
from goruntime.lock import mutex_layout



@pytest.mark.parametrize("mcache", ["lockfree", "locked", "none"])
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
