"""Plain-Python summaries and text tables over the model's figures."""


def mode_label(mcache="lockfree", mcentral="mutex", pagecache=False):
    """A short name of a mode combination: "lockfree", "none+spanset", "locked+pagecache"."""
    return "+".join([mcache] + (["spanset"] if mcentral == "spanset" else [])
                    + (["pagecache"] if pagecache else []))

def _ns(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f}s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f}ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f}us"
    return f"{ns:.0f}ns"


def _rate(part, whole):
    return f"{100.0 * part / whole:.2f}%" if whole else "-"


def format_bytes(n):
    """A byte count with its unit: "512 B", "12.3 KiB", "12.3 MiB", "1.5 GiB"."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if abs(n) >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n:.0f} B"


def describe_sizes(sizes):
    """A RunResult config's "sizes" in words: "64 B", "16-1024 B", "mix of 15 sizes 8..16384 B"."""
    if isinstance(sizes, dict) and "range" in sizes:
        lo, hi = sizes["range"]
        return f"{lo}-{hi} B"
    if isinstance(sizes, dict):
        sizes = sizes["sizes"]
        if len(sizes) == 1:
            return f"{sizes[0]} B"
        return f"mix of {len(sizes)} sizes {min(sizes)}..{max(sizes)} B"
    return f"{sizes} B"


def lock_rows(lockstats, top=5):
    """(name, stats) rows of the locks that were contended: all mcentrals summed, the `top`
    most waited-on mcentrals, mheap, scheduler, the per-P mcache locks (the "locked" mode)."""
    rows = []
    if lockstats["mcentral"]["contended"]:
        rows.append(("mcentral (all)", lockstats["mcentral"]))
    busiest = sorted((kv for kv in lockstats["mcentrals"].items() if kv[1]["contended"]),
                     key=lambda kv: (kv[1]["wait_ns"], kv[1]["contended"]), reverse=True)
    for spc, s in busiest[:top]:
        kind = "noscan" if s["noscan"] else "scan"
        rows.append((f"  mcentral[{spc}] {s['size']}B {kind}", s))
    for name in ("mheap", "sched"):
        if lockstats[name]["contended"]:
            rows.append((name, lockstats[name]))
    if lockstats.get("mcache") and lockstats["mcache"]["contended"]:
        rows.append(("mcache (all Ps)", lockstats["mcache"]))
    if lockstats.get("sharedcache") and lockstats["sharedcache"]["contended"]:
        rows.append(("shared mcache", lockstats["sharedcache"]))
    if lockstats.get("spanset") and lockstats["spanset"]["contended"]:
        rows.append(("span sets' spine locks", lockstats["spanset"]))
    return rows


def uncontended_note(lockstats):
    """What a lock table leaves out: "never contended, not shown: mheap, 12 of 14 mcentrals
    taken"; "" if every lock taken waited at least once. Locks never taken are not counted."""
    left = [name for name in ("mheap", "sched") if not lockstats[name]["contended"]]
    shared = lockstats.get("sharedcache")
    if shared and shared["acquisitions"] and not shared["contended"]:
        left.append("shared mcache")
    for group, plural in (("mcentrals", "mcentrals"), ("mcaches", "per-P mcache locks")):
        taken = [s for s in (lockstats.get(group) or {}).values() if s["acquisitions"]]
        quiet = sum(1 for s in taken if not s["contended"])
        if quiet:
            left.append(f"{quiet} of {len(taken)} {plural} taken")
    return f"never contended, not shown: {', '.join(left)}" if left else ""


def format_lock_table(lockstats, top=5, rows=None, detail=False, note=None):
    """The lock table of `goruntime run`: the contended locks (lock_rows(lockstats, top)) and a
    line on those left out; `rows` gives explicit (name, stats) rows instead and `note` the line
    on what they leave out; `detail` adds the mean wait (per contended acquisition) and the
    longest sampled hold."""
    if rows is None:
        rows = lock_rows(lockstats, top)
        note = uncontended_note(lockstats)
        more = sum(1 for s in lockstats["mcentrals"].values() if s["contended"]) - top
        if more > 0:
            note = f"{more} more contended mcentrals are in mcentral (all)" + (f"; {note}" if note else "")
    head = (f"{'lock':<32} {'acquired':>10} {'contended':>10} {'rate':>7} {'wait total':>11} "
            + (f"{'wait mean':>10} " if detail else "")
            + f"{'wait max':>10} {'hold (est)':>11} "
            + (f"{'hold max':>10} " if detail else "")
            + f"{'switches':>9} {'waiters':>7}")
    lines = [head, "-" * len(head)]
    for name, s in rows:
        lines.append(f"{name:<32} {s['acquisitions']:>10} {s['contended']:>10} "
                     f"{_rate(s['contended'], s['acquisitions']):>7} {_ns(s['wait_ns']):>11} "
                     + (f"{_ns(mean_wait_ns(s)):>10} " if detail else "")
                     + f"{_ns(s['max_wait_ns']):>10} {_ns(s['hold_ns_est']):>11} "
                     + (f"{_ns(s['max_hold_ns_sampled']):>10} " if detail else "")
                     + f"{s['owner_switches']:>9} {s['max_waiters']:>7}")
    if not rows:
        lines.append("no lock was contended")
    if note:
        lines.append(note)
    lines.append("hold times are sampled (one acquisition in 64) and scaled up")
    return "\n".join(lines)


