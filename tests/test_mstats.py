"""MemStats: snapshots taken while Ms run, and the identities every snapshot satisfies
(goruntime.mstats.memstats_problems, which conftest's assert_memstats_invariants and the
stress runner both check through)."""
import threading
import time

import pytest

from goruntime import Runtime
from goruntime.mstats import memstats_problems
from conftest import OPS, PAGE, assert_all_collected, assert_memstats_invariants, assert_run_result


def test_memstats_and_gc_from_other_threads_during_a_run():
    with Runtime(gomaxprocs=2, gogc=100) as rt:
        done = threading.Event()
        snapshots, errors, gcs = [], [], [0]

        def observer():
            try:
                while True:
                    ms = rt.memstats()
                    assert_memstats_invariants(ms)
                    snapshots.append(ms)
                    rt.verify()
                    rt.gc()
                    gcs[0] += 1
                    if done.is_set():
                        break
                    # A breath between rounds: back to back, three stops of an
                    # empty heap can leave the Ms no window to allocate in.
                    time.sleep(0.0002)
            except BaseException as e:              # reported below
                errors.append(e)

        t = threading.Thread(target=observer)
        t.start()
        try:
            r = rt.run(ms=4, ops=OPS, sizes=[16, 64, 700, 5000], noscan=0.5, live=256,
                       large_share=0.01, seed=11)
        finally:
            done.set()
            t.join()
        assert errors == []
        assert_run_result(r, 4, OPS)
        # Some snapshots were taken while the Ms were allocating.
        assert any(0 < ms.Mallocs < r.allocs for ms in snapshots), [ms.Mallocs for ms in snapshots]
        # Snapshots are monotonic in the cumulative counters.
        for a, b in zip(snapshots, snapshots[1:]):
            assert_memstats_invariants(b, prev=a)
        stats = rt.memstats()
        assert stats.NumGC == gcs[0] + sum(m["gcs"] for m in r.per_m)
        assert_all_collected(rt, r.allocs)


def test_memstats_problems_name_the_broken_invariant():
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        rt.malloc(64)
        ms = rt.memstats()
    assert memstats_problems(ms) == []
    ms.HeapIdle += 8192
    assert memstats_problems(ms)[0].startswith("HeapIdle")
    ms.HeapIdle -= 8192
    ms.Frees += 1
    assert any(p.startswith("Mallocs") for p in memstats_problems(ms))
    prev = type(ms)(dict(ms.as_dict(), NumGC=ms.NumGC + 1))
    assert any("NumGC went backwards" in p for p in memstats_problems(ms, prev))


# One broken identity at a time: the changes to a valid snapshot that break it alone.
BROKEN = {
    "HeapIdle+HeapInuse": {"HeapIdle": PAGE},
    "Mallocs-Frees": {"Frees": 1},
    "HeapAlloc<=HeapInuse": {"HeapAlloc": 10 * PAGE},
    "Alloc": {"Alloc": 8},
    "HeapReleased": {"HeapReleased": 100 * PAGE},
    "pages": {"HeapInuse": 8, "HeapSys": 8},
    "arenas": {"HeapIdle": PAGE, "HeapSys": PAGE},
    "BySize": {"TinyAllocs": 1},
    "LargeFrees": {"LargeFrees": 1},
    "MCacheHits": {"MCacheHits": 1},
    "MCentralGrows": {"MCentralGrows": 100},
    "TotalAlloc": {"TotalAlloc": -(1 << 30)},
    "PauseNs": {"NumGC": 1},
    "PauseTotalNs": {"PauseTotalNs": -(1 << 62)},
    "HeapGrows": {"HeapGrows": 1},
    "MSpanInuse": {"MSpanInuse": 1 << 30},
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_invariant_helper_catches_each_broken_identity(case):
    """assert_memstats_invariants must be able to fail: each identity, broken on its own."""
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        xs = [rt.malloc(s) for s in (8, 64, 40000)] + [rt.malloc(4, noscan=True)]
        rt.free(xs[0])
        rt.gc()
        ms = rt.memstats()
        assert_memstats_invariants(ms, rt)
    broken = ms.as_dict()
    for field, delta in BROKEN[case].items():
        broken[field] += delta
    with pytest.raises(AssertionError):
        assert_memstats_invariants(type(ms)(broken))


@pytest.mark.parametrize("field", ["Mallocs", "Frees", "TotalAlloc", "NumGC", "HeapSys",
                                   "PauseTotalNs"])
def test_invariant_helper_catches_counters_going_backwards(field):
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        rt.free(rt.malloc(64))
        rt.gc()
        ms = rt.memstats()
    later = type(ms)(dict(ms.as_dict(), **{field: getattr(ms, field) + 1}))
    assert_memstats_invariants(ms, prev=ms)
    with pytest.raises(AssertionError, match=f"{field} went backwards"):
        assert_memstats_invariants(ms, prev=later)


def test_invariant_helper_checks_the_heap_against_the_snapshot():
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        rt.malloc(64)
        ms = rt.memstats()
        assert_memstats_invariants(ms, rt)
        other = type(ms)(dict(ms.as_dict(), HeapIdle=ms.HeapIdle - PAGE, HeapInuse=ms.HeapInuse + PAGE,
                              HeapReleased=min(ms.HeapReleased, ms.HeapIdle - PAGE)))
        assert_memstats_invariants(other)               # consistent on its own ...
        with pytest.raises(AssertionError):
            assert_memstats_invariants(other, rt)       # ... but not with the heap
