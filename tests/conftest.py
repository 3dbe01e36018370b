"""Shared fixtures and checks for the goruntime test suite.

The files are one per structure (test_sizeclasses, test_mspan, test_mspanset, test_lock,
test_mheap, test_mcentral, test_mcache, test_proc, test_mgc, test_mstats, test_malloc), plus
the public API (test_api), hostile but legal use of it (test_hostile: run in child
interpreters, see run_python), the command line (test_cli), the stress workloads (test_stress),
the tools (test_profile, test_pprof, test_compare), the layout and import graph
(test_layout), the machine code of the mcache path
(test_fastpath), the API fuzzer (test_fuzz_api) and ThreadSanitizer (test_tsan).

assert_memstats_invariants below is the one place the tests check MemStats identities."""
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from goruntime import Runtime
from tests import testkernels as tk
from goruntime.mstats import memstats_problems

VERSIONS = ("go1.13", "go1.19")
PAGE = 8192
ARENA = 64 << 20
MAX_SMALL = 32768
OPS = 20000             # allocations per M of the churn runs

# The MemStats fields that a call which is refused must leave alone.
STAT_FIELDS = ("Mallocs", "Frees", "HeapAlloc", "HeapInuse", "HeapObjects", "HeapSys",
               "TotalAlloc", "LargeAllocs", "TinyAllocs", "NumGC")


@pytest.fixture
def rt():
    """A two-P runtime with the GC trigger off: only rt.gc() collects."""
    r = Runtime(gomaxprocs=2, gogc=None)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(params=VERSIONS)
def sc_version(request):
    """Each modelled size-class table in turn."""
    return request.param


@pytest.fixture
def rt_sc(sc_version):
    """Like `rt`, once per size-class table."""
    r = Runtime(gomaxprocs=2, gogc=None, sizeclasses=sc_version)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def live(rt):
    """A few live objects to aim bad pointers at: small, tiny and large."""
    with rt.proc():
        small = rt.malloc(64)
        other = rt.malloc(64)
        tiny = rt.malloc(4, noscan=True)
        tiny2 = rt.malloc(4, noscan=True)
    large = rt.malloc(40000)
    rt.write(small, b"S" * 64)
    return {"small": small, "other": other, "tiny": tiny, "tiny2": tiny2, "large": large}


def stat_snapshot(ms, fields=STAT_FIELDS):
    return {f: getattr(ms, f) for f in fields}


def by_size(ms, size):
    """The BySize entry of one class size."""
    [entry] = [b for b in ms.BySize if b["Size"] == size]
    return entry


def held_p(rt):
    """The P this thread holds inside `with rt.proc():` (parked in P_SYSCALL between calls)."""
    held = [p for p in rt.ps if p.status.name == "P_SYSCALL"]
    assert len(held) == 1, [repr(p) for p in rt.ps]
    return held[0]


def lock_counts(rt):
    """Acquisitions of the mheap, scheduler and mcentral locks, and P acquisitions."""
    ls = rt.lockstats()
    return {"mheap": ls["mheap"]["acquisitions"], "sched": ls["sched"]["acquisitions"],
            "mcentral": ls["mcentral"]["acquisitions"], "p_acquires": ls["sched"]["p_acquires"]}


def assert_memstats_invariants(ms, rt=None, prev=None):
    """Checks the identities every MemStats snapshot must satisfy (goruntime.mstats.
    memstats_problems, which the stress runner checks too).

    With `prev` (an earlier snapshot of the same runtime) the cumulative counters must
    not have gone backwards. With `rt` (only when no other thread is using it) the heap
    figures are also checked against the page allocator's own view: arenas and free
    runs. In the page-cache mode (Runtime(pagecache=True)) HeapIdle also counts the
    pages parked in the Ps' page caches, which free_runs() does not list.
    """
    problems = memstats_problems(ms, prev)
    assert problems == [], f"{problems} in {ms}"
    if rt is not None:
        # The background sweeper may still be returning spans: hold it still, and
        # if it swept any since `ms`, compare a snapshot taken now instead.
        tk.pause_background_sweeper(rt, True)
        try:
            now = rt.memstats()
            _assert_heap_matches(ms if now.SweptBy == ms.SweptBy else now, rt)
        finally:
            tk.pause_background_sweeper(rt, False)


