"""`goruntime compare`: the lock-free mcache against the locked designs, measured with the
same workload. A sweep over the number of Ms, the comparison modes and the object size on a
fixed number of Ps; each cell runs the churn kernel on a fresh Runtime.

Each cell runs `repeat` times (the runs interleaved, so that a noisy moment of a shared
machine spreads over the modes); a point of the table and the plot is the median of its
runs, and the plot's bars span their minimum and maximum.

The cells are independent, so they can be spread over processes or machines:

    from goruntime.cmd.compare import cells, run_cell, points, format_table, plot
    runs = [run_cell(c) for c in cells(ms=[1, 2, 4], modes=["lockfree", "shared"])]
    print(format_table(runs)); plot(runs, "compare.png")

run_cell takes and returns plain JSON-able dicts (tests/test_compare.py runs one pytest case
per cell, which pytest-xdist spreads over workers).
"""
import argparse
import itertools
import json
import os
import random
import statistics
import sys

from goruntime import MCACHE_MODES, Runtime, check_modes
from goruntime.runtime import LOCK_CLASSES
from goruntime.args import check_bool, check_int, check_seconds, check_share
from goruntime.cmd.flags import MAX_MS, SWEEP_DEFAULTS, add_workload_args
from goruntime.cmd.progress import Progress
from goruntime.workload import MAX_SIZE
from goruntime.cmd.report import _ns, _rate, format_columns, mode_label

DEFAULT_MS = tuple(SWEEP_DEFAULTS["ms"])
DEFAULT_SIZES = tuple(SWEEP_DEFAULTS["sizes"])

# What a cell runs when its dict leaves a key out.
CELL_DEFAULTS = {"ms": 1, "mcache": "lockfree", "mcentral": "mutex", "pagecache": False, "sweep": "concurrent",
                 "size": 64, "gomaxprocs": 2, "duration": 1.0, "ops": None, "gogc": 100,
                 "sizeclasses": "go1.13", "live": 1024, "noscan": False, "large_share": 0.0, "seed": 1}


# What each mode is, for the plot's legend.
MODE_LEGEND = {
    "lockfree": "lockfree: a cache per P, no lock (Go)",
    "locked": "locked: a cache per P behind its own mutex, never contended",
    "shared": "shared: one cache for every P behind one mutex",
    "none": "none: every object from its mcentral, under its mutex",
}
_VARIANT_LEGEND = {"spanset": "Go 1.15 lock-free span-set mcentral", "pagecache": "Go 1.14 per-P page cache"}


class PlotUnavailable(ImportError):
    """--plot without matplotlib."""


