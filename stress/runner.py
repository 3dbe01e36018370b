"""`goruntime stress`, `python -m stress` and `make stress`: the stress kernels (stress.kernels)
run in slices, each on a fresh Runtime, while this thread checks the heap.

Workloads (each slice runs one; a run rotates through those asked for):

- larson:   every slot runs a server M each round (threads replaced each round,
            as in larson), a constant live set, a quarter of the evicted objects
            handed to another M to free.
- prodcons: xmalloc-test: producer Ms only allocate, consumer Ms only free what
            they receive; the roles and backlog change every phase.
- mstress:  two groups of slots run staggered phases: a random number of Ms
            (often more than GOMAXPROCS) start and stop while the other group
            runs, the live set grows and shrinks, objects outlive their M.
- oom:      servers against a capped heap (max_heap) with arena reservations
            failing at random (fail_reservations): out of memory sheds half the
            live set and collects, and the run goes on.

Each slice draws its Runtime from the seed: GOGC, the size-class table and the
comparison modes (mcache lockfree / locked / shared / none, mcentral mutex / spanset, sweep concurrent / stw,
the per-P page cache), mostly Go 1.13's.

While Ms run this thread verifies the heap (Runtime.verify, stop-the-world),
checks MemStats invariants, and calls rt.gc() at random moments, a quarter of
them as rt.free_os_memory() (a collection, then every free page released to
the OS while the Ms allocate); Ms also start collections at random, and the
background scavenger releases pages down to its goal throughout. Between
phases, with no M running, every object is known: after a gc HeapObjects must
equal what the slots hold, and Mallocs every allocation the kernels made; now
and then free_os_memory must then leave no free page unreleased but those in
the Ps' page caches. The kernels check that every new object reads zero, which
covers released pages coming back. Any violation stops the run with a report
naming the seed, the configuration and the first broken invariant.
"""
import argparse
import json
import os
import random
import sys
import time

from goruntime import GoRuntimeError, Runtime
from goruntime.args import check_bool, check_int, check_seconds, check_seed, check_share
from goruntime.cmd.flags import add_workload_args, parse_duration, run_command
from goruntime.mstats import memstats_problems
from stress.kernels import DEFAULT_MIX, Stress, _check_mix, heap_objects

WORKLOADS = ("larson", "prodcons", "mstress", "oom")
ARENA = 64 << 20
PAGE = 8 << 10

# A heavier mix for the oom workload, so that a few thousand objects fill arenas.
OOM_HEAVY = ((32769, 262144, 20.0), (262145, 1 << 20, 2.0))
OOM_MIX = DEFAULT_MIX + OOM_HEAVY
# The extra large objects of --large-share, as in Runtime.run's large_sizes.
MAX_SMALL = 32768
LARGE_RANGE = (MAX_SMALL + 1, 262144)
MAX_MIX = 64 - len(OOM_HEAVY) - 1       # the kernels take 64 ranges

# Objects kept live per M (the live target), and the slot capacity around it.
DEFAULT_LIVE = 1000


class StressFailure(Exception):
    """A broken invariant; .report holds the seed, the configuration and what broke."""

    def __init__(self, report):
        self.report = report
        super().__init__(format_report(report))


class HungPhase(StressFailure):
    """A phase did not finish: its Ms (and the Runtime) are abandoned, not freed."""


# Runtimes and Stress objects of hung phases: freeing them would join hung threads.
_ABANDONED = []


def format_report(r):
    lines = [f"goruntime stress: FAILED in {r.get('workload')} (slice {r.get('slice')}, phase {r.get('phase')})",
             f"  broken:     {r.get('invariant')}",
             f"  seed:       {r.get('seed')} (this slice: {r.get('slice_seed')})",
             f"  runtime:    {json.dumps(r.get('runtime'))}",
             f"  workload:   {json.dumps(r.get('config'))}"]
    if r.get("phase_args"):
        lines.append(f"  phase args: {json.dumps(r['phase_args'])}")
    lines.append(f"  after:      {r.get('elapsed', 0):.1f} s, {r.get('ops', 0)} operations, "
                 f"{r.get('checks', 0)} checks passed")
    for extra in ("kernel_errors", "ps", "slots"):
        if r.get(extra):
            lines.append(f"  {extra + ':':11} {json.dumps(r[extra])}")
    if r.get("repeat"):
        lines.append(f"  repeat:     {r['repeat']}")
    return "\n".join(lines)


def slice_seed(seed, i):
    """Slice 0 runs on the run's own seed, so a failing slice repeats on its own."""
    return seed if i == 0 else random.Random(seed * 1000003 + i).getrandbits(62)


