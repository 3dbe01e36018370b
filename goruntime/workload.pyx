# cython: language_level=3
"""Workload kernels: loops that run in M threads with the GIL released, so that
Ms allocate truly in parallel. Every kernel reaches a safe point before each
allocation, tags every object it allocates (M id, sequence number) and checks
the tag before it drops the object, so a slot handed out twice while live, or
bytes overwritten, are caught when it happens.

No Go counterpart: the churn kernel plays a Go program that allocates from a
size mix and keeps a bounded live set, the way runtime/malloc_test.go's
benchmarks drive mallocgc. launch_ms starts the Ms of every kernel (churn,
stress, bench)."""
import math
import os
import time
from cpython.exc cimport PyErr_CheckSignals
from libc.stdlib cimport malloc as c_malloc, free as c_free
from goruntime.sys cimport (nanotime, load32, store32, store_release32, alloc_aligned,
    cacheline_t)
from goruntime.sizeclasses cimport MAX_SMALL_SIZE
from goruntime.proc cimport safepoint, M
from goruntime.malloc cimport mallocgc, free_object, FREE_OK
from goruntime.mgc cimport gcTryStart
from goruntime.errors import GoRuntimeError
from goruntime.args import (check_int, check_number, check_share, check_seconds, check_choice,
                            check_seed)

ctypedef struct churn_t:
    runtime_t* rt
    sizemix_t mix           # the sizes, large objects included
    uint64_t noscan_below   # P(noscan) scaled to 2^32
    size_t live
    uint64_t ops            # per M; 0: run for duration_ns
    uint64_t duration_ns
    uint32_t stop           # Ctrl-C: every M winds down at its next safe point
    gate_t gate

# One per M, in an array: a cache line each (the array is line aligned), since
# rng changes on every allocation and must not share a line with another M's.
ctypedef struct mwork_t:
    cacheline_t _align
    churn_t* cfg
    liveobj_t* live
    uint64_t rng


def kernel_layout():
    """sizeof of the churn kernel's per-M state (tests: a whole number of lines)."""
    return {"mwork_t": sizeof(mwork_t)}


cdef inline bint _drop(runtime_t* rt, m_t* mp, liveobj_t* o) noexcept nogil:
    """Checks an object's tag and frees it; False (error recorded) on a violation."""
    cdef uint64_t found = 0
    if not _tag_ok(o, &found):
        mp.error = KERNEL_TAG
        mp.error_addr = o.addr
        mp.error_expect = o.tag
        mp.error_found = found
        return False
    if free_object(rt, &mp.p.mcache, o.addr) != FREE_OK:
        mp.error = KERNEL_FREE
        mp.error_addr = o.addr
        return False
    mp.frees += 1
    return True


cdef void* churn_main(void* arg) noexcept nogil:
    """The churn kernel: allocate from a size mix, keep a bounded live set,
    drop a random live object for each new one."""
    cdef m_t* mp = <m_t*>arg
    cdef mwork_t* w = <mwork_t*>mp.work
    cdef churn_t* cfg = w.cfg
    cdef runtime_t* rt = cfg.rt
    cdef uint64_t seq = 0, deadline, tag
    cdef size_t nlive = 0, slot, size
    cdef uintptr_t x
    cdef bint noscan, gc, clean = True
    cdef liveobj_t obj
    if kernel_begin(&cfg.gate, rt, mp) != M_RUNNING:
        mp.error = KERNEL_CLOSED
        return NULL
    deadline = mp.start_ns + cfg.duration_ns
    while True:
        if (mp.allocs & 255) == 0:
            # A stop (Ctrl-C) ends ops- and duration-bounded runs alike, cleanly.
            if load_relaxed32(&cfg.stop):
                break
            if not cfg.ops and nanotime() >= deadline:
                break
        if cfg.ops and mp.allocs >= cfg.ops:
            break
        if not safepoint(rt, mp):
            clean = False       # the runtime was closed under us
            mp.error = KERNEL_CLOSED
            break
        size = sizemix_pick(&cfg.mix, &w.rng)
        noscan = (_rand(&w.rng) >> 32) < cfg.noscan_below
        gc = False
        x = mallocgc(rt, mp.p, size, noscan, &gc)
        if x == 0:
            mp.error = KERNEL_OOM
            mp.error_expect = size
            break
        seq += 1
        tag = (<uint64_t>(mp.id + 1) << 48) | seq
        _write_tag(x, size, tag)
        mp.allocs += 1
        mp.bytes += size
        obj.addr = x
        obj.size = size
        obj.tag = tag
        if cfg.live == 0:
            if not _drop(rt, mp, &obj):
                break
        elif nlive < cfg.live:
            w.live[nlive] = obj
            nlive += 1
        else:
            slot = _rand(&w.rng) % cfg.live
            if not _drop(rt, mp, &w.live[slot]):
                break
            w.live[slot] = obj
        if gc and gcTryStart(rt, mp.p):
            mp.gcs += 1
    if clean and mp.p != NULL:
        for slot in range(nlive):
            if not _drop(rt, mp, &w.live[slot]):
                break
    kernel_end(rt, mp)
    return NULL


