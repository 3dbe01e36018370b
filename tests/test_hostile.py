"""Hostile but legal use of the Python API: nothing a Python caller does may crash, hang
or corrupt the process (issue 9). One section per class of misuse:

1. `with rt.proc():` lifetimes: dropped contexts, blocks exited out of order (generators,
   asyncio tasks), on another thread, one context shared by threads, stray __exit__.
2. Every path that takes a P gives it back: lying ints, arguments that fail to convert,
   close() in the middle of a call, helpers that fail after they started.
3. Re-entrancy: finalizers, weakref callbacks and signal handlers that call back in.
4. close() racing every kind of call.
5. Ctrl-C: run(), Stress, and the CLI (exit 130 with the partial table).
6. fork() while Ms or a collection run.
7. One argument policy for every entry point (in process: a bad argument raises).
8. Nothing leaks, nothing internal can crash the process.

Everything that could crash or hang runs in a child interpreter with a time limit
(conftest.run_python), so that a crash or a hang fails its test, not the suite."""
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from goruntime import GoRuntimeError, Runtime
from conftest import ROOT, assert_python_ok, run_python

np = pytest.importorskip("numpy")

# What every child starts with: `usable(rt)` checks that a runtime still works and is
# consistent (calls succeed, every P idle, verify and the MemStats identities hold).
PRELUDE = """
import collections, gc, os, signal, sys, threading, time, weakref
from goruntime import Runtime, GoRuntimeError
from goruntime.mstats import memstats_problems

def idle(rt):
    return [p.status.name for p in rt.ps] == ["P_IDLE"] * rt.gomaxprocs

def usable(rt):
    ptrs = [rt.malloc(n) for n in (8, 64, 5000, 40000)]
    for p in ptrs:
        rt.write(p, b"x")
        assert rt.read(p, 1) == b"x"
        rt.free(p)
    with rt.proc():
        rt.free(rt.malloc(24))
    rt.gc()
    rt.verify()
    ms = rt.memstats()
    assert memstats_problems(ms) == [], memstats_problems(ms)
    assert idle(rt), [repr(p) for p in rt.ps]
"""


def child(code, *args, timeout=60.0, env=None):
    return assert_python_ok(PRELUDE + textwrap.dedent(code), *args, timeout=timeout, env=env)


# -- 1. proc() lifetimes -------------------------------------------------------------------

def test_proc_context_dropped_without_exit():
    child("""
    rt = Runtime(gomaxprocs=2, gogc=None)
    for i in range(300):
        c = rt.proc()
        c.__enter__()
        rt.malloc(64)
        del c                               # the block ends with its object
        junk = [bytearray(600) for _ in range(40)]      # reuse the freed memory
        assert idle(rt), i
    usable(rt)
    other = Runtime(gomaxprocs=1, gogc=None)            # no other Runtime is affected
    with other.proc():
        other.malloc(8)
    usable(other)
    print("OK")
    """)


@pytest.mark.parametrize("order", ["in-order", "out-of-order", "dropped", "exhausted"])
def test_proc_blocks_held_by_generators_exit_in_any_order(order):
    child("""
    order = sys.argv[1]
    rt = Runtime(gomaxprocs=2, gogc=None)

    def blocks(n):
        with rt.proc():
            for i in range(n):
                yield rt.malloc(16)

    for round in range(50):
        gens = [blocks(3) for _ in range(4)]
        for g in gens:
            next(g)
        assert sum(p.status.name == "P_SYSCALL" for p in rt.ps) == 1
        if order == "in-order":
            for g in reversed(gens):
                g.close()
        elif order == "out-of-order":
            for k in (1, 3, 0, 2):
                gens[k].close()
        elif order == "dropped":
            del g
            gens.clear()                    # GeneratorExit, from the generator's finalizer
        else:
            for g in (gens[2], gens[0], gens[3], gens[1]):
                assert len(list(g)) == 2
        del gens
        assert idle(rt), [repr(p) for p in rt.ps]
        rt.malloc(8)
    usable(rt)
    print("OK")
    """, order)


def test_proc_blocks_held_by_asyncio_tasks():
    child("""
    import asyncio
    rt = Runtime(gomaxprocs=2, gogc=None)

    async def task(k, n):
        with rt.proc():
            for i in range(n):
                p = rt.malloc(32 + k)
                await asyncio.sleep(0)
                rt.free(p)

    async def interleaved():
        await asyncio.gather(*(task(k, 5 + 3 * k) for k in range(6)))

    async def cancelled():
        ts = [asyncio.create_task(task(k, 1000)) for k in range(6)]
        for _ in range(5):
            await asyncio.sleep(0)
        for t in ts[::2]:
            t.cancel()
        for t in ts[1::2]:
            t.cancel()
        await asyncio.gather(*ts, return_exceptions=True)

    for run in (interleaved, cancelled, interleaved):
        asyncio.run(run())
        assert idle(rt), [repr(p) for p in rt.ps]
    usable(rt)
    print("OK")
    """)


