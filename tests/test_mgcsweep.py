"""The sweep concurrent with the mutators (mgcsweep.pyx): Go 1.13's sweepgen states,
the sweepers that claim spans (cacheSpan, the mheap's reclaim, proportional
sweeping, the background sweeper, ensureSwept) and the "stw" comparison mode.

Most tests hold the sweep still: tests.testkernels.collect_without_sweeping is a
collection as the heap trigger starts one (the stop-the-world alone), and
pause_background_sweeper keeps the background sweeper off the Ps, so that every
span a test looks at was swept by the sweeper it names."""
import pytest

from goruntime import Runtime, GoRuntimeError
from tests import testkernels as tk
from tests.conftest import assert_memstats_invariants, wait_until, run_python

PAGE = 8192
ELEMS_64 = PAGE // 64           # slots of a 64 B span (one page)


def swept_by(rt):
    return {k: v for k, v in rt.memstats().SweptBy.items() if v}


@pytest.fixture(params=["mutex", "spanset"])
def still(request):
    """One P, no GC trigger, the background sweeper paused: only the test sweeps."""
    rt = Runtime(gomaxprocs=1, gogc=None, mcentral=request.param)
    tk.pause_background_sweeper(rt, True)
    try:
        yield rt
    finally:
        rt.close()


def fill_spans(rt, nspans, size=64):
    """Objects filling nspans fresh spans of `size` B noscan objects, by span."""
    per = PAGE // size
    objs = [rt.malloc(size, noscan=True) for _ in range(nspans * per)]
    spans = {}
    for x in objs:
        spans.setdefault(rt.heap.span_of(x).base, []).append(x)
    assert len(spans) == nspans and all(len(v) == per for v in spans.values())
    return [spans[b] for b in sorted(spans)]


def test_a_collection_leaves_every_span_unswept(still):
    rt = still
    a, b, c = fill_spans(rt, 3)
    for x in a[::2] + b:
        rt.free(x)
    before = rt.memstats()
    tk.collect_without_sweeping(rt)
    assert rt.verify() >= 3                     # unswept spans are a legal state
    for objs in (a, b, c):
        assert rt.heap.span_of(objs[0]).sweep_state == "needs sweeping"
    ms = rt.memstats()
    # Nothing is freed until its span is swept: the frees wait in freedBits.
    assert ms.HeapObjects == before.HeapObjects == 3 * ELEMS_64
    assert ms.Frees == before.Frees and swept_by(rt) == {}
    # The snapshot's live heap is what the frees left (Go's heap_marked).
    assert ms.HeapLive == (3 * ELEMS_64 - len(a[::2] + b)) * 64
    assert_memstats_invariants(ms, rt)


def test_a_refill_sweeps_the_spans_it_takes(still):
    rt = still
    a, b, c = fill_spans(rt, 3)
    for x in a[1::2]:
        rt.free(x)
    tk.collect_without_sweeping(rt)
    with rt.proc():
        y = rt.malloc(64, noscan=True)          # the mcache was flushed: a refill
    span = rt.heap.span_of(y)
    assert span.base == rt.heap.span_of(a[0]).base and y in a[1::2]
    assert span.sweep_state == "swept, then cached"
    # Spans that were full are swept on the way until one has a free slot; the
    # ones after it wait for the other sweepers.
    states = [rt.heap.span_of(objs[0]).sweep_state for objs in (b, c)]
    assert set(states) <= {"swept", "needs sweeping"} and "needs sweeping" in states
    assert swept_by(rt) == {"cacheSpan": 1 + states.count("swept")}
    assert rt.memstats().Frees == len(a[1::2])


def test_a_free_after_the_snapshot_belongs_to_the_next_cycle(still):
    rt = still
    (a,) = fill_spans(rt, 1)
    rt.free(a[0])                               # before the snapshot
    tk.collect_without_sweeping(rt)
    rt.free(a[1])                               # after it: the span is swept first
    assert swept_by(rt) == {"ensureSwept": 1}
    assert rt.heap.span_of(a[0]).allocCount == ELEMS_64 - 1
    with pytest.raises(GoRuntimeError, match="bad pointer"):
        rt.free(a[0])                           # swept away already
    with pytest.raises(GoRuntimeError, match="double free"):
        rt.free(a[1])                           # freed, and still allocated
    with rt.proc():
        again = rt.malloc(64, noscan=True)
    assert again == a[0]                        # the one slot this cycle freed
    rt.gc()                                     # now a[1] goes
    assert rt.heap.span_of(a[2]).allocCount == ELEMS_64 - 1


def test_read_and_write_sweep_first_and_see_the_snapshot(still):
    rt = still
    (a,) = fill_spans(rt, 1)
    rt.write(a[3], b"live")
    rt.free(a[4])
    tk.collect_without_sweeping(rt)
    assert rt.read(a[3], 4) == b"live"
    assert swept_by(rt) == {"ensureSwept": 1}
    with pytest.raises(GoRuntimeError, match="bad pointer"):
        rt.read(a[4], 1)


def test_one_sweeper_wins_each_span(still):
    rt = still
    spans = fill_spans(rt, 4)
    for objs in spans:
        for x in objs[::3]:
            rt.free(x)
    tk.collect_without_sweeping(rt)
    for objs in spans:
        tk.ensure_swept_race(rt, objs[1], 8)
        assert rt.heap.span_of(objs[1]).sweep_state == "swept"
    assert swept_by(rt) == {"ensureSwept": 4}
    assert rt.memstats().Frees == sum(len(objs[::3]) for objs in spans)
    rt.verify()


