"""Plain-Python summaries and text tables over the model's figures."""

_ADDITIVE = ("acquisitions", "contended", "wait_ns", "hold_ns_sampled", "hold_samples",
             "hold_ns_est", "owner_switches")
_MAXIMA = ("max_wait_ns", "max_hold_ns_sampled", "max_waiters")


def sum_lockstats(stats):
    """One lock-class total over several locks (e.g. every mcentral)."""
    total = {k: 0 for k in _ADDITIVE + _MAXIMA}
    total["wait_hist"] = None
    total["sites"] = {}
    for s in stats:
        for k in _ADDITIVE:
            total[k] += s[k]
        for k in _MAXIMA:
            total[k] = max(total[k], s[k])
        if total["wait_hist"] is None:
            total["wait_hist"] = list(s["wait_hist"])
        else:
            total["wait_hist"] = [a + b for a, b in zip(total["wait_hist"], s["wait_hist"])]
        for site, v in s["sites"].items():
            t = total["sites"].setdefault(site, {"acquisitions": 0, "contended": 0, "wait_ns": 0})
            for k in t:
                t[k] += v[k]
    total["wait_hist"] = total["wait_hist"] or []
    return total


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


def lock_rows(lockstats, top=5):
    """(name, stats) rows: all mcentrals summed, the `top` busiest span classes, mheap, scheduler."""
    rows = [("mcentral (all)", lockstats["mcentral"])]
    busiest = sorted(lockstats["mcentrals"].items(),
                     key=lambda kv: (kv[1]["wait_ns"], kv[1]["acquisitions"]), reverse=True)
    for spc, s in busiest[:top]:
        if s["acquisitions"]:
            kind = "noscan" if s["noscan"] else "scan"
            rows.append((f"  mcentral[{spc}] {s['size']}B {kind}", s))
    rows.append(("mheap", lockstats["mheap"]))
    rows.append(("sched", lockstats["sched"]))
    return rows


def format_lock_table(lockstats, top=5):
    head = (f"{'lock':<32} {'acquired':>10} {'contended':>10} {'rate':>7} {'wait total':>11} "
            f"{'wait max':>10} {'hold (est)':>11} {'switches':>9} {'waiters':>7}")
    lines = [head, "-" * len(head)]
    for name, s in lock_rows(lockstats, top):
        lines.append(f"{name:<32} {s['acquisitions']:>10} {s['contended']:>10} "
                     f"{_rate(s['contended'], s['acquisitions']):>7} {_ns(s['wait_ns']):>11} "
                     f"{_ns(s['max_wait_ns']):>10} {_ns(s['hold_ns_est']):>11} "
                     f"{s['owner_switches']:>9} {s['max_waiters']:>7}")
    lines.append("hold times are sampled (one acquisition in 64) and scaled up")
    return "\n".join(lines)


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
    out.append(f"goruntime run: {cfg['ms']} Ms on GOMAXPROCS={cfg['gomaxprocs']}, "
               f"size classes {cfg['sizeclasses']}, GOGC={cfg['gogc'] if cfg['gogc'] is not None else 'off'}, "
               f"seed {cfg['seed']}")
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
    for k in ("Mallocs", "Frees", "HeapObjects", "HeapAlloc", "TotalAlloc", "HeapSys", "HeapInuse",
              "HeapIdle", "HeapReleased", "MSpanInuse", "NextGC"):
        out.append(f"  {k:<14} {getattr(ms, k):>16,}")
    return "\n".join(out)