def test_proc_block_exited_on_another_thread():
    child("""
    rt = Runtime(gomaxprocs=1, gogc=None)

    def blocks():
        with rt.proc():
            yield rt.malloc(16)
            yield rt.malloc(16)

    box = {}

    # Entered on a thread that then ends: its P stays parked, and stealable.
    t = threading.Thread(target=lambda: box.update(g=blocks()) or next(box["g"]))
    t.start(); t.join()
    p = rt.malloc(64)                       # one P: this call must take the parked one
    box.pop("g").close()                    # exited on another thread than it was entered on
    rt.free(p)
    usable(rt)

    # Entered on a thread that lives on: its next call gives the P back.
    entered, exited = threading.Event(), threading.Event()

    def owner():
        g = blocks()
        next(g)
        box["g"] = g
        entered.set()
        exited.wait()
        rt.malloc(8)
        box["idle_after_call"] = idle(rt)

    t = threading.Thread(target=owner)
    t.start()
    entered.wait()
    box.pop("g").close()
    exited.set()
    t.join()
    assert box["idle_after_call"]
    usable(rt)

    # And the thread can enter again afterwards.
    def again():
        with rt.proc():
            rt.free(rt.malloc(8))
        with rt.proc():
            with rt.proc():
                rt.free(rt.malloc(8))
    t = threading.Thread(target=again); t.start(); t.join()
    usable(rt)
    print("OK")
    """)


def test_one_proc_context_used_by_several_threads_at_once():
    child("""
    rt = Runtime(gomaxprocs=2, gogc=None)
    ctx = rt.proc()
    gate = threading.Barrier(4)
    errors = []

    def worker(k):
        try:
            gate.wait()
            for i in range(300):
                with ctx:
                    p = rt.malloc(16 + k)
                    with ctx:               # nested in the same object
                        rt.free(p)
        except BaseException as e:
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert errors == [], errors
    usable(rt)
    print("OK")
    """)


def test_stray_exit_raises_and_poisons_nothing():
    child("""
    rt = Runtime(gomaxprocs=1, gogc=None)
    c = rt.proc()
    for attempt in range(3):
        try:
            c.__exit__(None, None, None)
        except GoRuntimeError as e:
            assert "without a matching __enter__" in str(e), e
        else:
            raise AssertionError("a stray __exit__ passed")
        with c:
            rt.malloc(8)
    assert idle(rt)
    other = Runtime(gomaxprocs=1, gogc=None)
    with other.proc():                      # the thread is not poisoned for any Runtime
        other.malloc(8)
    usable(rt)
    usable(other)
    print("OK")
    """)


def test_proc_across_runtimes_and_close():
    child("""
    a, b = Runtime(gomaxprocs=1, gogc=None), Runtime(gomaxprocs=1, gogc=None)
    c = a.proc()
    c.__enter__()
    try:
        b.proc().__enter__()
    except GoRuntimeError as e:
        assert "already inside another Runtime's proc()" in str(e), e
    else:
        raise AssertionError("entered two Runtimes' blocks at once")
    a.close()                               # closed while this thread is inside its block
    with b.proc():                          # a closed Runtime holds the thread no more
        b.free(b.malloc(8))
    c.__exit__(None, None, None)            # and its block still exits cleanly
    d = Runtime(gomaxprocs=1, gogc=None)
    c2 = d.proc(); c2.__enter__(); d.malloc(8)
    del c2, d                               # a Runtime whose block was dropped
    gc.collect()
    with b.proc():
        b.malloc(8)
    usable(b)
    print("OK")
    """)


# -- 2. every path that takes a P gives it back ------------------------------------------------

def test_lying_ints_and_failing_conversions_leave_no_p_behind():
    child("""
    class Liar(int):
        def __lt__(s, o): return False
        def __le__(s, o): return False
        def __gt__(s, o): return False
        def __ge__(s, o): return False
        def __eq__(s, o): return True
        __hash__ = int.__hash__

    class BadIndex:
        def __index__(self): raise RuntimeError("__index__ failed")

    rt = Runtime(gomaxprocs=1, gogc=None)
    p = rt.malloc(64)
    cases = [
        (lambda: rt.malloc(Liar(2**70)), MemoryError), (lambda: rt.malloc(Liar(-5)), ValueError),
        (lambda: rt.malloc(2**64), MemoryError), (lambda: rt.malloc(-2**70), ValueError),
        (lambda: rt.read(p, Liar(2**64)), ValueError), (lambda: rt.read(p, Liar(-1)), ValueError),
        (lambda: rt.read(Liar(p), Liar(2**64)), ValueError), (lambda: rt.read(p, 2**64), ValueError),
        (lambda: rt.free(Liar(2**70)), GoRuntimeError), (lambda: rt.free(Liar(-3)), GoRuntimeError),
        (lambda: rt.write(Liar(2**65), b"x"), GoRuntimeError), (lambda: rt.write(p, "text"), TypeError),
        (lambda: rt.malloc(BadIndex()), RuntimeError), (lambda: rt.read(p, BadIndex()), RuntimeError),
        (lambda: rt.free(BadIndex()), RuntimeError), (lambda: rt.malloc(64, noscan="yes"), TypeError),
    ]
    for round in range(3):
        for k, (call, exc) in enumerate(cases):
            try:
                call()
            except exc:
                pass
            else:
                raise AssertionError(f"case {k} raised nothing")
            assert idle(rt), (k, [repr(q) for q in rt.ps])
        with rt.proc():
            for call, exc in cases:
                try:
                    call()
                except exc:
                    pass
        rt.gc()                             # would wait forever for a leaked P
    rt.free(Liar(p))                        # a Liar that is a real address works
    usable(rt)
    print("OK")
    """)


