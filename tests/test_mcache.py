"""The mcache: its cached spans, the flush, and the lock-free allocation path."""
import subprocess
import sys
import textwrap

import pytest

from goruntime import Runtime

from conftest import assert_memstats_invariants, held_p, lock_counts


def test_mcache_spans_view_and_flush(rt):
    with rt.proc():
        x = rt.malloc(64)
        y = rt.malloc(100, noscan=True)
        spans = held_p(rt).mcache.spans()
    by_class = {s.spanclass: s for s in spans}
    assert set(by_class) == {rt.sizeclasses.size_to_class(64) << 1,
                             rt.sizeclasses.size_to_class(100) << 1 | 1}
    assert by_class[rt.sizeclasses.size_to_class(64) << 1].base == x
    assert by_class[rt.sizeclasses.size_to_class(100) << 1 | 1].base == y
    rt.memstats()                                   # flushes every mcache
    assert all(p.mcache.spans() == [] for p in rt.ps)
    assert all(p.mcache.tiny == 0 for p in rt.ps)
    assert all(p.status.name == "P_IDLE" for p in rt.ps)
    # The flushed span is picked up again where it left off.
    with rt.proc():
        assert rt.malloc(64) == x + 64


@pytest.mark.parametrize("size,noscan", [(64, False), (64, True), (8, True), (1000, False)])
def test_mcache_hits_take_no_lock(rt_sc, size, noscan):
    rt = rt_sc
    sc = rt.sizeclasses
    nelems = 512 if (noscan and size < 16) else sc.class_to_nelems(sc.size_to_class(size))
    n = min(50, nelems - 2)
    with rt.proc():
        first = rt.malloc(size, noscan=noscan)      # warm up: refill the mcache
        p = held_p(rt)
        before = lock_counts(rt)
        refills = p.mcache.refills
        addrs = [rt.malloc(size, noscan=noscan) for _ in range(n)]
        rt.write(addrs[0], b"x")
        assert rt.read(addrs[0], 1) == b"x"
        for x in addrs[: n // 2]:
            rt.free(x)                              # frees are lock-free too
        after = lock_counts(rt)
        assert p.mcache.refills == refills
        assert held_p(rt).id == p.id
    assert after == before
    assert len(set(addrs + [first])) == n + 1
    ms = rt.memstats()
    assert ms.Refills == 1
    assert_memstats_invariants(ms, rt)


@pytest.mark.parametrize("size", [16, 64, 1024])
def test_lockfree_warm_loop_takes_no_mcentral_lock(size):
    """After a warm-up malloc caches a span, allocations that fit in it never lock."""
    with Runtime(gomaxprocs=2, gogc=None, mcache="lockfree") as rt:
        with rt.proc():
            first = rt.malloc(size)
            span = next(s for s in held_p(rt).mcache.spans()
                        if s.base <= first < s.base + s.npages * 8192)
            room = span.nelems - span.allocCount
            assert room > 0
            before = rt.lockstats()
            xs = [rt.malloc(size) for _ in range(room)]
            after = rt.lockstats()
        assert all(span.base <= x < span.base + span.npages * 8192 for x in xs)
        assert after["mcentral"]["acquisitions"] == before["mcentral"]["acquisitions"]
        assert after["mheap"]["acquisitions"] == before["mheap"]["acquisitions"]
        if after.get("mcache") is not None:
            assert after["mcache"]["acquisitions"] == 0
        assert before["mcentral"]["acquisitions"] > 0      # the warm-up refill did lock


def _run_isolated(code):
    """Runs code in a fresh interpreter: a use-after-free must not take the test worker down."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_mcache_view_after_close_does_not_read_freed_spans():
    # close() releases every span; a P's mcache view must not walk them afterwards.
    # The MHeap view raises GoRuntimeError("runtime closed"); so may this one, or
    # it may report no cached span. It must not return the dead spans' bytes.
    proc = _run_isolated("""
        from goruntime import Runtime, GoRuntimeError
        r = Runtime(gomaxprocs=2, gogc=None)
        with r.proc():
            r.malloc(64)
            r.malloc(4, noscan=True)
            r.malloc(1000, noscan=True)
        p = r.ps[0]
        assert len(p.mcache.spans()) == 3
        r.close()
        try:
            spans = p.mcache.spans()
        except GoRuntimeError as e:
            print("RAISED", "closed" in str(e))
        else:
            print("RETURNED", spans)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() in ("RAISED True", "RETURNED []"), proc.stdout[:600]


def test_shared_mode_caches_in_one_mcache_for_every_p():
    """mcache="shared": whichever P allocates, the span is cached in the one shared
    mcache (the Ps' own stay empty), verify() accepts it there, and a collection
    flushes it like any mcache."""
    with Runtime(gomaxprocs=2, gogc=None, mcache="shared") as rt:
        assert rt.shared_mcache is not None
        x = rt.malloc(64)
        cached = rt.shared_mcache.spans()
        assert [s.base <= x < s.base + s.npages * 8192 for s in cached] == [True]
        assert all(p.mcache.spans() == [] for p in rt.ps)
        y = rt.malloc(64)
        assert y == x + 64                  # the next slot of the same shared span
        assert rt.verify() >= 1
        assert_memstats_invariants(rt.memstats(), rt)      # memstats flushes every mcache
        assert rt.shared_mcache.spans() == []
    with Runtime(gomaxprocs=2, gogc=None) as rt:
        assert rt.shared_mcache is None