def cells(*, ms=DEFAULT_MS, modes=MCACHE_MODES, mcentral=("mutex",), pagecache=(False,),
          sizes=DEFAULT_SIZES, gomaxprocs=2, duration=None, ops=None, gogc=100,
          sizeclasses="go1.13", live=1024, noscan=False, large_share=0.0, seed=1, sweep="concurrent"):
    """The sweep's cells, one dict each, ordered by size, mcentral mode, page cache, mcache
    mode and number of Ms. Every cell uses the same seed, so all modes see the same workload;
    each cell runs `duration` seconds (default 1) or `ops` allocations per M. Every value is
    checked here, before the first cell runs (goruntime.args)."""
    for name, dim in (("ms", ms), ("modes", modes), ("mcentral", mcentral), ("pagecache", pagecache),
                      ("sizes", sizes)):
        if isinstance(dim, (str, bytes)) or not hasattr(dim, "__iter__"):
            raise TypeError(f"{name} must be a list of values, not {type(dim).__name__}")
    ms, modes, mcentral, pagecache, sizes = map(list, (ms, modes, mcentral, pagecache, sizes))
    if not (ms and modes and mcentral and pagecache and sizes):
        raise ValueError("every sweep dimension needs at least one value")
    ms = [check_int("ms", n, 1, MAX_MS) for n in ms]
    sizes = [check_int("sizes", n, 1, MAX_SIZE) for n in sizes]
    for mode, central, pc in itertools.product(modes, mcentral, pagecache):
        check_modes(mode, central, pc, sweep)
    pagecache = [check_bool("pagecache", pc) for pc in pagecache]
    if duration is not None and ops is not None:
        raise ValueError("give duration or ops, not both")
    if ops is not None:
        ops = check_int("ops", ops, 1, 1 << 62)
    else:
        duration = 1.0 if duration is None else check_seconds("duration", duration)
    gomaxprocs = check_int("gomaxprocs", gomaxprocs, 1, 1024)
    gogc = None if gogc is None else check_int("gogc", gogc, 0, 2**31 - 1)
    live = check_int("live", live, 0, 1 << 24)
    noscan = check_share("noscan", noscan, allow_bool=True)
    large_share = check_share("large_share", large_share)
    seed = check_int("seed", seed)
    out = []
    for size, central, pc, mode, n in itertools.product(sizes, mcentral, pagecache, modes, ms):
        out.append({"ms": n, "mcache": mode, "mcentral": central, "pagecache": pc, "size": size,
                    "gomaxprocs": gomaxprocs, "duration": None if ops else duration, "ops": ops,
                    "gogc": gogc, "sizeclasses": sizeclasses, "live": live, "noscan": noscan,
                    "large_share": large_share, "seed": seed, "sweep": sweep})
    return out


def cell_id(cell):
    """A short name, e.g. "16B-4M-none+spanset", for pytest ids and progress lines."""
    c = {**CELL_DEFAULTS, **cell}
    return f"{c['size']}B-{c['ms']}M-{mode_label(c['mcache'], c['mcentral'], c['pagecache'])}"


def run_cell(cell):
    """Runs one cell on a fresh Runtime; returns the cell's parameters and its figures."""
    if not isinstance(cell, dict):
        raise TypeError(f"cell must be a dict, not {type(cell).__name__}")
    unknown = sorted(set(cell) - set(CELL_DEFAULTS) - {"mode"})
    if unknown:
        raise ValueError(f"unknown cell keys {', '.join(map(str, unknown))}: a cell takes "
                         f"{', '.join(CELL_DEFAULTS)}")
    c = {**CELL_DEFAULTS, **cell}
    rt = Runtime(gomaxprocs=c["gomaxprocs"], sizeclasses=c["sizeclasses"], gogc=c["gogc"],
                     mcache=c["mcache"], mcentral=c["mcentral"], pagecache=c["pagecache"], sweep=c["sweep"])
    with rt:
        r = rt.run(ms=c["ms"], duration=None if c["ops"] else c["duration"], ops=c["ops"],
                   sizes=c["size"], noscan=c["noscan"], live=c["live"], large_share=c["large_share"],
                   seed=c["seed"])
        locks = rt.lockstats()          # before memstats, whose stop-the-world takes sched
        mstats = rt.memstats()
    per_lock = {k: {"acquisitions": locks[k]["acquisitions"], "contended": locks[k]["contended"],
                    "wait_ns": locks[k]["wait_ns"]}
                for k in LOCK_CLASSES if locks.get(k) is not None}
    acq = sum(v["acquisitions"] for v in per_lock.values())
    contended = sum(v["contended"] for v in per_lock.values())
    m_elapsed = sum(m["elapsed_ns"] for m in r.per_m)
    m_lock_wait = sum(m["lock_wait_ns"] for m in r.per_m)
    m_p_wait = sum(m["p_wait_ns"] for m in r.per_m)
    out = dict(c)
    out.update({
        "mode": mode_label(c["mcache"], c["mcentral"], c["pagecache"]),
        "allocs": r.allocs, "elapsed_s": r.elapsed, "allocs_per_sec": r.allocs_per_sec,
        "lock_wait_ns": m_lock_wait, "m_elapsed_ns": m_elapsed,
        "lock_wait_share": m_lock_wait / m_elapsed if m_elapsed else 0.0,
        "p_wait_share": m_p_wait / m_elapsed if m_elapsed else 0.0,
        "acquisitions": acq, "contended": contended,
        "contended_rate": contended / acq if acq else 0.0,
        "locks": per_lock,
        "num_gc": mstats.NumGC, "pause_total_ns": mstats.PauseTotalNs,
        "pause_max_ns": max(mstats.PauseNs) if mstats.PauseNs else 0,
        "cpu_ns": sum(m["cpu_ns"] for m in r.per_m),
        "voluntary_ctx_switches": sum(m["voluntary_ctx_switches"] for m in r.per_m),
        "involuntary_ctx_switches": sum(m["involuntary_ctx_switches"] for m in r.per_m),
        "seed": r.config["seed"],
    })
    return out