def test_stress_start_with_bad_arguments_leaves_nothing_running():
    child("""
    from stress.kernels import Stress
    rt = Runtime(gomaxprocs=2, gogc=None)
    st = Stress(rt, 2, cap=64)
    for kwargs in ({"target": -1, "ops": 10}, {"ops": -1}, {"target": 4, "keep": -2, "ops": 10},
                   {"ops": 2**64}, {"duration": float("nan")}, {"target": 10**9, "ops": 1},
                   {"handoff": 2.0, "ops": 1}, {"ops": 1, "inject_slot": 0}, {"ops": True}):
        try:
            st.start([0, 1], **kwargs)
        except (ValueError, TypeError) as e:
            pass
        else:
            raise AssertionError(f"{kwargs} accepted")
        assert st.finished() and st.join() == []
    rt.gc()
    usable(rt)
    rt.close()                              # returns: no phase was left counted as running
    print("OK")
    """)


# -- 3. re-entrancy --------------------------------------------------------------------------

def test_finalizers_and_weakref_callbacks_that_call_back_in():
    child("""
    rt = Runtime(gomaxprocs=1, gogc=None)
    outcome = collections.Counter()
    unraisable = []
    sys.unraisablehook = lambda u: unraisable.append(repr(u.exc_value))
    pool = [rt.malloc(64) for _ in range(4000)]    # the finalizers free these
    keep = rt.malloc(64)                             # and never this one

    def guarded(op):
        try:
            op()
            outcome["served"] += 1
        except GoRuntimeError as e:
            assert "re-entrant" in str(e), e
            outcome["refused"] += 1

    class Finalizer:
        def __init__(self, op):
            self.op = op
            self.me = self                  # a cycle: only the cyclic GC frees it
        def __del__(self):
            guarded(self.op)

    class Target:
        def __init__(self):
            self.me = self

    in_finalizers = [lambda: rt.free(pool.pop()), rt.gc, lambda: rt.free(rt.malloc(40000)),
                     rt.memstats, rt.verify, lambda: rt.read(keep, 8),
                     lambda: rt.proc().__enter__(), lambda: rt.free(rt.malloc(24, noscan=True))]
    calls = [rt.memstats, rt.verify, rt.gc, lambda: rt.malloc(64), lambda: rt.malloc(50000),
             lambda: rt.read(keep, 64), lambda: rt.write(keep, b"y" * 64),
             lambda: rt.free(rt.malloc(8)), lambda: rt.run(ms=1, ops=300, live=8, seed=1)]
    refs = collections.deque(maxlen=64)    # a weakref must outlive its target to call back
    gc.set_threshold(1, 1, 1)
    try:
        for i in range(2500):
            Finalizer(in_finalizers[i % len(in_finalizers)])
            t = Target()
            refs.append(weakref.ref(t, lambda r, op=in_finalizers[(i + 3) % len(in_finalizers)]: guarded(op)))
            del t
            calls[i % len(calls)]()
            if i % 7 == 0:
                with rt.proc():
                    calls[(i // 7) % len(calls)]()
    finally:
        gc.set_threshold(700, 10, 10)
    gc.collect()
    assert unraisable == [], unraisable[:3]
    assert outcome["served"] > 1000, outcome
    usable(rt)
    print(dict(outcome))
    print("OK")
    """, timeout=120)


def test_signal_handlers_that_call_back_in():
    child("""
    rt = Runtime(gomaxprocs=2, gogc=100)
    calls = collections.Counter()

    def handler(signum, frame):
        rt.free(rt.malloc(64))
        if calls["handler"] % 5 == 0:
            rt.gc()
        calls["handler"] += 1

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
    try:
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            r = rt.run(ms=2, duration=0.2, live=64)
            rt.memstats(); rt.verify()
            with rt.proc():
                for _ in range(200):
                    rt.free(rt.malloc(48))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
    assert calls["handler"] > 10, calls
    usable(rt)
    print("OK")
    """, timeout=120)


