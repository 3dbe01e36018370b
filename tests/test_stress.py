"""The stress workloads (stress.kernels, stress.runner) and kernel faults.

The short stress runs carry the `stress` marker and are parametrized so that
xdist spreads them; GORUNTIME_STRESS_SCALE stretches or shrinks their duration
(the ThreadSanitizer run of tools/tsan.py shortens them). The command
(`goruntime stress`) is tested in test_cli.py."""
import os
import time

import pytest

from goruntime import GoRuntimeError, Runtime
from stress.kernels import DEFAULT_MIX, Stress
from stress.runner import (WORKLOADS, Counters, Slice, StressFailure, parse_duration,
                                 raise_kernel_errors)
from conftest import ARENA, consistent, finishes, wait_until

SCALE = float(os.environ.get("GORUNTIME_STRESS_SCALE", "1"))
MS, PS = 4, 2       # more Ms than Ps


def _slice(workload, seed=1, duration=1.0, runtime_args=None, **kw):
    kw.setdefault("live", 300)
    kw.setdefault("round_s", 0.25)
    kw.setdefault("check_interval", 0.2)
    kw.setdefault("gc_interval", 0.15)
    kw.setdefault("gc_rate", 1 / 20000)
    # Go 1.13's structures unless the case names others (a Slice draws them at random).
    args = {"mcache": "lockfree", "mcentral": "mutex", "pagecache": False}
    args.update(runtime_args or {})
    return Slice(workload, seed, duration * SCALE, kw.pop("ms", MS), PS, Counters(),
                 runtime_args=args, **kw)


# -- the short stress runs (make test) -------------------------------------------------

SHORT = {
    "larson-go113": ("larson", {"gogc": 100, "sizeclasses": "go1.13"}),
    "larson-spanset-pagecache": ("larson", {"gogc": None, "sizeclasses": "go1.19", "mcentral": "spanset",
                                            "pagecache": True}),
    "prodcons-go113": ("prodcons", {"gogc": 100, "sizeclasses": "go1.13"}),
    "prodcons-locked-spanset": ("prodcons", {"gogc": 50, "mcache": "locked", "mcentral": "spanset"}),
    "larson-shared": ("larson", {"gogc": 100, "mcache": "shared"}),
    "mstress-shared-pagecache": ("mstress", {"gogc": 50, "mcache": "shared", "pagecache": True}),
    "mstress-go113": ("mstress", {"gogc": 100, "sizeclasses": "go1.13"}),
    "mstress-nomcache-pagecache": ("mstress", {"gogc": None, "sizeclasses": "go1.19", "mcache": "none",
                                               "pagecache": True}),
    "oom-go113": ("oom", {"gogc": 100, "max_heap": 2 * ARENA}),
    "oom-spanset-pagecache": ("oom", {"gogc": 100, "max_heap": 2 * ARENA, "mcentral": "spanset",
                                      "pagecache": True}),
}


@pytest.mark.stress
@pytest.mark.parametrize("name", sorted(SHORT))
def test_short_stress(name):
    workload, runtime_args = SHORT[name]
    s = _slice(workload, seed=11, runtime_args=runtime_args)
    ops = s.run()
    c = s.c
    assert ops > 1000 and c.checks >= 6 and c.phases >= 2
    assert c.tags_done > 0
    if runtime_args.get("max_heap"):
        assert c.ooms > 0, "the capped heap never ran out"
    assert c.kernel_gcs + c.gcs > 0


def test_every_workload_has_a_short_run():
    assert {w for w, _ in SHORT.values()} == set(WORKLOADS)


@pytest.mark.stress
def test_larson_hands_objects_over_and_more_ms_than_ps():
    s = _slice("larson", seed=2, duration=0.6)
    s.run()
    servers = [st for st in s.last_stats if st["role"] == "server"]
    assert len(servers) == MS > PS
    assert sum(st["handed"] for st in servers) > 0
    assert sum(st["received"] for st in servers) > 0