def mean_wait_ns(stats):
    """Mean wait of one contended acquisition (lockstat's "avg wait"); 0 if none waited."""
    return stats["wait_ns"] / stats["contended"] if stats["contended"] else 0.0


# -- log2 wait histograms (lock.pyx: bucket i counts waits of [2^i, 2^(i+1)) ns, bucket 0 also 0 ns)

_SPARK = " ▁▂▃▄▅▆▇█"
_SPARK_ASCII = " .:-=+*#%@"


def hist_bucket_ns(i):
    """(low, high) bounds in ns of log2 wait bucket i; waits are low <= w < high."""
    return (0 if i == 0 else 1 << i), 1 << (i + 1)


def hist_quantile_ns(hist, q):
    """Upper bound (ns) of the bucket holding the q-quantile of the waits; 0 if none."""
    total = sum(hist)
    if not total:
        return 0
    need, seen = q * total, 0
    for i, n in enumerate(hist):
        seen += n
        if n and seen >= need:
            return hist_bucket_ns(i)[1]
    return hist_bucket_ns(len(hist) - 1)[1]


def format_wait_hist(hist, ascii=False):
    """A log2 wait histogram on one line: `256ns ▂█▅▁ 8.2us` spans the occupied buckets, one
    character per doubling, its height relative to the fullest bucket; "" if no waits."""
    used = [i for i, n in enumerate(hist) if n]
    if not used:
        return ""
    lo, hi = used[0], used[-1]
    levels = _SPARK_ASCII if ascii else _SPARK
    top = max(hist)
    bars = "".join(levels[-(-(len(levels) - 1) * n // top)] if n else levels[0]
                   for n in hist[lo:hi + 1])
    return f"{_ns(hist_bucket_ns(lo)[0]):>6} {bars} {_ns(hist_bucket_ns(hi)[1])}"


def format_columns(columns, rows, indent=""):
    """Aligned text table: columns are (title, width) with a negative width for left
    alignment; rows hold already formatted cells. Returns the lines, header first."""
    def line(cells):
        return indent + " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}"
                                 for c, (_, w) in zip(cells, columns)).rstrip()
    head = line([t for t, _ in columns])
    return [head, indent + "-" * (len(head) - len(indent))] + [line(r) for r in rows]


def path_shares(ms):
    """How many allocations each path served, from a MemStats."""
    from_nonempty = ms.Refills - ms.MCentralGrows
    paths = {
        "tiny (packed into a 16 B block)": ms.TinyAllocs,
        "mcache (cached span, no lock)": ms.MCacheHits,
        "mcentral refill (span from nonempty)": from_nonempty,
        "mcentral grow (new span from mheap)": ms.MCentralGrows,
        "large (mheap, > 32 KiB)": ms.LargeAllocs,
    }
    return paths


def format_run(result, ms, lockstats):
    """The `goruntime run` report."""
    cfg = result.config
    out = []
    modes = (f"mcache {cfg['mcache']}, mcentral {cfg['mcentral']}, "
             f"page cache {'on' if cfg['pagecache'] else 'off'}, " if "mcache" in cfg else "")
    out.append(f"goruntime run: {cfg['ms']} Ms on GOMAXPROCS={cfg['gomaxprocs']}, {modes}"
               f"size classes {cfg['sizeclasses']}, GOGC={cfg['gogc'] if cfg['gogc'] is not None else 'off'}, "
               f"seed {cfg['seed']}")
    out.append(f"churn of {describe_sizes(cfg['sizes'])}, noscan {cfg['noscan']:g}, "
               f"large {cfg['large_share']:g}, live {cfg['live']}/M, "
               + (f"{cfg['ops']:,} allocations per M" if cfg.get("ops") else f"{cfg['duration']:g} s"))
    out.append("")
    out.append(f"throughput: {result.allocs:,} allocations in {result.elapsed:.2f} s = "
               f"{result.allocs_per_sec / 1e6:.2f} M allocs/s")
    for m in result.per_m:
        secs = m["elapsed_ns"] / 1e9
        rate = m["allocs"] / secs / 1e6 if secs else 0.0
        out.append(f"  M{m['id']:<3} {m['allocs']:>12,} allocs  {rate:7.2f} M/s  cpu {m['cpu_ns'] / 1e9:6.2f} s  "
                   f"waited for a P {m['p_waits']:>5}x ({_ns(m['p_wait_ns'])})  handoffs {m['handoffs']}  gcs {m['gcs']}")
    out.append("")
    out.append("allocation paths:")
    paths = path_shares(ms)
    total = sum(paths.values())
    for name, n in paths.items():
        out.append(f"  {name:<40} {n:>14,}  {_rate(n, total):>8}")
    out.append("")
    out.append(format_lock_table(lockstats))
    out.append("")
    pauses = ms.PauseNs
    out.append(f"GC: {ms.NumGC} collections, pauses total {_ns(ms.PauseTotalNs)}"
               + (f", max {_ns(max(pauses))}, mean {_ns(sum(pauses) / len(pauses))}" if pauses else ""))
    out.append("")
    out.append("memstats:")
    for k in ("Mallocs", "Frees", "HeapObjects"):
        out.append(f"  {k:<14} {getattr(ms, k):>16,}")
    for k in ("HeapAlloc", "TotalAlloc", "HeapSys", "HeapInuse", "HeapIdle", "HeapReleased",
              "MSpanInuse", "NextGC"):
        out.append(f"  {k:<14} {format_bytes(getattr(ms, k)):>16}")
    return "\n".join(out)