def test_close_from_a_signal_handler_during_run():
    child("""
    rt = Runtime(gomaxprocs=2, gogc=None)
    signal.signal(signal.SIGALRM, lambda s, f: rt.close())
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    t0 = time.monotonic()
    try:
        rt.run(ms=4, duration=30.0)
    except GoRuntimeError as e:
        assert "closed" in str(e), e
    else:
        raise AssertionError("run() finished after close()")
    assert time.monotonic() - t0 < 5.0
    assert rt.closed and all(p.status.name != "P_RUNNING" for p in rt.ps)
    print("OK")
    """)


# -- 4. close() racing anything -------------------------------------------------------------

CLOSE_RACE = """
import random
kind, rounds = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)

def work(rt, kind):
    if kind == "small-gc":                  # collections that the mallocs trigger
        rt.free(rt.malloc(rng.choice([16, 512, 4096])))
    elif kind == "large":
        rt.free(rt.malloc(1 << 20))
    elif kind == "verify":
        rt.verify()
    elif kind == "run":
        rt.run(ms=2, duration=0.05, live=64)
    elif kind == "proc":
        with rt.proc():
            for _ in range(50):
                rt.free(rt.malloc(64))
    elif kind == "stress":
        from stress.kernels import Stress
        st = Stress(rt, 2, cap=256)
        st.start([0, 1], target=64, duration=0.05)
        st.join()
    elif kind == "close":
        rt.close()
    elif kind == "mixed":
        work(rt, rng.choice(["small-gc", "large", "verify", "proc", "run"]))
        rt.memstats()

for i in range(rounds):
    rt = Runtime(gomaxprocs=2, gogc=1 if kind in ("small-gc", "mixed") else None)
    errors = []
    started = threading.Barrier(3)

    def worker():
        started.wait()
        try:
            while True:
                work(rt, kind)
                if kind == "close":
                    return
        except GoRuntimeError as e:
            if "closed" not in str(e):
                errors.append(repr(e))
        except BaseException as e:
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    for t in ts:
        t.start()
    started.wait()
    time.sleep(rng.random() * 0.01)
    rt.close()
    for t in ts:
        t.join(20)
        if t.is_alive():
            print(f"round {i}: a {kind} thread is stuck after close()", flush=True)
            os._exit(3)
    assert not errors, (i, errors[:2])
    assert rt.closed and all(p.status.name != "P_RUNNING" for p in rt.ps), [repr(p) for p in rt.ps]
    try:
        rt.malloc(8)
    except GoRuntimeError as e:
        assert "closed" in str(e)
print("OK")
"""


@pytest.mark.parametrize("kind", ["small-gc", "large", "verify", "run", "proc", "stress", "close", "mixed"])
def test_close_racing_calls_on_other_threads(kind):
    child(CLOSE_RACE, kind, 40, timeout=120)


# -- 5. Ctrl-C ----------------------------------------------------------------------------

INTERRUPT = """
def interrupt_after(seconds):
    threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
"""


@pytest.mark.parametrize("work", ["duration", "ops"])
def test_ctrl_c_stops_run_promptly_and_leaves_the_runtime_usable(work):
    child(INTERRUPT + textwrap.dedent("""
    work = sys.argv[1]
    rt = Runtime(gomaxprocs=2, gogc=100)
    interrupt_after(0.5)
    t0 = time.monotonic()
    try:
        if work == "duration":
            rt.run(ms=4, duration=20.0, sizes=[16, 64, 40000], weights=[5, 5, 1])
        else:
            rt.run(ms=4, ops=2**62, sizes=64)
    except KeyboardInterrupt as e:
        took = time.monotonic() - t0
        assert took < 1.5, took             # within about half a second of the signal
        assert e.partial.allocs > 0 and len(e.partial.per_m) == 4, e.partial
    else:
        raise AssertionError("run() ignored Ctrl-C")
    usable(rt)
    r = rt.run(ms=2, ops=1000, sizes=64)    # and it runs again
    assert r.allocs == 2000
    print("OK")
    """), work)


def test_ctrl_c_while_joining_a_stress_phase():
    child(INTERRUPT + textwrap.dedent("""
    from stress.kernels import Stress
    rt = Runtime(gomaxprocs=2, gogc=100)
    st = Stress(rt, 4, cap=512)
    st.start(range(4), target=256, duration=20.0)
    interrupt_after(0.5)
    t0 = time.monotonic()
    try:
        st.join()
    except KeyboardInterrupt:
        assert time.monotonic() - t0 < 1.5
    else:
        raise AssertionError("join() ignored Ctrl-C")
    assert st.finished() and st.errors() == []
    held, _ = st.held()
    assert st.release_all() == held
    usable(rt)
    print("OK")
    """))