def test_the_mheap_reclaims_before_it_grows(still):
    rt = still
    big = rt.malloc(1 << 20)
    rt.free(big)
    tk.collect_without_sweeping(rt)
    sys_before = rt.memstats().HeapSys
    again = rt.malloc(1 << 20)
    assert again == big                         # the swept pages, not new ones
    assert swept_by(rt).get("reclaim", 0) >= 1 and rt.memstats().HeapSys == sys_before


def test_large_objects_wait_for_their_sweep(still):
    rt = still
    big = rt.malloc(200 * 1024)
    rt.free(big)
    tk.collect_without_sweeping(rt)
    assert rt.heap.span_of(big).sweep_state == "needs sweeping"
    assert rt.memstats().HeapInuse >= 200 * 1024
    rt.gc()
    assert rt.heap.span_of(big) is None and rt.memstats().LargeFrees == 1


def test_gc_returns_with_the_sweep_done():
    with Runtime(gomaxprocs=2, gogc=None) as rt:
        objs = [rt.malloc(64) for _ in range(20 * ELEMS_64)]
        for x in objs[::2]:
            rt.free(x)
        rt.gc()
        states = {rt.heap.span_of(x).sweep_state for x in objs[1::2]}
        assert states == {"swept"}
        rt.verify()
        ms = rt.memstats()
        assert ms.HeapObjects == len(objs[1::2]) and ms.HeapLive == ms.HeapAlloc
        assert sum(ms.SweptBy.values()) >= 20 and ms.SweptBy["stop-the-world"] == 0


def test_the_background_sweeper_sweeps_on_an_idle_p():
    with Runtime(gomaxprocs=2, gogc=None) as rt:
        objs = [rt.malloc(64) for _ in range(30 * ELEMS_64)]
        for x in objs:
            rt.free(x)
        tk.collect_without_sweeping(rt)         # the Ps are idle: the sweeper takes one
        wait_until(lambda: rt.heap.span_of(objs[-1]) is None and rt.memstats().HeapInuse == 0,
                   what="the background sweeper returning every span")
        assert rt.memstats().SweptBy["background"] >= 1


@pytest.mark.parametrize("mcentral", ["mutex", "spanset"])
def test_proportional_sweeping_keeps_pace(mcentral):
    # Two Ms keep both Ps busy, so the background sweeper rarely gets one: the
    # refills sweep in proportion to what they allocate, and the collections
    # find (nearly) nothing left to sweep with the world stopped.
    with Runtime(gomaxprocs=2, gogc=100, mcentral=mcentral) as rt:
        r = rt.run(ms=2, ops=300_000, sizes=range(16, 1025), live=4096, seed=3)
        ms = rt.memstats()
        assert ms.NumGC >= 5
        by = ms.SweptBy
        assert by["proportional"] + by["cacheSpan"] > 0
        assert by["stop-the-world"] <= sum(by.values()) // 20
        assert_memstats_invariants(ms, rt)
        rt.verify()
        assert r.allocs == 600_000


@pytest.mark.parametrize("mcentral", ["mutex", "spanset"])
def test_stw_mode_sweeps_inside_the_pause_and_agrees_with_concurrent(mcentral):
    def history(sweep):
        with Runtime(gomaxprocs=1, gogc=None, mcentral=mcentral, sweep=sweep) as rt:
            assert rt.modes["sweep"] == sweep
            if sweep == "concurrent":
                tk.pause_background_sweeper(rt, True)
            out = []
            objs = [rt.malloc(s, noscan=s < 16) for s in (8, 64, 64, 200, 3000, 40000) * 300]
            dead = set(objs[::3]) | set(objs[1::7])
            for x in dead:
                rt.free(x)
            tk.collect_without_sweeping(rt)
            states = {rt.heap.span_of(x).sweep_state for x in objs if x not in dead}
            assert states == ({"swept"} if sweep == "stw" else {"needs sweeping"})
            ms = rt.memstats()
            out.append((ms.HeapLive, ms.Mallocs))
            rt.gc()
            ms = rt.memstats()
            out.append((ms.HeapObjects, ms.HeapAlloc, ms.HeapLive, ms.Frees, ms.HeapInuse))
            by = {k: v for k, v in ms.SweptBy.items() if v}
            rt.verify()
            return out, by

    stw, stw_by = history("stw")
    concurrent, concurrent_by = history("concurrent")
    assert stw == concurrent
    # gc() sweeps what it left after its pause; its pause first finished what the
    # collection before it left (the paused background sweeper did none of it).
    assert set(stw_by) == {"stop-the-world"} and set(concurrent_by) == {"stop-the-world", "gc()"}


def test_sweep_argument_is_checked():
    with pytest.raises(ValueError, match="sweep"):
        Runtime(sweep="lazy")
    with pytest.raises(TypeError, match="sweep"):
        Runtime(sweep=1)


def test_close_and_fork_with_the_background_sweeper_running():
    assert run_python("""
        import os
        from goruntime import Runtime
        from tests import testkernels as tk
        rt = Runtime(gomaxprocs=2, gogc=None)
        objs = [rt.malloc(64) for _ in range(50000)]
        for x in objs:
            rt.free(x)
        tk.collect_without_sweeping(rt)        # the background sweeper starts
        pid = os.fork()
        if pid == 0:
            try:
                rt.malloc(8)
            except Exception as e:
                print(type(e).__name__, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        rt.close()                               # joins the sweeper, mid-sweep or not
        other = Runtime(gomaxprocs=2)
        del other                                # without close(): joined too
        print("ok")
    """, timeout=60).stdout.split() == ["GoRuntimeError", "ok"]
