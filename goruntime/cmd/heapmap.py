"""`goruntime heapmap --png FILE`: a picture of the heap after a churn run. Each arena is
a grid of its 8192 pages (128 to a row); the left panel colours each page by the span class
of the span holding it, the right one by where that span is: in an mcache, on its
mcentral's nonempty or empty list (partial or full set in the spanset mode), a large
object, or free.

    from goruntime.cmd.heapmap import plot_heapmap
    plot_heapmap(rt.heapmap(), "heap.png")
"""
import json
import sys

from goruntime import Runtime
from goruntime.mstats import PLACE_NAMES
from goruntime.cmd.flags import add_workload_args, run_kwargs, runtime_kwargs
from goruntime.cmd.compare import _matplotlib, check_plot_path

COLUMNS = 128                   # pages per row: an arena's 8192 pages are 64 rows
PLACE_COLOURS = {"free": "#f2f2f2", "page cache": "#d9d9d9", "mcache": "#d62728", "nonempty": "#2ca02c",
                 "empty": "#1f77b4", "partial": "#98df8a", "full": "#aec7e8", "large": "#9467bd"}


def _grid(values, fill):
    rows = -(-len(values) // COLUMNS)
    padded = list(values) + [fill] * (rows * COLUMNS - len(values))
    return [padded[r * COLUMNS:(r + 1) * COLUMNS] for r in range(rows)]


def plot_heapmap(hm, path, title="goruntime heap map"):
    """Writes the picture of a HeapMap (Runtime.heapmap()) to path."""
    Figure, FigureCanvasAgg = _matplotlib()
    from matplotlib.colors import ListedColormap, BoundaryNorm
    from matplotlib.patches import Patch

    arenas = hm.arenas
    heights = [max(1, -(-a.npages // COLUMNS)) for a in arenas] or [1]
    fig = Figure(figsize=(12, 1.2 + 0.045 * sum(heights) + 1.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(1, len(arenas)), 2, squeeze=False, height_ratios=heights)
    places = ListedColormap([PLACE_COLOURS[n] for n in PLACE_NAMES])
    place_norm = BoundaryNorm([i - 0.5 for i in range(len(PLACE_NAMES) + 1)], len(PLACE_NAMES))
    # Cell value: 0 for a free page, else the span class + 1 (large objects have class 0 or 1).
    top = max([c for a in arenas for c in a.spanclasses] + [1]) + 1
    classes = places.__class__([(0.95, 0.95, 0.95)] + [_class_colour(i - 1) for i in range(1, top + 1)])
    for row, a in enumerate(arenas):
        left, right = axes[row]
        cells = [0 if p < 2 else sc + 1 for sc, p in zip(a.spanclasses, a.places)]
        left.imshow(_grid(cells, 0), cmap=classes, vmin=0, vmax=top, interpolation="nearest",
                    aspect="auto")
        right.imshow(_grid(list(a.places), 0), cmap=places, norm=place_norm, interpolation="nearest",
                     aspect="auto")
        for ax in (left, right):
            ax.set_xticks([])
            ax.set_yticks([])
        left.set_ylabel(f"{a.base:#x}\n{a.npages * 8 // 1024} MiB", rotation=0, ha="right", va="center",
                        fontsize=8)
        if row == 0:
            left.set_title("span class of each page (grey: free)")
            right.set_title("where its span is")
    counts = hm.counts()
    fig.legend(handles=[Patch(color=PLACE_COLOURS[n], label=f"{n}: {counts[n]:,} pages")
                        for n in PLACE_NAMES if counts[n] or n in ("free", "mcache", "nonempty", "empty")],
               loc="outside lower center", ncol=4)
    fig.suptitle(f"{title}: {len(arenas)} arena{'s' if len(arenas) != 1 else ''} of 64 MiB, "
                 f"one cell per 8 KiB page, {COLUMNS} pages a row")
    fig.savefig(path, dpi=100)
    return path


def _class_colour(spanclass):
    """Neighbouring span classes get distant hues; scan and noscan of a class are close."""
    import colorsys
    sizeclass, noscan = divmod(spanclass, 2)
    hue = (sizeclass * 0.381966) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.75, 0.95 if noscan else 0.7)


# -- the command -----------------------------------------------------------------------------

def register(sub):
    p = sub.add_parser("heapmap", help="picture of the heap's pages after a churn run (PNG)",
                       description=__doc__.split("\n\n")[0] + " The run takes the flags of "
                       "`goruntime run`; the map is taken when it ends, before any collection.")
    add_workload_args(p)
    p.add_argument("--png", metavar="FILE.png", default=None, help="write the picture here")
    p.set_defaults(func=cmd_heapmap)


def cmd_heapmap(args):
    if args.png is None and not args.json:
        raise ValueError("give --png FILE (the picture) or --json (page counts per arena)")
    if args.png:
        check_plot_path(args.png)
    with Runtime(**runtime_kwargs(args)) as rt:
        result = rt.run(**run_kwargs(args))
        hm = rt.heapmap()
    if args.png:
        plot_heapmap(hm, args.png, title=f"heap after {result.allocs:,} allocations")
        print(f"goruntime heapmap: wrote {args.png}", file=sys.stderr)
    if args.json:
        print(json.dumps({"counts": hm.counts(),
                          "arenas": [{"base": a.base, "npages": a.npages,
                                      "counts": {n: a.places.count(i) for i, n in enumerate(PLACE_NAMES)}}
                                     for a in hm.arenas]}, indent=1))
    else:
        print(repr(hm))
    return 0