class Counters:
    """What a run did, shared by its slices; read by the progress line."""

    def __init__(self):
        self.start = time.monotonic()
        self.ops_done = 0           # of finished slices
        self.tags_done = 0
        self.checks = 0
        self.gcs = 0                # rt.gc() (and rt.free_os_memory()) from this thread
        self.releases = 0           # rt.free_os_memory() from this thread
        self.scavenged = 0          # bytes the background scavengers released
        self.kernel_gcs = 0         # collections the Ms started
        self.ooms = 0
        self.phases = 0
        self.slices = 0
        self.workload = ""
        self.live_ops = None        # a callable: ops of the running slice

    def ops(self):
        return self.ops_done + (self.live_ops() if self.live_ops else 0)


class Progress:
    """The live progress line on stderr: rewritten in place on a terminal, a
    line every `every` seconds otherwise."""

    def __init__(self, counters, total, stream=None, every=None):
        self.c = counters
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every if every is not None else (0.5 if self.tty else 10.0)
        self.last = 0.0
        self.width = 0

    def line(self):
        el = time.monotonic() - self.c.start
        ops = self.c.ops()
        clock = _hms(el) + (f"/{_hms(self.total)}" if self.total else "")
        return (f"[stress {clock}] {self.c.workload:8} ops {_si(ops)} "
                f"({_si(ops / el if el > 0 else 0)}/s)  checks {self.c.checks} passed  "
                f"gc {self.c.gcs}+{self.c.kernel_gcs}  phases {self.c.phases}  violations 0")

    def __call__(self, force=False):
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self):
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


def _hms(s):
    s = int(s)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _si(x):
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


