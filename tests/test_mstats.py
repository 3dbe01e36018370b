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
                    # A loop of stop-the-worlds with no pause would keep the Ms
                    # parked (a Go program calling runtime.GC in a loop too):
                    # leave them a moment.
                    time.sleep(0.0002)
            except BaseException as e:              # reported below
                errors.append(e)

        t = threading.Thread(target=observer)
        t.start()
        base, mid_run = 0, False
        try:
            # Until a snapshot falls inside a run (a busy machine may not schedule the
            # observer during a short one), longer each time.
            for attempt in range(8):
                r = rt.run(ms=4, ops=OPS * (attempt + 1), sizes=[16, 64, 700, 5000], noscan=0.5,
                           live=256, large_share=0.01, seed=11)
                assert_run_result(r, 4, OPS * (attempt + 1))
                mid_run = any(base < ms.Mallocs < base + r.allocs for ms in snapshots)
                base += r.allocs
                if mid_run:
                    break
        finally:
            done.set()
            t.join()
        assert errors == []
        assert mid_run, [ms.Mallocs for ms in snapshots]
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
    assert memstats_problems(type(ms)({**ms, "HeapIdle": ms.HeapIdle + 8192}))[0].startswith("HeapIdle")
    ms = type(ms)({**ms, "Frees": ms.Frees + 1})
    assert any(p.startswith("Mallocs") for p in memstats_problems(ms))
    with pytest.raises(AttributeError, match="read-only"):
        ms.NumGC = 0                        # a snapshot never changes
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


def test_memstats_reads_as_go_and_as_a_mapping():
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        rt.malloc(64)
        rt.malloc(3 << 20)
        ms = rt.memstats()
    (b64,) = [b for b in ms.BySize if b.Size == 64]
    assert (b64.Size, b64.Mallocs, b64.Frees) == (64, 1, 0) and b64["Mallocs"] == 1
    assert ms["HeapAlloc"] == ms.HeapAlloc and "NumGC" in ms and len(ms) == len(list(ms))
    assert dict(ms)["BySize"] == ms.BySize
    assert {**ms}.keys() == ms.as_dict().keys()
    assert ms.as_dict()["BySize"][0] == {"Size": ms.BySize[0].Size, "Mallocs": ms.BySize[0].Mallocs,
                                         "Frees": ms.BySize[0].Frees}
    text = repr(ms)
    assert text.startswith("MemStats(HeapAlloc=3.0 MiB, HeapInuse=3.0 MiB") and "HeapSys=64.0 MiB" in text
    with pytest.raises(TypeError):
        ms["NumGC"] = 1
    with pytest.raises(AttributeError, match="no field 'Nope'"):
        ms.Nope


@pytest.mark.parametrize("modes", [{}, {"mcentral": "spanset", "pagecache": True}, {"mcache": "shared"}])
def test_heapmap_places_every_page(modes):
    """Every page is in exactly one place, and the places agree with MemStats, the
    mcache views and the mcentral list views."""
    with Runtime(gomaxprocs=2, gogc=None, **modes) as rt:
        rt.run(ms=2, ops=3000, sizes=[16, 64, 1024, 40000], live=500, seed=3)
        keep = [rt.malloc(64) for _ in range(300)] + [rt.malloc(100000)]
        hm = rt.heapmap()
        counts = hm.counts()
        caches = [p.mcache for p in rt.ps] + ([rt.shared_mcache] if rt.shared_mcache else [])
        cached = sum(s.npages for c in caches for s in c.spans())
        ms = rt.memstats()                  # flushes the mcaches: none cached in a new map
        after = rt.heapmap().counts()
    assert len(hm.arenas) == ms.HeapGrows and sum(a.npages for a in hm.arenas) * 8192 == ms.HeapSys
    assert counts["mcache"] == cached > 0
    in_spans = sum(counts[p] for p in ("mcache", "nonempty", "empty", "partial", "full", "large"))
    assert in_spans * 8192 == ms.HeapInuse
    assert (counts["free"] + counts["page cache"]) * 8192 == ms.HeapIdle
    assert counts["large"] >= 13                        # the 100000 B object's pages at least
    lists, sets = counts["nonempty"] + counts["empty"], counts["partial"] + counts["full"]
    assert (lists, sets > 0) == (0, True) if modes.get("mcentral") == "spanset" else (lists > 0, sets) == (True, 0)
    assert after["mcache"] == 0 and sum(after.values()) == sum(counts.values())
    for a in hm.arenas:
        for sc, p in zip(a.spanclasses, a.places):
            # A free page has no class; a large object's span has class 0 or 1 (size class 0).
            assert sc < 2 if p < 2 or p == 7 else sc >= 2, (sc, p)
    assert repr(hm).startswith(f"<HeapMap {len(hm.arenas)} arena")
