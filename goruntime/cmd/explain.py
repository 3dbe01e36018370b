"""`goruntime explain SIZE`: the path a request of SIZE bytes takes through the allocator,
from the size-class tables, and then the same request made on a fresh Runtime with what it
moved: which locks it took and where, whether it refilled from an mcentral, grew the
mcentral from the mheap, or reserved an arena.

    goruntime explain 24               # one size, then two requests on a fresh runtime
    goruntime explain 8 --noscan       # the tiny allocator
    goruntime explain --sizes 1-64     # a table, one row per size
"""
import argparse
import json
import sys

from goruntime import Runtime
from goruntime.runtime import LOCK_CLASSES
from goruntime.sizeclasses import SizeClasses, normalize_version

PAGE = 8192
MAX_SMALL = 32768
TINY = 16
# The largest request explained: an object this large still fits one arena reservation.
MAX_EXPLAINED = 1 << 40


def classify(size, noscan=False, sizeclasses="go1.13"):
    """Where a request of `size` bytes goes, from the tables alone: a dict with the path
    ("zero", "tiny", "small" or "large"), the size class and its size, the waste, the span
    class and the span's pages, objects and tail."""
    sc = SizeClasses(normalize_version(sizeclasses))
    out = {"size": size, "noscan": noscan, "sizeclasses": sc.version}
    if size == 0:
        out.update(path="zero", note="every zero-byte object is the one address &zerobase: "
                                     "nothing is allocated")
        return out
    if size > MAX_SMALL:
        npages = -(-size // PAGE)
        out.update(path="large", sizeclass=0, class_size=npages * PAGE,
                   waste=npages * PAGE - size, spanclass=int(noscan), npages=npages, nelems=1,
                   tail_waste=0)
    else:
        tiny = noscan and size < TINY
        sizeclass = sc.size_to_class(TINY if tiny else size)
        class_size = sc.class_to_size(sizeclass)
        npages = sc.class_to_npages(sizeclass)
        nelems = sc.class_to_nelems(sizeclass)
        out.update(path="tiny" if tiny else "small", sizeclass=sizeclass, class_size=class_size,
                   waste=0 if tiny else class_size - size, spanclass=sizeclass << 1 | int(noscan),
                   npages=npages, nelems=nelems, tail_waste=npages * PAGE - nelems * class_size)
    out["waste_pct"] = 100.0 * out["waste"] / out["class_size"]
    return out


def _site_counts(lockstats):
    """{(lock class, site): acquisitions} over every lock class."""
    counts = {}
    for cls in LOCK_CLASSES:
        for site, v in ((lockstats.get(cls) or {}).get("sites") or {}).items():
            counts[cls, site] = v["acquisitions"]
    return counts


def _moved(before, after):
    return [{"lock": cls, "site": site, "acquisitions": n - before.get((cls, site), 0)}
            for (cls, site), n in sorted(after.items()) if n > before.get((cls, site), 0)]


def trace_requests(size, noscan=False, sizeclasses="go1.13", requests=2):
    """Makes `requests` requests of `size` bytes, one after the other, on a fresh Runtime
    with one P and the GC trigger off, holding the P throughout; returns what each took:
    the locks (class, call site, acquisitions) and the allocator's path counters."""
    steps = []
    with Runtime(gomaxprocs=1, gogc=None, sizeclasses=sizeclasses) as rt:
        with rt.proc():
            for _ in range(requests):
                # The arena list is read under the heap lock: outside the lock counts.
                arenas = len(rt.heap.arenas)
                before = _site_counts(rt.lockstats())
                addr = rt.malloc(size, noscan=noscan)
                locks = _moved(before, _site_counts(rt.lockstats()))
                steps.append({"addr": addr, "locks": locks,
                              "arenas_reserved": len(rt.heap.arenas) - arenas})
        # One snapshot at the end: reading MemStats flushes the mcache, which a request
        # in between would then have to refill.
        ms = rt.memstats()
    steps[-1]["counters_after_all"] = {k: getattr(ms, k) for k in (
        "TinyAllocs", "MCacheHits", "Refills", "MCentralGrows", "LargeAllocs", "HeapGrows")}
    return steps


def explain(size, noscan=False, sizeclasses="go1.13"):
    """classify() and trace_requests() together: what `goruntime explain SIZE --json` prints."""
    return {**classify(size, noscan, sizeclasses), "requests": trace_requests(size, noscan, sizeclasses)}


_PATHS = {
    "zero": "zero-size: &zerobase",
    "tiny": "tiny: packed into a 16 B noscan block of the P's mcache",
    "small": "small: a slot of the P's cached span (mcache), lock-free",
    "large": "large (> 32 KiB): a span of its own, straight from the mheap under its lock",
}


def _story(e, step):
    """What one request did, line by line, from the lock sites it went through."""
    sites = {m["site"] for m in step["locks"]}
    said = []
    if e["path"] == "large":
        said.append("a span of its own from the mheap")
    elif not step["locks"]:
        said.append("packed into the current tiny block" if e["path"] == "tiny"
                    else "mcache hit: the next free slot of the cached span")
    if "runtime.(*mcentral).cacheSpan" in sites:
        said.append("no cached span with room: the mcache refilled from the mcentral (cacheSpan)")
    if "runtime.(*mcentral).grow" in sites:
        said.append("no span with room in the mcentral: it grew by a fresh span from the mheap")
    if step["arenas_reserved"]:
        said.append(f"no free pages in the mheap: it reserved {step['arenas_reserved']} x 64 MiB "
                    f"arena from the OS")
    return said + ([] if step["locks"] else ["no lock taken"])


def format_explain(e):
    kind = "noscan" if e["noscan"] else "scan"
    out = [f"goruntime explain: {e['size']} B {kind}, size classes {e['sizeclasses']}", "",
           f"path         {_PATHS[e['path']]}"]
    if e["path"] == "zero":
        out.append(f"             {e['note']}")
        return "\n".join(out)
    if e["path"] == "large":
        out.append(f"rounded to   {e['class_size']:,} B ({e['npages']} pages of 8 KiB), "
                   f"waste {e['waste']:,} B ({e['waste_pct']:.1f}%)")
        out.append(f"span class   {e['spanclass']} (size class 0, {kind})")
    else:
        if e["path"] == "tiny":
            out.append(f"block        16 B, size class {e['sizeclass']}; the object takes {e['size']} B of it "
                       f"at the alignment its size needs, later tiny requests the rest")
        else:
            out.append(f"size class   {e['sizeclass']}: {e['class_size']:,} B, waste {e['waste']:,} B "
                       f"({e['waste_pct']:.1f}%)")
        out.append(f"span class   {e['spanclass']} = size class {e['sizeclass']} << 1 | {int(e['noscan'])} ({kind})")
        out.append(f"span         {e['npages']} page{'s' if e['npages'] > 1 else ''} = "
                   f"{e['npages'] * PAGE:,} B: {e['nelems']} objects, tail waste {e['tail_waste']:,} B")
    if "requests" in e:
        out.append("")
        out.append("on a fresh runtime (1 P, GC off, the P held throughout):")
        for i, step in enumerate(e["requests"], 1):
            out.append(f"  request {i}:")
            out.extend(f"    {line}" for line in _story(e, step))
            for m in step["locks"]:
                times = f" ({m['acquisitions']} times)" if m["acquisitions"] > 1 else ""
                out.append(f"    took the {m['lock']} lock in {m['site']}{times}")
        c = e["requests"][-1]["counters_after_all"]
        out.append(f"  after both: mcache hits {c['MCacheHits']}, refills (cacheSpan) {c['Refills']}, "
                   f"grows (mcentral from mheap) {c['MCentralGrows']}, arenas reserved {c['HeapGrows']}, "
                   f"tiny packed {c['TinyAllocs']}, large {c['LargeAllocs']}")
    return "\n".join(out)


def format_table(rows):
    head = ["size", "path", "class", "class B", "waste", "waste%", "spanclass", "pages", "objs", "tail B"]
    body = []
    for e in rows:
        if e["path"] == "zero":
            body.append([str(e["size"]), "zero"] + ["-"] * 8)
            continue
        body.append([str(e["size"]), e["path"], str(e["sizeclass"]), f"{e['class_size']:,}",
                     f"{e['waste']:,}", f"{e['waste_pct']:.1f}", str(e["spanclass"]), str(e["npages"]),
                     str(e["nelems"]), f"{e['tail_waste']:,}"])
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in body)
    return "\n".join(lines)


