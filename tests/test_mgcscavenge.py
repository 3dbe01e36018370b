"""The scavenger (goruntime/mgcscavenge.pyx, the page-level half in mheap.pyx): released
pages, Go's zeroedBase rule for zeroing on reuse, HeapReleased, the retained goal, the
background thread's pacing, free_os_memory, RSS, and the thread's lifetime (close, del,
fork, signals; in child interpreters with a time limit).

Deterministic where it can be: Runtime(scavenger=False) and rt.scavenger_step() run the
background thread's step on the test's thread; the tests of the thread itself wait for a
condition with a bounded timeout (conftest.wait_until) and assert it."""
import os
import time

import pytest

from goruntime import GoRuntimeError, Runtime
from goruntime.mstats import memstats_problems
from conftest import ARENA, PAGE, assert_memstats_invariants, assert_python_ok, wait_until

MiB = 1 << 20
STEP = 64 << 10                 # what one step releases at most


def runs_pages(runs):
    return sum(n for _, n in runs)


def pages_of(runs):
    return {base + i * PAGE for base, n in runs for i in range(n)}


def span(rt, addr):
    return rt.heap.span_of(addr)


def retained_goal(ms):
    """Go's retained goal for the heap goal of a MemStats: (100 + 10)% of it, whole pages."""
    goal = ms.NextGC + ms.NextGC // 10
    return (goal + PAGE - 1) // PAGE * PAGE


# -- released pages and HeapReleased ------------------------------------------------------

def test_fresh_memory_is_released_and_accounted():
    with Runtime(gomaxprocs=1, gogc=None, scavenger=False) as rt:
        x = rt.malloc(MiB)
        ms = rt.memstats()
        assert ms.HeapSys == ARENA and ms.HeapInuse == MiB
        # Every free page is fresh, so released (Go's grow counts new memory released).
        assert ms.HeapReleased == ms.HeapIdle == ARENA - MiB
        assert runs_pages(rt.heap.released_runs()) * PAGE == ms.HeapReleased
        assert rt.scavenger_stats()["retained"] == ms.HeapSys - ms.HeapReleased == MiB
        assert memstats_problems(ms) == []
        rt.free(x)


@pytest.mark.parametrize("pagecache", [False, True])
def test_heap_released_through_a_release_and_a_reuse(pagecache):
    with Runtime(gomaxprocs=1, gogc=None, scavenger=False, pagecache=pagecache) as rt:
        objs = [rt.malloc(MiB, noscan=True) for _ in range(8)]
        small = [rt.malloc(4096) for _ in range(64)]
        for a in objs + small:
            rt.write(a, b"\x5a" * 64)
        ms0 = rt.memstats()
        for a in objs[:6] + small:
            rt.free(a)
        rt.gc()
        ms1 = rt.memstats()
        assert ms1.HeapReleased == ms0.HeapReleased           # freed, not released yet
        assert ms1.HeapIdle - ms1.HeapReleased >= 6 * MiB
        got = rt.free_os_memory()
        ms2 = rt.memstats()
        assert got == ms2.HeapReleased - ms1.HeapReleased > 6 * MiB
        # Every free page is released now (those parked in a P's page cache are the
        # P's: released only if they were when the P took them).
        parked = ms2.HeapIdle - runs_pages(rt.heap.free_runs()) * PAGE
        assert ms2.HeapIdle - parked <= ms2.HeapReleased <= ms2.HeapIdle
        assert rt.heap.released_runs() == rt.heap.free_runs()
        assert_memstats_invariants(ms2, rt)
        # Reuse takes released pages out of HeapReleased.
        again = [rt.malloc(MiB, noscan=True) for _ in range(6)]
        ms3 = rt.memstats()
        assert ms3.HeapReleased == ms2.HeapReleased - 6 * MiB
        assert ms3.HeapSys - ms3.HeapReleased == rt.scavenger_stats()["retained"]
        assert_memstats_invariants(ms3, rt)
        for a in again + objs[6:]:
            rt.free(a)


