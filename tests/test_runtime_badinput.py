"""Every bad input gets a clean exception of the right type and leaves the heap as it was."""
import contextlib
import subprocess
import sys
import textwrap
import threading

import pytest

from goruntime import GoRuntimeError, Runtime
from conftest import PAGE, assert_memstats_invariants, stat_snapshot


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


# -- malloc -----------------------------------------------------------------------

@pytest.mark.parametrize("size", [-1, -8, -(2**70)])
def test_negative_size(rt, live, size):
    with unchanged(rt):
        with pytest.raises(ValueError):
            rt.malloc(size)
        with pytest.raises(ValueError):
            rt.malloc(size, noscan=True)


@pytest.mark.parametrize("size", ["8", 8.0, None, b"8", [8], True, 8 + 0j])
def test_non_int_size(rt, live, size):
    with unchanged(rt):
        with pytest.raises(TypeError):
            rt.malloc(size)


def test_zero_size_returns_one_address(rt, live):
    with unchanged(rt):
        z = rt.malloc(0)
        assert rt.malloc(0) == z
        assert rt.malloc(0, noscan=True) == z
        with rt.proc():
            assert rt.malloc(0) == z
        assert rt.read(z, 0) == b""
        rt.write(z, b"")
        with pytest.raises(GoRuntimeError):
            rt.read(z, 1)
        with pytest.raises(GoRuntimeError):
            rt.write(z, b"x")
    assert rt.heap.span_of(z) is None


@pytest.mark.parametrize("size", [2**45, 2**46, 2**50, 2**63, 2**64, 2**100])
def test_huge_size_is_memory_error(rt, live, size):
    with unchanged(rt):
        with pytest.raises(MemoryError) as info:
            rt.malloc(size)
        assert str(size) in str(info.value)
    # Still usable afterwards.
    x = rt.malloc(100)
    assert rt.read(x, 100) == bytes(100)


def test_max_heap_cap(rt):
    with Runtime(gomaxprocs=1, gogc=None, max_heap=64 << 20) as capped:
        with unchanged(capped):
            with pytest.raises(MemoryError) as info:
                capped.malloc(100 << 20)
            assert str(100 << 20) in str(info.value)
        x = capped.malloc(64)
        y = capped.malloc(1 << 20)
        capped.write(y, b"y" * 16)
        assert capped.read(x, 64) == bytes(64)
        ms = capped.memstats()
        assert ms.HeapSys == 64 << 20
        assert_memstats_invariants(ms, capped)
        with unchanged(capped):
            with pytest.raises(MemoryError):
                capped.malloc(64 << 20)            # the arena already holds other spans


def test_max_heap_below_one_arena():
    with Runtime(gomaxprocs=1, gogc=None, max_heap=1 << 20) as tiny_cap:
        for size in (8, 4096, 40000):
            with pytest.raises(MemoryError, match=str(size)):
                tiny_cap.malloc(size)
        ms = tiny_cap.memstats()
        assert ms.HeapSys == 0 and ms.Mallocs == 0
        assert_memstats_invariants(ms, tiny_cap)
        assert tiny_cap.malloc(0) == tiny_cap.malloc(0)


def test_heap_exhaustion_recovers(rt):
    size = 32768
    with Runtime(gomaxprocs=1, gogc=None, max_heap=64 << 20) as capped:
        got = []
        with pytest.raises(MemoryError):
            with capped.proc():
                for _ in range((64 << 20) // size + 1):
                    got.append(capped.malloc(size))
        assert len(got) == (64 << 20) // size       # every page used, then refused
        assert len(set(got)) == len(got)
        ms = capped.memstats()
        assert ms.HeapIdle == 0 and ms.HeapObjects == len(got)
        assert_memstats_invariants(ms, capped)
        with pytest.raises(MemoryError):
            capped.malloc(40000)
        for x in got[::2]:
            capped.free(x)
        capped.gc()
        x = capped.malloc(size)
        assert x in got[::2]
        assert capped.read(x, size) == bytes(size)
        for x2 in got[1::2] + [x]:
            capped.free(x2)
        capped.gc()
        ms = capped.memstats()
        assert ms.HeapInuse == 0 and ms.HeapObjects == 0
        assert_memstats_invariants(ms, capped)


def test_workload_out_of_memory_is_reported_and_recovers():
    with Runtime(gomaxprocs=2, gogc=None, max_heap=64 << 20) as capped:
        with pytest.raises(MemoryError):
            capped.run(ms=2, ops=3000, live=3000, sizes=32768, seed=7)
        capped.gc()
        ms = capped.memstats()
        # The M that ran out of memory still dropped what it held.
        assert ms.HeapObjects == 0 and ms.HeapInuse == 0
        assert_memstats_invariants(ms, capped)
        r = capped.run(ms=2, ops=500, live=16, sizes=64, seed=8)
        assert r.allocs == 1000


# -- free -------------------------------------------------------------------------

def test_free_slot_beyond_freeindex(rt, live):
    small = live["small"]
    span = rt.heap.span_of(small)
    beyond = span["base"] + (span["freeindex"] + 3) * span["elemsize"]
    last = span["base"] + (span["nelems"] - 1) * span["elemsize"]
    with unchanged(rt):
        for addr in (beyond, last):
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.free(addr)
    # Allocating that slot later works normally.
    with rt.proc():
        got = [rt.malloc(64) for _ in range(4)]
    assert beyond in got
    rt.free(beyond)


@pytest.mark.parametrize("kind,offset", [("small", 8), ("small", 1), ("small", 63),
                                         ("large", 8), ("large", PAGE), ("large", 39999),
                                         ("tiny", 1), ("tiny", 2)])
def test_free_interior_pointer(rt, live, kind, offset):
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.free(live[kind] + offset)
    # The object itself is intact and still freeable exactly once.
    rt.free(live[kind])
    with pytest.raises(GoRuntimeError, match="double free"):
        rt.free(live[kind])


def test_free_past_a_large_objects_size(rt, live):
    big = live["large"]                             # 40000 bytes in a 5-page span
    assert rt.heap.span_of(big + 5 * PAGE - 8)["base"] == big
    with unchanged(rt):
        for addr in (big + 40000, big + 5 * PAGE - 8, big + 5 * PAGE):
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.free(addr)
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.read(addr, 1)


def test_pointers_of_another_runtime(rt, live):
    with Runtime(gomaxprocs=1, gogc=None) as other:
        foreign = [other.malloc(64), other.malloc(4, noscan=True), other.malloc(40000)]
        theirs = stat_snapshot(other.memstats())
        with unchanged(rt):
            for x in foreign:
                with pytest.raises(GoRuntimeError, match="bad pointer"):
                    rt.free(x)
                with pytest.raises(GoRuntimeError, match="bad pointer"):
                    rt.read(x, 1)
                with pytest.raises(GoRuntimeError, match="bad pointer"):
                    rt.write(x, b"x")
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            other.free(live["small"])
        assert stat_snapshot(other.memstats()) == theirs
        for x in foreign:
            other.free(x)


@pytest.mark.parametrize("kind", ["small", "tiny", "large"])
def test_double_free(rt, live, kind):
    rt.free(live[kind])
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="double free"):
            rt.free(live[kind])
        with pytest.raises(GoRuntimeError):
            rt.read(live[kind], 1)
        with pytest.raises(GoRuntimeError):
            rt.write(live[kind], b"x")


def test_free_after_sweep_is_refused(rt, live):
    rt.free(live["small"])
    rt.gc()
    with unchanged(rt):
        with pytest.raises(GoRuntimeError):
            rt.free(live["small"])
    rt.free(live["other"])                          # the neighbour is unaffected


@pytest.mark.parametrize("addr", [0, 8, 4096, -1, -(2**63), 2**64, 2**70])
def test_free_outside_the_heap(rt, live, addr):
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.free(addr)


def test_free_in_free_pages_of_an_arena(rt, live):
    base, size = rt.heap.arenas[0]
    free_page = rt.heap.free_runs()[-1][0]
    with unchanged(rt):
        for addr in (free_page, base + size - 8):
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.free(addr)


def test_free_and_read_in_a_spans_tail_waste(rt):
    # 48-byte slots: 170 fit in a page, the last 32 bytes belong to no object.
    with rt.proc():
        x = rt.malloc(48)
    span = rt.heap.span_of(x)
    assert span["nelems"] * span["elemsize"] < PAGE
    tail = span["base"] + span["nelems"] * span["elemsize"]
    assert rt.heap.span_of(tail)["base"] == span["base"]
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.free(tail)
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.read(tail, 1)


@pytest.mark.parametrize("addr", ["0x10", 8.0, None, True])
def test_free_non_int_address(rt, live, addr):
    with unchanged(rt):
        with pytest.raises(TypeError):
            rt.free(addr)


# -- read / write -----------------------------------------------------------------

@pytest.mark.parametrize("addr", [0, 8, -1, 2**64, 2**70])
def test_read_write_bad_pointer(rt, live, addr):
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.read(addr, 1)
        with pytest.raises(GoRuntimeError, match="bad pointer"):
            rt.write(addr, b"x")


def test_read_write_interior_and_unallocated(rt, live):
    small = live["small"]
    span = rt.heap.span_of(small)
    beyond = span["base"] + (span["freeindex"] + 1) * span["elemsize"]
    with unchanged(rt):
        for addr in (small + 8, live["large"] + PAGE, beyond, live["tiny"] + 1):
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.read(addr, 1)
            with pytest.raises(GoRuntimeError, match="bad pointer"):
                rt.write(addr, b"x")
    assert rt.read(small, 64) == b"S" * 64


def test_read_write_past_the_object(rt, live):
    small, big = live["small"], live["large"]
    with unchanged(rt):
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(small, 65)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.write(small, b"\x01" * 65)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(big, 40001)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.write(big, bytes(40001))
        # A tiny object ends where the next one in its block starts.
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(live["tiny"], 5)
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.write(live["tiny"], b"12345")
        with pytest.raises(GoRuntimeError, match="overruns"):
            rt.read(live["tiny2"], 13)             # the last one reaches the block end: 12 bytes
    # A refused write writes nothing.
    assert rt.read(small, 64) == b"S" * 64
    assert rt.read(live["other"], 64) == bytes(64)
    assert rt.read(big, 40000) == bytes(40000)
    assert rt.read(live["tiny"], 4) == bytes(4)


def test_read_write_bad_arguments(rt, live):
    small = live["small"]
    with unchanged(rt):
        with pytest.raises(ValueError):
            rt.read(small, -1)
        with pytest.raises(TypeError):
            rt.read(small, "8")
        with pytest.raises(TypeError):
            rt.read(small, 8.0)
        with pytest.raises(TypeError):
            rt.read("0x10", 8)
        with pytest.raises(TypeError):
            rt.write(small, "text")
        with pytest.raises(TypeError):
            rt.write(small, 12)
        with pytest.raises(TypeError):
            rt.write(None, b"x")
        with pytest.raises((OverflowError, ValueError, GoRuntimeError)):
            rt.read(small, 2**64)
        with pytest.raises((OverflowError, ValueError, GoRuntimeError)):
            rt.read(small, 2**70)
    assert rt.read(small, 64) == b"S" * 64


# -- constructor ------------------------------------------------------------------

@pytest.mark.parametrize("gomaxprocs", [0, -1, 1025])
def test_bad_gomaxprocs(gomaxprocs):
    with pytest.raises(ValueError):
        Runtime(gomaxprocs=gomaxprocs)


@pytest.mark.parametrize("gomaxprocs", ["2", 2.0, True])
def test_non_int_gomaxprocs(gomaxprocs):
    with pytest.raises(TypeError):
        Runtime(gomaxprocs=gomaxprocs)


@pytest.mark.parametrize("name", ["go1.99", "1.1", "", "latest", None, 113])
def test_unknown_sizeclasses(name):
    with pytest.raises(ValueError):
        Runtime(gomaxprocs=1, sizeclasses=name)


@pytest.mark.parametrize("kwargs", [{"gogc": -1}, {"gogc": "100"}, {"gogc": 1.5},
                                    {"max_heap": 0}, {"max_heap": -1}, {"max_heap": 1.5},
                                    {"max_heap": "64M"}])
def test_bad_gogc_and_max_heap(kwargs):
    with pytest.raises(ValueError):
        Runtime(gomaxprocs=1, **kwargs)


# -- workload arguments -----------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"ms": 0, "ops": 10}, {"ms": -1, "ops": 10}, {"ops": 0}, {"ops": -5},
    {"ops": 10, "duration": 1.0}, {"duration": 0}, {"duration": -1},
    {"ops": 10, "sizes": 0}, {"ops": 10, "sizes": (1 << 30) + 1}, {"ops": 10, "sizes": range(64, 8)},
    {"ops": 10, "sizes": []}, {"ops": 10, "sizes": [8, 16], "weights": [1]},
    {"ops": 10, "sizes": [8, 16], "weights": [0, 0]}, {"ops": 10, "noscan": 1.5},
    {"ops": 10, "large_share": -0.1}, {"ops": 10, "live": -1},
    {"ops": 10, "large_sizes": (1000, 2000)}, {"ops": 10, "kernel": "nope"},
])
def test_bad_run_arguments(rt, live, kwargs):
    with unchanged(rt):
        with pytest.raises(ValueError):
            rt.run(**kwargs)


@pytest.mark.parametrize("kwargs", [{"ops": 10, "sizes": "64"}, {"ops": 10, "sizes": (8.0, 16)},
                                    {"ops": 10, "sizes": [8, None]}])
def test_bad_run_argument_types(rt, live, kwargs):
    with unchanged(rt):
        with pytest.raises(TypeError):
            rt.run(**kwargs)


# -- after close ------------------------------------------------------------------

CLOSED_CALLS = {
    "malloc": lambda rt, x: rt.malloc(64),
    "malloc0": lambda rt, x: rt.malloc(0),
    "malloc_large": lambda rt, x: rt.malloc(1 << 20),
    "free": lambda rt, x: rt.free(x),
    "read": lambda rt, x: rt.read(x, 8),
    "write": lambda rt, x: rt.write(x, b"x"),
    "gc": lambda rt, x: rt.gc(),
    "memstats": lambda rt, x: rt.memstats(),
    "lockstats": lambda rt, x: rt.lockstats(),
    "proc": lambda rt, x: rt.proc(),
    "run": lambda rt, x: rt.run(ms=1, ops=10),
    "enter": lambda rt, x: rt.__enter__(),
    "free_runs": lambda rt, x: rt.heap.free_runs(),
    "span_of": lambda rt, x: rt.heap.span_of(x),
    "arenas": lambda rt, x: rt.heap.arenas,
    "heap_lockstats": lambda rt, x: rt.heap.lockstats(),
}


@pytest.mark.parametrize("call", sorted(CLOSED_CALLS))
def test_calls_after_close_raise(call):
    r = Runtime(gomaxprocs=2, gogc=None)
    x = r.malloc(64)
    r.close()
    assert r.closed
    with pytest.raises(GoRuntimeError, match="closed"):
        CLOSED_CALLS[call](r, x)
    r.close()                                       # idempotent


def test_close_inside_proc_then_calls_raise():
    r = Runtime(gomaxprocs=1, gogc=None)
    with r.proc():
        x = r.malloc(64)
        r.close()
        with pytest.raises(GoRuntimeError, match="closed"):
            r.malloc(64)
        with pytest.raises(GoRuntimeError, match="closed"):
            r.free(x)


def test_context_manager_closes():
    with Runtime(gomaxprocs=1, gogc=None) as r:
        r.malloc(8)
    assert r.closed
    with pytest.raises(GoRuntimeError, match="closed"):
        r.malloc(8)
    with pytest.raises(GoRuntimeError, match="closed"):
        with r:
            pass


def test_thread_waiting_for_a_p_is_released_by_close():
    r = Runtime(gomaxprocs=1, gogc=None)
    outcome = []
    entered = threading.Event()

    def waiter():
        entered.set()
        try:
            r.malloc(64)                            # blocks: the only P is held below
            outcome.append("allocated")
        except GoRuntimeError as e:
            outcome.append(e)

    with r.proc():
        r.malloc(8)
        t = threading.Thread(target=waiter)
        t.start()
        entered.wait()
        # close() wakes the waiter whether or not it is already blocked in acquirep.
        r.close()
    t.join()
    assert len(outcome) == 1
    assert outcome[0] == "allocated" or "closed" in str(outcome[0])


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


def test_nested_proc_of_two_runtimes(rt):
    with Runtime(gomaxprocs=1, gogc=None) as other:
        with rt.proc():
            with pytest.raises(GoRuntimeError):
                with other.proc():
                    pass
            x = rt.malloc(8)                        # the outer proc is intact
        with other.proc():
            y = other.malloc(8)
            with other.proc():                      # nesting the same runtime is fine
                assert other.malloc(8) == y + 8
    rt.free(x)
