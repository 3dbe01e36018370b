"""Contention profiles of the model's runtime locks: `goruntime profile` and its Python API.

    from goruntime.cmd.profile import profile
    prof = profile(gomaxprocs=2, ms=4, duration=2.0, size=4096, mcache="lockfree")
    print(prof.format())                  # the text report
    prof.write_pprof("mutex.pb.gz")       # for `go tool pprof -top mutex.pb.gz`
    prof.as_dict()                        # what `--json` prints

A profile runs the churn kernel on a fresh Runtime and reads every lock's counters
(goruntime/lock.pyx) once the run is over. Figures are given per lock class (all mcentrals
together, the mheap, the scheduler, all mcaches in the "locked" mode) and per lock instance
(each mcentral, by span class and size; each P's mcache lock), and each lock's acquisitions
and waits are attributed to the call site that took it. For pprof every call site gets the
Go call stack that leads to it in the model (and, but for sweeping being stop-the-world, in
Go 1.13), leaf first.
"""
import json
import os
import sys
import time

from goruntime import Runtime
from goruntime.lock import SITE_NAMES, LockSite
from goruntime.cmd.progress import run_progress
from goruntime.cmd.flags import DEFAULTS, add_workload_args, resolve_sizes, run_kwargs, runtime_kwargs
from goruntime.cmd.report import (_ns, _rate, describe_sizes, format_columns, format_lock_table,
                                  format_wait_hist, hist_quantile_ns, mean_wait_ns, mode_label)


# -- call sites and their Go stacks -----------------------------------------------------------

# The lock call sites are named once, in goruntime/lock.pyx (SITE_NAMES).
CACHESPAN = SITE_NAMES[LockSite.SITE_CACHESPAN]
UNCACHESPAN = SITE_NAMES[LockSite.SITE_UNCACHESPAN]
GROW = SITE_NAMES[LockSite.SITE_GROW]
LARGEALLOC = SITE_NAMES[LockSite.SITE_LARGE]
SWEEP = SITE_NAMES[LockSite.SITE_SWEEP]
FREESPAN = SITE_NAMES[LockSite.SITE_FREESPAN]
ACQUIREP = SITE_NAMES[LockSite.SITE_ACQUIREP]
RELEASEP = SITE_NAMES[LockSite.SITE_RELEASEP]
STOPTHEWORLD = SITE_NAMES[LockSite.SITE_STW]
MCACHELOCK = SITE_NAMES[LockSite.SITE_MCACHE]
PAGECACHE = SITE_NAMES[LockSite.SITE_PCACHE]
OTHERLOCK = SITE_NAMES[LockSite.SITE_OTHER]
SHAREDLOCK = SITE_NAMES[LockSite.SITE_SHARED]
SCAVENGE = SITE_NAMES[LockSite.SITE_SCAVENGE]
# Frames of the stacks that lead to a site but take no lock themselves.
MALLOCGC = "runtime.mallocgc"
HEAPALLOC = "runtime.(*mheap).alloc"
GCSTART = "runtime.gcStart"
SPANSWEEP = "runtime.(*mspan).sweep"
SPINE = SITE_NAMES[LockSite.SITE_SPINE]
SWEEPONE = "runtime.sweepone"

# mallocgc -> (*mcache).nextFree -> (*mcache).refill -> (*mcentral).cacheSpan, as in Go 1.13.
_REFILL = (CACHESPAN, "runtime.(*mcache).refill", "runtime.(*mcache).nextFree", MALLOCGC)