def _assert_heap_matches(ms, rt):
    """MemStats against the page allocator's own view: arenas and free runs."""
    rt.verify()                                 # raises GoRuntimeError on a broken invariant
    arenas = rt.heap.arenas
    assert sum(size for _, size in arenas) == ms.HeapSys
    assert len(arenas) == ms.HeapGrows
    runs = rt.heap.free_runs()
    if rt.modes["pagecache"]:
        assert sum(n for _, n in runs) * PAGE <= ms.HeapIdle
    else:
        assert sum(n for _, n in runs) * PAGE == ms.HeapIdle
    # Free runs are ordered, and maximal (coalesced) within an arena.
    bases = {base for base, _ in arenas}
    for (b0, n0), (b1, _) in zip(runs, runs[1:]):
        assert b0 + n0 * PAGE < b1 or (b0 + n0 * PAGE == b1 and b1 in bases), runs


@pytest.fixture
def invariants():
    return assert_memstats_invariants


def assert_all_collected(rt, allocs=None):
    """After a gc nothing is live: every span went back to the page heap."""
    rt.gc()
    ms = rt.memstats()
    assert ms.HeapObjects == 0 and ms.HeapAlloc == 0 and ms.HeapInuse == 0, ms
    assert ms.Mallocs == ms.Frees
    if allocs is not None:
        assert ms.Mallocs == allocs
    assert_memstats_invariants(ms, rt)
    # Each arena is one free run again: freed pages coalesced completely.
    assert rt.heap.free_runs() == [(base, size // PAGE) for base, size in rt.heap.arenas]
    assert all(p.mcache.spans() == [] for p in rt.ps)
    return ms


def assert_run_result(r, ms, ops):
    """The figures of rt.run(ms=ms, ops=ops) with a kernel that drops what it holds."""
    assert r.allocs == ms * ops
    assert r.frees == r.allocs                       # every kernel drops what it holds
    assert len(r.per_m) == ms
    assert sorted(m["id"] for m in r.per_m) == list(range(ms))
    for m in r.per_m:
        assert m["allocs"] == ops and m["frees"] == ops


@contextlib.contextmanager
def unchanged(rt):
    """Asserts that the block leaves the MemStats counters (and the heap's free runs) alone."""
    before = stat_snapshot(rt.memstats())
    runs = rt.heap.free_runs()
    yield
    ms = rt.memstats()
    assert stat_snapshot(ms) == before
    assert rt.heap.free_runs() == runs
    assert_memstats_invariants(ms, rt)


def finishes(fn, timeout=30.0):
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


def wait_until(cond, timeout=30.0, what=None, poll=0.001):
    """Polls cond() until it is true; fails the test if it is still false after timeout
    seconds. (The sleep is the polling interval, not a stand-in for the condition.)"""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what or cond} still false after {timeout} s"
        time.sleep(poll)


def consistent(rt, st=None):
    """Locks free and Ps released (gc and verify complete; a gc returns once the
    background sweeper has given its P back too, and it takes none after it),
    MemStats invariants, and after a gc HeapObjects equal to what a Stress's
    slots still hold."""
    finishes(rt.gc)
    assert [p.status.name for p in rt.ps] == ["P_IDLE"] * rt.gomaxprocs
    finishes(rt.verify)
    ms = rt.memstats()
    assert_memstats_invariants(ms, rt)
    if st is not None:
        assert ms.HeapObjects == st.held()[1]
    return ms


ROOT = Path(__file__).resolve().parents[1]


def run_python(code, *args, timeout=60.0, env=None):
    """Runs a Python snippet in a child interpreter (sys.executable, this checkout) with a
    time limit, so that a crash or a hang fails the calling test instead of killing or
    stalling the suite. Returns the CompletedProcess (text stdout and stderr); fails the
    test if the child is still running after `timeout` seconds (it is killed) or died of
    a signal (a segfault, an abort)."""
    cmd = [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code), *map(str, args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env=None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        pytest.fail(f"the child hung: still running after {timeout} s\n"
                    f"--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}")
    if proc.returncode < 0:
        pytest.fail(f"the child died of {signal.Signals(-proc.returncode).name}\n"
                    f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc


def assert_python_ok(code, *args, timeout=60.0, env=None):
    """run_python, and the child must exit 0 with OK as the last line of its stdout."""
    proc = run_python(code, *args, timeout=timeout, env=env)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), (
        f"rc={proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc
