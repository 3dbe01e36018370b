"""Stateful fuzzing of the Python API.

A hypothesis RuleBasedStateMachine drives random sequences of malloc / free / gc
/ read / write / bad pointers / bad arguments / thread switches / `with
rt.proc():` blocks / bursts of one size / multi-arena objects / two threads
released together (with a third one collecting) against a
Runtime(gomaxprocs=2), and keeps a plain-Python reference of what the heap
must hold:

* every live object: address, requested size, noscan, kind (tiny, small, large)
  and the bytes it must contain;
* objects freed but not yet swept (their slots are not reusable before a gc);
* tiny blocks: the 16 B blocks the tiny allocator packs noscan objects under
  16 B into, with every object ever started in them (an object's extent ends
  where the next one starts, freed or not) and the ones still live;
* addresses of swept objects (stale pointers), the fixed address of malloc(0),
  how many mallocs succeeded and how many collections ran.

Each example draws its runtime: gogc None (the trigger off) or 0 / 50 (a
collection whenever the heap reaches 4 MiB; the reference catches up from
NumGC), size classes go1.13 or go1.19, mcache lockfree / locked / none (no
tiny allocator), mcentral mutex / spanset, the per-P page cache on or off.

Checked: a new object overlaps nothing live or unswept, sits in a span of its
size class and reads as zeros; every live object reads back exactly what was
written; a freed object cannot be read, written or freed again ("double
free"); every bad call raises exactly the documented exception type and leaves
MemStats alone; after every step every live object's bytes match the reference
and (every `stats_every` steps) MemStats satisfies its identities and agrees
with the reference (Mallocs, HeapObjects, HeapAlloc, NumGC); `rt.verify()`
(the stop-the-world heap verifier) runs every `verify_every` steps; freeing
everything and collecting empties the heap; after close() every call is
refused with "runtime closed".

Why MemStats is not read after literally every step in every example:
rt.memstats() flushes every mcache (as Go 1.13's ReadMemStats does), which also
drops the P's current tiny block, so reading it after every step would stop
tiny objects allocated in different steps from ever sharing a block. Each
example draws stats_every from (1, 3, 8); with 1 it is every step.

The number of examples and steps run, and how often each rule ran, is printed
at the end (shown even without -s; also the junit properties `fuzz_examples` /
`fuzz_steps`). GORUNTIME_FUZZ_EXAMPLES=N runs N examples instead of 130 (about
15 s on an idle core).
"""
import _thread
import array
import bisect
import collections
import functools
import gc as pygc
import os
import random
import signal
import sys
import threading
import time
import weakref

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule, run_state_machine_as_test)

from goruntime import GoRuntimeError, Runtime
from conftest import MAX_SMALL, PAGE, STAT_FIELDS, assert_memstats_invariants, stat_snapshot
from tests import testkernels as tk

TINY = 16
MAX_SIZE = 70000
MAX_LIVE = 250              # mallocs are refused by precondition beyond this many live objects
MAX_LIVE_BURST = 1500       # bursts (hundreds of objects of one size) stop beyond this many
MAX_DEAD = 200              # stale (swept) addresses remembered for use-after-free probes
JOIN_TIMEOUT = 60.0         # a thread-switched operation that takes longer is a deadlock

BOUNDARY_SIZES = (1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 1024, 1025, 8192, 32767,
                  32768, 32769, 40000, 65536, 70000)
SIZES = st.one_of(
    st.sampled_from((0,) + BOUNDARY_SIZES),
    st.integers(1, 15),                 # tiny when noscan
    st.integers(16, 2048),
    st.integers(0, MAX_SIZE),
)
PICK = st.integers(0, 1 << 16)          # an index into a sorted list of candidates
SEED = st.integers(0, (1 << 32) - 1)
# Write lengths: -1 means the whole extent, anything else is capped at the extent.
LENGTHS = st.one_of(st.just(-1), st.integers(0, 32), st.integers(0, MAX_SIZE))


def counted(fn):
    """Counts how often each rule ran (printed with the example count)."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        APIFuzz.rules_run[fn.__name__] += 1
        t0 = time.perf_counter()
        try:
            return fn(self, *args, **kwargs)
        finally:
            APIFuzz.rule_seconds[fn.__name__] += time.perf_counter() - t0
    return wrapper


def randbytes(seed, n):
    return random.Random(seed).randbytes(n)


def _exact(exc_type, fn, match=None):
    """fn() must raise exactly exc_type (not a subclass), whose message contains match."""
    try:
        fn()
    except BaseException as e:                      # noqa: BLE001 - we check the type below
        assert type(e) is exc_type, f"expected {exc_type.__name__}, got {type(e).__name__}: {e}"
        if match is not None:
            assert match in str(e), f"{match!r} not in {str(e)!r}"
        return e
    raise AssertionError(f"expected {exc_type.__name__}, nothing was raised")


class Obj:
    __slots__ = ("addr", "size", "noscan", "kind", "slot", "data", "serial")

    def __init__(self, addr, size, noscan, kind, slot, maxextent, serial):
        self.addr = addr
        self.size = size            # requested size
        self.noscan = noscan
        self.kind = kind            # "tiny", "small" or "large"
        self.slot = slot            # bytes it occupies: requested (tiny), class size, whole pages
        self.data = bytearray(maxextent)    # what its bytes must be (up to its current extent)
        self.serial = serial

    def __repr__(self):
        return f"<{self.kind} {self.size}{' noscan' if self.noscan else ''} @{self.addr:#x}>"


class TinyBlock:
    __slots__ = ("starts", "live")

    def __init__(self):
        self.starts = {}            # offset -> requested size, every object started here
        self.live = set()           # offsets of the live ones


class Intervals:
    """Disjoint [start, end) ranges keyed by start, with an overlap query."""

    def __init__(self):
        self.starts = []
        self.ends = {}
        self.what = {}

    def overlap(self, a, b):
        i = bisect.bisect_right(self.starts, a) - 1
        if i >= 0 and self.ends[self.starts[i]] > a:
            return self.what[self.starts[i]]
        if i + 1 < len(self.starts) and self.starts[i + 1] < b:
            return self.what[self.starts[i + 1]]
        return None

    def add(self, a, b, what):
        hit = self.overlap(a, b)
        assert hit is None, f"[{a:#x}, {b:#x}) ({what}) overlaps {hit}"
        bisect.insort(self.starts, a)
        self.ends[a] = b
        self.what[a] = what

    def remove(self, a):
        i = bisect.bisect_left(self.starts, a)
        assert self.starts[i] == a
        del self.starts[i]
        del self.ends[a]
        del self.what[a]


class Reference:
    """The plain-Python model of what the runtime must hold."""

    def __init__(self, sizeclasses, tiny=True):
        self.sc = sizeclasses
        self.tiny = tiny
        self.live = {}              # addr -> Obj
        self.unswept = {}           # addr -> Obj: freed, slot not reusable until the next gc
        self.dead = []              # addresses of swept objects (stale pointers)
        self.blocks = {}            # 16 B tiny block address -> TinyBlock
        self.occupied = Intervals() # non-tiny objects (live or unswept) and tiny blocks
        self.mallocs = 0
        self.numgc = 0
        self.zero = None
        self.serial = 0

    # -- shapes --------------------------------------------------------------

    def kind(self, size, noscan):
        if size > MAX_SMALL:
            return "large"
        if noscan and size < TINY and self.tiny:
            return "tiny"
        return "small"

    def slot(self, size, noscan):
        k = self.kind(size, noscan)
        if size == 0:
            return 0
        if k == "large":
            return -(-size // PAGE) * PAGE
        if k == "tiny":
            return size
        return self.sc.class_to_size(self.sc.size_to_class(size))

    def zero_check_len(self, size, noscan):
        """How many bytes of a fresh object must read as zeros: its whole extent,
        except for a tiny object (its requested size: the rest of the block is
        another object's business)."""
        k = self.kind(size, noscan)
        return size if k != "small" else self.slot(size, noscan)

    def extent(self, obj):
        if obj.kind == "small":
            return obj.slot
        if obj.kind == "large":
            return obj.size
        return obj.size                 # a tiny object is exactly its requested size

    # -- transitions ---------------------------------------------------------

    def malloc(self, addr, size, noscan, keep_data=True):
        """Records a successful malloc(size, noscan) that returned addr; checks placement.

        keep_data=False (giant objects, freed in the step that made them) keeps
        no copy of the object's bytes."""
        if size == 0:
            if self.zero is None:
                self.zero = addr
            assert addr == self.zero, f"malloc(0) returned {addr:#x}, before {self.zero:#x}"
            return None
        assert isinstance(addr, int) and addr > 0
        assert addr not in self.live, f"{addr:#x} handed out twice: {self.live[addr]}"
        k = self.kind(size, noscan)
        slot = self.slot(size, noscan)
        self.serial += 1
        if k == "tiny":
            block, off = addr & ~(TINY - 1), addr & (TINY - 1)
            assert off + size <= TINY, f"tiny object {size} B at {addr:#x} crosses its block"
            b = self.blocks.get(block)
            if b is None:
                # A fresh block: its first object starts at offset 0, and the
                # whole 16 B must be free.
                assert off == 0, f"tiny object at {addr:#x} starts a new block at offset {off}"
                self.occupied.add(block, block + TINY, f"tiny block {block:#x}")
                b = self.blocks[block] = TinyBlock()
            else:
                for o, sz in b.starts.items():
                    assert off >= o + sz, (
                        f"tiny {size} B at {addr:#x} overlaps or precedes the tiny object "
                        f"{sz} B at {block + o:#x} (block starts {sorted(b.starts.items())})")
            b.starts[off] = size
            b.live.add(off)
            obj = Obj(addr, size, noscan, k, slot, TINY - off, self.serial)
        else:
            self.occupied.add(addr, addr + slot, f"{k} {size} B at {addr:#x}")
            obj = Obj(addr, size, noscan, k, slot,
                      0 if not keep_data else slot if k == "small" else size, self.serial)
        self.live[addr] = obj
        self.mallocs += 1
        return obj

    def free(self, obj):
        del self.live[obj.addr]
        self.unswept[obj.addr] = obj
        if obj.kind == "tiny":
            self.blocks[obj.addr & ~(TINY - 1)].live.discard(obj.addr & (TINY - 1))

    def sweep(self):
        """A collection ran: unswept objects die; tiny blocks die once all their objects did."""
        self.numgc += 1
        for addr, obj in self.unswept.items():
            if obj.kind != "tiny":
                self.occupied.remove(addr)
            self.dead.append(addr)
        self.unswept.clear()
        for block in [blk for blk, b in self.blocks.items() if not b.live]:
            self.occupied.remove(block)
            del self.blocks[block]
        del self.dead[:-MAX_DEAD]

    # -- what MemStats must say ----------------------------------------------

    def heap_objects(self):
        objs = [o for o in (*self.live.values(), *self.unswept.values()) if o.kind != "tiny"]
        return len(objs) + len(self.blocks)

    def heap_alloc(self):
        objs = [o for o in (*self.live.values(), *self.unswept.values()) if o.kind != "tiny"]
        return sum(o.slot for o in objs) + TINY * len(self.blocks)


class APIFuzz(RuleBasedStateMachine):
    examples = 0
    steps = 0
    rules_run = collections.Counter()
    rule_seconds = collections.Counter()

    def __init__(self):
        super().__init__()
        type(self).examples += 1
        self.rt = None
        self.ref = None
        self.procs = []             # `with rt.proc():` contexts entered on this thread
        self.gens = []              # generators holding a `with rt.proc():` block across a yield
        self.config = None          # the Runtime's arguments (close_and_reopen makes another)
        self.switch = None          # not None: run the next operation on another thread,
                                    # inside its own `with rt.proc():` if True
        self.step = 0
        self.last_ms = None         # the last MemStats snapshot memstats_match checked

    # -- plumbing ------------------------------------------------------------

    @initialize(gogc=st.sampled_from([None, None, None, 0, 50]),
                version=st.sampled_from(["go1.13", "go1.13", "go1.19"]),
                mcache=st.sampled_from(["lockfree", "lockfree", "locked", "shared", "none"]),
                mcentral=st.sampled_from(["mutex", "mutex", "spanset"]),
                pagecache=st.sampled_from([False, False, True]),
                sweep=st.sampled_from(["concurrent", "concurrent", "stw"]),
                stats_every=st.sampled_from([1, 3, 8]),
                verify_every=st.sampled_from([1, 4, 16]),
                giants=st.sampled_from([0, 0, 0, 1]))
    def setup(self, gogc, version, mcache, mcentral, pagecache, sweep, stats_every, verify_every, giants):
        self.config = dict(gomaxprocs=2, gogc=gogc, sizeclasses=version, mcache=mcache,
                           mcentral=mcentral, pagecache=pagecache, sweep=sweep)
        self._open()
        self.gogc = gogc
        self.stats_every = stats_every
        self.verify_every = verify_every
        self.giants = giants

    def _open(self):
        """A fresh Runtime of the example's configuration, and an empty reference."""
        self.rt = Runtime(**self.config)
        # Without mcaches there is no tiny allocator: small noscan objects get a slot.
        self.ref = Reference(self.rt.sizeclasses, tiny=self.config["mcache"] != "none")
        self.last_ms = None

    def teardown(self):
        """Close the runtime (from inside any proc() blocks still open), check that
        every call is then refused, and leave the proc() blocks."""
        rt, self.rt = self.rt, None
        try:
            if rt is not None:
                rt.close()
                addr = next(iter(self.ref.live), 8)
                for call in (lambda: rt.malloc(8), lambda: rt.malloc(0), lambda: rt.free(addr),
                             lambda: rt.read(addr, 1), lambda: rt.write(addr, b"x"), rt.gc,
                             rt.memstats, rt.verify, rt.proc):
                    _exact(GoRuntimeError, call, "closed")
        finally:
            while self.procs:
                self.procs.pop().__exit__(None, None, None)
            while self.gens:
                self.gens.pop().close()

    def _in_thread(self, fn, with_proc):
        box = {}

        def target():
            try:
                if with_proc:
                    with self.rt.proc():
                        box["r"] = fn()
                else:
                    box["r"] = fn()
            except BaseException as e:          # noqa: BLE001 - re-raised on the main thread
                box["e"] = e

        t = threading.Thread(target=target, name="fuzz-switch", daemon=True)
        t.start()
        t.join(JOIN_TIMEOUT)
        assert not t.is_alive(), f"operation on another thread still running after {JOIN_TIMEOUT}s"
        if "e" in box:
            raise box["e"]
        return box["r"]

    def call(self, fn):
        """Runs one operation: here, or on a fresh thread after a thread_switch."""
        if self.switch is not None:
            with_proc, self.switch = self.switch, None
            return self._in_thread(fn, with_proc)
        return fn()

    def sync_gc(self):
        """With a GC trigger, a malloc may have collected: catch the reference up."""
        if self.gogc is None:
            return
        numgc = self.rt.memstats().NumGC
        assert numgc >= self.ref.numgc
        while self.ref.numgc < numgc:
            self.ref.sweep()

    def catch_up_gc(self):
        """Collections the reference has not seen (whatever started them): sweep as many."""
        numgc = self.rt.memstats().NumGC
        assert numgc >= self.ref.numgc
        while self.ref.numgc < numgc:
            self.ref.sweep()

    def fails(self, exc_type, fn, match=None):
        """A bad call: exactly exc_type, and MemStats counters unchanged."""
        before = stat_snapshot(self.rt.memstats(), STAT_FIELDS)
        e = self.call(lambda: _exact(exc_type, fn, match))
        after = stat_snapshot(self.rt.memstats(), STAT_FIELDS)
        assert after == before, f"a failing call ({e!r}) changed MemStats"
        return e

    def pick(self, seq, i):
        return seq[i % len(seq)]

    def live_objs(self):
        return sorted(self.ref.live.values(), key=lambda o: o.serial)

    def _malloc_op(self, size, noscan):
        rt, n = self.rt, self.ref.zero_check_len(size, noscan)

        def op():
            addr = rt.malloc(size, noscan=noscan)
            return addr, rt.read(addr, n)
        return op

    def _record_malloc(self, size, noscan, addr, content):
        if size:
            span = self.rt.heap.span_of(addr)
            kind = self.ref.kind(size, noscan)
            assert span is not None, f"malloc({size}) returned {addr:#x}, in no span"
            if kind == "large":
                assert span.base == addr and span.sizeclass == 0, span
                assert span.npages * PAGE == self.ref.slot(size, noscan), span
            else:
                want = TINY if kind == "tiny" else self.ref.slot(size, noscan)
                assert span.elemsize == want, (size, noscan, span)
                assert (addr - span.base) % want == (addr & (TINY - 1) if kind == "tiny" else 0)
            assert span.noscan == bool(noscan), (size, noscan, span)
        obj = self.ref.malloc(addr, size, noscan)
        note(f"malloc({size}, noscan={noscan}) = {addr:#x} -> {obj}")
        assert content == bytes(len(content)), (
            f"fresh {obj} is not zero: first nonzero byte at {next(i for i, c in enumerate(content) if c)}")
        return obj

    # -- allocation ------------------------------------------------------------

    @precondition(lambda self: len(self.ref.live) < MAX_LIVE)
    @rule(size=SIZES, noscan=st.booleans())
    @counted
    def malloc(self, size, noscan):
        addr, content = self.call(self._malloc_op(size, noscan))
        self._record_malloc(size, noscan, addr, content)
        self.sync_gc()

    @precondition(lambda self: len(self.ref.live) < MAX_LIVE)
    @rule(size=st.integers(1, 15))
    @counted
    def malloc_tiny(self, size):
        addr, content = self.call(self._malloc_op(size, True))
        self._record_malloc(size, True, addr, content)
        self.sync_gc()

    @precondition(lambda self: len(self.ref.live) < MAX_LIVE)
    @rule(sizes=st.lists(st.sampled_from((1, 2, 3, 4, 5, 8, 12, 15, 16, 24, 32)), min_size=1, max_size=8),
          noscan=st.booleans(), seeds=st.lists(SEED, min_size=8, max_size=8))
    @counted
    def malloc_many_and_write(self, sizes, noscan, seeds):
        """Several small mallocs back to back (so tiny objects share blocks), each
        written to its full extent at once."""
        for size, seed in zip(sizes, seeds):
            addr, content = self.call(self._malloc_op(size, noscan))
            obj = self._record_malloc(size, noscan, addr, content)
            self.sync_gc()
            self._write(obj, -1, seed)

    @precondition(lambda self: len(self.ref.live) < MAX_LIVE_BURST)
    @rule(size=st.one_of(st.sampled_from([1, 8, 15, 16, 24, 48, 64, 128, 256, 512, 1024, 2048, 8192]),
                         st.integers(1, 4096)),
          noscan=st.booleans(), count=st.integers(10, 400), free_every=st.integers(0, 4),
          in_proc=st.booleans(), seed=SEED)
    @counted
    def burst(self, size, noscan, count, free_every, in_proc, seed):
        """Many objects of one size: spans fill up, refill from the mcentral and
        grow from the mheap; every free_every-th one is freed again, leaving
        partly used spans for the sweeper and later bursts."""
        rt, ref = self.rt, self.ref
        if self.gogc is not None and ref.unswept:
            # A collection triggered in mid-burst would make the unswept slots
            # reusable at a point the reference cannot see: sweep them first.
            rt.gc()
            ref.sweep()
        n = ref.zero_check_len(size, noscan)
        zeros = bytes(n)

        def op():
            got = []
            for _ in range(count):
                addr = rt.malloc(size, noscan=noscan)
                got.append((addr, rt.read(addr, n) == zeros))
            return got

        if in_proc and self.switch is None:
            with rt.proc():
                got = op()
        else:
            got = self.call(op)
        objs = []
        for k, (addr, zeroed) in enumerate(got):
            obj = ref.malloc(addr, size, noscan)
            assert zeroed, f"fresh {obj} (burst #{k}) is not zero"
            objs.append(obj)
        note(f"burst of {count} x malloc({size}, noscan={noscan}): {got[0][0]:#x}..")
        for obj in objs[::37]:
            self._write(obj, 8, seed + obj.serial)
        self.sync_gc()
        if free_every:
            for addr, _ in got[::free_every]:
                if addr in ref.live:
                    rt.free(addr)
                    ref.free(ref.live[addr])

    @precondition(lambda self: self.giants > 0)
    @rule(size=st.sampled_from([1 << 20, (8 << 20) + 3, (64 << 20) + 1]),
          noscan=st.booleans(), fill=st.booleans())
    @counted
    def giant(self, size, noscan, fill):
        """An object of megabytes, up to more than an arena (a multi-arena
        reservation): zeroed, filled (up to 8 MiB), read back and freed in one
        step; the pages it leaves must read as zeros when reused. Slow, so at
        most once, in a quarter of the examples."""
        rt, ref = self.rt, self.ref
        self.giants -= 1
        fill = fill and size < (16 << 20)

        def op():
            a = rt.malloc(size, noscan=noscan)
            zeroed = rt.read(a, size).count(0) == size
            if fill:
                rt.write(a, b"\xa5" * size)
                assert rt.read(a, size).count(0xa5) == size, "giant object reads back wrong"
            rt.free(a)
            return a, zeroed

        addr, zeroed = self.call(op)
        span = rt.heap.span_of(addr)
        obj = ref.malloc(addr, size, noscan, keep_data=False)
        note(f"giant malloc({size}) = {addr:#x}, freed")
        assert zeroed, f"fresh {obj} is not zero"
        assert span is not None and span.base == addr and span.npages * PAGE == obj.slot, span
        self.sync_gc()                  # a collection its malloc triggered ran before the free
        ref.free(obj)
        self.fails(GoRuntimeError, lambda: rt.free(addr), "double free")

    # -- read / write ----------------------------------------------------------

    def _write(self, obj, length, seed, kind="bytes"):
        ext = self.ref.extent(obj)
        n = ext if length < 0 else min(length, ext)
        data = randbytes(seed, n)
        if kind == "bytearray":
            payload = bytearray(data)
        elif kind == "memoryview":
            payload = memoryview(data)
        elif kind == "array" and n % 2 == 0:
            payload = array.array("H", data)
        else:
            payload = data
        addr = obj.addr
        self.call(lambda: self.rt.write(addr, payload))
        obj.data[:n] = data

    @precondition(lambda self: self.ref.live)
    @rule(i=PICK, length=LENGTHS, seed=SEED,
          kind=st.sampled_from(["bytes", "bytes", "bytearray", "memoryview", "array"]))
    @counted
    def write(self, i, length, seed, kind):
        obj = self.pick(self.live_objs(), i)
        self._write(obj, length, seed, kind)

    @precondition(lambda self: self.ref.live)
    @rule(i=PICK, length=LENGTHS)
    @counted
    def read(self, i, length):
        obj = self.pick(self.live_objs(), i)
        ext = self.ref.extent(obj)
        n = ext if length < 0 else min(length, ext)
        addr = obj.addr
        got = self.call(lambda: self.rt.read(addr, n))
        assert got == bytes(obj.data[:n]), f"{obj}: read {n} bytes differ from what was written"

    @precondition(lambda self: self.ref.live)
    @rule(i=PICK, read=st.booleans(), extra=st.sampled_from([1, 2, 16, PAGE]))
    @counted
    def overrun(self, i, read, extra):
        """Reading or writing past an object's extent is refused and writes nothing."""
        obj = self.pick(self.live_objs(), i)
        n, addr, rt = self.ref.extent(obj) + extra, obj.addr, self.rt
        if read:
            self.fails(GoRuntimeError, lambda: rt.read(addr, n), "overruns")
        else:
            self.fails(GoRuntimeError, lambda: rt.write(addr, b"\xa5" * n), "overruns")

    # -- free / gc -------------------------------------------------------------

    @precondition(lambda self: self.ref.live)
    @rule(i=PICK, probe=st.booleans())
    @counted
    def free(self, i, probe):
        obj = self.pick(self.live_objs(), i)
        addr, rt = obj.addr, self.rt
        self.call(lambda: rt.free(addr))
        self.ref.free(obj)
        note(f"free({addr:#x}) {obj}")
        if probe:
            self.fails(GoRuntimeError, lambda: rt.read(addr, 1), "bad pointer")
            self.fails(GoRuntimeError, lambda: rt.write(addr, b"x"), "bad pointer")
        self.fails(GoRuntimeError, lambda: rt.free(addr), "double free")

    @precondition(lambda self: self.ref.unswept)
    @rule(i=PICK, op=st.sampled_from(["free", "read", "write", "read0"]))
    @counted
    def use_after_free(self, i, op):
        """An object freed but not yet swept: any use is refused, a free is a double free."""
        addr = self.pick(sorted(self.ref.unswept), i)
        rt = self.rt
        if op == "free":
            self.fails(GoRuntimeError, lambda: rt.free(addr), "double free")
        elif op == "read":
            self.fails(GoRuntimeError, lambda: rt.read(addr, 1), "bad pointer")
        elif op == "read0":
            self.fails(GoRuntimeError, lambda: rt.read(addr, 0), "bad pointer")
        else:
            self.fails(GoRuntimeError, lambda: rt.write(addr, b"x"), "bad pointer")

    @precondition(lambda self: self.ref.dead)
    @rule(i=PICK, op=st.sampled_from(["free", "read", "write"]))
    @counted
    def stale_pointer(self, i, op):
        """An object already swept: unless its address now starts a new live object,
        free / read / write are refused (a swept tiny object in a block that still
        lives is a double free, anything else a bad pointer)."""
        addr = self.pick(self.ref.dead, i)
        if addr in self.ref.live:
            return
        rt = self.rt
        if op == "free":
            self.fails(GoRuntimeError, lambda: rt.free(addr))
        elif op == "read":
            self.fails(GoRuntimeError, lambda: rt.read(addr, 1), "bad pointer")
        else:
            self.fails(GoRuntimeError, lambda: rt.write(addr, b"x"), "bad pointer")

    @rule()
    @counted
    def gc(self):
        rt = self.rt
        self.call(lambda: rt.gc())
        self.ref.sweep()
        note("gc()")

    # -- bad pointers and bad arguments ----------------------------------------

    def _interior(self, i, which):
        """An address inside a live object that no live object starts at."""
        objs = [o for o in self.live_objs() if o.kind != "tiny" and o.size >= 2]
        tinies = [o for o in self.live_objs() if o.kind == "tiny"]
        if which == "tiny" and tinies:
            o = self.pick(tinies, i)
            block = o.addr & ~(TINY - 1)
            starts = self.ref.blocks[block].starts
            cands = [block + k for k in range(TINY) if k not in starts]
            return self.pick(cands, i // 7) if cands else None
        if not objs:
            return None
        o = self.pick(objs, i)
        ext = self.ref.extent(o)
        offs = [off for off in (1, 8, PAGE, ext - 1, o.slot - 1) if 0 < off < ext]
        return o.addr + self.pick(offs, i // 7)

    @rule(i=PICK, where=st.sampled_from([
        "interior", "tiny-interior", "zero", 0, 8, 4096, -1, -(2 ** 63), 2 ** 64, 2 ** 64 + 5,
        2 ** 70, "past-heap", "past-heap-page", "before-heap", "free-page"]),
        op=st.sampled_from(["free", "read", "write"]))
    @counted
    def bad_pointer(self, i, where, op):
        rt = self.rt
        if where == "interior":
            addr = self._interior(i, "small")
        elif where == "tiny-interior":
            addr = self._interior(i, "tiny")
        elif where == "zero":
            addr = rt.malloc(0)
            self.ref.malloc(addr, 0, False)
            if op != "free":
                # The zero-size object: 0 bytes are fine, 1 overruns.
                if op == "read":
                    assert self.call(lambda: rt.read(addr, 0)) == b""
                    self.fails(GoRuntimeError, lambda: rt.read(addr, 1), "overruns")
                else:
                    self.call(lambda: rt.write(addr, b""))
                    self.fails(GoRuntimeError, lambda: rt.write(addr, b"z"), "overruns")
                return
        elif where in ("past-heap", "past-heap-page", "before-heap", "free-page"):
            arenas = rt.heap.arenas
            if not arenas:
                addr = None
            elif where == "past-heap":
                addr = max(b + s for b, s in arenas) + 8
            elif where == "past-heap-page":
                addr = max(b + s for b, s in arenas) + PAGE
            elif where == "before-heap":
                addr = min(b for b, s in arenas) - 16
            else:
                runs = rt.heap.free_runs()
                addr = self.pick(runs, i)[0] if runs else None
        else:
            addr = where
        if addr is None or addr in self.ref.live:
            return
        note(f"bad pointer {op}({addr:#x}) [{where}]")
        if op == "free":
            self.fails(GoRuntimeError, lambda: rt.free(addr), "bad pointer")
        elif op == "read":
            self.fails(GoRuntimeError, lambda: rt.read(addr, 1), "bad pointer")
        else:
            self.fails(GoRuntimeError, lambda: rt.write(addr, b"x"), "bad pointer")

    @rule(i=PICK, off=st.integers(0, (1 << 26) - 1), near=st.booleans(),
          op=st.sampled_from(["free", "read", "write"]))
    @counted
    def random_address(self, i, off, near, op):
        """Any address in the heap (near: in the span of a live object) that no live
        object starts at is refused: the start of an unswept object is a double free,
        anything else a bad pointer (a swept tiny object whose block lives on is
        still marked as a freed start: double free too)."""
        rt, ref = self.rt, self.ref
        if near and ref.live:
            span = rt.heap.span_of(self.pick(self.live_objs(), i).addr)
            addr = span.base + off % (span.npages * PAGE)
        else:
            arenas = rt.heap.arenas
            if not arenas:
                return
            base, size = self.pick(arenas, i)
            addr = base + off % size
        if addr in ref.live:
            return
        note(f"random address {op}({addr:#x})")
        if op == "free":
            e = self.fails(GoRuntimeError, lambda: rt.free(addr))
            block = ref.blocks.get(addr & ~(TINY - 1))
            if addr in ref.unswept:
                assert "double free" in str(e), e
            elif block is None or (addr & (TINY - 1)) not in block.starts:
                assert "bad pointer" in str(e), e
        elif op == "read":
            self.fails(GoRuntimeError, lambda: rt.read(addr, 1), "bad pointer")
        else:
            self.fails(GoRuntimeError, lambda: rt.write(addr, b"x"), "bad pointer")

    @rule(bad=st.sampled_from(["0x10", 8.0, None, True, False, b"8", [8], 8 + 0j]),
          op=st.sampled_from(["free", "read", "write", "malloc"]))
    @counted
    def non_int_argument(self, bad, op):
        rt = self.rt
        if op == "free":
            self.fails(TypeError, lambda: rt.free(bad), "addr must be an int")
        elif op == "read":
            self.fails(TypeError, lambda: rt.read(bad, 1), "addr must be an int")
        elif op == "write":
            self.fails(TypeError, lambda: rt.write(bad, b"x"), "addr must be an int")
        else:
            self.fails(TypeError, lambda: rt.malloc(bad), "size must be an int")

    @rule(size=st.sampled_from([-1, -8, -(2 ** 70)]), noscan=st.booleans())
    @counted
    def malloc_negative(self, size, noscan):
        rt = self.rt
        self.fails(ValueError, lambda: rt.malloc(size, noscan=noscan), "size must be an int of at least 0")

    @rule(size=st.sampled_from([2 ** 41 + 1, 2 ** 45, 2 ** 46, 2 ** 63, 2 ** 64 + 5, 2 ** 100]),
          noscan=st.booleans())
    @counted
    def malloc_huge(self, size, noscan):
        rt = self.rt
        self.fails(MemoryError, lambda: rt.malloc(size, noscan=noscan), str(size))

    @precondition(lambda self: self.ref.live)
    @rule(i=PICK, bad=st.sampled_from(["neg", "str", "float", "none", "bool", "overflow",
                                       "write-str", "write-int", "write-none", "write-strided"]))
    @counted
    def bad_argument_on_live(self, i, bad):
        obj = self.pick(self.live_objs(), i)
        rt, addr = self.rt, obj.addr
        cases = {
            "neg": (ValueError, lambda: rt.read(addr, -1), "n must be an int between 0 and"),
            "str": (TypeError, lambda: rt.read(addr, "8"), "n must be an int"),
            "float": (TypeError, lambda: rt.read(addr, 8.0), "n must be an int"),
            "none": (TypeError, lambda: rt.read(addr, None), "n must be an int"),
            "bool": (TypeError, lambda: rt.read(addr, True), "n must be an int"),
            # A count that does not fit a size_t: a ValueError naming n and its range.
            "overflow": (ValueError, lambda: rt.read(addr, 2 ** 64 + 5), "n must be an int between 0 and"),
            "write-str": (TypeError, lambda: rt.write(addr, "text"), None),
            "write-int": (TypeError, lambda: rt.write(addr, 12), None),
            "write-none": (TypeError, lambda: rt.write(addr, None), None),
            "write-strided": (TypeError, lambda: rt.write(addr, memoryview(b"abcdef")[::2]), None),
        }
        exc, fn, match = cases[bad]
        self.fails(exc, fn, match)

    # -- threads and Ps ----------------------------------------------------------

    @precondition(lambda self: self.switch is None)
    @rule(with_proc=st.booleans())
    @counted
    def thread_switch(self, with_proc):
        """The next operation runs on another OS thread (inside its own
        `with rt.proc():` or not), joined before the step ends."""
        self.switch = with_proc

    @precondition(lambda self: len(self.procs) < 3)
    @rule()
    @counted
    def enter_proc(self):
        """Keep a P on this thread across the following steps (nested up to 3 deep)."""
        ctx = self.rt.proc()
        ctx.__enter__()
        self.procs.append(ctx)

    @precondition(lambda self: self.procs)
    @rule()
    @counted
    def exit_proc(self):
        self.procs.pop().__exit__(None, None, None)

    # -- hostile use (issue 9): generators, close(), finalizers, Ctrl-C ----------------------

    def _block_gen(self, size, noscan):
        """A generator that holds a `with rt.proc():` block across its yields; its first
        step mallocs one object inside the block."""
        op = self._malloc_op(size, noscan)
        rt = self.rt

        def gen():
            with rt.proc():
                yield op()
                yield None
        return gen()

    @precondition(lambda self: len(self.gens) < 4 and len(self.ref.live) < MAX_LIVE)
    @rule(size=SIZES, noscan=st.booleans(), on_thread=st.booleans())
    @counted
    def gen_enter(self, size, noscan, on_thread):
        """A generator enters a block and keeps it across a yield: here, nested among this
        thread's blocks, or on a thread that then ends (its P stays parked, stealable)."""
        g = self._block_gen(size, noscan)
        if on_thread:
            addr, content = self._in_thread(lambda: next(g), False)
        else:
            addr, content = next(g)
        self._record_malloc(size, noscan, addr, content)
        self.sync_gc()
        self.gens.append(g)

    @precondition(lambda self: self.gens)
    @rule(i=PICK, how=st.sampled_from(["close", "drop", "exhaust", "close-on-thread"]))
    @counted
    def gen_exit(self, i, how):
        """A generator's block ends in any order relative to the others and to this
        thread's own blocks: closed, dropped (its finalizer closes it), run to its end,
        or closed on another thread than the one that entered it."""
        g = self.gens.pop(i % len(self.gens))
        if how == "close":
            g.close()
        elif how == "drop":
            del g
        elif how == "exhaust":
            assert list(g) == [None]
        else:
            self._in_thread(g.close, False)

    @precondition(lambda self: self.switch is None)
    @rule(race=st.sampled_from(["plain", "malloc", "proc", "gc", "finalizer"]))
    @counted
    def close_and_reopen(self, race):
        """close(): alone, racing another thread's calls, or from a finalizer. Every call
        then gets "runtime closed", no P stays running, the blocks opened before exit
        cleanly; the example goes on with a fresh Runtime of the same configuration."""
        rt = self.rt
        stop = threading.Event()
        errors = []

        def worker():
            try:
                while not stop.is_set():
                    if race == "malloc":
                        rt.free(rt.malloc(64))
                    elif race == "proc":
                        with rt.proc():
                            rt.free(rt.malloc(32))
                    else:
                        rt.gc()
            except GoRuntimeError as e:
                if "closed" not in str(e):
                    errors.append(e)
            except BaseException as e:          # noqa: BLE001 - re-raised below
                errors.append(e)

        t = None
        if race in ("malloc", "proc", "gc"):
            t = threading.Thread(target=worker, name="fuzz-close-race", daemon=True)
            t.start()
            time.sleep(0.001)
        if race == "finalizer":
            class Closer:
                def __init__(self):
                    self.me = self              # a cycle: the cyclic GC runs the finalizer
                def __del__(self):
                    rt.close()
            Closer()
            pygc.collect()
        else:
            rt.close()
        stop.set()
        if t is not None:
            t.join(JOIN_TIMEOUT)
            assert not t.is_alive(), "a call on another thread hung after close()"
        if errors:
            raise errors[0]
        assert rt.closed and all(p.status.name != "P_RUNNING" for p in rt.ps), [repr(p) for p in rt.ps]
        for call in (lambda: rt.malloc(8), rt.gc, rt.memstats, rt.proc, lambda: rt.run(ms=1, ops=1)):
            _exact(GoRuntimeError, call, "closed")
        while self.procs:
            self.procs.pop().__exit__(None, None, None)
        while self.gens:
            self.gens.pop().close()
        self._open()

    @precondition(lambda self: self.switch is None and len(self.ref.live) < MAX_LIVE)
    @rule(ndoomed=st.integers(1, 12), ops=st.lists(
        st.sampled_from(["free", "gc", "malloc-free", "memstats", "verify", "read", "proc", "run"]),
        min_size=1, max_size=12), calls=st.lists(
        st.sampled_from(["memstats", "verify", "read", "proc-read", "gc", "malloc-free", "run"]),
        min_size=1, max_size=8))
    @counted
    def finalizer_storm(self, ndoomed, ops, calls):
        """Finalizers and weakref callbacks that call back into the runtime, run by the
        cyclic GC (collecting at every allocation) in the middle of API calls: each call
        is served, or refused with GoRuntimeError("re-entrant call ..."); none hangs. The
        objects the finalizers free are set aside first; the reference catches up after."""
        rt, ref = self.rt, self.ref
        rt.gc()
        ref.sweep()
        self.catch_up_gc()
        objs = []
        for k in range(ndoomed + 1):
            addr, content = self._malloc_op(64, False)()
            objs.append(self._record_malloc(64, False, addr, content))
        reader, doomed = objs[0].addr, objs[1:]     # the reader stays live
        pending = [o.addr for o in doomed]
        events = collections.Counter()
        unraisable = []
        live = [True]               # a finalizer that runs after the storm does nothing

        def act(op):
            if not live[0]:
                return
            try:
                if op == "free":
                    if pending:
                        rt.free(pending.pop())
                elif op == "gc":
                    rt.gc()
                elif op == "malloc-free":
                    rt.free(rt.malloc(64))
                    events["mallocs"] += 1
                elif op == "memstats":
                    rt.memstats()
                elif op == "verify":
                    rt.verify()
                elif op == "read":
                    rt.read(reader, 1)
                elif op == "proc":
                    with rt.proc():
                        rt.read(reader, 1)
                elif op == "run":
                    n = rt.run(ms=1, ops=64, sizes=64, live=4, seed=1).allocs
                    events["mallocs"] += n     # after the call: a finalizer run inside it counts too
                elif op == "proc-read":
                    with rt.proc():
                        rt.read(reader, 1)
                events["served"] += 1
            except GoRuntimeError as e:
                assert "re-entrant" in str(e), e
                events["refused"] += 1

        class Finalizer:
            def __init__(self, op):
                self.op = op
                self.me = self
            def __del__(self):
                act(self.op)

        class Target:
            def __init__(self):
                self.me = self

        hook, sys.unraisablehook = sys.unraisablehook, lambda u: unraisable.append(repr(u.exc_value))
        thresholds = pygc.get_threshold()
        refs = []                   # the weakrefs must outlive their targets to call back
        pygc.set_threshold(1, 1, 1)
        try:
            for k, op in enumerate(ops):
                Finalizer(op)
                t = Target()
                refs.append(weakref.ref(t, lambda r, op=ops[(k + 1) % len(ops)]: act(op)))
                del t
            for call in calls:
                act(call)
        finally:
            pygc.set_threshold(*thresholds)
            live[0] = False
            sys.unraisablehook = hook
        assert unraisable == [], unraisable
        while pending:
            rt.free(pending.pop())
        rt.gc()
        ref.mallocs += events["mallocs"]
        for obj in doomed:
            ref.free(obj)
        ref.sweep()
        self.catch_up_gc()
        note(f"finalizer storm: {dict(events)}")

    @precondition(lambda self: self.switch is None and threading.current_thread() is threading.main_thread())
    @rule(after=st.sampled_from([0.0, 0.002, 0.02]), bounded=st.sampled_from(["ops", "duration"]))
    @counted
    def interrupt_run(self, after, bounded):
        """Ctrl-C during run(): the Ms stop at their next safe point, KeyboardInterrupt
        reaches the caller with the figures so far, and the runtime stays consistent."""
        rt, ref = self.rt, self.ref
        before = rt.memstats().Mallocs

        def interrupter():
            deadline = time.monotonic() + JOIN_TIMEOUT
            while not any(p.status.name == "P_RUNNING" for p in rt.ps):
                assert time.monotonic() < deadline
                time.sleep(0.0005)
            time.sleep(after)
            _thread.interrupt_main()

        old = signal.signal(signal.SIGINT, signal.default_int_handler)
        t = threading.Thread(target=interrupter, name="fuzz-interrupter", daemon=True)
        try:
            t.start()
            kwargs = {"ops": 2 ** 62} if bounded == "ops" else {"duration": 3600.0}
            t0 = time.monotonic()
            try:
                rt.run(ms=2, sizes=64, live=16, seed=1, **kwargs)
            except KeyboardInterrupt as e:
                partial = e.partial
            else:
                raise AssertionError("run() ended without the interrupt")
            assert time.monotonic() - t0 < JOIN_TIMEOUT
            t.join(JOIN_TIMEOUT)
        finally:
            signal.signal(signal.SIGINT, old)
        assert partial.allocs == partial.frees, partial.as_dict()
        # The run's objects are freed but not swept: a collection sweeps them (and the
        # reference's unswept objects with them).
        assert rt.memstats().Mallocs == before + partial.allocs
        rt.gc()
        ref.mallocs += partial.allocs
        ref.sweep()
        self.catch_up_gc()

    @precondition(lambda self: len(self.ref.live) < MAX_LIVE)
    @rule(sizes=st.lists(SIZES, min_size=1, max_size=6), noscan=st.booleans(), seed=SEED,
          nfree=st.integers(0, 3), gc_inside=st.booleans())
    @counted
    def proc_block(self, sizes, noscan, seed, nfree, gc_inside):
        """One `with rt.proc():` block: mallocs, writes, reads, frees and maybe a gc."""
        rt = self.rt
        with rt.proc():
            made = []
            for k, size in enumerate(sizes):
                addr, content = self._malloc_op(size, noscan)()
                obj = self._record_malloc(size, noscan, addr, content)
                self.sync_gc()
                if obj is not None:
                    made.append(obj)
                    self._write(obj, -1 if k % 2 else 5, seed + k)
            if gc_inside:
                rt.gc()
                self.ref.sweep()
            for obj in made:
                n = self.ref.extent(obj)
                assert rt.read(obj.addr, n) == bytes(obj.data[:n])
            for obj in made[:nfree]:
                rt.free(obj.addr)
                self.ref.free(obj)

    @precondition(lambda self: len(self.ref.live) < MAX_LIVE)
    @rule(plans=st.lists(
        st.tuples(st.lists(st.tuples(SIZES, st.booleans()), max_size=12),
                  st.booleans(),                        # the thread holds a P throughout
                  st.integers(0, 4)),                   # how many of its objects it frees
        min_size=2, max_size=2),
        seed=SEED, i=PICK, ngc=st.sampled_from([0, 0, 1, 3]), shared=st.booleans())
    @counted
    def concurrent_batch(self, plans, seed, i, ngc, shared):
        """Two threads released together: each mallocs its list (checking the new
        object reads as zeros), writes and frees objects that only it touches;
        with ngc, a third thread runs ngc collections meanwhile."""
        rt, ref = self.rt, self.ref
        may_free = self.gogc is None and not ngc
        if not may_free:
            # A collection in the middle of the batch would sweep frees the
            # reference cannot order: start clean and free nothing.
            rt.gc()
            ref.sweep()
        owned = [[], []]
        for k, obj in enumerate(self.live_objs()):
            owned[(k + i) % 2].append(obj)
        gate = threading.Barrier(3 if ngc else 2)
        # shared: one proc() object entered by both threads at once.
        shared_ctx = rt.proc() if shared else None
        results = [None, None]
        errors = []
        # The workers' mallocs so far and how many workers are done, for the collector.
        progress = threading.Condition()
        state = {"mallocs": 0, "done": 0}

        def advance(key):
            with progress:
                state[key] += 1
                progress.notify_all()

        def collector():
            try:
                gate.wait(JOIN_TIMEOUT)
                for k in range(ngc):
                    # Spread over the batch: the k-th collection waits for k of the
                    # workers' mallocs (or for both workers to be done).
                    with progress:
                        assert progress.wait_for(lambda: state["mallocs"] >= k or state["done"] == 2,
                                                 JOIN_TIMEOUT), "the workers made no progress"
                    rt.gc()
            except BaseException as e:          # noqa: BLE001 - re-raised on the main thread
                errors.append(e)

        def worker(w):
            mallocs, with_proc, nfree = plans[w]
            got, wrote, freed = [], [], []
            try:
                gate.wait(JOIN_TIMEOUT)
                ctx = (shared_ctx or rt.proc()) if with_proc else None
                if ctx is not None:
                    ctx.__enter__()
                try:
                    mine = owned[w]
                    for k, (size, noscan) in enumerate(mallocs):
                        n = ref.zero_check_len(size, noscan)
                        addr = rt.malloc(size, noscan=noscan)
                        got.append((size, noscan, addr, rt.read(addr, n)))
                        advance("mallocs")
                        if k < len(mine):
                            obj = mine[k]
                            # A tiny object's extent may shrink while the other
                            # thread packs its block: write only its own bytes.
                            n = obj.size if obj.kind == "tiny" else len(obj.data)
                            n = min(n, 4096)
                            data = randbytes(seed + 1000 * w + k, n)
                            rt.write(obj.addr, data)
                            wrote.append((obj, data))
                    if may_free:
                        for obj in mine[-nfree:] if nfree else []:
                            rt.free(obj.addr)
                            freed.append(obj)
                    for obj, data in wrote:
                        if obj not in freed:
                            assert rt.read(obj.addr, len(data)) == data
                finally:
                    if ctx is not None:
                        ctx.__exit__(None, None, None)
            except BaseException as e:          # noqa: BLE001 - re-raised on the main thread
                errors.append(e)
            advance("done")
            results[w] = (got, wrote, freed)

        threads = [threading.Thread(target=worker, args=(w,), name=f"fuzz-batch-{w}", daemon=True)
                   for w in range(2)]
        if ngc:
            threads.append(threading.Thread(target=collector, name="fuzz-batch-gc", daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_TIMEOUT)
        assert not any(t.is_alive() for t in threads), "concurrent batch deadlocked"
        if errors:
            raise errors[0]
        for got, wrote, freed in results:
            for obj, data in wrote:
                obj.data[:len(data)] = data
            for obj in freed:
                ref.free(obj)
        # Tiny objects sharing a block were started in address order.
        allgot = sorted(results[0][0] + results[1][0], key=lambda g: (g[0] >= TINY or not g[1], g[2]))
        for size, noscan, addr, content in allgot:
            self._record_malloc(size, noscan, addr, content)
        if not may_free:
            numgc = rt.memstats().NumGC
            assert numgc >= ref.numgc + ngc, (numgc, ref.numgc, ngc)
            # Collected mid-batch (nothing was freed): catch up, all at once.
            while ref.numgc < numgc:
                ref.sweep()

    # -- whole-heap checks -------------------------------------------------------

    @precondition(lambda self: len(self.ref.live) >= 30)
    @rule()
    @counted
    def drain(self):
        """Free everything and collect: the heap must be empty again (every span
        and page back, nothing leaked)."""
        for obj in self.live_objs():
            self.rt.free(obj.addr)
            self.ref.free(obj)
        self.rt.gc()
        self.ref.sweep()
        ms = self.rt.memstats()
        assert ms.HeapObjects == 0 and ms.HeapAlloc == 0, ms
        assert ms.HeapInuse == 0, ms
        self.rt.verify()

    @invariant()
    def contents_match(self):
        if self.rt is None:
            return
        type(self).steps += 1
        self.step += 1
        read, extent = self.rt.read, self.ref.extent
        for obj in self.ref.live.values():
            if obj.kind == "tiny":
                n = extent(obj)
                got, want = read(obj.addr, n), obj.data[:n]
            else:
                got, want = read(obj.addr, len(obj.data)), obj.data
            if got != want:
                n = len(want)
                bad = next(k for k in range(n) if got[k] != obj.data[k])
                raise AssertionError(f"{obj}: byte {bad} is {got[bad]:#x}, expected {obj.data[bad]:#x}")

    @invariant()
    def memstats_match(self):
        if self.rt is None or self.step % self.stats_every:
            return
        # The reference frees an object at the first collection after its free; the
        # runtime, once its span is swept, which a collection the heap trigger
        # started leaves to the sweepers: end that sweep first.
        tk.finish_sweep(self.rt)
        ms = self.rt.memstats()
        if not self.procs and not self.gens:
            # No block is open: after the stop-the-world every P is idle (a P parked by a
            # thread that ended inside a block, or whose block ended elsewhere, included).
            assert all(p.status.name == "P_IDLE" for p in self.rt.ps), [repr(p) for p in self.rt.ps]
        # The identities, the page allocator's view (HeapIdle also counts the pages of
        # the Ps' page caches in the page-cache mode) and, against the last snapshot,
        # counters that only grow.
        assert_memstats_invariants(ms, self.rt, prev=self.last_ms)
        self.last_ms = ms
        ref = self.ref
        assert ms.NumGC == ref.numgc, (ms.NumGC, ref.numgc)
        assert ms.Mallocs == ref.mallocs, (ms.Mallocs, ref.mallocs)
        assert ms.HeapObjects == ref.heap_objects(), (ms.HeapObjects, ref.heap_objects())
        assert ms.HeapAlloc == ref.heap_alloc(), (ms.HeapAlloc, ref.heap_alloc())

    @invariant()
    def heap_verifies(self):
        if self.rt is None or self.step % self.verify_every:
            return
        self.rt.verify()


FUZZ_SETTINGS = settings(
    # About 15 s on one core; GORUNTIME_FUZZ_EXAMPLES scales it for long runs.
    max_examples=int(os.environ.get("GORUNTIME_FUZZ_EXAMPLES", 130)),
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)


def test_fuzz_api(record_property, capsys):
    APIFuzz.examples = APIFuzz.steps = 0
    APIFuzz.rules_run.clear()
    APIFuzz.rule_seconds.clear()
    t0 = time.perf_counter()
    try:
        run_state_machine_as_test(APIFuzz, settings=FUZZ_SETTINGS)
    finally:
        elapsed = time.perf_counter() - t0
        record_property("fuzz_examples", APIFuzz.examples)
        record_property("fuzz_steps", APIFuzz.steps)
        with capsys.disabled():
            print(f"\ntest_fuzz_api: {APIFuzz.examples} hypothesis examples, "
                  f"{APIFuzz.steps} steps in {elapsed:.1f}s")
            print("  rules run: " + ", ".join(f"{k} {v}" for k, v in APIFuzz.rules_run.most_common()))
            print("  seconds in rules: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                    APIFuzz.rule_seconds.most_common(8)))


def test_tiny_object_cannot_write_into_the_rest_of_its_block():
    """The fuzzer's shrunk example, kept as a fast regression test: a tiny
    object is exactly its requested size, so it cannot dirty the bytes where
    the next tiny object of its block will go, and every new object reads as
    zeros."""
    with Runtime(gomaxprocs=2, gogc=None) as rt:
        with rt.proc():
            x = rt.malloc(1, noscan=True)
            with pytest.raises(GoRuntimeError, match="overruns"):
                rt.write(x, b"\x07" * 16)
            rt.write(x, b"\x07")
            y = rt.malloc(1, noscan=True)      # packed right behind x
            assert y == x + 1
            assert rt.read(x, 1) == b"\x07"
            assert rt.read(y, 1) == b"\x00"