# (lock class, call site) -> stack, leaf first. The site (lock.pyx SITE_NAMES) names the
# function that took the lock, except for the mheap lock, which mheap.alloc takes on behalf
# of its caller (the site). A site missing here gets the one-frame stack (site,).
SITE_STACKS = {
    ("mcentral", CACHESPAN): _REFILL,
    # cacheSpan re-locks its mcentral to put the span grow() returned on `empty`.
    ("mcentral", GROW): (GROW,) + _REFILL,
    ("mcentral", UNCACHESPAN): (UNCACHESPAN, "runtime.(*mcache).releaseAll",
                                "runtime.flushallmcaches", GCSTART),
    # A sweeper files the span it swept (Go 1.13: mcentral.freeSpan, from mspan.sweep).
    ("mcentral", SWEEP): (SWEEP, SPANSWEEP, SWEEPONE),
    ("mheap", GROW): (HEAPALLOC,) + (GROW,) + _REFILL,
    ("mheap", LARGEALLOC): (HEAPALLOC, LARGEALLOC, MALLOCGC),
    # Go 1.14: allocSpan refills the P's page cache (allocToCache) under the heap lock.
    ("mheap", PAGECACHE): (PAGECACHE, "runtime.(*mheap).allocSpan", HEAPALLOC, GROW) + _REFILL,
    ("mheap", FREESPAN): (FREESPAN, SPANSWEEP, SWEEPONE),
    # A span set's spine lock, when a push adds a block or a pop frees an emptied one.
    ("spanset", SPINE): (SPINE, "runtime.(*spanSet).push"),
    ("sched", ACQUIREP): (ACQUIREP, "runtime.schedule"),
    ("sched", RELEASEP): (RELEASEP, "runtime.handoffp"),
    ("sched", STOPTHEWORLD): (STOPTHEWORLD, GCSTART),
    ("mcache", MCACHELOCK): (MCACHELOCK, MALLOCGC),
    ("sharedcache", SHAREDLOCK): (SHAREDLOCK, MALLOCGC),
    # The background scavenger (free_os_memory takes the same site).
    ("mheap", SCAVENGE): (SCAVENGE, "runtime.bgscavenge"),
}

# Go source files, for pprof's Function.filename.
GO_FILES = {
    MALLOCGC: "runtime/malloc.go", LARGEALLOC: "runtime/malloc.go",
    "runtime.(*mcache).refill": "runtime/mcache.go", "runtime.(*mcache).nextFree": "runtime/malloc.go",
    "runtime.(*mcache).releaseAll": "runtime/mcache.go", MCACHELOCK: "runtime/mcache.go",
    SHAREDLOCK: "runtime/mcache.go",
    CACHESPAN: "runtime/mcentral.go", UNCACHESPAN: "runtime/mcentral.go", GROW: "runtime/mcentral.go",
    HEAPALLOC: "runtime/mheap.go", "runtime.(*mheap).allocSpan": "runtime/mheap.go",
    PAGECACHE: "runtime/mpagecache.go", FREESPAN: "runtime/mheap.go", SWEEP: "runtime/mcentral.go",
    SPANSWEEP: "runtime/mgcsweep.go", SWEEPONE: "runtime/mgcsweep.go",
    "runtime.(*spanSet).push": "runtime/mspanset.go", SPINE: "runtime/mspanset.go",
    GCSTART: "runtime/mgc.go", "runtime.flushallmcaches": "runtime/mstats.go",
    ACQUIREP: "runtime/proc.go", RELEASEP: "runtime/proc.go", STOPTHEWORLD: "runtime/proc.go",
    "runtime.schedule": "runtime/proc.go", "runtime.handoffp": "runtime/proc.go",
    OTHERLOCK: "runtime/lock_futex.go",
    SCAVENGE: "runtime/mgcscavenge.go", "runtime.bgscavenge": "runtime/mgcscavenge.go",
}


def site_stack(lock_class, site, mcache="lockfree"):
    """The Go call stack (leaf first) of lock `lock_class` taken at call site `site`. In the
    "none" mcache mode mallocgc takes its object from the mcentral directly, no refill between."""
    stack = SITE_STACKS.get((lock_class, site), (site,))
    if mcache == "none" and stack[-len(_REFILL):] == _REFILL:
        stack = stack[:-len(_REFILL)] + (CACHESPAN, MALLOCGC)
    return stack


def _process_counters():
    """The whole process's CPU time and context switches, exited threads included
    (getrusage(RUSAGE_SELF); psutil reads only the main thread's switches on Linux)."""
    try:
        import resource
    except ImportError:
        return None
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"utime_ns": int(ru.ru_utime * 1e9), "stime_ns": int(ru.ru_stime * 1e9),
            "voluntary_ctx_switches": ru.ru_nvcsw, "involuntary_ctx_switches": ru.ru_nivcsw}


def _stats_keys(d):
    return {(int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k): v for k, v in d.items()}


# -- the profile --------------------------------------------------------------------------------

def profile(*, gomaxprocs=None, mcache="lockfree", mcentral="mutex", pagecache=False,
            sweep="concurrent", sizeclasses="go1.13", gogc=100, max_heap=None, ms=None, duration=None, ops=None,
            sizes=None, size=None, weights=None, noscan=0.5, live=4096, large_share=None,
            seed=None, progress=None):
    """Runs the churn kernel on a new Runtime in the given modes and returns its Profile.

    Runtime: gomaxprocs, mcache ("lockfree" | "locked" | "none"), mcentral ("mutex" |
    "spanset"), pagecache, sizeclasses, gogc, max_heap. Workload (see Runtime.run): ms,
    duration (seconds; 1 if neither it nor ops is given) or ops (allocations per M), sizes
    and weights, or one `size`; noscan, live, large_share, seed; progress as Runtime.run's.
    Without sizes or size the
    workload is the realistic mix of `goruntime run`, with 0.1% large objects (the defaults
    of goruntime.cmd.flags, as on the command line).
    """
    if size is not None and sizes is not None:
        raise ValueError("give sizes or size, not both")
    if size is not None:
        sizes = size
    if sizes is None and weights is not None:
        raise ValueError("weights go with sizes")
    sizes, weights, large_share = resolve_sizes(None if sizes is None else (sizes, weights), large_share)
    if duration is None and ops is None:
        duration = DEFAULTS["duration"]
    modes = {"mcache": mcache, "mcentral": mcentral, "pagecache": pagecache, "sweep": sweep}
    rt = Runtime(gomaxprocs=gomaxprocs, sizeclasses=sizeclasses, gogc=gogc,
                 max_heap=max_heap, **modes)
    with rt:
        before = _process_counters()
        started = time.time_ns()
        try:
            result = rt.run(ms=ms, duration=duration, ops=ops, sizes=sizes, weights=weights,
                            noscan=noscan, live=live, large_share=large_share, seed=seed,
                            progress=progress)
        except KeyboardInterrupt as e:
            # Ctrl-C: the profile of what ran, for the caller to show.
            e.partial = Profile.capture(rt, e.partial, modes=modes, started_ns=started,
                                        process=_process_delta(before, _process_counters()))
            raise
        after = _process_counters()
        return Profile.capture(rt, result, modes=modes, started_ns=started,
                               process=_process_delta(before, after))


def _process_delta(before, after):
    if before is None or after is None:
        return None
    return {k: after[k] - before[k] for k in before}


class Profile:
    """Lock contention, per-M figures and GC of one run: build it with profile() or
    Profile.capture(rt, result) after any rt.run()."""

    def __init__(self, config, result, lockstats, memstats, process=None, started_ns=0):
        self.config = config          # runtime modes and workload
        self.result = result          # RunResult.as_dict()
        self.lockstats = lockstats    # Runtime.lockstats()
        self.memstats = memstats      # MemStats.as_dict()
        self.process = process        # the process's CPU time and context switches over the run
        self.started_ns = started_ns

    @classmethod
    def capture(cls, rt, result, modes=None, started_ns=0, process=None):
        """The profile of `result`, a run that just finished on `rt` (the Runtime's counters
        cover its whole life, so use a fresh Runtime for a run's own figures)."""
        locks = rt.lockstats()          # before memstats, whose stop-the-world takes sched
        ms = rt.memstats().as_dict()
        config = dict(result.config)
        config.update(modes or rt.modes)
        config["mode"] = mode_label(config["mcache"], config["mcentral"], config["pagecache"])
        return cls(config, result.as_dict(), locks, ms, process=process,
                   started_ns=started_ns or time.time_ns() - int(result.elapsed * 1e9))

    # -- locks ---------------------------------------------------------------

    def _instances(self):
        """(class, instance, name, labels, stats) for every lock."""
        ls = self.lockstats
        yield "mheap", None, "mheap", (("lock", "mheap"),), ls["mheap"]
        yield "sched", None, "sched", (("lock", "sched"),), ls["sched"]
        for spc, s in sorted(_stats_keys(ls["mcentrals"]).items()):
            kind = "noscan" if s["noscan"] else "scan"
            yield ("mcentral", spc, f"mcentral[{spc}] {s['size']}B {kind}",
                   (("lock", "mcentral"), ("spanclass", spc), ("size", s["size"])), s)
        for p, s in sorted(_stats_keys(ls.get("mcaches") or {}).items()):
            yield "mcache", p, f"mcache[P{p}]", (("lock", "mcache"), ("p", p)), s
        if ls.get("sharedcache") is not None:
            yield "sharedcache", None, "shared mcache", (("lock", "sharedcache"),), ls["sharedcache"]
        if ls.get("spanset") is not None:
            yield "spanset", None, "span sets' spine locks", (("lock", "spanset"),), ls["spanset"]

    def _classes(self):
        ls = self.lockstats
        out = [("mcentral", "mcentral (all)", ls["mcentral"]), ("mheap", "mheap", ls["mheap"]),
               ("sched", "sched", ls["sched"])]
        if ls.get("mcache") is not None:
            out.append(("mcache", "mcache (all Ps)", ls["mcache"]))
        if ls.get("sharedcache") is not None:
            out.append(("sharedcache", "shared mcache", ls["sharedcache"]))
        if ls.get("spanset") is not None:
            out.append(("spanset", "span sets' spine locks", ls["spanset"]))
        return out

    def _row(self, lock_class, instance, name, stats):
        total_wait = stats["wait_ns"]
        sites = []
        for site, v in stats["sites"].items():
            sites.append({"site": site, "stack": list(self._stack(lock_class, site)),
                          "acquisitions": v["acquisitions"], "contended": v["contended"],
                          "contended_rate": v["contended"] / v["acquisitions"] if v["acquisitions"] else 0.0,
                          "wait_ns": v["wait_ns"],
                          "wait_share": v["wait_ns"] / total_wait if total_wait else 0.0})
        sites.sort(key=lambda x: (x["wait_ns"], x["contended"], x["acquisitions"]), reverse=True)
        acq = stats["acquisitions"]
        return {
            "name": name, "class": lock_class, "instance": instance,
            "acquisitions": acq, "contended": stats["contended"],
            "contended_rate": stats["contended"] / acq if acq else 0.0,
            "wait_ns": total_wait, "mean_wait_ns": mean_wait_ns(stats),
            "max_wait_ns": stats["max_wait_ns"],
            "wait_p50_ns": hist_quantile_ns(stats["wait_hist"], 0.5),
            "wait_p99_ns": hist_quantile_ns(stats["wait_hist"], 0.99),
            "wait_hist": list(stats["wait_hist"]),
            "hold_ns_est": stats["hold_ns_est"], "max_hold_ns": stats["max_hold_ns_sampled"],
            "hold_samples": stats["hold_samples"],
            "owner_switches": stats["owner_switches"], "max_waiters": stats["max_waiters"],
            "sites": sites,
        }

    def _stack(self, lock_class, site):
        return site_stack(lock_class, site, self.config.get("mcache", "lockfree"))

    def lock_classes(self):
        """One row per lock class: all mcentrals, mheap, sched, and all mcaches if present."""
        return [self._row(c, None, name, s) for c, name, s in self._classes()]

    def lock_instances(self, idle=False):
        """One row per lock; mcentrals (and mcaches) never acquired are left out unless idle."""
        return [self._row(c, inst, name, s) for c, inst, name, _, s in self._instances()
                if idle or s["acquisitions"] or c in ("mheap", "sched")]

    def samples(self):
        """The pprof samples: one per lock instance and call site that waited."""
        from goruntime.cmd.pprof import Sample
        out = []
        for c, _, _, labels, s in self._instances():
            for site, v in s["sites"].items():
                if v["contended"] or v["wait_ns"]:
                    out.append(Sample(self._stack(c, site), v["contended"], v["wait_ns"], labels))
        return out

    def pprof(self):
        """The gzipped profile.proto contention profile."""
        from goruntime.cmd.pprof import encode_contention_profile
        return encode_contention_profile(
            self.samples(), duration_ns=int(self.result["elapsed"] * 1e9), time_ns=self.started_ns,
            filenames=GO_FILES, comments=[self.describe()])

    def write_pprof(self, path):
        with open(path, "wb") as f:
            f.write(self.pprof())

    # -- Ms ------------------------------------------------------------------

    def per_m(self):
        """Per M: allocations, where its time went (lock waits, waits for a P, running:
        allocating, freeing and collecting), context switches and CPU time."""
        out = []
        for m in self.result["per_m"]:
            elapsed = m["elapsed_ns"]
            running = max(0, elapsed - m["lock_wait_ns"] - m["p_wait_ns"])
            share = (lambda ns: ns / elapsed if elapsed else 0.0)
            out.append({
                "id": m["id"], "tid": m["tid"], "allocs": m["allocs"], "frees": m["frees"],
                "bytes": m["bytes"], "elapsed_ns": elapsed,
                "allocs_per_sec": m["allocs"] / elapsed * 1e9 if elapsed else 0.0,
                "lock_wait_ns": m["lock_wait_ns"], "lock_wait_share": share(m["lock_wait_ns"]),
                "p_waits": m["p_waits"], "p_wait_ns": m["p_wait_ns"], "p_wait_share": share(m["p_wait_ns"]),
                "running_ns": running, "running_share": share(running),
                "cpu_ns": m["cpu_ns"], "utime_ns": m["utime_ns"], "stime_ns": m["stime_ns"],
                "voluntary_ctx_switches": m["voluntary_ctx_switches"],
                "involuntary_ctx_switches": m["involuntary_ctx_switches"],
                "handoffs": m["handoffs"], "gcs": m["gcs"],
            })
        return out

    def lock_wait_share(self):
        """Summed lock waits of the Ms over their summed elapsed time."""
        elapsed = sum(m["elapsed_ns"] for m in self.result["per_m"])
        return sum(m["lock_wait_ns"] for m in self.result["per_m"]) / elapsed if elapsed else 0.0

    def gc(self):
        pauses = self.memstats["PauseNs"]
        return {"num_gc": self.memstats["NumGC"], "pause_total_ns": self.memstats["PauseTotalNs"],
                "pause_max_ns": max(pauses) if pauses else 0}

    # -- output --------------------------------------------------------------

    def describe(self):
        c = self.config
        work = f"{c['ops']:,} allocations per M" if c.get("ops") else f"{c['duration']:g} s"
        sizes = describe_sizes(c["sizes"])
        gogc = c["gogc"] if c["gogc"] is not None else "off"
        return (f"{c['ms']} Ms on GOMAXPROCS={c['gomaxprocs']}, mcache {c['mcache']}, mcentral "
                f"{c['mcentral']}, page cache {'on' if c['pagecache'] else 'off'}, size classes "
                f"{c['sizeclasses']}, GOGC={gogc}; churn of {sizes}, noscan {c['noscan']:g}, "
                f"large {c['large_share']:g}, live {c['live']}/M, {work}, seed {c['seed']}")

    def as_dict(self):
        return {
            "config": self.config,
            "throughput": {"allocs": self.result["allocs"], "frees": self.result["frees"],
                           "elapsed_s": self.result["elapsed"],
                           "allocs_per_sec": self.result["allocs_per_sec"]},
            "lock_wait_share": self.lock_wait_share(),
            "lock_classes": self.lock_classes(),
            "locks": self.lock_instances(),
            "per_m": self.per_m(),
            "gc": self.gc(),
            "process": self.process,
            "memstats": self.memstats,
            "wait_hist_buckets": "log2 ns: entry i counts waits w with 2^i <= w < 2^(i+1) (entry 0: w < 2)",
        }

    def to_json(self, indent=1):
        return json.dumps(self.as_dict(), indent=indent)

    def format(self, top=10, ascii=None):
        """The text report; `top` mcentrals are listed one by one, busiest first."""
        if ascii is None:
            enc = getattr(sys.stdout, "encoding", None) or "ascii"
            try:
                "▁█".encode(enc)
                ascii = False
            except (UnicodeEncodeError, LookupError):
                ascii = True
        r = self.result
        gc = self.gc()
        out = [f"goruntime profile: {self.describe()}", ""]
        out.append(f"throughput: {r['allocs']:,} allocations in {r['elapsed']:.2f} s = "
                   f"{r['allocs_per_sec'] / 1e6:.2f} M allocs/s; Ms waited on locks "
                   f"{100 * self.lock_wait_share():.2f}% of their time; GC {gc['num_gc']} collections, "
                   f"pauses {_ns(gc['pause_total_ns'])} total, {_ns(gc['pause_max_ns'])} max")
        out.append("")

        # Only locks that were contended get a row; a line says which were left out. (The
        # mcache locks exist in every mode but are only taken in the "locked" one.)
        shown = [(c, name, s) for c, name, s in self._classes()
                 if c != "mcache" or s["acquisitions"] or self.config.get("mcache") == "locked"]
        classes = [self._row(c, None, name, s) for c, name, s in shown]
        quiet = [name for _, name, s in shown if not s["contended"]]
        out.append("lock classes")
        out.append(format_lock_table(None, rows=[(name, s) for _, name, s in shown if s["contended"]],
                                     detail=True, note=("never contended, not shown: " + ", ".join(quiet)
                                                        if quiet else "")))
        out.append("")

        taken = [(name, s) for c, _, name, _, s in self._instances()
                 if c in ("mcentral", "mcache", "sharedcache") and s["acquisitions"]]
        inst = [(name, s) for name, s in taken if s["contended"]]
        busiest = sorted(inst, key=lambda x: (x[1]["wait_ns"], x[1]["contended"],
                                              x[1]["acquisitions"]), reverse=True)
        out.append(f"lock instances (busiest first; {len(inst)} of the {len(taken)} mcentral/mcache "
                   f"locks taken were contended"
                   + (f", {len(inst) - top} more not shown" if len(inst) > top else "") + ")")
        if busiest:
            out.append(format_lock_table(None, rows=[(f"  {n}", s) for n, s in busiest[:top]],
                                         detail=True).rsplit("\n", 1)[0])
        out.append("")

        rows, stacks = [], []
        for c in classes:
            for st in c["sites"]:
                rows.append([st["site"], c["class"], f"{st['acquisitions']:,}", f"{st['contended']:,}",
                             _rate(st["contended"], st["acquisitions"]), _ns(st["wait_ns"]),
                             f"{100 * st['wait_share']:.1f}%" if c["wait_ns"] else "-"])
                stacks.append(f"  {c['class']:<8} {' <- '.join(st['stack'])}")
        out.append("call sites (where each lock was taken; share of the lock class's wait)")
        out.extend(format_columns([("site", -34), ("lock", -8), ("acquired", 12), ("contended", 10),
                                   ("rate", 7), ("wait total", 11), ("share", 7)], rows))
        out.append("")
        out.append("call stacks (leaf first, as in the pprof export)")
        out.extend(stacks)
        out.append("")

        out.append("wait times (log2 buckets, one character per doubling; p50/p99 are bucket bounds)")
        hist_rows = []
        waited = sorted((self._row(c, i, n, s) for c, i, n, _, s in self._instances()
                         if c in ("mcentral", "mcache", "sharedcache") and s["contended"]),
                        key=lambda row: (row["wait_ns"], row["contended"]), reverse=True)
        for row in classes + waited[:top]:
            if row["contended"]:
                name = row["name"] if row["instance"] is None else f"  {row['name']}"
                hist_rows.append([name, f"{row['contended']:,}", f"<{_ns(row['wait_p50_ns'])}",
                                  f"<{_ns(row['wait_p99_ns'])}", format_wait_hist(row["wait_hist"], ascii)])
        if hist_rows:
            out.extend(format_columns([("lock", -32), ("waits", 10), ("p50", 9), ("p99", 9),
                                       ("histogram", -40)], hist_rows))
        else:
            out.append("  no acquisition waited")
        out.append("")

        m_rows = []
        for m in self.per_m():
            m_rows.append([f"M{m['id']}", str(m["tid"]), f"{m['allocs']:,}",
                           f"{m['allocs_per_sec'] / 1e6:.2f}", _ns(m["elapsed_ns"]),
                           f"{_ns(m['lock_wait_ns'])} {100 * m['lock_wait_share']:4.1f}%",
                           f"{_ns(m['p_wait_ns'])} {100 * m['p_wait_share']:4.1f}%",
                           f"{100 * m['running_share']:.1f}%", _ns(m["cpu_ns"]),
                           f"{_ns(m['utime_ns'])}/{_ns(m['stime_ns'])}",
                           str(m["voluntary_ctx_switches"]), str(m["involuntary_ctx_switches"])])
        out.append("per M (running = allocating, freeing and collecting: elapsed minus lock and P waits)")
        out.extend(format_columns([("M", -5), ("tid", 7), ("allocs", 12), ("M/s", 7), ("elapsed", 9),
                                   ("lock wait", 16), ("P wait", 16), ("running", 7), ("cpu", 9),
                                   ("user/sys", 17), ("vcsw", 6), ("ivcsw", 6)], m_rows))
        if self.process:
            p = self.process
            out.append(f"process: cpu {_ns(p['utime_ns'])} user / {_ns(p['stime_ns'])} sys, "
                       f"{p['voluntary_ctx_switches']} voluntary / {p['involuntary_ctx_switches']} "
                       f"involuntary context switches over the run")
        return "\n".join(out)

    def __str__(self):
        return self.format()