cdef list launch_ms(runtime_t* rt, gate_t* gate, object ids, kernel_fn fn, void* work, size_t stride):
    """Starts one M per id in ids, each running fn with its work at
    work + id * stride (stride 0: all share one), and returns the Ms once every
    one waits at the gate and the gate is open. If one cannot start, those
    already started are let through with abort set (they return at once) and
    joined before the error is raised: no M outlives a failed launch."""
    cdef list workers = []
    cdef M m
    cdef uint32_t n
    gate.ready = 0
    gate.go = 0
    gate.abort = 0
    try:
        for i in ids:
            m = M(i)
            if m.start(rt, fn, <char*>work + <size_t>i * stride) != 0:
                raise GoRuntimeError(f"cannot start M {i}")
            workers.append(m)
    except BaseException:
        store32(&gate.abort, 1)
        store_release32(&gate.go, 1)
        join_ms(workers)
        raise
    n = len(workers)
    with nogil:
        while load32(&gate.ready) < n:
            sched_yield()
        store_release32(&gate.go, 1)
    return workers


cdef void join_ms(list workers) noexcept:
    """Waits for every M in workers; one already joined is skipped, so a second
    call (from a finally clause) is safe."""
    cdef M m
    for m in workers:
        with nogil:
            m.join()


# How long the waiting thread sleeps at a time before it looks for a signal.
cdef uint64_t WAIT_SLICE_NS = 50000000


cdef int wait_ms(list workers, uint32_t* stop, object progress=None) except -1:
    """Joins every M in workers and answers Ctrl-C meanwhile: the thread waits
    with the GIL released in slices of 50 ms and checks for signals between
    them (a thread blocked in a join never sees one). A signal handler that
    raises (KeyboardInterrupt) sets *stop, which the kernels read at their next
    safe point; the Ms are joined and the exception is raised then. progress,
    if given, is called between slices (this thread holds no P)."""
    cdef M m
    cdef bint joined
    interrupted = None
    for m in workers:
        while True:
            with nogil:
                joined = m.timed_join(WAIT_SLICE_NS)
            if joined:
                break
            if interrupted is None:
                try:
                    # A signal handler may raise inside progress() as well.
                    if progress is not None:
                        progress()
                    PyErr_CheckSignals()
                except BaseException as e:      # noqa: B036 - re-raised once the Ms are joined
                    interrupted = e
                    store32(stop, 1)
    if interrupted is not None:
        raise interrupted
    return 0


class RunResult:
    """What a workload did: totals, and one dict of figures per M."""

    def __init__(self, kernel, allocs, frees, elapsed, per_m, config):
        self.kernel = kernel
        self.allocs = allocs
        self.frees = frees
        self.elapsed = elapsed
        self.per_m = per_m
        self.config = config

    @property
    def allocs_per_sec(self):
        return self.allocs / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self):
        return {"kernel": self.kernel, "allocs": self.allocs, "frees": self.frees,
                "elapsed": self.elapsed, "allocs_per_sec": self.allocs_per_sec,
                "per_m": self.per_m, "config": self.config}

    def __repr__(self):
        return (f"RunResult({self.kernel}: {self.allocs:,} allocs, {self.frees:,} frees by "
                f"{len(self.per_m)} Ms in {self.elapsed:.3f} s = {self.allocs_per_sec / 1e6:.2f} M allocs/s, "
                f"seed {self.config.get('seed')})")


# The largest object a workload allocates, from sizes or large_sizes.
MAX_SIZE = 1 << 30
MAX_MS = 4096
MAX_OPS = 1 << 62           # allocations per M
MAX_LIVE = 1 << 24


def _check_size(size):
    return check_int("sizes", size, 1, MAX_SIZE)