class SweepStopped(Exception):
    """A sweep that did not finish: .runs holds the runs that did, .cause what stopped it."""

    def __init__(self, runs, cause):
        super().__init__(f"the sweep stopped after {len(runs)} runs: {cause!r}")
        self.runs = runs
        self.cause = cause


def sweep(cell_list, repeat=1, progress=None):
    """Runs every cell `repeat` times, one run at a time (runs side by side on the same cores
    would disturb each other's timing), all cells once before any a second time;
    progress(i, n, run) after each. Each run is its cell's result with "repeat" (0-based).
    A failing cell or Ctrl-C raises SweepStopped carrying the runs that finished."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a positive int, not {repeat!r}")
    runs = []
    n = len(cell_list) * repeat
    try:
        for k in range(repeat):
            for cell in cell_list:
                run = run_cell(cell)
                run["repeat"] = k
                runs.append(run)
                if progress:
                    progress(len(runs), n, run)
    except (Exception, KeyboardInterrupt) as e:
        raise SweepStopped(runs, e) from e
    return runs


# The figures a point summarises by their median, with their minimum and maximum.
SUMMARISED = ("allocs_per_sec", "lock_wait_share", "p_wait_share", "contended_rate", "num_gc",
              "pause_total_ns")


def points(runs):
    """One point per cell: the cell, "runs" (how many), and for each SUMMARISED figure its
    median (under the figure's own name) and its "min_"/"max_" over the runs."""
    groups = {}
    for r in runs:
        key = tuple((k, r[k]) for k in CELL_DEFAULTS if k != "seed")
        groups.setdefault(key, []).append(r)
    out = []
    for key, rs in groups.items():
        p = dict(key)
        p.update(mode=rs[0]["mode"], seed=rs[0]["seed"], runs=len(rs))
        for f in SUMMARISED:
            values = [r[f] for r in rs]
            p[f] = statistics.median(values)
            p["min_" + f] = min(values)
            p["max_" + f] = max(values)
        p["contended"] = statistics.median(r["contended"] for r in rs)
        p["acquisitions"] = statistics.median(r["acquisitions"] for r in rs)
        out.append(p)
    return out


def _unique(xs):
    return list(dict.fromkeys(xs))


METRICS = (
    ("throughput (M allocs/s, all Ms together)", lambda r: f"{r['allocs_per_sec'] / 1e6:.2f}"),
    ("lock wait (share of the Ms' time spent blocked on runtime locks)",
     lambda r: f"{100 * r['lock_wait_share']:.2f}%"),
    ("contended (share of lock acquisitions that had to wait, all locks)",
     lambda r: _rate(r["contended"], r["acquisitions"])),
    ("GC (collections / total pause)", lambda r: f"{r['num_gc']} / {_ns(r['pause_total_ns'])}"),
)


def format_table(runs):
    """The comparison: one block per figure, a row per (size, Ms), a column per mode; each
    figure the median of the cell's runs."""
    if not runs:
        return "goruntime compare: no cells"
    results = points(runs)
    modes = _unique(r["mode"] for r in results)
    keys = _unique((r["size"], r["ms"]) for r in results)
    by = {(r["size"], r["ms"], r["mode"]): r for r in results}
    first = results[0]
    work = (f"{first['ops']:,} allocations per M" if first.get("ops")
            else f"{first['duration']:g} s per cell")
    gogc = first["gogc"] if first["gogc"] is not None else "off"
    repeats = sorted({r["runs"] for r in results})
    out = [f"goruntime compare: churn on GOMAXPROCS={first['gomaxprocs']}, {work}, GOGC={gogc}, "
           f"size classes {first['sizeclasses']}, live {first['live']}/M, seed {first['seed']}; "
           f"median of {'/'.join(map(str, repeats))} run{'s' if repeats != [1] else ''} per cell"]
    blocks = [(title, [[f"{size}B", str(n)] + [fmt(by[size, n, m]) if (size, n, m) in by else "-"
                                                for m in modes]
                       for size, n in keys])
              for title, fmt in METRICS]
    # One width per mode column, the same in every block, so the blocks line up.
    widths = [max([10, len(m)] + [len(row[2 + j]) for _, rows in blocks for row in rows])
              for j, m in enumerate(modes)]
    columns = [("size", 7), ("Ms", 4)] + [(m, w + 2) for m, w in zip(modes, widths)]
    for title, rows in blocks:
        out.append("")
        out.append(title)
        out.extend(format_columns(columns, rows, indent="  "))
    return "\n".join(out)


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise PlotUnavailable("--plot needs matplotlib, the optional extra: "
                              "pip install 'goruntime[plot]'") from e
    return Figure, FigureCanvasAgg


def mode_legend(mode):
    """The legend of a mode label such as "none+spanset": what the design is."""
    mcache, *variants = mode.split("+")
    return "; ".join([MODE_LEGEND.get(mcache, mcache)] + [_VARIANT_LEGEND.get(v, v) for v in variants])


def check_plot_path(path):
    """Raises ValueError unless a picture can be written at path: checked before a sweep,
    not after it. Needs matplotlib (PlotUnavailable otherwise)."""
    Figure, FigureCanvasAgg = _matplotlib()
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    kinds = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if ext not in kinds:
        raise ValueError(f"--plot {path!r}: the name must end in one of "
                         f"{', '.join('.' + k for k in sorted(kinds))}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--plot {path!r}: no folder {folder}")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"--plot {path!r}: cannot write there")