# -- the checks catch what they are for ------------------------------------------------

def test_corruption_is_caught_with_seed_and_config():
    s = _slice("larson", seed=7, duration=2.0, inject=("corrupt", 0, 50))
    with pytest.raises(StressFailure) as info:
        s.run()
    r = info.value.report
    assert "overwritten while live" in r["invariant"]
    assert r["seed"] == 7 and r["workload"] == "larson" and r["runtime"]["gomaxprocs"] == PS
    assert r["phase"] == 1 and r["phase_args"]["slots"] == list(range(MS))
    assert "--seed 7" in r["repeat"]
    assert "FAILED" in str(info.value) and "seed:" in str(info.value)


def test_same_seed_same_configuration_and_phases():
    a, b = _slice("prodcons", seed=123), _slice("prodcons", seed=123)
    assert a.runtime == b.runtime
    a.run()
    b.run()
    n = min(len(a.log), len(b.log)) - 1     # the last phase ends on the clock
    assert n >= 2 and a.log[:n] == b.log[:n]
    c = _slice("prodcons", seed=124, duration=0.3)
    c.run()
    assert c.log[:2] != a.log[:2]


def test_parse_duration():
    assert parse_duration("90") == 90 and parse_duration("1h") == 3600
    assert parse_duration("1h30m") == 5400 and parse_duration("2.5s") == 2.5


# -- the Stress API and the phase protocol ---------------------------------------------

def test_every_object_is_accounted_between_phases():
    with Runtime(gomaxprocs=PS, gogc=None) as rt:
        st = Stress(rt, MS, cap=512, seed=3)
        st.start(range(MS), target=200, keep=100, handoff=0.5, ops=3000)
        finishes(st.join)
        assert st.errors() == []
        held, heap_objects = st.held()
        assert held == 100 * MS
        ms = consistent(rt, st)
        assert ms.Mallocs == st.progress()[0]
        # The next phase's Ms free what the last phase's left (handed around).
        st.start(range(MS), target=0, keep=0, handoff=0.5, duration=5.0)
        finishes(st.join)
        assert st.errors() == [] and st.held() == (0, 0)
        ms = consistent(rt, st)
        assert ms.HeapObjects == 0 and ms.HeapInuse == 0


def test_stop_winds_a_phase_down_cleanly():
    with Runtime(gomaxprocs=PS) as rt:
        st = Stress(rt, MS, cap=256, seed=4)
        st.start(range(MS), roles=["producer", "consumer", "producer", "consumer"], target=32, duration=600)
        # Stop a phase in full swing: once the consumers have freed objects handed over.
        wait_until(lambda: st.progress()[1] > 0, timeout=20, what="a consumer freeing an object")
        t0 = time.monotonic()
        st.stop()
        stats = finishes(st.join, timeout=20)
        assert time.monotonic() - t0 < 10
        assert st.errors() == []
        produced = sum(s["handed"] for s in stats if s["role"] == "producer")
        assert produced == sum(s["received"] for s in stats if s["role"] == "consumer") > 0
        consistent(rt, st)
        assert st.held() == (0, 0)


def test_stress_argument_checks():
    with Runtime(gomaxprocs=1) as rt:
        st = Stress(rt, 2, cap=16)
        with pytest.raises(ValueError):
            st.start([0, 0], ops=1)
        with pytest.raises(ValueError):
            st.start([0, 1], roles=["producer", "producer"], ops=1)
        with pytest.raises(ValueError):
            st.start([0], target=17, ops=1)
        with pytest.raises(ValueError):
            st.start([0], ops=1, duration=1)
        with pytest.raises(ValueError):
            st.start([0], ops=1, inject="boom")
        with pytest.raises(ValueError):
            Stress(rt, 1, mix=[(0, 8, 1.0)])
        assert st.join() == []


def test_default_mix_has_the_boundaries():
    points = {lo for lo, hi, _ in DEFAULT_MIX if lo == hi}
    assert {16, 32768, 32769} <= points
    assert DEFAULT_MIX[0][:2] == (1, 15)        # tiny, when noscan