# -- zeroing: Go's allocNeedsZero / zeroedBase rule -----------------------------------------

@pytest.mark.parametrize("pagecache", [False, True])
def test_fresh_memory_is_never_zeroed(pagecache):
    with Runtime(gomaxprocs=1, gogc=None, scavenger=False, pagecache=pagecache) as rt:
        small = rt.malloc(64)
        large = rt.malloc(100000)
        huge = rt.malloc(100 * MiB, noscan=True)        # a reservation of two arenas
        for a in (small, large, huge):
            assert span(rt, a).needzero is False, hex(a)
        assert rt.read(huge, 8) == bytes(8)
        # Frees lower in the arena do not make the fresh memory above zeroedBase dirty: a run
        # too long for the hole goes above the highest span, and is not cleared.
        a = rt.malloc(MiB, noscan=True)
        b = rt.malloc(MiB, noscan=True)
        rt.write(a, b"\xff" * MiB)
        rt.free(a)
        rt.gc()
        c = rt.malloc(2 * MiB, noscan=True)
        assert c > b and span(rt, c).needzero is False
        # The hole below zeroedBase is zeroed when it is reused.
        d = rt.malloc(MiB, noscan=True)
        assert d == a and span(rt, d).needzero is True
        assert rt.read(d, MiB) == bytes(MiB)


def test_zeroed_base_per_arena_of_a_reservation():
    """A run that crosses from one 64 MiB arena into the next moves both arenas'
    zeroedBase; what lies above the second one's stays fresh."""
    with Runtime(gomaxprocs=1, gogc=None, scavenger=False) as rt:
        big = rt.malloc(ARENA + 6 * MiB, noscan=True)  # arena 0 whole, 6 MiB of arena 1
        base = span(rt, big).base
        nxt = rt.malloc(MiB, noscan=True)               # in arena 1, at its zeroedBase
        assert nxt == base + ARENA + 6 * MiB and span(rt, nxt).needzero is False
        rt.write(big, b"\x01" * MiB)
        rt.write(nxt, b"\x02" * MiB)
        rt.free(big)
        rt.free(nxt)
        rt.gc()
        # Starts below arena 0's zeroedBase: cleared, the fresh 1 MiB it reaches in
        # arena 1 (from 7 to 8 MiB) too, as Go clears a whole span that needs it.
        again = rt.malloc(ARENA + 8 * MiB, noscan=True)
        assert again == base and span(rt, again).needzero is True
        assert rt.read(again, MiB) == bytes(MiB)
        # Arena 1's zeroedBase moved to 8 MiB: the next run is fresh.
        above = rt.malloc(MiB, noscan=True)
        assert above == base + ARENA + 8 * MiB and span(rt, above).needzero is False


def test_released_pages_are_zeroed_on_reuse():
    with Runtime(gomaxprocs=2, gogc=None, scavenger=False) as rt:
        with rt.proc():
            objs = [rt.malloc(3000) for _ in range(200)]   # small spans of several pages
        big = rt.malloc(4 * MiB, noscan=True)
        for a in objs:
            rt.write(a, b"\xee" * 3000)
        rt.write(big, b"\xdd" * (4 * MiB))
        keep = rt.malloc(64)                    # something stays in use above them
        for a in objs:
            rt.free(a)
        rt.free(big)
        rt.gc()
        fresh = pages_of(rt.heap.released_runs())
        assert rt.free_os_memory() >= 4 * MiB
        released = pages_of(rt.heap.released_runs()) - fresh     # used, then released
        assert span(rt, keep) is not None
        with rt.proc():
            again = [rt.malloc(3000) for _ in range(200)]
        big2 = rt.malloc(4 * MiB, noscan=True)
        reused = [a for a in again + [big2] if (a & ~(PAGE - 1)) in released]
        assert reused, "nothing reused a released page"
        for a in reused:
            # Released pages lie below zeroedBase: the span is cleared, as Go clears it.
            assert span(rt, a).needzero is True
        for a in again:
            assert rt.read(a, 3000) == bytes(3000)
        assert rt.read(big2, 4 * MiB) == bytes(4 * MiB)
        assert_memstats_invariants(rt.memstats(), rt)


# -- the retained goal, one step at a time ----------------------------------------------------

def _heap_with_garbage(rt, total_mib, keep_every):
    """Allocates total_mib 1 MiB objects with data, keeps every keep_every-th one, collects."""
    objs = [rt.malloc(MiB, noscan=True) for _ in range(total_mib)]
    for a in objs:
        rt.write(a, b"\x42" * 4096)
    keep = objs[::keep_every]
    for a in objs:
        if a not in keep:
            rt.free(a)
    rt.gc()
    return keep


def test_steps_release_down_to_the_retained_goal_highest_pages_first():
    with Runtime(gomaxprocs=1, gogc=100, scavenger=False) as rt:
        keep = _heap_with_garbage(rt, 96, 12)          # 8 MiB live, 88 MiB free
        ms = rt.memstats()
        goal = retained_goal(ms)
        before = pages_of(rt.heap.released_runs())
        retained = ms.HeapSys - ms.HeapReleased
        assert retained > goal + 10 * STEP
        steps = 0
        while True:
            got = rt.scavenger_step()
            if not got:
                break
            assert 0 < got <= STEP
            steps += 1
            assert steps < 10000
        st = rt.scavenger_stats()
        assert st["goal"] == goal
        ms = rt.memstats()
        assert ms.HeapSys - ms.HeapReleased == st["retained"]
        # Down to the goal, and not one step further.
        assert goal - STEP < st["retained"] <= goal
        assert st["released"] == retained - st["retained"] and st["steps"] == steps
        assert rt.scavenger_step() == 0 and rt.scavenger_stats()["parks"] >= 1
        # Highest first: every free page still retained lies below every page released.
        released_now = pages_of(rt.heap.released_runs()) - before
        retained_free = pages_of(rt.heap.free_runs()) - pages_of(rt.heap.released_runs())
        assert released_now and retained_free
        assert max(retained_free) < min(released_now)
        assert_memstats_invariants(ms, rt)
        for a in keep:
            assert rt.read(a, 4096) == b"\x42" * 4096      # live objects untouched
            rt.free(a)


def test_no_goal_with_gogc_off():
    with Runtime(gomaxprocs=1, gogc=None, scavenger=False) as rt:
        _heap_with_garbage(rt, 32, 32)
        assert rt.scavenger_step() == 0
        assert rt.scavenger_stats()["goal"] is None
        assert rt.free_os_memory() > 0                  # FreeOSMemory still releases


def test_a_new_cycle_moves_the_goal_and_the_cursor():
    with Runtime(gomaxprocs=1, gogc=100, scavenger=False) as rt:
        keep = _heap_with_garbage(rt, 64, 8)
        while rt.scavenger_step():
            pass
        first = rt.scavenger_stats()["goal"]
        for a in keep[1:]:
            rt.free(a)
        rt.gc()                                         # smaller goal, pages freed above the cursor
        assert rt.scavenger_step() > 0
        while rt.scavenger_step():
            pass
        st = rt.scavenger_stats()
        assert st["goal"] < first and st["retained"] <= st["goal"]


# -- free_os_memory ---------------------------------------------------------------------------

def test_free_os_memory_collects_then_releases_every_free_page():
    with Runtime(gomaxprocs=2, gogc=None, scavenger=False) as rt:
        xs = [rt.malloc(200000) for _ in range(50)]
        for x in xs:
            rt.write(x, b"\x01" * 200000)
        live = rt.malloc(64)
        for x in xs:
            rt.free(x)                                  # not collected yet: free_os_memory does
        got = rt.free_os_memory()
        ms = rt.memstats()
        assert ms.NumGC == 1 and ms.HeapInuse == PAGE
        assert ms.HeapReleased == ms.HeapIdle and got >= 50 * 200000
        assert rt.free_os_memory() == 0                 # nothing left
        sites = rt.lockstats()["mheap"]["sites"]
        assert sites["runtime.(*mheap).scavengeLocked"]["acquisitions"] >= 2
        rt.free(live)
    with pytest.raises(GoRuntimeError, match="closed"):
        rt.free_os_memory()
    with pytest.raises(GoRuntimeError, match="closed"):
        rt.scavenger_step()