def _interrupt_cli(args, wait_for, after=0.3, timeout=30.0):
    """Runs `python -m goruntime ARGS`, sends SIGINT once `wait_for` shows on stderr (or
    after a second), and returns (returncode, stdout, stderr, seconds from SIGINT to exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "goruntime", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        if wait_for:
            err = ""
            while wait_for not in err and time.monotonic() < deadline and proc.poll() is None:
                err += proc.stderr.readline()
        else:
            time.sleep(1.0)
        time.sleep(after)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=timeout)
        return proc.returncode, out, rest, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_run_ctrl_c_exits_130_with_the_partial_table():
    rc, out, err, took = _interrupt_cli(["run", "--duration", "20", "--gomaxprocs", "2", "--ms", "2"], None)
    assert rc == 130, (rc, out, err)
    assert took < 2.0, took
    assert "interrupted" in err
    assert "allocs" in out.lower()            # the table of what ran before the signal


def test_cli_profile_ctrl_c_exits_130():
    rc, out, err, took = _interrupt_cli(["profile", "--duration", "20", "--gomaxprocs", "2", "--ms", "2"],
                                        None)
    assert rc == 130, (rc, out, err)
    assert took < 2.0, took
    assert "interrupted" in err


def test_cli_stress_ctrl_c_exits_130_with_what_finished():
    rc, out, err, took = _interrupt_cli(["stress", "--duration", "60", "--slice", "1", "--gomaxprocs", "2",
                                         "--ms", "2", "--live", "50"], "[stress", after=1.5)
    assert rc == 130, (rc, out, err)
    assert took < 3.0, took
    assert "interrupted" in err
    assert "phases" in out                    # the partial summary


# -- 6. fork --------------------------------------------------------------------------------

@pytest.mark.parametrize("busy", ["ms", "gc", "proc", "idle"])
def test_fork_child_gets_errors_and_can_make_a_new_runtime(busy):
    child("""
    busy = sys.argv[1]
    rt = Runtime(gomaxprocs=2, gogc=100)
    stop = threading.Event()

    def ms():
        while not stop.is_set():
            rt.run(ms=3, duration=0.05, sizes=[16, 40000], weights=[20, 1])

    def collections():
        while not stop.is_set():
            rt.gc(); rt.memstats()

    threads = {"ms": [ms], "gc": [collections, ms], "proc": [ms], "idle": []}[busy]
    ts = [threading.Thread(target=f) for f in threads]
    for t in ts: t.start()
    time.sleep(0.2)
    block = rt.proc() if busy == "proc" else None
    if block: block.__enter__()
    for i in range(5):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for call in (lambda: rt.malloc(8), rt.gc, rt.memstats, rt.verify, rt.proc,
                             lambda: rt.run(ms=1, ops=10), lambda: rt.free(8)):
                    try:
                        call()
                        code = 10
                    except GoRuntimeError as e:
                        if "after fork" not in str(e):
                            code = 11
                assert rt.closed
                if block: block.__exit__(None, None, None)
                fresh = Runtime(gomaxprocs=2, gogc=100)
                usable(fresh)
                fresh.run(ms=2, ops=2000)
                fresh.close()
                rt.close()
                del rt
            except BaseException as e:
                print("child:", repr(e), flush=True)
                code = 12
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, os.waitstatus_to_exitcode(status)
    if block: block.__exit__(None, None, None)
    stop.set()
    for t in ts: t.join()
    usable(rt)
    print("OK")
    """, busy, timeout=90)


# -- 7. one argument policy -----------------------------------------------------------------

@pytest.fixture(scope="module")
def rtm():
    r = Runtime(gomaxprocs=2, gogc=None)
    yield r
    r.close()


RUNTIME_BAD = [
    ({"gomaxprocs": "2"}, TypeError, "gomaxprocs"), ({"gomaxprocs": True}, TypeError, "gomaxprocs"),
    ({"gomaxprocs": 2.0}, TypeError, "gomaxprocs"), ({"gomaxprocs": 0}, ValueError, "gomaxprocs"),
    ({"gomaxprocs": 2**64}, ValueError, "gomaxprocs"),
    ({"gogc": "100"}, TypeError, "gogc"), ({"gogc": True}, TypeError, "gogc"),
    ({"gogc": 2**31}, ValueError, "gogc"), ({"gogc": -1}, ValueError, "gogc"),
    ({"max_heap": 2**64}, ValueError, "max_heap"), ({"max_heap": 0}, ValueError, "max_heap"),
    ({"max_heap": 1e9}, TypeError, "max_heap"),
    ({"pagecache": "no"}, TypeError, "pagecache"), ({"pagecache": 0}, TypeError, "pagecache"),
    ({"mcache": 1}, TypeError, "mcache"), ({"mcache": "fast"}, ValueError, "mcache"),
    ({"mcentral": None}, TypeError, "mcentral"), ({"sizeclasses": None}, TypeError, "sizeclasses"),
]


@pytest.mark.parametrize("kwargs,exc,name", RUNTIME_BAD, ids=[repr(k) for k, _, _ in RUNTIME_BAD])
def test_runtime_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        Runtime(**kwargs)


def test_runtime_accepts_index_ints():
    with Runtime(gomaxprocs=np.int64(2), gogc=np.int32(50), max_heap=np.uint64(1 << 27),
                 pagecache=np.bool_(True)) as rt:
        assert rt.gomaxprocs == 2 and rt.gogc == 50 and rt.modes["pagecache"] is True
        p = rt.malloc(np.int16(100), noscan=np.bool_(False))
        rt.write(np.uint64(p), b"ab")
        assert rt.read(np.int64(p), np.uint8(2)) == b"ab"
        rt.free(np.int64(p))


RUN_BAD = [
    ({"ms": "2"}, TypeError, "ms"), ({"ms": True}, TypeError, "ms"), ({"ms": 0}, ValueError, "ms"),
    ({"ms": 2**70}, ValueError, "ms"),
    ({"ops": 2**64}, ValueError, "ops"), ({"ops": 0}, ValueError, "ops"), ({"ops": 1.0}, TypeError, "ops"),
    ({"ops": 10, "duration": 1}, ValueError, "duration or ops"),
    ({"duration": math.nan}, ValueError, "duration"), ({"duration": math.inf}, ValueError, "duration"),
    ({"duration": "1"}, TypeError, "duration"), ({"duration": 0}, ValueError, "duration"),
    ({"duration": True}, TypeError, "duration"),
    ({"ops": 10, "noscan": math.nan}, ValueError, "noscan"), ({"ops": 10, "noscan": "yes"}, TypeError, "noscan"),
    ({"ops": 10, "large_share": math.inf}, ValueError, "large_share"),
    ({"ops": 10, "large_share": True}, TypeError, "large_share"),
    ({"ops": 10, "live": -1}, ValueError, "live"), ({"ops": 10, "live": "8"}, TypeError, "live"),
    ({"ops": 10, "sizes": [8, 16], "weights": [1, math.nan]}, ValueError, "weights"),
    ({"ops": 10, "sizes": [8, 16], "weights": [1, "2"]}, TypeError, "weights"),
    ({"ops": 10, "sizes": "64"}, TypeError, "sizes"), ({"ops": 10, "sizes": 0}, ValueError, "sizes"),
    ({"ops": 10, "seed": 1.5}, TypeError, "seed"), ({"ops": 10, "seed": "1"}, TypeError, "seed"),
    ({"ops": 10, "kernel": "other"}, ValueError, "kernel"),
]


@pytest.mark.parametrize("kwargs,exc,name", RUN_BAD, ids=[repr(k) for k, _, _ in RUN_BAD])
def test_run_arguments(rtm, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        rtm.run(**kwargs)
    assert [p.status.name for p in rtm.ps] == ["P_IDLE"] * 2


def test_run_accepts_index_ints_and_numpy_floats(rtm):
    r = rtm.run(ms=np.int8(2), ops=np.int64(500), sizes=np.int32(64), live=np.uint16(10),
                noscan=np.float64(0.5), large_share=np.float32(0.0), seed=np.int64(3))
    assert r.allocs == 1000 and r.config["ms"] == 2 and type(r.config["ops"]) is int


MALLOC_BAD = [
    (lambda rt: rt.malloc("64"), TypeError, "size"), (lambda rt: rt.malloc(True), TypeError, "size"),
    (lambda rt: rt.malloc(64.0), TypeError, "size"), (lambda rt: rt.malloc(-1), ValueError, "size"),
    (lambda rt: rt.malloc(64, noscan=1), TypeError, "noscan"),
    (lambda rt: rt.malloc(64, noscan="False"), TypeError, "noscan"),
    (lambda rt: rt.free("0x10"), TypeError, "addr"), (lambda rt: rt.free(None), TypeError, "addr"),
    (lambda rt: rt.read(8, "1"), TypeError, "n"), (lambda rt: rt.read(8, 2**64), ValueError, "n"),
    (lambda rt: rt.read(8, -1), ValueError, "n"), (lambda rt: rt.read(1.5, 1), TypeError, "addr"),
    (lambda rt: rt.write(8, "text"), TypeError, "data"), (lambda rt: rt.write(8, 5), TypeError, "data"),
]


@pytest.mark.parametrize("call,exc,name", MALLOC_BAD, ids=range(len(MALLOC_BAD)))
def test_malloc_free_read_write_arguments(rtm, call, exc, name):
    with pytest.raises(exc, match=name):
        call(rtm)


def test_huge_sizes_are_memoryerror_not_overflow(rtm):
    for size in (2**46, 2**63, 2**64, 2**200):
        with pytest.raises(MemoryError, match=str(size)):
            rtm.malloc(size)


STRESS_BAD = [
    (lambda rt, S: S(rt, "2"), TypeError, "nslots"), (lambda rt, S: S(rt, 0), ValueError, "nslots"),
    (lambda rt, S: S(rt, 2, cap=2**64), ValueError, "cap"), (lambda rt, S: S(rt, 2, inbox=True), TypeError, "inbox"),
    (lambda rt, S: S(rt, 2, noscan=math.nan), ValueError, "noscan"),
    (lambda rt, S: S(rt, 2, mix=[(1, 2**31, 1.0)]), ValueError, "mix"),
    (lambda rt, S: S(rt, 2, mix="abc"), TypeError, "mix"),
    (lambda rt, S: S(rt, 2).start([0], ops=-1), ValueError, "ops"),
    (lambda rt, S: S(rt, 2).start([0], target=-1, ops=1), ValueError, "target"),
    (lambda rt, S: S(rt, 2).start([0], keep=-1, ops=1), ValueError, "keep"),
    (lambda rt, S: S(rt, 2).start([0], duration=math.inf), ValueError, "duration"),
    (lambda rt, S: S(rt, 2).start([0], ops=1, gc_rate=math.nan), ValueError, "gc_rate"),
    (lambda rt, S: S(rt, 2).start([0], ops=1, oom_ok=1), TypeError, "oom_ok"),
    (lambda rt, S: S(rt, 2).start([5], ops=1), ValueError, "slots"),
    (lambda rt, S: S(rt, 2).start([0], ops=1, inject_after=3), ValueError, "inject"),
]


@pytest.mark.parametrize("call,exc,name", STRESS_BAD, ids=range(len(STRESS_BAD)))
def test_stress_arguments(rtm, call, exc, name):
    from stress.kernels import Stress
    with pytest.raises(exc, match=name):
        call(rtm, Stress)


RUN_STRESS_BAD = [
    ({"ms": 0}, ValueError, "ms"), ({"ms": "2"}, TypeError, "ms"), ({"gomaxprocs": 0}, ValueError, "gomaxprocs"),
    ({"duration": math.nan}, ValueError, "duration"), ({"duration": 1, "ops": 10}, ValueError, "duration or ops"),
    ({"ops": 0}, ValueError, "ops"), ({"live": 0}, ValueError, "live"), ({"seed": 1.5}, TypeError, "seed"),
    ({"slice_s": -1}, ValueError, "slice_s"), ({"gc_rate": 2}, ValueError, "gc_rate"),
    ({"noscan": math.inf}, ValueError, "noscan"), ({"workloads": ["nope"]}, ValueError, "workload"),
    ({"check_interval": 0}, ValueError, "check_interval"), ({"progress": "no"}, TypeError, "progress"),
]


@pytest.mark.parametrize("kwargs,exc,name", RUN_STRESS_BAD, ids=[repr(k) for k, _, _ in RUN_STRESS_BAD])
def test_run_stress_arguments(kwargs, exc, name):
    from stress.runner import run_stress
    with pytest.raises(exc, match=name):
        run_stress(**{"duration": 0.2, "progress": False, **kwargs})


PROFILE_COMPARE_BAD = [
    ("profile", {"ms": 0}, ValueError, "ms"), ("profile", {"duration": math.nan}, ValueError, "duration"),
    ("profile", {"gomaxprocs": "2"}, TypeError, "gomaxprocs"), ("profile", {"size": 2**40}, ValueError, "sizes"),
    ("cells", {"ms": [0]}, ValueError, "ms"), ("cells", {"ms": ["2"]}, TypeError, "ms"),
    ("cells", {"duration": math.inf}, ValueError, "duration"), ("cells", {"gomaxprocs": 0}, ValueError, "gomaxprocs"),
    ("cells", {"sizes": [0]}, ValueError, "sizes"), ("cells", {"duration": 1.0, "ops": 10}, ValueError, "duration or ops"),
    ("run_cell", {"ms": 0}, ValueError, "ms"), ("run_cell", {"bogus": 1}, ValueError, "bogus"),
]


@pytest.mark.parametrize("fn,kwargs,exc,name", PROFILE_COMPARE_BAD,
                         ids=[f"{f}-{k!r}" for f, k, _, _ in PROFILE_COMPARE_BAD])
def test_profile_and_compare_arguments(fn, kwargs, exc, name):
    from goruntime.cmd import compare, profile
    with pytest.raises(exc, match=name):
        if fn == "profile":
            profile.profile(ops=10, **kwargs) if "duration" not in kwargs else profile.profile(**kwargs)
        elif fn == "cells":
            compare.cells(**kwargs)
        else:
            compare.run_cell({"ops": 10, **kwargs})


# -- 8. nothing leaks, nothing internal crashes ------------------------------------------------

def test_failed_constructors_free_their_memory():
    child("""
    import resource
    def rss_kib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    for _ in range(200):
        for kw in ({"max_heap": 2**64}, {"gogc": 2**31}, {"mcache": "x"}, {"sizeclasses": "go0"}):
            try:
                Runtime(gomaxprocs=4, **kw)
            except (ValueError, TypeError):
                pass
    before = rss_kib()
    for _ in range(3000):
        for kw in ({"max_heap": 2**64}, {"gogc": 2**31}, {"mcache": "x"}, {"sizeclasses": "go0"}):
            try:
                Runtime(gomaxprocs=4, **kw)
            except (ValueError, TypeError):
                pass
    grown = rss_kib() - before
    assert grown < 2048, f"{grown} KiB more after 12000 failed constructors"
    print("OK")
    """)


def test_del_without_close_releases_the_arenas_at_once():
    child("""
    def mapped(base):
        with open("/proc/self/maps") as f:
            return any(int(line.split("-")[0], 16) <= base < int(line.split()[0].split("-")[1], 16)
                       for line in f)
    gc.disable()                            # nothing may wait for the cyclic GC
    for i in range(5):
        rt = Runtime(gomaxprocs=2, gogc=None)
        p = rt.malloc(1 << 20)
        rt.write(p, b"z" * (1 << 20))
        ps, centrals, ctx = rt.ps, rt.centrals, rt.proc()   # views, kept a while
        base = rt.heap.arenas[0][0]
        assert mapped(base)
        del ps, centrals, ctx
        del rt
        assert not mapped(base), f"arena {base:#x} still mapped after del"
    print("OK")
    """)


@pytest.mark.parametrize("mcentral", ["spanset", "mutex"])
def test_mcentral_only_allocation_with_many_ms_and_no_gc(mcentral):
    """No mcache, GOGC off: every allocation pops a span from its mcentral and pushes it
    back, so the span set's spine grows while blocks empty. A block emptied by its last
    pop was once left in a newer spine and freed twice (found by the fuzzer)."""
    child("""
    for seed in range(6):
        rt = Runtime(gomaxprocs=2, gogc=None, mcache="none", mcentral=sys.argv[1])
        rt.run(ms=3, ops=60000, sizes=[16, 64, 4000], live=16, seed=seed)
        usable(rt)
        rt.close()
    print("OK")
    """, mcentral)


def test_internal_functions_cannot_crash_the_process():
    """Every callable of the Cython modules, and every method of what they make, is
    called with junk ints and objects: each must raise or return, never crash."""
    assert_python_ok(PRELUDE + "import importlib\n" + _INTERNALS, timeout=120)


_INTERNALS = """
mods = ["goruntime.lock", "goruntime.mheap", "goruntime.mcache", "goruntime.mcentral",
        "goruntime.mgc", "goruntime.mspan", "goruntime.mspanset", "goruntime.mstats",
        "goruntime.proc", "goruntime.runtime", "goruntime.runtime2", "goruntime.sizeclasses",
        "goruntime.workload", "goruntime.malloc", "goruntime.cmd.benchkernels", "stress.kernels"]