class Slice:
    """One workload on one fresh Runtime: phases, the checks between and during them."""

    def __init__(self, workload, seed, duration, ms, gomaxprocs, counters, *, live=DEFAULT_LIVE,
                 check_interval=0.5, gc_interval=0.3, gc_rate=1 / 50000, round_s=0.5,
                 slack=30.0, progress=None, index=0, run_seed=None, runtime_args=None, inject=None,
                 mix=None, noscan=None, ops=None):
        if workload not in WORKLOADS:
            raise ValueError(f"unknown workload {workload!r}: choose from {', '.join(WORKLOADS)}")
        self.workload = workload
        self.seed = seed
        self.index = index
        self.run_seed = seed if run_seed is None else run_seed
        self.duration = round(duration, 3)
        self.ops = ops              # allocations per M that end the slice, else the clock does
        self.ms = ms
        self.c = counters
        self.rng = random.Random(seed)              # the Runtime's configuration, then checks and gcs
        self.prng = random.Random(seed * 7 + 1)     # the phases: the same for a seed, whatever the timing
        self.live = live
        self.check_interval = check_interval
        self.gc_interval = gc_interval
        self.gc_rate = gc_rate
        self.round_s = round_s
        self.slack = slack
        self.progress = progress or (lambda force=False: None)
        rng = self.rng
        self.runtime = dict(gomaxprocs=gomaxprocs,
                            gogc=rng.choice([100, 100, 50, 200, None]),
                            sizeclasses=rng.choice(["go1.13", "go1.13", "go1.13", "go1.19"]))
        # The comparison modes too: mostly Go 1.13's lock-free mcache and mutex
        # mcentral, sometimes Go 1.15's spanset mcentral, Go 1.14's page cache,
        # a locked, shared or no mcache.
        self.runtime.update(mcache=rng.choice(["lockfree"] * 6 + ["locked", "shared", "none"]),
                            mcentral=rng.choice(["mutex", "mutex", "spanset"]),
                            pagecache=rng.random() < 0.3,
                            sweep=rng.choice(["concurrent", "concurrent", "stw"]))
        if workload == "oom":
            self.runtime["max_heap"] = rng.choice([2, 3]) * ARENA
        self.noscan = rng.choice([0.5, 0.5, 0.1, 0.9])     # the share of pointer-free objects
        if noscan is not None:
            self.noscan = noscan
        # The size mix, (lo, hi, weight) ranges: the oom workload adds heavy ones.
        self.mix = tuple(mix) if mix is not None else DEFAULT_MIX
        if workload == "oom":
            self.mix += OOM_HEAVY
        if runtime_args:
            self.runtime.update(runtime_args)
        self.phase = 0
        self.phase_args = None
        self.prev_ms = None
        self.last_stats = []
        self.log = []               # every phase's arguments, in start order
        # Fault injection for tests of the checks: ("corrupt" | "error", slot,
        # after n allocations), applied to the first phase.
        self.inject = inject

    # -- the report --------------------------------------------------------------

    def config(self):
        return {"workload": self.workload, "ms": self.ms, "live": self.live, "noscan": self.noscan,
                "duration": self.duration, "ops": self.ops,
                "mix": None if self.mix == (OOM_MIX if self.workload == "oom" else DEFAULT_MIX) else self.mix,
                "check_interval": self.check_interval, "gc_interval": self.gc_interval,
                "gc_rate": self.gc_rate, "round_s": self.round_s}

    def fail(self, invariant, cls=StressFailure, **extra):
        report = {"workload": self.workload, "slice": self.index, "phase": self.phase,
                  "invariant": invariant, "seed": self.run_seed, "slice_seed": self.seed,
                  "runtime": self.runtime, "config": self.config(), "phase_args": self.phase_args,
                  "elapsed": time.monotonic() - self.c.start, "ops": self.c.ops(), "checks": self.c.checks,
                  "repeat": self.repeat_command()}
        report.update(extra)
        raise cls(report)

    def repeat_command(self):
        """The command that runs this slice again (as far as thread interleaving allows)."""
        rt = self.runtime
        work = f"--ops {self.ops}" if self.ops else f"--duration {self.duration:g}"
        cmd = (f"goruntime stress --workload {self.workload} --seed {self.seed} {work} "
               f"--ms {self.ms} --gomaxprocs {rt['gomaxprocs']} --live {self.live} "
               f"--round {self.round_s:g} --noscan {self.noscan:g} --mcache {rt['mcache']} "
               f"--mcentral {rt['mcentral']} --{'' if rt['pagecache'] else 'no-'}pagecache --sweep {rt['sweep']} "
               f"--sizeclasses {rt['sizeclasses']} --gogc {'off' if rt['gogc'] is None else rt['gogc']}")
        if self.config()["mix"] is not None:
            cmd += " (size mix: " + json.dumps(self.mix) + ")"
        return cmd

    def done(self, sts, deadline, now):
        """Whether the slice is over: its clock ran out, or its Ms made their --ops allocations."""
        if self.ops:
            return sum(st.progress()[0] for st in sts) >= self.ops * self.ms or now >= deadline
        return now >= deadline

    # -- checks ------------------------------------------------------------------

    def check_running(self, rt):
        """verify() and the MemStats invariants, with Ms running (both stop the world)."""
        try:
            rt.verify()
        except GoRuntimeError as e:
            return str(e)
        self.c.checks += 1
        ms = rt.memstats()
        problems = memstats_problems(ms, self.prev_ms)
        self.prev_ms = ms
        if problems:
            return "MemStats: " + problems[0]
        self.c.checks += 1
        return None

    def check_idle(self, rt, sts):
        """With no M running: gc, verify, MemStats against what the slots hold."""
        rt.gc()
        try:
            rt.verify()
        except GoRuntimeError as e:
            self.fail(str(e))
        ms = rt.memstats()
        problems = memstats_problems(ms, self.prev_ms)
        self.prev_ms = ms
        if problems:
            self.fail("MemStats: " + problems[0])
        allocs = sum(st.progress()[0] for st in sts)
        # Over every group at once: groups' tiny objects may share a block.
        objs = [o for st in sts for o in st.objects()]
        nobj = len(objs)
        nheap = heap_objects(objs, rt.modes["mcache"] != "none")
        if ms.HeapObjects != nheap:
            self.fail(f"after gc HeapObjects is {ms.HeapObjects}, but the slots hold {nobj} objects "
                      f"in {nheap} heap objects")
        if ms.Mallocs != allocs:
            self.fail(f"Mallocs is {ms.Mallocs}, but the kernels allocated {allocs} objects")
        ps = [p.status.name for p in rt.ps]
        if any(s != "P_IDLE" for s in ps):
            self.fail(f"no M runs but the Ps are {ps}")
        self.c.checks += 3
        if self.rng.random() < 0.25:
            self.check_released(rt)

    def check_released(self, rt):
        """With no M running: free_os_memory leaves unreleased only the free pages parked
        in the Ps' page caches (64 at most per cache), and the scavenger still runs."""
        rt.free_os_memory()
        self.c.releases += 1
        ms = rt.memstats()
        problems = memstats_problems(ms, self.prev_ms)
        self.prev_ms = ms
        if problems:
            self.fail("MemStats after free_os_memory: " + problems[0])
        parked = 64 * PAGE * (len(rt.ps) + 1)
        if ms.HeapIdle - ms.HeapReleased > parked:
            self.fail(f"free_os_memory left {ms.HeapIdle - ms.HeapReleased} idle bytes unreleased "
                      f"(HeapIdle {ms.HeapIdle}, HeapReleased {ms.HeapReleased})")
        if not rt.scavenger_stats()["running"]:
            self.fail("the background scavenger is not running")
        self.c.checks += 2

    # -- phases --------------------------------------------------------------------

    def run_phases(self, rt, groups):
        """Supervises groups of (Stress, iterator of phase kwargs): each group runs
        its phases one after another, the groups side by side, then a last phase
        in which its Ms drop everything; meanwhile this thread checks and collects.
        A phase with sync=True starts only when the other groups are idle."""
        deadline = time.monotonic() + self.duration
        next_check = time.monotonic() + self.check_interval * self.rng.uniform(0.2, 1.0)
        next_gc = time.monotonic() + self.rng.expovariate(1 / self.gc_interval) if self.gc_interval else float("inf")
        sts = [st for st, _ in groups]
        state = [{"st": st, "phases": phases, "args": None, "pending": None, "final": False, "done": False,
                  "started": 0.0} for st, phases in groups]
        while True:
            now = time.monotonic()
            for g in state:
                st = g["st"]
                if g["args"] is not None and st.finished():
                    self.end_phase(rt, st, g["args"])
                    g["args"] = None
                if g["args"] is not None or g["done"]:
                    continue
                if g["pending"] is None:
                    if g["final"]:
                        g["done"] = True
                        continue
                    if self.done(sts, deadline, now):
                        g["pending"] = _final(st)
                        g["final"] = True
                    else:
                        g["pending"] = next(g["phases"])
                others = any(h["args"] is not None for h in state if h is not g)
                if g["pending"].get("sync") and others:
                    continue
                args = g["pending"]
                g["pending"] = None
                args.pop("sync", None)
                if not others:
                    self.check_idle(rt, sts)
                self.start_phase(st, args)
                g["args"] = args
                g["started"] = time.monotonic()
            running = [g for g in state if g["args"] is not None]
            if not running and all(g["done"] for g in state):
                break
            for g in running:
                limit = (g["args"].get("duration") or 1.0) * 5 + self.slack
                if now - g["started"] > limit:
                    self.hung(rt, g["st"], limit)
            if self.ops and self.done(sts, deadline, now):
                for g in running:       # the --ops allocations are made: wind the phases down
                    if not g["final"]:
                        g["st"].stop()
            if running and now >= next_check:
                problem = self.check_running(rt)
                if problem:
                    self.abort_all(state)
                    self.fail(problem)
                next_check = time.monotonic() + self.check_interval
            elif running and now >= next_gc:
                if self.rng.random() < 0.25:
                    rt.free_os_memory()         # a collection, then every free page released
                    self.c.releases += 1
                else:
                    rt.gc()
                self.c.gcs += 1
                next_gc = time.monotonic() + self.rng.expovariate(1 / self.gc_interval)
            elif running and self.workload == "oom" and self.rng.random() < 0.02:
                rt.heap.fail_reservations(self.rng.randint(1, 3))
            self.progress()
            if running:
                time.sleep(0.005)
        self.check_idle(rt, sts)

    def start_phase(self, st, args):
        self.phase += 1
        self.phase_args = dict(args)
        self.log.append(dict(args))
        args = dict(args)
        args.setdefault("gc_rate", self.gc_rate)
        if self.inject and self.phase == 1:
            kind, slot, after = self.inject
            roles = args.get("roles")
            if roles and roles[args["slots"].index(slot) if slot in args["slots"] else 0] == "consumer":
                slot = args["slots"][roles.index("producer")]     # consumers never allocate
            args.update(inject=kind, inject_slot=slot, inject_after=after)
        st.start(**args)
        self.c.phases += 1

    def end_phase(self, rt, st, args):
        stats = st.join()
        self.last_stats = stats
        self.phase_args = dict(args)
        self.c.kernel_gcs += sum(s["slot_gcs"] for s in stats)
        self.c.ooms += sum(s["ooms"] for s in stats)
        errors = [e for e in st.errors() if e["kind"] != "closed"]
        if errors:
            self.fail(describe(errors[0]), kernel_errors=errors)

    def abort_all(self, state):
        for g in state:
            if g["args"] is not None:
                g["st"].abort()
        for g in state:
            if g["args"] is not None:
                g["st"].join()
                g["args"] = None

    def hung(self, rt, st, limit):
        st.stop()
        time.sleep(min(10.0, limit))
        if st.finished():
            st.join()
            self.fail(f"phase took more than {limit:.0f} s and ended only when told to stop (starved Ms?)")
        st.abort()
        time.sleep(5.0)
        if st.finished():
            self.fail(f"phase took more than {limit:.0f} s and ended only when aborted (livelock?)")
        _ABANDONED.append((rt, st))
        self.fail(f"phase did not finish within {limit:.0f} s (deadlock?): Ms are abandoned",
                  cls=HungPhase, ps=[p.status.name for p in rt.ps])

    # -- the slice -------------------------------------------------------------------

    def run(self):
        rt = Runtime(**self.runtime)
        hung = False
        sts = []
        try:
            cap = max(4 * self.live, 64)
            sts.append(Stress(rt, self.ms, cap=cap, inbox=1024, mix=self.mix, noscan=self.noscan,
                              seed=self.seed))
            self.c.workload = self.workload
            base = self.c.ops_done
            self.c.live_ops = lambda: sum(sum(st.progress()) for st in sts)
            try:
                getattr(self, "run_" + self.workload)(rt, sts)
            except HungPhase:
                hung = True
                raise
            try:
                for st in sts:
                    n = st.release_all()
                    if n:
                        self.fail(f"{n} objects were left in the slots after the last phase")
                rt.gc()
                rt.verify()
            except GoRuntimeError as e:
                self.fail(str(e))
            ms = rt.memstats()
            problems = memstats_problems(ms, self.prev_ms)
            if problems:
                self.fail("MemStats: " + problems[0])
            if ms.HeapObjects or ms.HeapAlloc or ms.HeapInuse:
                self.fail(f"everything was freed and collected, but HeapObjects {ms.HeapObjects}, "
                          f"HeapAlloc {ms.HeapAlloc}, HeapInuse {ms.HeapInuse}")
            self.c.checks += 2
            self.check_released(rt)
            self.c.scavenged += rt.scavenger_stats()["released"]
            ops = sum(sum(st.progress()) for st in sts)
            self.c.live_ops = None
            self.c.ops_done = base + ops
            self.c.tags_done += sum(st.progress()[1] for st in sts)
            self.c.slices += 1
            return ops
        finally:
            self.c.live_ops = None
            if not hung:
                for st in sts:              # an exception may leave a phase running
                    st.abort()
                    st.join()
                rt.close()

    def run_larson(self, rt, sts):
        st = sts[0]
        slots = list(range(self.ms))

        def phases():
            while True:
                yield dict(slots=slots, target=self.live, handoff=0.25,
                           duration=min(self.round_s, self.duration))
        self.run_phases(rt, [(st, phases())])

    def run_prodcons(self, rt, sts):
        st = sts[0]
        rng = self.prng
        if self.ms < 2:
            raise ValueError("prodcons needs at least 2 Ms")

        def phases():
            while True:
                slots = list(range(self.ms))
                rng.shuffle(slots)
                k = rng.randint(1, self.ms - 1)
                yield dict(slots=slots, roles=["producer"] * k + ["consumer"] * (self.ms - k),
                           # a producer's backlog fits its slot (--live 50: capacity 200)
                           target=min(rng.choice([1, 16, 256, self.live]), max(4 * self.live, 64)),
                           duration=min(self.round_s, self.duration))
        self.run_phases(rt, [(st, phases())])

    def run_mstress(self, rt, sts):
        # Two groups of slots with phases of their own, out of step, so that Ms
        # start and stop while others run; every eighth phase waits for the other
        # group (sync) so that the exact checks run.
        sizes = [(self.ms + 1) // 2, self.ms // 2] if self.ms > 1 else [1]
        sts[:] = [Stress(rt, n, cap=4 * self.live, mix=self.mix, noscan=self.noscan, seed=self.seed + gi)
                  for gi, n in enumerate(sizes)]
        groups = []
        for gi, st in enumerate(sts):
            def phases(st=st, gi=gi, rng=random.Random(self.seed * 31 + gi + 2)):
                k = 0
                while True:
                    k += 1
                    target = rng.choice([0, self.live // 4, self.live, 2 * self.live, 4 * self.live])
                    yield dict(slots=rng.sample(range(st.nslots), rng.randint(1, st.nslots)), target=target,
                               keep=rng.randint(0, target), handoff=rng.choice([0.0, 0.1, 0.5]),
                               duration=rng.uniform(0.3, 1.0) * min(self.round_s, self.duration) * (0.7 if gi else 1),
                               sync=k % 8 == 0)
            groups.append((st, phases()))
        self.run_phases(rt, groups)

    def run_oom(self, rt, sts):
        st = sts[0]
        cap_bytes = self.runtime.get("max_heap") or 2 * ARENA
        mean = sum((lo + hi) / 2 * w for lo, hi, w in self.mix) / sum(w for *_, w in self.mix)
        # Live objects enough to pass the cap, so that Ms run out of memory.
        target = min(4 * self.live, max(64, int(cap_bytes * 1.2 / mean / self.ms)))

        def phases():
            while True:
                yield dict(slots=list(range(self.ms)), target=target, keep=target // 2, handoff=0.1,
                           oom_ok=True, duration=min(self.round_s, self.duration))
        self.run_phases(rt, [(st, phases())])


def _final(st):
    return dict(slots=list(range(st.nslots)), target=0, keep=0, handoff=0.25, duration=5.0)


def _prepend(item, it):
    yield item
    yield from it


def describe(e):
    """One kernel violation (a dict from Stress.errors()) in words."""
    kind = e["kind"]
    where = f"slot {e['slot']}"
    if kind == "tag":
        return (f"{where}: object {e['addr']:#x} ({e['size']} B) was overwritten while live: "
                f"tag {e['expect']:#x} became {e['found']:#x}")
    if kind == "notzero":
        return f"{where}: fresh object {e['addr']:#x} ({e['size']} B) is not zeroed: read {e['found']:#x}"
    if kind == "free":
        return f"{where}: free({e['addr']:#x}) of a live object ({e['size']} B) was refused: {e['free_result']}"
    if kind == "oom":
        return f"{where}: out of memory allocating {e['size']} bytes"
    if kind == "injected":
        return f"{where}: injected error after the phase's allocation of {e['addr']:#x}"
    return f"{where}: {kind}"


def raise_kernel_errors(errors):
    """Raises what the Python API raises for the first violation: MemoryError for
    out of memory, GoRuntimeError for the rest."""
    errors = [e for e in errors if e["kind"] != "closed"]
    if not errors:
        return
    if errors[0]["kind"] == "oom":
        raise MemoryError(describe(errors[0]))
    raise GoRuntimeError(describe(errors[0]))


def run_stress(*, duration=None, ops=None, ms=None, gomaxprocs=None, workloads=WORKLOADS, seed=None,
               slice_s=60.0, live=DEFAULT_LIVE, mix=None, noscan=None, runtime_args=None,
               check_interval=0.5, gc_interval=0.3, gc_rate=1 / 50000, round_s=0.5, slack=30.0,
               progress=True, stream=None, inject=None):
    """Runs the workloads in rotation for `duration` seconds (default 60), or with `ops` each
    workload once until its Ms made `ops` allocations each (a slice still ends after
    `slice_s`); returns a summary dict, or raises StressFailure. mix, noscan and runtime_args
    (Runtime's arguments) replace what each slice draws from the seed. ms defaults to
    2 x gomaxprocs, gomaxprocs to the CPUs; gc_interval 0 means no rt.gc() from this thread.

    Ctrl-C ends the run within about half a second: the running slice's Ms stop, its
    Runtime is closed, and the KeyboardInterrupt reaches the caller with the summary of
    what finished as its `partial` attribute."""
    if duration is not None and ops is not None:
        raise ValueError("give duration or ops, not both")
    if ops is not None:
        ops = check_int("ops", ops, 1, 1 << 62)
    else:
        duration = 60.0 if duration is None else check_seconds("duration", duration)
    gomaxprocs = (os.cpu_count() or 1) if gomaxprocs is None else check_int("gomaxprocs", gomaxprocs, 1, 1024)
    ms = 2 * gomaxprocs if ms is None else check_int("ms", ms, 1, 4096)
    seed = check_seed("seed", seed)
    if seed is None:
        seed = random.SystemRandom().getrandbits(62)
    if isinstance(workloads, str):
        workloads = [workloads]
    workloads = list(workloads)
    if not workloads:
        raise ValueError(f"workloads is empty: choose from {', '.join(WORKLOADS)}")
    for w in workloads:
        if w not in WORKLOADS:
            raise ValueError(f"unknown workload {w!r}: choose from {', '.join(WORKLOADS)}")
    if "prodcons" in workloads and ms < 2:
        raise ValueError("ms: prodcons needs at least 2 Ms")
    slice_s = check_seconds("slice_s", slice_s)
    live = check_int("live", live, 1, 1 << 20)
    if mix is not None:
        mix = tuple(_check_mix(mix))
    noscan = None if noscan is None else check_share("noscan", noscan)
    if runtime_args is not None and not isinstance(runtime_args, dict):
        raise TypeError(f"runtime_args must be a dict of Runtime's arguments, not {type(runtime_args).__name__}")
    check_interval = check_seconds("check_interval", check_interval)
    gc_interval = check_seconds("gc_interval", gc_interval, zero_ok=True)
    gc_rate = check_share("gc_rate", gc_rate)
    round_s = check_seconds("round_s", round_s)
    slack = check_seconds("slack", slack, zero_ok=True)
    progress = check_bool("progress", progress)
    if inject is not None:
        if not isinstance(inject, tuple) or len(inject) != 3 or inject[0] not in ("corrupt", "error"):
            raise ValueError("inject must be (\"corrupt\" | \"error\", slot, after)")
        inject = (inject[0], check_int("inject slot", inject[1], 0, ms - 1),
                  check_int("inject after", inject[2], 0, 1 << 62))
    c = Counters()
    show = Progress(c, None if ops else duration, stream=stream) if progress else None
    per_slice = slice_s if ops else min(slice_s, duration / len(workloads))
    end = c.start + (duration or 0.0)
    results = []
    i = 0

    def summary():
        return {"seed": seed, "duration": None if ops else duration, "ops_per_m": ops,
                "elapsed": round(time.monotonic() - c.start, 2),
                "ms": ms, "gomaxprocs": gomaxprocs, "workloads": workloads, "ops": c.ops_done,
                "tags_checked": c.tags_done, "checks": c.checks, "violations": 0, "gcs": c.gcs,
                "kernel_gcs": c.kernel_gcs, "ooms": c.ooms, "phases": c.phases,
                "free_os_memory": c.releases, "scavenged_bytes": c.scavenged, "slices": results}

    try:
        while True:
            left = end - time.monotonic()
            if ops:
                if i >= len(workloads):
                    break
                left = per_slice
            elif left <= 0.05 * per_slice and i >= len(workloads):
                break
            elif left <= 0 and i > 0:
                break
            w = workloads[i % len(workloads)]
            sd = slice_seed(seed, i)
            s = Slice(w, sd, max(min(per_slice, left), 0.1), ms, gomaxprocs, c, live=live,
                      check_interval=check_interval, gc_interval=gc_interval, gc_rate=gc_rate,
                      round_s=round_s, slack=slack, progress=show, index=i, run_seed=seed,
                      runtime_args=runtime_args, inject=inject if i == 0 else None,
                      mix=mix, noscan=noscan, ops=ops)
            t0 = time.monotonic()
            done = s.run()
            results.append({"workload": w, "seed": sd, "runtime": s.runtime, "noscan": s.noscan,
                            "ops": done, "phases": s.phase, "seconds": round(time.monotonic() - t0, 2)})
            i += 1
    except KeyboardInterrupt as e:
        e.partial = dict(summary(), interrupted=True)
        raise
    finally:
        if show:
            show(force=True)
            show.end()
    return summary()


def stress_mix(sizes=None, large_share=None):
    """The kernels' size mix, (lo, hi, weight) ranges, from the shared --sizes and
    --large-share values; None (both None) for DEFAULT_MIX. --sizes is all there is, unless
    --large-share adds objects of 32 KiB to 256 KiB; with the default mix --large-share
    takes the place of the mix's own large objects."""
    if sizes is None and large_share is None:
        return None
    if sizes is None:
        mix = [r for r in DEFAULT_MIX if r[0] <= MAX_SMALL]
    else:
        spec, weights = sizes
        if isinstance(spec, int):
            mix = [(spec, spec, 1.0)]
        elif isinstance(spec, range):
            mix = [(spec.start, spec.stop - 1, 1.0)]
        else:
            mix = [(n, n, float(w)) for n, w in zip(spec, weights or [1.0] * len(spec))]
        if len(mix) > MAX_MIX:
            raise ValueError(f"--sizes: the stress kernels take at most {MAX_MIX} sizes")
    if large_share:
        if large_share >= 1.0:
            return (LARGE_RANGE + (1.0,),)
        total = sum(w for *_, w in mix)
        mix.append(LARGE_RANGE + (total * large_share / (1.0 - large_share),))
    return tuple(mix)


def _parse_workloads(text):
    names = [w.strip() for w in text.split(",") if w.strip()]
    bad = [w for w in names if w not in WORKLOADS and w != "all"]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown workload {','.join(bad) or text!r}: "
                                         f"choose from {', '.join(WORKLOADS)}, all")
    return names


def register(sub):
    """Adds `goruntime stress` to the CLI's subcommands."""
    p = sub.add_parser("stress", help="long-running allocator stress workloads with invariant checks",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def main(argv=None):
    """`python -m stress`: the same command as `goruntime stress`."""
    p = argparse.ArgumentParser(prog="python -m stress", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    return run_command(p, args)


# Defaults of the shared flags that differ in stress, and why (add_workload_args prints them).
_DRAWN = "drawn for each slice from --seed"
GOGC_DRAWN = -1         # not a string: argparse would parse it (None is "off")
STRESS_DEFAULTS = {
    "duration": (60.0, "60s: the whole run, rotating through the workloads in slices"),
    "ops": (None, "none: --duration; with --ops each workload runs once, until its Ms made N "
                  "allocations each"),
    "live": (DEFAULT_LIVE, f"{DEFAULT_LIVE}: phases grow to 4 x --live per M, of 4 KiB on average"),
    "noscan": (None, "0.5, 0.1 or 0.9, " + _DRAWN),
    "mcache": (None, "mostly lockfree, " + _DRAWN),
    "mcentral": (None, "mostly mutex, " + _DRAWN),
    "pagecache": (None, "off or on, " + _DRAWN),
    "sweep": (None, "mostly concurrent, " + _DRAWN),
    "sizeclasses": (None, "mostly go1.13, " + _DRAWN),
    "gogc": (GOGC_DRAWN, "100, 50, 200 or off, " + _DRAWN),
    "sizes": (None, "a mix of ranges with every boundary of the allocator's paths: tiny, 16 B, "
                    "32 KiB, 32 KiB + 1, large"),
    "large_share": (None, "the default mix's large objects, 0 with --sizes"),
}


def add_arguments(p):
    """The flags of the stress command: the shared workload flags, then stress's own."""
    add_workload_args(p, defaults=STRESS_DEFAULTS)
    s = p.add_argument_group("stress")
    s.add_argument("--workload", action="append", type=_parse_workloads, default=None,
                   help=f"one or more of {', '.join(WORKLOADS)} (comma-separated or repeated; default all)")
    s.add_argument("--slice", type=parse_duration, default=60.0,
                   help="time per workload before rotating; with --ops, the time limit of a workload (default 60s)")
    s.add_argument("--round", type=float, default=0.5, dest="round_s", help="seconds per phase (default 0.5)")
    s.add_argument("--check-interval", type=float, default=0.5, help="seconds between verify() checks (default 0.5)")
    s.add_argument("--gc-interval", type=float, default=0.3, help="mean seconds between rt.gc() calls (default 0.3)")
    s.add_argument("--gc-rate", type=float, default=1 / 50000, help="chance per allocation that an M collects")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    # Proves the checks catch what they are for: a stray write into a live
    # object ("corrupt") or a kernel that dies half-way ("error").
    s.add_argument("--inject", choices=["corrupt", "error"], default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_stress)


def cmd_stress(args):
    workloads = []
    for group in args.workload or [["all"]]:
        for w in group:
            workloads.extend(WORKLOADS if w == "all" else [w])
    workloads = list(dict.fromkeys(workloads))
    if "prodcons" in workloads and args.ms == 1:
        raise ValueError("prodcons needs --ms 2 or more")
    if not 1 <= args.live <= 1 << 20:
        raise ValueError("--live must be between 1 and 2**20 for stress")
    runtime_args = {k: getattr(args, k) for k in ("mcache", "mcentral", "pagecache", "sweep", "sizeclasses")
                    if getattr(args, k) is not None}
    if args.gogc != GOGC_DRAWN:
        runtime_args["gogc"] = args.gogc
    interrupted = False
    try:
        summary = run_stress(duration=None if args.ops is not None else args.duration, ops=args.ops,
                             ms=args.ms, gomaxprocs=args.gomaxprocs,
                             workloads=workloads, seed=args.seed, slice_s=args.slice, live=args.live,
                             mix=stress_mix(args.sizes, args.large_share), noscan=args.noscan,
                             runtime_args=runtime_args,
                             check_interval=args.check_interval, gc_interval=args.gc_interval,
                             gc_rate=args.gc_rate, round_s=args.round_s, progress=not args.quiet,
                             inject=(args.inject, 0, 100) if args.inject else None)
    except KeyboardInterrupt as e:
        # What finished, then exit 130 (run_command).
        summary = getattr(e, "partial", None)
        if summary is None:
            raise
        interrupted = e
    except StressFailure as e:
        sys.stdout.flush()
        print(str(e), file=sys.stderr)
        if args.json:
            json.dump({"failed": True, "report": e.report}, sys.stdout, indent=1, default=str)
            print()
        sys.stderr.flush()
        if isinstance(e, HungPhase):
            os._exit(3)     # hung Ms cannot be joined
        sys.exit(1)
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        print()
    else:
        status = "INTERRUPTED (the slices that finished)" if interrupted else "OK"
        print(f"goruntime stress: {status}  {summary['elapsed']:.0f} s, {summary['ops']} operations "
              f"({summary['tags_checked']} tag checks), {summary['checks']} invariant checks passed, "
              f"0 violations  [seed {summary['seed']}, {summary['ms']} Ms on {summary['gomaxprocs']} Ps, "
              f"{summary['phases']} phases, {summary['gcs']} + {summary['kernel_gcs']} gcs, "
              f"{summary['ooms']} ooms absorbed, {summary['free_os_memory']} free_os_memory, "
              f"{summary['scavenged_bytes'] / 2**20:.1f} MiB scavenged]")
        by = {}
        for s in summary["slices"]:
            b = by.setdefault(s["workload"], [0, 0, 0.0])
            b[0] += s["ops"]
            b[1] += s["phases"]
            b[2] += s["seconds"]
        for w, (ops, phases, secs) in by.items():
            print(f"  {w:9} {ops:>12} ops  {phases:>5} phases  {secs:7.1f} s")
    if interrupted:
        raise interrupted
    return 0
