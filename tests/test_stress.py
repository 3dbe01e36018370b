"""Stress workloads (stress.kernels, stress.runner) and faults.

The short stress runs carry the `stress` marker and are parametrized so that
xdist spreads them; GORUNTIME_STRESS_SCALE stretches or shrinks their duration
(the ThreadSanitizer run of tools/tsan.py shortens them)."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from goruntime import GoRuntimeError, Runtime
from goruntime.mstats import memstats_problems
from stress.kernels import DEFAULT_MIX, Stress
from stress.runner import (WORKLOADS, Counters, Slice, StressFailure,
                           parse_duration, raise_kernel_errors)

SCALE = float(os.environ.get("GORUNTIME_STRESS_SCALE", "1"))
ARENA = 64 << 20
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


def _finishes(fn, timeout=30.0):
    """Runs fn in a thread; fails the test if it does not return (a lock left held)."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:      # noqa: BLE001 - re-raised below
            out["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn} did not return within {timeout} s"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _consistent(rt, st=None):
    """Ps released, locks free (gc and verify complete), MemStats invariants, and
    after a gc HeapObjects equal to what the slots still hold."""
    assert [p.status.name for p in rt.ps] == ["P_IDLE"] * rt.gomaxprocs
    _finishes(rt.gc)
    _finishes(rt.verify)
    ms = rt.memstats()
    assert memstats_problems(ms) == []
    if st is not None:
        assert ms.HeapObjects == st.held()[1]
    return ms


# -- the short stress runs (make test) -----------------------------------------

SHORT = {
    "larson-go113": ("larson", {"gogc": 100, "sizeclasses": "go1.13"}),
    "larson-spanset-pagecache": ("larson", {"gogc": None, "sizeclasses": "go1.19", "mcentral": "spanset",
                                            "pagecache": True}),
    "prodcons-go113": ("prodcons", {"gogc": 100, "sizeclasses": "go1.13"}),
    "prodcons-locked-spanset": ("prodcons", {"gogc": 50, "mcache": "locked", "mcentral": "spanset"}),
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


@pytest.mark.stress
def test_cli_stress_runs_and_reports(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, "-m", "goruntime", "stress", "--duration", f"{1.6 * SCALE:.2f}",
                          "--workload", "larson,prodcons", "--ms", "3", "--gomaxprocs", "2", "--live", "200",
                          "--seed", "5", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["violations"] == 0 and summary["ops"] > 0 and summary["checks"] > 0
    assert [s["workload"] for s in summary["slices"]][:2] == ["larson", "prodcons"]
    assert summary["seed"] == 5 and summary["slices"][0]["seed"] == 5
    assert "[stress 00:00:0" in out.stderr and "checks" in out.stderr   # the progress line


def test_cli_stress_rejects_bad_arguments():
    for args in (["--workload", "nope"], ["--duration", "soon"], ["--ms", "0"]):
        out = subprocess.run([sys.executable, "-m", "goruntime", "stress", *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, (args, out.stderr)


# -- the checks catch what they are for ------------------------------------------

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


@pytest.mark.stress
def test_cli_failure_exits_nonzero_with_report():
    out = subprocess.run([sys.executable, "-m", "goruntime", "stress", "--duration", "2", "--workload", "larson",
                          "--ms", "3", "--gomaxprocs", "2", "--seed", "9", "--inject", "corrupt", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "FAILED in larson" in out.stderr and "seed:       9" in out.stderr
    assert "overwritten while live" in out.stderr


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


# -- the Stress API and the phase protocol ------------------------------------------

def test_every_object_is_accounted_between_phases():
    with Runtime(gomaxprocs=PS, gogc=None) as rt:
        st = Stress(rt, MS, cap=512, seed=3)
        st.start(range(MS), target=200, keep=100, handoff=0.5, ops=3000)
        _finishes(lambda: _wait(st))
        st.join()
        assert st.errors() == []
        held, heap_objects = st.held()
        assert held == 100 * MS
        ms = _consistent(rt, st)
        assert ms.Mallocs == st.progress()[0]
        # The next phase's Ms free what the last phase's left (handed around).
        st.start(range(MS), target=0, keep=0, handoff=0.5, duration=5.0)
        _finishes(lambda: _wait(st))
        st.join()
        assert st.errors() == [] and st.held() == (0, 0)
        ms = _consistent(rt, st)
        assert ms.HeapObjects == 0 and ms.HeapInuse == 0


def test_stop_winds_a_phase_down_cleanly():
    with Runtime(gomaxprocs=PS) as rt:
        st = Stress(rt, MS, cap=256, seed=4)
        st.start(range(MS), roles=["producer", "consumer", "producer", "consumer"], target=32, duration=600)
        time.sleep(0.2)
        t0 = time.monotonic()
        st.stop()
        _finishes(lambda: _wait(st), timeout=20)
        assert time.monotonic() - t0 < 10
        stats = st.join()
        assert st.errors() == []
        produced = sum(s["handed"] for s in stats if s["role"] == "producer")
        assert produced == sum(s["received"] for s in stats if s["role"] == "consumer") > 0
        _consistent(rt, st)
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


def _wait(st):
    while not st.finished():
        time.sleep(0.005)


# -- faults ----------------------------------------------------------------------

def test_heap_cap_memoryerror_then_usable_again():
    with Runtime(gomaxprocs=PS, gogc=None, max_heap=ARENA) as rt:
        small = [rt.malloc(s) for s in (8, 16, 32768)]
        big = []
        with pytest.raises(MemoryError):
            for _ in range(200):
                big.append(rt.malloc(1 << 20))
        assert 0 < len(big) < 64
        _consistent(rt)
        for a in big + small:
            rt.free(a)
        rt.gc()
        rt.verify()
        ms = rt.memstats()
        assert ms.HeapObjects == 0 and ms.HeapInuse == 0 and ms.HeapSys == ARENA
        again = [rt.malloc(1 << 20) for _ in range(len(big))]
        assert len(set(again)) == len(big)
        _consistent(rt)


def test_failed_reservation_is_memoryerror_once():
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        rt.heap.fail_reservations(1)
        with pytest.raises(MemoryError):
            rt.malloc(64)
        a = rt.malloc(64)
        rt.write(a, b"ok")
        assert rt.read(a, 2) == b"ok"
        _consistent(rt)


@pytest.mark.parametrize("roles", [None, ["producer", "consumer", "producer", "consumer"]], ids=["servers", "prodcons"])
def test_kernel_out_of_memory_is_memoryerror_and_recovers(roles):
    with Runtime(gomaxprocs=PS, gogc=None, max_heap=ARENA) as rt:
        st = Stress(rt, MS, cap=4096, mix=[(32769, 262144, 1.0), (16, 16, 1.0)], seed=5)
        st.start(range(MS), roles=roles, target=4096, keep=4096, duration=30.0)
        _finishes(lambda: _wait(st))
        st.join()
        errors = st.errors()
        assert errors and errors[0]["kind"] == "oom"
        with pytest.raises(MemoryError, match="out of memory"):
            raise_kernel_errors(errors)
        _consistent(rt, st)
        st.clear_errors()
        held, _ = st.held()
        assert st.release_all() == held > 0
        ms = _consistent(rt, st)
        assert ms.HeapObjects == 0
        st.start(range(MS), roles=roles, target=8, keep=0, handoff=0.3, gc_rate=1 / 8, ops=1000)
        _finishes(lambda: _wait(st))
        st.join()
        assert st.errors() == []
        assert _consistent(rt, st).HeapObjects == 0


def test_reservation_failures_while_ms_run_are_absorbed():
    with Runtime(gomaxprocs=PS, gogc=100, max_heap=2 * ARENA) as rt:
        st = Stress(rt, MS, cap=2048, mix=[(32769, 131072, 1.0), (1, 64, 3.0)], seed=6)
        st.start(range(MS), target=2048, keep=0, handoff=0.2, oom_ok=True, duration=1.0 * SCALE)
        while not st.finished():
            rt.heap.fail_reservations(2)
            time.sleep(0.02)
        stats = st.join()
        assert st.errors() == []
        assert sum(s["ooms"] for s in stats) > 0
        assert _consistent(rt, st).HeapObjects == 0


@pytest.mark.parametrize("roles", [None, ["producer", "consumer", "producer", "consumer"]], ids=["servers", "prodcons"])
def test_kernel_stopping_half_way_leaves_runtime_consistent(roles):
    with Runtime(gomaxprocs=PS, gogc=100) as rt:
        st = Stress(rt, MS, cap=1024, seed=8)
        st.start(range(MS), roles=roles, target=500, handoff=0.3, gc_rate=1 / 5000, duration=30.0,
                 inject="error", inject_slot=0, inject_after=2000)
        _finishes(lambda: _wait(st))
        st.join()
        errors = st.errors()
        assert [e["kind"] for e in errors] == ["injected"] and errors[0]["slot"] == 0
        with pytest.raises(GoRuntimeError, match="injected"):
            raise_kernel_errors(errors)
        # Ps released, locks free, heap consistent, with the abandoned objects live.
        held, _ = st.held()
        assert held > 0
        _consistent(rt, st)
        st.clear_errors()
        assert st.release_all() == held
        assert _consistent(rt, st).HeapObjects == 0
        st.start(range(MS), roles=roles, target=200, keep=0, handoff=0.3, ops=3000)
        _finishes(lambda: _wait(st))
        st.join()
        assert st.errors() == []
        assert _consistent(rt, st).HeapObjects == 0


def test_exception_inside_proc_releases_the_p():
    with Runtime(gomaxprocs=PS) as rt:
        with pytest.raises(ZeroDivisionError):
            with rt.proc():
                xs = [rt.malloc(s) for s in (8, 16, 100, 40000)]
                1 / 0
        _consistent(rt)
        for x in xs:
            rt.free(x)
        assert _consistent(rt).HeapObjects == 0