def _size_ranges(sizes, weights):
    """The checked size spec of run(): the sizemix ranges [(lo, hi, weight)] and
    how the config writes the spec."""
    if isinstance(sizes, bool):
        raise TypeError("sizes must be an int, a range or a list of ints, not bool")
    if weights is not None and not isinstance(sizes, (list, tuple)):
        raise ValueError("weights go with a list of sizes, not with an int or a range")
    if not isinstance(sizes, (range, list, tuple)):
        if not hasattr(sizes, "__index__"):
            raise TypeError(f"sizes must be an int, a range or a list of ints, not {type(sizes).__name__}")
        size = _check_size(sizes)
        return [(size, size, 1.0)], size
    if isinstance(sizes, range):
        if sizes.step != 1:
            raise ValueError(f"sizes: a range of sizes has step 1, not {sizes.step}")
        if not sizes:
            raise ValueError(f"sizes: {sizes!r} is empty")
        lo, hi = _check_size(sizes.start), _check_size(sizes.stop - 1)
        return [(lo, hi, 1.0)], {"range": [lo, hi]}
    sizes = [_check_size(s) for s in sizes]
    if not sizes:
        raise ValueError("sizes is empty")
    if weights is None:
        weights = [1.0] * len(sizes)
    else:
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of numbers, not {type(weights).__name__}")
        weights = [check_number("weights", x, 0.0) for x in weights]
    if len(weights) != len(sizes) or sum(weights) <= 0:
        raise ValueError("weights must be non-negative, one per size, not all zero")
    return [(s, s, w) for s, w in zip(sizes, weights)], {"sizes": sizes, "weights": weights}


cdef int sizemix_init(sizemix_t* mix, list ranges) except -1:
    """Fills mix from [(lo, hi, weight)] (checked by the caller: lo <= hi,
    weights >= 0, not all 0), freeing what it held before."""
    cdef int i
    sizemix_free(mix)
    mix.n = len(ranges)
    mix.lo = <size_t*>c_malloc(mix.n * sizeof(size_t))
    mix.hi = <size_t*>c_malloc(mix.n * sizeof(size_t))
    mix.cum = <uint64_t*>c_malloc(mix.n * sizeof(uint64_t))
    if mix.lo == NULL or mix.hi == NULL or mix.cum == NULL:
        sizemix_free(mix)
        raise MemoryError()
    total = sum(w for _, _, w in ranges)
    running = 0.0
    for i, (lo, hi, w) in enumerate(ranges):
        running += w
        mix.lo[i] = lo
        mix.hi[i] = hi
        mix.cum[i] = <uint64_t>(running / total * 4294967296.0)
    mix.cum[mix.n - 1] = <uint64_t>1 << 32
    return 0


cdef void sizemix_free(sizemix_t* mix) noexcept:
    c_free(mix.lo)
    c_free(mix.hi)
    c_free(mix.cum)
    mix.lo = mix.hi = NULL
    mix.cum = NULL
    mix.n = 0


def run_config(*, gomaxprocs, sizeclasses, gogc, kernel="churn", ms=None, duration=None, ops=None,
               sizes=64, weights=None, noscan=False, live=1024, large_share=0.0,
               large_sizes=range(MAX_SMALL_SIZE + 1, 262145), seed=None):
    """The checked description of one Runtime.run (see its docstring), as the
    JSON-able dict a RunResult carries: the kernel is built from it alone. Every
    argument is checked here (goruntime.args), before any M starts."""
    check_choice("kernel", kernel, ("churn",))
    ms = 2 * gomaxprocs if ms is None else check_int("ms", ms, 1, MAX_MS)
    if duration is not None and ops is not None:
        raise ValueError("give duration or ops, not both")
    if ops is not None:
        ops = check_int("ops", ops, 1, MAX_OPS)
    else:
        duration = 1.0 if duration is None else check_seconds("duration", duration)
    live = check_int("live", live, 0, MAX_LIVE)
    noscan_share = check_share("noscan", noscan, allow_bool=True)
    large = check_share("large_share", large_share)
    if not isinstance(large_sizes, range):
        raise TypeError(f"large_sizes must be a range, such as range({MAX_SMALL_SIZE + 1}, 262145), "
                        f"not {type(large_sizes).__name__}")
    if large_sizes.step != 1 or not large_sizes:
        raise ValueError(f"large_sizes must be a non-empty range with step 1, not {large_sizes!r}")
    if not MAX_SMALL_SIZE < large_sizes.start <= large_sizes.stop - 1 <= MAX_SIZE:
        raise ValueError(f"large_sizes must lie in {MAX_SMALL_SIZE + 1}..{MAX_SIZE} B, not {large_sizes!r}")
    seed = check_seed("seed", seed)
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    described = _size_ranges(sizes, weights)[1]
    return {"kernel": kernel, "ms": ms, "gomaxprocs": gomaxprocs, "duration": duration,
            "ops": ops, "sizes": described, "noscan": noscan_share, "live": live,
            "large_share": large, "large_sizes": {"range": [large_sizes.start, large_sizes.stop - 1]},
            "seed": seed, "sizeclasses": sizeclasses, "gogc": gogc}