def plot(runs, path):
    """Throughput and lock wait against the number of Ms, one line per mode (the median of
    each cell's runs, bars from the slowest to the fastest run), one column of panels per
    object size, a dashed line where Ms = GOMAXPROCS. Panels in a row share their y scale."""
    Figure, FigureCanvasAgg = _matplotlib()
    results = points(runs)
    sizes = _unique(r["size"] for r in results)
    modes = _unique(r["mode"] for r in results)
    ms = sorted(_unique(r["ms"] for r in results))
    first = results[0]
    fig = Figure(figsize=(4.8 * len(sizes) + 1.5, 8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(sizes), squeeze=False, sharex=True, sharey="row")
    panels = (("allocs_per_sec", 1e-6, "throughput (M allocs/s, all Ms)"),
              ("lock_wait_share", 100.0, "Ms' time waiting on locks (%)"))
    for j, size in enumerate(sizes):
        for row, (figure, scale, label) in enumerate(panels):
            ax = axes[row][j]
            for mode in modes:
                pts = sorted((r["ms"], r) for r in results if r["size"] == size and r["mode"] == mode)
                if not pts:
                    continue
                xs = [n for n, _ in pts]
                ys = [r[figure] * scale for _, r in pts]
                lo = [y - r["min_" + figure] * scale for y, (_, r) in zip(ys, pts)]
                hi = [r["max_" + figure] * scale - y for y, (_, r) in zip(ys, pts)]
                ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=mode_legend(mode))
            ax.axvline(first["gomaxprocs"], color="gray", linestyle="--", linewidth=1,
                       label=f"Ms = GOMAXPROCS ({first['gomaxprocs']})")
            if row == 0:
                ax.set_title(f"{size} B objects")
            if j == 0:
                ax.set_ylabel(label)
            ax.set_xscale("log", base=2)
            ax.set_xticks(ms)
            ax.set_xticklabels([str(n) for n in ms])
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
        axes[1][j].set_xlabel("Ms (OS threads allocating)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=1, title="mcache mode")
    work = f"{first['ops']:,} allocs/M" if first.get("ops") else f"{first['duration']:g} s per run"
    fig.suptitle(f"goruntime compare: churn on GOMAXPROCS={first['gomaxprocs']}, {work}\n"
                 f"median of {first['runs']} runs (bars: min to max)")
    fig.savefig(path, dpi=110)
    return path


# -- the command ---------------------------------------------------------------------------------

def register(sub):
    """Adds `goruntime compare` to the cli's subparsers."""
    p = sub.add_parser("compare", help="sweep Ms x modes x sizes: throughput, lock wait, contention, GC",
                       description="Runs the churn kernel for every number of Ms, mode and object "
                       "size on a fixed number of Ps and prints them side by side. --ms, --sizes, "
                       "--mcache (or --modes), --mcentral and --pagecache take comma-separated lists; "
                       "the other flags are those of `goruntime run`, for every cell.")
    add_workload_args(p, sweep=True)
    p.add_argument("--repeat", type=_positive_int, default=3,
                   help="runs per cell; the table and the plot show the median, the plot's bars "
                        "the min and max (default 3)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw throughput and lock wait against Ms (needs goruntime[plot])")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_compare)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number of runs: {text!r}")
    return value