def test_scavenger_argument():
    with pytest.raises(TypeError, match="scavenger"):
        Runtime(scavenger="yes")
    with pytest.raises(TypeError, match="scavenger"):
        Runtime(scavenger=1)
    with Runtime(gomaxprocs=1, scavenger=False) as rt:
        assert rt.scavenger_stats()["running"] is False
    with Runtime(gomaxprocs=1) as rt:
        assert rt.scavenger_stats()["running"] is True


# -- the background thread ----------------------------------------------------------------------

def test_background_scavenger_reaches_the_goal():
    with Runtime(gomaxprocs=2, gogc=100) as rt:
        keep = _heap_with_garbage(rt, 48, 48)           # 1 MiB live: goal 4.4 MiB
        ms = rt.memstats()
        assert ms.NextGC == 4 * MiB                     # the minimum heap goal
        goal = retained_goal(ms)
        assert rt.scavenger_stats()["running"]

        def reached():
            st = rt.scavenger_stats()   # the thread takes the new goal at its first step after gc()
            return st["goal"] == goal and st["retained"] <= goal
        wait_until(reached, timeout=120, what="the retained heap within the scavenger's goal", poll=0.05)
        st = rt.scavenger_stats()
        assert goal - STEP < st["retained"] <= goal
        ms = rt.memstats()
        assert ms.HeapReleased >= 40 * MiB
        assert_memstats_invariants(ms, rt)
        # With Ms running too: verify and the MemStats identities hold throughout.
        r = rt.run(ms=3, duration=0.5, sizes=[64, 4096, 100000], weights=[50, 10, 1])
        assert r.allocs > 0
        assert_memstats_invariants(rt.memstats(), rt)
        for a in keep:
            rt.free(a)