# -- the command -----------------------------------------------------------------------------

def _size(text):
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r}")
    if not 0 <= value <= MAX_EXPLAINED:
        raise argparse.ArgumentTypeError(f"size {value} is outside 0..{MAX_EXPLAINED}")
    return value


def _sizes(text):
    """'1-64' (every size from 1 to 64) or '8,24,40000'."""
    try:
        if "-" in text:
            lo, hi = (_size(t) for t in text.split("-", 1))
            if lo > hi or hi - lo > 100000:
                raise argparse.ArgumentTypeError(f"bad range {text!r}: lo <= hi, at most 100,000 sizes")
            return list(range(lo, hi + 1))
        return [_size(t) for t in text.split(",") if t.strip()] or None
    except argparse.ArgumentTypeError:
        raise
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --sizes {text!r}: use 1-64 or 8,24,40000")


def register(sub):
    p = sub.add_parser("explain", help="the path a request of SIZE bytes takes, and what it moves",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("size", type=_size, nargs="?", help="bytes requested (0 to 2**40)")
    p.add_argument("--sizes", type=_sizes, default=None, help="a table instead: 1-64 or 8,24,40000")
    p.add_argument("--noscan", action="store_true", help="a pointer-free object (noscan)")
    p.add_argument("--go", "--sizeclasses", dest="sizeclasses", default="go1.13",
                   help="size-class table: 1.13 (default) or 1.19")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args):
    if (args.size is None) == (args.sizes is None):
        raise ValueError("give one SIZE or --sizes, not both and not neither")
    version = normalize_version(args.sizeclasses)
    if args.sizes is not None:
        rows = [classify(s, args.noscan, version) for s in args.sizes]
        print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    else:
        e = explain(args.size, args.noscan, version)
        print(json.dumps(e, indent=1) if args.json else format_explain(e))
    return 0