def cmd_compare(args):
    if args.plot:
        try:
            check_plot_path(args.plot)      # fail before the sweep, not after it
        except PlotUnavailable as e:
            sys.exit(f"goruntime compare: {e}")
    # One seed for every cell, so that all modes see the same workload.
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(62)
    todo = cells(ms=args.ms, modes=args.mcache, mcentral=args.mcentral, pagecache=args.pagecache,
                 sizes=args.sizes, gomaxprocs=args.gomaxprocs,
                 duration=None if args.ops is not None else args.duration,
                 ops=args.ops, gogc=args.gogc, sizeclasses=args.sizeclasses, live=args.live,
                 noscan=args.noscan, large_share=args.large_share or 0.0, seed=seed, sweep=args.sweep)

    bar = Progress(len(todo) * args.repeat, "runs", "goruntime compare") if sys.stderr.isatty() else None

    def progress(i, n, r):
        line = (f"{cell_id(r)} run {r['repeat'] + 1}: {r['allocs_per_sec'] / 1e6:.2f} M allocs/s, "
                f"lock wait {100 * r['lock_wait_share']:.2f}%")
        if bar is not None:
            bar.update(i, line)         # a live bar on a terminal
        else:
            print(f"[{i}/{n}] {line}", file=sys.stderr, flush=True)

    stopped = None
    try:
        runs = sweep(todo, args.repeat, None if args.quiet else progress)
    except SweepStopped as e:
        stopped, runs = e, e.runs
        what = ("interrupted" if isinstance(e.cause, KeyboardInterrupt)
                else f"a cell failed: {type(e.cause).__name__}: {e.cause}")
        print(f"goruntime compare: {what}; {len(runs)} of {len(todo) * args.repeat} runs "
              f"finished, shown below", file=sys.stderr, flush=True)
    if bar is not None:
        bar.close()
    if args.plot and runs:
        plot(runs, args.plot)
        print(f"goruntime compare: wrote {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps({"runs": runs, "points": points(runs), "complete": stopped is None}, indent=1))
    else:
        print(format_table(runs))
    if stopped is not None:
        if isinstance(stopped.cause, KeyboardInterrupt):
            raise stopped.cause
        return 1