cdef object run_kernel(runtime_t* rt, dict config, object progress=None):
    """Runs the kernel that run_config() described on `ms` new Ms and returns its
    RunResult. Ctrl-C stops the Ms at their next safe point: the KeyboardInterrupt
    is raised once they are joined, with the RunResult so far as its `partial`."""
    cdef churn_t cfg
    cdef list workers = []
    cdef mwork_t* works = NULL
    cdef size_t i, ms = config["ms"]
    spec = config["sizes"]
    weights = None
    if isinstance(spec, dict) and "range" in spec:
        spec = range(spec["range"][0], spec["range"][1] + 1)
    elif isinstance(spec, dict):
        spec, weights = spec["sizes"], spec["weights"]
    ranges, _ = _size_ranges(spec, weights)
    # Large objects besides the sizes: a share of every draw.
    large = config["large_share"]
    if large:
        total = sum(w for _, _, w in ranges)
        ranges = [(lo, hi, w / total * (1.0 - large)) for lo, hi, w in ranges]
        ranges.append((config["large_sizes"]["range"][0], config["large_sizes"]["range"][1], large))
    cfg.rt = rt
    cfg.mix.n = 0
    cfg.mix.lo = cfg.mix.hi = NULL
    cfg.mix.cum = NULL
    cfg.noscan_below = <uint64_t>(config["noscan"] * 4294967296.0)
    cfg.live = config["live"]
    cfg.ops = config["ops"] or 0
    cfg.duration_ns = <uint64_t>(float(config["duration"]) * 1e9) if config["duration"] is not None else 0
    cfg.stop = 0
    interrupted = None
    elapsed = 0.0
    try:
        sizemix_init(&cfg.mix, ranges)
        works = <mwork_t*>alloc_aligned(ms * sizeof(mwork_t))
        if works == NULL:
            raise MemoryError()
        for i in range(ms):
            works[i].cfg = &cfg
            works[i].rng = _rand_seed(config["seed"], i)
            works[i].live = <liveobj_t*>c_malloc((cfg.live or 1) * sizeof(liveobj_t))
            if works[i].live == NULL:
                raise MemoryError()
        workers = launch_ms(rt, &cfg.gate, range(ms), churn_main, works, sizeof(mwork_t))
        t0 = time.perf_counter()
        try:
            wait_ms(workers, &cfg.stop, progress)
        except BaseException as e:      # noqa: B036 - raised below, with the figures so far
            interrupted = e
        elapsed = time.perf_counter() - t0
    finally:
        join_ms(workers)        # if the join above was interrupted: none may outlive works
        if works != NULL:
            for i in range(ms):
                c_free(works[i].live)
            c_free(works)
        sizemix_free(&cfg.mix)

    per_m = [m.stats() for m in workers]
    result = RunResult(config["kernel"], sum(s["allocs"] for s in per_m), sum(s["frees"] for s in per_m),
                       elapsed, per_m, config)
    if interrupted is not None:
        try:
            interrupted.partial = result
        except AttributeError:
            pass
        raise interrupted
    _raise_errors(workers, config)
    return result


def _raise_errors(list workers, dict config):
    cdef M m
    for m in workers:
        err = m.m.error
        if err == KERNEL_OOM:
            raise MemoryError(f"M {m.m.id}: cannot allocate {m.m.error_expect} bytes: the heap cannot grow")
        if err == KERNEL_TAG:
            raise GoRuntimeError(
                f"M {m.m.id}: object {m.m.error_addr:#x} was overwritten while live: tag "
                f"{m.m.error_expect:#x} became {m.m.error_found:#x} (seed {config['seed']})")
        if err == KERNEL_FREE:
            raise GoRuntimeError(f"M {m.m.id}: free({m.m.error_addr:#x}) refused a live object "
                                 f"(seed {config['seed']})")
    for m in workers:
        if m.m.error == KERNEL_CLOSED:
            raise GoRuntimeError("runtime closed: close() stopped the workload")