def _thread_cpu_ns(tid):
    """A thread's CPU time in ns (schedstat: exact; psutil's ticks otherwise)."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            return int(f.read().split()[0])
    except OSError:
        import psutil
        for t in psutil.Process().threads():
            if t.id == tid:
                return int((t.user_time + t.system_time) * 1e9)
        raise


def test_background_scavenger_takes_about_one_percent_of_a_cpu():
    with Runtime(gomaxprocs=1, gogc=100) as rt:
        # 511 MiB of written pages to release: several seconds of work at 1% of a CPU.
        objs = [rt.malloc(MiB, noscan=True) for _ in range(512)]
        payload = b"\x42" * MiB
        for a in objs:
            rt.write(a, payload)
        for a in objs[1:]:
            rt.free(a)
        rt.gc()
        wait_until(lambda: rt.scavenger_stats()["steps"] >= 20, timeout=60, poll=0.01,
                   what="the scavenger at work")
        st0, cpu0, t0 = rt.scavenger_stats(), _thread_cpu_ns(rt.scavenger_stats()["tid"]), time.monotonic()
        time.sleep(1.5)                                 # the measuring window, not a synchronisation
        st1, cpu1, t1 = rt.scavenger_stats(), _thread_cpu_ns(st0["tid"]), time.monotonic()
        assert st1["retained"] > st1["goal"], "ran out of work inside the window"
        share = (cpu1 - cpu0) / ((t1 - t0) * 1e9)       # the kernel's count of the thread's CPU
        rate = (st1["released"] - st0["released"]) / MiB / (t1 - t0)
        print(f"scavenger: {share:.2%} of one CPU over {t1 - t0:.1f} s (its own measure "
              f"{st1['cpu_share']:.2%}), {rate:.0f} MiB/s released")
        assert 0.001 < share < 0.03, (share, st1)
        assert 0.001 < st1["cpu_share"] < 0.03, st1      # the thread's own measure
        assert st1["released"] > st0["released"]


def test_background_scavenger_under_churn_keeps_the_heap_consistent():
    """Ms allocate, free and collect while the scavenger releases and Python calls
    free_os_memory and verify: released pages come back zeroed (the churn kernel checks
    that fresh memory reads zero), and every invariant holds."""
    with Runtime(gomaxprocs=2, gogc=25) as rt:
        for i in range(6):
            r = rt.run(ms=3, duration=0.3, sizes=[16, 512, 8192, 40000, 300000],
                       weights=[40, 20, 5, 2, 1], live=2048, seed=i + 1)
            assert r.allocs > 0
            if i % 2:
                rt.free_os_memory()
            rt.verify()
            assert_memstats_invariants(rt.memstats(), rt)
        assert rt.scavenger_stats()["released"] + rt.scavenger_stats()["free_os_memory_released"] > 0


# -- RSS ----------------------------------------------------------------------------------------

def test_rss_drops_back_after_free_os_memory():
    """~512 MiB allocated and written, all but 32 MiB freed, gc(), free_os_memory(): the RSS
    the runtime adds to the process (against a baseline taken before the Runtime was made)
    comes back to within 10% of HeapInuse plus the runtime's metadata."""
    proc = assert_python_ok("""
    import psutil
    from goruntime import Runtime
    MiB = 1 << 20
    me = psutil.Process()
    payload = b"\\xab" * MiB
    addrs = [0] * 512
    keep = set(range(0, 512, 16))                   # 32 MiB stays live, spread over the heap
    base = me.memory_info().rss
    rt = Runtime(gomaxprocs=2, gogc=100, scavenger=False)
    for i in range(512):
        addrs[i] = rt.malloc(MiB, noscan=True)
        rt.write(addrs[i], payload)
    for i in range(512):
        if i not in keep:
            rt.free(addrs[i])
    rt.gc()
    ms = rt.memstats()
    before = me.memory_info().rss - base
    released = rt.free_os_memory()
    ms = rt.memstats()
    after = me.memory_info().rss - base
    meta = ms.MSpanSys + ms.MCacheSys + ms.GCSys + ms.OtherSys
    want = ms.HeapInuse + meta
    print(f"RSS over baseline: {before / MiB:.1f} MiB after gc, {after / MiB:.1f} MiB after "
          f"free_os_memory ({released / MiB:.0f} MiB released); HeapInuse {ms.HeapInuse / MiB:.1f} MiB "
          f"+ metadata {meta / MiB:.2f} MiB = {want / MiB:.1f} MiB")
    assert before > 480 * MiB, before
    assert ms.HeapInuse == 32 * MiB
    assert abs(after - want) <= 0.1 * want, (after, want)
    # Live objects kept their data; reused released pages read zero.
    for i in keep:
        assert rt.read(addrs[i], 16) == payload[:16]
    y = rt.malloc(8 * MiB, noscan=True)
    assert rt.read(y, 8 * MiB) == bytes(8 * MiB)
    # Fresh memory is never memset: a fresh 256 MiB object costs no RSS until it is written.
    rt2 = Runtime(gomaxprocs=1, gogc=None, scavenger=False)
    r0 = me.memory_info().rss
    z = rt2.malloc(256 * MiB, noscan=True)
    grown = me.memory_info().rss - r0
    print(f"a fresh 256 MiB object: RSS +{grown / MiB:.2f} MiB")
    assert grown < 4 * MiB, grown
    rt2.close()
    rt.close()
    print("OK")
    """, timeout=120)
    print(proc.stdout)


# -- lifetime: close, del, fork, signals --------------------------------------------------------