junk = [(), (0,), (1,), (8,), (-1,), (2**64 - 1,), (2**63,), (1, 2), (0, 0, 0), (1, 2**40, 64),
        (None,), ("x",), (1.5,)]
called = [0]
TRACE = len(sys.argv) > 1

def attempt(fn, args):
    called[0] += 1
    if TRACE:
        print("call", getattr(fn, "__qualname__", fn), args, flush=True)
    try:
        fn(*args)
    except Exception:
        pass

for name in mods:
    m = importlib.import_module(name)
    for attr, obj in sorted(vars(m).items()):
        if attr.startswith("__") or not callable(obj):
            continue
        if isinstance(obj, type) and issubclass(obj, BaseException):
            continue
        if getattr(obj, "__module__", name) != name:
            continue                        # re-exported from elsewhere, or a builtin
        for args in junk:
            attempt(obj, args)
            if not isinstance(obj, type):
                continue
            try:
                made = obj(*args)
            except Exception:
                continue
            for meth in dir(made):
                if meth.startswith("__"):
                    continue
                try:
                    f = getattr(made, meth)
                except Exception:
                    continue
                if callable(f):
                    for a2 in junk:
                        attempt(f, a2)
        if isinstance(obj, type):
            for meth, f in list(vars(obj).items()):
                if not meth.startswith("__") and callable(f):
                    for a2 in junk:
                        attempt(f, a2)
                        attempt(f, (None,) + a2)

# The Runtime's own internals are not reachable from Python, and views cannot be made.
rt = Runtime(gomaxprocs=1)
assert not hasattr(rt, "_release_heap") and not hasattr(rt, "_enter")
for view in (rt.ps[0], rt.ps[0].mcache, rt.centrals[3]):
    try:
        type(view).__new__(type(view))
    except TypeError:
        pass
    else:
        raise AssertionError(f"{type(view).__name__} made from Python")
usable(rt)
print(called[0], "calls OK")
"""
