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