# -- kernel faults --------------------------------------------------------------------

@pytest.mark.parametrize("roles", [None, ["producer", "consumer", "producer", "consumer"]], ids=["servers", "prodcons"])
def test_kernel_out_of_memory_is_memoryerror_and_recovers(roles):
    with Runtime(gomaxprocs=PS, gogc=None, max_heap=ARENA) as rt:
        st = Stress(rt, MS, cap=4096, mix=[(32769, 262144, 1.0), (16, 16, 1.0)], seed=5)
        st.start(range(MS), roles=roles, target=4096, keep=4096, duration=30.0)
        finishes(st.join)
        errors = st.errors()
        assert errors and errors[0]["kind"] == "oom"
        with pytest.raises(MemoryError, match="out of memory"):
            raise_kernel_errors(errors)
        consistent(rt, st)
        st.clear_errors()
        held, _ = st.held()
        assert st.release_all() == held > 0
        ms = consistent(rt, st)
        assert ms.HeapObjects == 0
        st.start(range(MS), roles=roles, target=8, keep=0, handoff=0.3, gc_rate=1 / 8, ops=1000)
        finishes(st.join)
        assert st.errors() == []
        assert consistent(rt, st).HeapObjects == 0


def test_reservation_failures_while_ms_run_are_absorbed():
    with Runtime(gomaxprocs=PS, gogc=100, max_heap=2 * ARENA) as rt:
        st = Stress(rt, MS, cap=2048, mix=[(32769, 131072, 1.0), (1, 64, 3.0)], seed=6)
        # The heap is empty: the Ms' first two reservations fail, the next ones succeed.
        rt.heap.fail_reservations(2)
        st.start(range(MS), target=2048, keep=0, handoff=0.2, oom_ok=True, duration=1.0 * SCALE)
        stats = finishes(st.join)
        assert st.errors() == []
        assert sum(s["ooms"] for s in stats) > 0
        # A reservation succeeded after the failed ones, so both failures were used up.
        assert consistent(rt, st).HeapObjects == 0
        assert rt.memstats().HeapSys >= ARENA


@pytest.mark.parametrize("roles", [None, ["producer", "consumer", "producer", "consumer"]], ids=["servers", "prodcons"])
def test_kernel_stopping_half_way_leaves_runtime_consistent(roles):
    with Runtime(gomaxprocs=PS, gogc=100) as rt:
        st = Stress(rt, MS, cap=1024, seed=8)
        st.start(range(MS), roles=roles, target=500, handoff=0.3, gc_rate=1 / 5000, duration=30.0,
                 inject="error", inject_slot=0, inject_after=2000)
        finishes(st.join)
        errors = st.errors()
        assert [e["kind"] for e in errors] == ["injected"] and errors[0]["slot"] == 0
        with pytest.raises(GoRuntimeError, match="injected"):
            raise_kernel_errors(errors)
        # Ps released, locks free, heap consistent, with the abandoned objects live.
        held, _ = st.held()
        assert held > 0
        consistent(rt, st)
        st.clear_errors()
        assert st.release_all() == held
        assert consistent(rt, st).HeapObjects == 0
        st.start(range(MS), roles=roles, target=200, keep=0, handoff=0.3, ops=3000)
        finishes(st.join)
        assert st.errors() == []
        assert consistent(rt, st).HeapObjects == 0


def test_stress_slots_are_seeded_like_churn_ms():
    sizes = []
    for _ in range(2):
        with Runtime(gomaxprocs=2, gogc=None) as rt:
            st = Stress(rt, 2, cap=64, seed=99)
            st.start([0, 1], target=32, ops=200)
            st.join()
            assert st.errors() == []
            sizes.append(sorted((slot, size) for _, size, _, slot, _ in st.objects()))
            st.release_all()
    assert sizes[0] == sizes[1]