# -- the command ---------------------------------------------------------------------------------

def register(sub):
    """Adds `goruntime profile` to the cli's subparsers."""
    p = sub.add_parser("profile", help="profile runtime lock contention; text, --json or --pprof",
                       description="Runs the churn kernel and reports every runtime lock: "
                       "acquisitions, contention, waits, holds, call sites; per M: lock waits, "
                       "context switches, CPU time.")
    add_workload_args(p)
    p.add_argument("--top", type=int, default=10, help="lock instances listed one by one (default 10)")
    p.add_argument("--pprof", metavar="FILE", default=None,
                   help="also write a gzipped profile.proto contention profile (go tool pprof)")
    p.set_defaults(func=cmd_profile)


def cmd_profile(args):
    interrupted = None
    bar, tick = run_progress("goruntime profile", args.duration if args.ops is None else None)
    try:
        with bar:
            prof = profile(**runtime_kwargs(args), **run_kwargs(args), progress=tick)
    except KeyboardInterrupt as e:
        prof, interrupted = getattr(e, "partial", None), e
        if prof is None:
            raise
    if args.pprof:
        prof.write_pprof(args.pprof)
        print(f"goruntime profile: wrote {os.path.abspath(args.pprof)} "
              f"({len(prof.samples())} samples); read it with `go tool pprof -top {args.pprof}`",
              file=sys.stderr)
    if args.json:
        print(prof.to_json())
    else:
        print(prof.format(top=args.top))
    if interrupted is not None:
        raise interrupted