PRELUDE = """
import os, signal, sys, threading, time
from goruntime import Runtime, GoRuntimeError
from goruntime.mstats import memstats_problems
MiB = 1 << 20

def busy_runtime(**kw):
    # A runtime whose scavenger has seconds of work ahead of it.
    rt = Runtime(gomaxprocs=2, gogc=100, **kw)
    objs = [rt.malloc(MiB, noscan=True) for _ in range(256)]
    for a in objs:
        rt.write(a, b"x" * 4096)
    for a in objs:
        rt.free(a)
    rt.gc()
    deadline = time.monotonic() + 30
    while rt.scavenger_stats()["steps"] < 3:
        assert time.monotonic() < deadline, rt.scavenger_stats()
        time.sleep(0.005)
    return rt

def usable(rt):
    ptrs = [rt.malloc(n) for n in (8, 64, 5000, 40000)]
    for p in ptrs:
        rt.write(p, b"x")
        rt.free(p)
    rt.gc()
    rt.verify()
    assert memstats_problems(rt.memstats()) == []
"""


def child(code, timeout=60.0):
    import textwrap
    return assert_python_ok(PRELUDE + textwrap.dedent(code), timeout=timeout)


def test_close_and_del_stop_a_busy_scavenger_at_once():
    child("""
    for i in range(5):
        rt = busy_runtime()
        tid = rt.scavenger_stats()["tid"]
        assert os.path.exists(f"/proc/self/task/{tid}")
        t0 = time.monotonic()
        if i % 2:
            rt.close()
            try:
                rt.scavenger_stats()
                raise SystemExit("stats after close")
            except GoRuntimeError:
                pass
        else:
            del rt                                  # __dealloc__ without close()
        took = time.monotonic() - t0
        assert took < 1.0, took
        assert not os.path.exists(f"/proc/self/task/{tid}"), "the scavenger thread outlived its runtime"
    print("OK")
    """)


def test_close_from_another_thread_during_free_os_memory():
    child("""
    for i in range(3):
        rt = Runtime(gomaxprocs=2, gogc=None)
        objs = [rt.malloc(MiB, noscan=True) for _ in range(300)]
        for a in objs:
            rt.write(a, b"y" * MiB)
            rt.free(a)
        out = {}
        def release():
            try:
                out["n"] = rt.free_os_memory()
            except GoRuntimeError as e:
                out["err"] = str(e)
        t = threading.Thread(target=release)
        t.start()
        time.sleep(0.002 * i)
        rt.close()
        t.join(10)
        assert not t.is_alive()
        assert "n" in out or "closed" in out["err"], out
    print("OK")
    """)


def test_the_scavenger_thread_blocks_every_signal():
    child("""
    rt = busy_runtime()
    tid = rt.scavenger_stats()["tid"]
    with open(f"/proc/self/task/{tid}/status") as f:
        blocked = int([l for l in f if l.startswith("SigBlk:")][0].split()[1], 16)
    assert blocked & (1 << (signal.SIGINT - 1)) and blocked & (1 << (signal.SIGTERM - 1)), hex(blocked)
    # Ctrl-C reaches the main thread while the scavenger works.
    t0 = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGINT))
        time.sleep(5)
        raise SystemExit("no KeyboardInterrupt")
    except KeyboardInterrupt:
        pass
    assert time.monotonic() - t0 < 1.0
    usable(rt)
    rt.close()
    print("OK")
    """)


@pytest.mark.parametrize("how", ["close", "del", "new"])
def test_fork_with_the_scavenger_running(how):
    child(f"""
    how = "{how}"
    rt = busy_runtime()
    for i in range(4):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                try:
                    rt.scavenger_stats()
                    code = 10
                except GoRuntimeError as e:
                    if "after fork" not in str(e):
                        code = 11
                if how == "close":
                    rt.close()                  # no scavenger thread here to wait for
                elif how == "del":
                    del globals()["rt"]
                fresh = busy_runtime()          # a new runtime has a scavenger of its own
                fresh.free_os_memory()
                usable(fresh)
                fresh.close()
            except BaseException as e:
                print("child:", repr(e), flush=True)
                code = 12
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, os.waitstatus_to_exitcode(status)
    # The parent's scavenger carried on (or had finished its work).
    st = rt.scavenger_stats()
    deadline = time.monotonic() + 30
    while rt.scavenger_stats()["released"] == st["released"] and st["retained"] > st["goal"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    usable(rt)
    rt.close()
    print("OK")
    """, timeout=120)
