"""`goruntime profile`'s Python API: lock figures, call-site attribution, the pprof export,
and the rendering (the command itself is tested in test_cli.py). No timing assertions:
runs are sized in allocations, and tests that need contention retry until they see some."""
import json
import os
import re
import shutil
import subprocess
from collections import Counter

import pytest

from goruntime.runtime import LOCK_CLASSES, MCACHE_MODES
from goruntime.cmd import profile as profile_module
from goruntime.cmd.main import main
from goruntime.cmd.pprof import decode_profile
from goruntime.cmd.profile import (GO_FILES, GROW, HEAPALLOC, MALLOCGC, SITE_STACKS, Profile,
                               profile, site_stack)
from goruntime.cmd.report import format_wait_hist, hist_quantile_ns
from goruntime.lock import SITE_NAMES, LockSite, sum_lockstats

SITES = set(SITE_NAMES.values())
HIST = 40


def _contended(prof):
    ls = prof.lockstats
    return sum(ls[k]["contended"] for k in LOCK_CLASSES if ls.get(k))


def contended_profile(tries=5, **kw):
    """A profile in which some lock waited: 32 KiB objects (one per span) make every
    allocation refill from its mcentral and grow from the mheap."""
    for attempt in range(tries):
        args = dict(gomaxprocs=2, ms=4, ops=3000 * (attempt + 1), size=32768, live=64,
                    seed=attempt + 1)
        args.update(kw)
        prof = profile(**args)
        if _contended(prof):
            return prof
    pytest.fail(f"no lock waited in {tries} runs")


def _site_of(stack):
    """The call site of a sample: the first frame named like a lock.pyx site."""
    return next(f for f in stack if f in SITES)


# -- pprof against lockstats -----------------------------------------------------------

@pytest.mark.parametrize("mcache", MCACHE_MODES)
def test_pprof_values_match_lockstats(tmp_path, mcache):
    prof = contended_profile(mcache=mcache)
    path = tmp_path / "mutex.pb.gz"
    prof.write_pprof(path)
    dec = decode_profile(path.read_bytes())
    assert dec["sample_type"] == [("contentions", "count"), ("delay", "nanoseconds")]
    assert dec["period_type"] == ("contentions", "count") and dec["period"] == 1
    assert dec["duration_ns"] > 0 and dec["samples"]

    ls = prof.lockstats
    # Every call site of the profile has its own Go stack, not site_stack's one-frame fallback.
    for lock in (c for c in LOCK_CLASSES if ls[c] is not None):
        for site in ls[lock]["sites"]:
            assert (lock, site) in SITE_STACKS, (lock, site)
    by_class, by_site, by_central = Counter(), Counter(), Counter()
    for s in dec["samples"]:
        c, d = s["values"]
        lock = s["labels"]["lock"]
        site = _site_of(s["stack"])
        assert (lock, site) in SITE_STACKS, (lock, site)
        assert tuple(s["stack"]) == site_stack(lock, site, mcache)
        assert s["stack"][0].startswith("runtime.") and c > 0
        by_class[lock, "c"] += c
        by_class[lock, "d"] += d
        by_site[lock, site, "c"] += c
        by_site[lock, site, "d"] += d
        if lock == "mcentral":
            spc = s["labels"]["spanclass"]
            assert s["labels"]["size"] == ls["mcentrals"][spc]["size"]
            by_central[spc, "c"] += c
            by_central[spc, "d"] += d
        else:
            assert "spanclass" not in s["labels"]
        if lock == "mcache":
            assert s["labels"]["p"] in ls["mcaches"]
            by_central["P", s["labels"]["p"], "c"] += c
            by_central["P", s["labels"]["p"], "d"] += d
        else:
            assert "p" not in s["labels"]
    # Every lock class, call site, mcentral and mcache: contentions and delay add up to lockstats.
    for lock in ("mcentral", "mheap", "sched", "mcache"):
        assert by_class[lock, "c"] == ls[lock]["contended"], lock
        assert by_class[lock, "d"] == ls[lock]["wait_ns"], lock
        for site, v in ls[lock]["sites"].items():
            assert by_site[lock, site, "c"] == v["contended"], (lock, site)
            assert by_site[lock, site, "d"] == v["wait_ns"], (lock, site)
        assert sum(v["contended"] for v in ls[lock]["sites"].values()) == ls[lock]["contended"]
        assert sum(v["wait_ns"] for v in ls[lock]["sites"].values()) == ls[lock]["wait_ns"]
    for spc, s in ls["mcentrals"].items():
        assert by_central[spc, "c"] == s["contended"], spc
        assert by_central[spc, "d"] == s["wait_ns"], spc
    for p, s in ls["mcaches"].items():
        assert by_central["P", p, "c"] == s["contended"], p
        assert by_central["P", p, "d"] == s["wait_ns"], p
    assert sum(s["values"][0] for s in dec["samples"]) == _contended(prof) > 0


def test_site_stacks_are_go_call_paths():
    assert site_stack("mcentral", "runtime.(*mcentral).cacheSpan") == (
        "runtime.(*mcentral).cacheSpan", "runtime.(*mcache).refill", "runtime.(*mcache).nextFree",
        MALLOCGC)
    assert site_stack("mheap", GROW)[:3] == ("runtime.(*mheap).alloc", GROW,
                                             "runtime.(*mcentral).cacheSpan")
    assert site_stack("mheap", "runtime.largeAlloc") == ("runtime.(*mheap).alloc",
                                                         "runtime.largeAlloc", MALLOCGC)
    assert site_stack("sched", "runtime.acquirep") == ("runtime.acquirep", "runtime.schedule")
    assert site_stack("mheap", "runtime.(*mheap).freeSpan")[-1] == "runtime.sweepone"
    assert site_stack("mcache", "runtime.(*mcache).lock") == ("runtime.(*mcache).lock", MALLOCGC)
    assert site_stack("mheap", "runtime.somethingNew") == ("runtime.somethingNew",)
    # Without mcaches mallocgc goes to the mcentral itself.
    assert site_stack("mcentral", "runtime.(*mcentral).cacheSpan", "none") == (
        "runtime.(*mcentral).cacheSpan", MALLOCGC)
    assert site_stack("mheap", GROW, "none") == ("runtime.(*mheap).alloc", GROW,
                                                 "runtime.(*mcentral).cacheSpan", MALLOCGC)
    # Every explicit stack is a Go call path from its site: the leaf, but for the heap lock,
    # which mheap.alloc takes on behalf of its caller; and every frame has its Go file.
    for (lock, site), stack in SITE_STACKS.items():
        assert site in SITES, (lock, site)
        assert stack[0] == site or (lock == "mheap" and stack[:2] == (HEAPALLOC, site)), stack
        assert all(f in GO_FILES for f in stack), stack
        assert site_stack(lock, site) == stack


# Runs that between them take every lock at every call site the model has: each mcache
# mode with and without the span-set mcentral, the page cache, large objects, collections.
SITE_RUNS = [dict(mcache=mcache, mcentral=mcentral, pagecache=pagecache)
             for mcache in MCACHE_MODES for mcentral in ("mutex", "spanset")
             for pagecache in (False, True)]


def test_every_site_in_a_profile_has_a_go_stack():
    """A (lock class, call site) pair that a profile reports must have its own entry in
    SITE_STACKS (site_stack would otherwise give it the one-frame stack (site,)); and
    every entry is a pair some run reports."""
    seen = set()
    for modes in SITE_RUNS:
        prof = profile(gomaxprocs=2, ms=3, ops=3000, sizes=[16, 1024, 32768], large_share=0.05,
                       live=64, gogc=25, seed=1, **modes)
        for lock in LOCK_CLASSES:
            for site in (prof.lockstats[lock] or {"sites": {}})["sites"]:
                assert (lock, site) in SITE_STACKS, (modes, lock, site)
                seen.add((lock, site))
    assert seen == set(SITE_STACKS)


def _pprof_top(path, tmp_path, index):
    env = dict(os.environ, HOME=str(tmp_path), GOCACHE=str(tmp_path / "gocache"),
               PPROF_TMPDIR=str(tmp_path))
    out = subprocess.run(["go", "tool", "pprof", "-top", "-symbolize=none", "-unit=ns",
                          "-nodefraction=0", "-edgefraction=0", f"-sample_index={index}", str(path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\d+)(?:ns)?\s+\S+%\s+\S+%\s+(\d+)(?:ns)?\s+\S+%\s+(.+?)\s*$", line)
        if m:
            rows[m.group(3)] = (int(m.group(1)), int(m.group(2)))
    return out.stdout, rows


@pytest.mark.skipif(shutil.which("go") is None, reason="go not on PATH")
def test_go_tool_pprof_top_reads_profile(tmp_path):
    prof = contended_profile()
    path = tmp_path / "mutex.pb.gz"
    prof.write_pprof(path)
    dec = decode_profile(path.read_bytes())
    for index, col, typ in (("contentions", 0, "contentions"), ("delay", 1, "delay")):
        flat, cum = Counter(), Counter()
        for s in dec["samples"]:
            flat[s["stack"][0]] += s["values"][col]
            for f in set(s["stack"]):
                cum[f] += s["values"][col]
        text, rows = _pprof_top(path, tmp_path, index)
        assert f"Type: {typ}" in text
        total = sum(s["values"][col] for s in dec["samples"])
        assert re.search(rf"Showing nodes accounting for {total}(ns)?, 100% of {total}(ns)? total", text), text
        expected = {f: (flat[f], cum[f]) for f in cum if cum[f]}
        assert rows == expected, text


# -- the Python API --------------------------------------------------------------------

def test_profile_argument_checks():
    with pytest.raises(ValueError, match="mcache"):
        profile(mcache="global", ops=10)
    with pytest.raises(ValueError, match="mcentral"):
        profile(mcentral="lockfree", ops=10)
    with pytest.raises(ValueError, match="size"):
        profile(size=64, sizes=[16, 32], ops=10)
    with pytest.raises(SystemExit):
        main(["profile", "--mcache", "global"])



# -- rendering and pprof labels, on made-up figures (the "locked" mode's per-P mcache locks) ---

def _stats(acq, cont, wait, sites, hist=None):
    h = [0] * HIST
    for b, n in (hist or {}).items():
        h[b] = n
    return {"acquisitions": acq, "contended": cont, "wait_ns": wait, "max_wait_ns": wait,
            "hold_ns_sampled": 100, "hold_samples": 1, "hold_ns_est": 64 * 100,
            "max_hold_ns_sampled": 100, "owner_switches": acq // 2, "max_waiters": 1 if cont else 0,
            "wait_hist": h, "sites": {k: {"acquisitions": a, "contended": c, "wait_ns": w}
                                      for k, (a, c, w) in sites.items()}}


def made_up_profile():
    cs = "runtime.(*mcentral).cacheSpan"
    ml = "runtime.(*mcache).lock"
    centrals = {10: dict(_stats(100, 3, 3000, {cs: (100, 3, 3000)}, {10: 3}), sizeclass=5, noscan=False, size=64),
                11: dict(_stats(50, 0, 0, {cs: (50, 0, 0)}), sizeclass=5, noscan=True, size=64),
                12: dict(_stats(0, 0, 0, {}), sizeclass=6, noscan=False, size=80)}
    mcaches = {0: _stats(500, 2, 900, {ml: (500, 2, 900)}, {8: 1, 9: 1}),
               1: _stats(400, 0, 0, {ml: (400, 0, 0)})}
    lockstats = {"mheap": _stats(20, 1, 5000, {GROW: (15, 1, 5000), "runtime.largeAlloc": (5, 0, 0)}, {12: 1}),
                 "sched": _stats(10, 0, 0, {"runtime.acquirep": (10, 0, 0)}),
                 "mcentral": sum_lockstats(centrals.values()), "mcentrals": centrals,
                 "mcache": sum_lockstats(mcaches.values()), "mcaches": mcaches}
    per_m = [{"id": i, "tid": 100 + i, "allocs": 450, "frees": 450, "bytes": 28800,
              "elapsed_ns": 10 ** 7, "cpu_ns": 9 * 10 ** 6, "lock_wait_ns": 10 ** 6, "p_wait_ns": 0,
              "p_waits": 0, "handoffs": 0, "gcs": 1, "voluntary_ctx_switches": 3,
              "involuntary_ctx_switches": 1, "utime_ns": 8 * 10 ** 6, "stime_ns": 10 ** 6}
             for i in range(2)]
    config = {"kernel": "churn", "ms": 2, "gomaxprocs": 2, "duration": None, "ops": 450, "sizes": 64,
              "noscan": 0.5, "live": 16, "large_share": 0.0, "seed": 3, "sizeclasses": "go1.13",
              "gogc": 100, "mcache": "locked", "mcentral": "mutex", "pagecache": False, "mode": "locked"}
    result = {"kernel": "churn", "allocs": 900, "frees": 900, "elapsed": 0.01, "allocs_per_sec": 90000.0,
              "per_m": per_m, "config": config}
    memstats = {"NumGC": 2, "PauseTotalNs": 3000, "PauseNs": [1000, 2000], "Mallocs": 900}
    return Profile(config, result, lockstats, memstats, started_ns=1)


def test_locked_mode_rendering_and_p_labels():
    prof = made_up_profile()
    text = prof.format(ascii=True)
    assert re.search(r"^mcache \(all Ps\)\s+900\s+2\s", text, re.M)
    assert re.search(r"^  mcache\[P0\]\s+500\s+2\s", text, re.M)
    assert re.search(r"^  mcentral\[10\] 64B scan\s+100\s+3\s", text, re.M)
    assert "mcentral[12]" not in text                            # never taken
    assert "runtime.(*mcache).lock <- runtime.mallocgc" in text
    assert "no acquisition waited" not in text
    assert prof.lock_wait_share() == pytest.approx(0.1)
    by_key = {(s.labels, s.stack[0]): (s.contentions, s.delay_ns) for s in prof.samples()}
    assert by_key == {
        ((("lock", "mheap"),), "runtime.(*mheap).alloc"): (1, 5000),
        ((("lock", "mcentral"), ("spanclass", 10), ("size", 64)), "runtime.(*mcentral).cacheSpan"): (3, 3000),
        ((("lock", "mcache"), ("p", 0)), "runtime.(*mcache).lock"): (2, 900),
    }
    dec = decode_profile(prof.pprof())
    assert {s["labels"].get("p") for s in dec["samples"]} == {None, 0}
    assert dec["comments"] == [prof.describe()]
    doc = json.loads(prof.to_json())
    assert [c["name"] for c in doc["lock_classes"]] == ["mcentral (all)", "mheap", "sched", "mcache (all Ps)"]
    assert [r["name"] for r in doc["locks"]] == ["mheap", "sched", "mcentral[10] 64B scan",
                                                "mcentral[11] 64B noscan", "mcache[P0]", "mcache[P1]"]
    mheap = doc["lock_classes"][1]
    assert mheap["sites"][0]["site"] == GROW and mheap["sites"][0]["wait_share"] == 1.0
    assert mheap["mean_wait_ns"] == 5000 and mheap["wait_p50_ns"] == 8192


def test_wait_histogram_rendering():
    h = [0] * HIST
    assert format_wait_hist(h) == "" and hist_quantile_ns(h, 0.5) == 0
    h[10], h[12] = 1, 8                 # 1 wait of 1-2 us, 8 of 4-8 us
    assert format_wait_hist(h).split() == ["1.0us", "▁", "█", "8.2us"]
    assert format_wait_hist(h, ascii=True).split() == ["1.0us", ":", "@", "8.2us"]
    assert len(format_wait_hist(h)) == len(" 1.0us ▁ █ 8.2us")
    assert hist_quantile_ns(h, 0.1) == 2048 and hist_quantile_ns(h, 0.5) == 8192
    h[0] = 1
    assert format_wait_hist(h).startswith("   0ns ")


def test_profile_site_names_come_from_lock_sites():
    assert profile_module.CACHESPAN == SITE_NAMES[LockSite.SITE_CACHESPAN]
    assert profile_module.STOPTHEWORLD == SITE_NAMES[LockSite.SITE_STW]
    assert profile_module.PAGECACHE == SITE_NAMES[LockSite.SITE_PCACHE]
    assert set(SITE_NAMES) == set(LockSite) - {LockSite.NUM_SITES}
    # Every stack the profile knows starts at a lock site.
    for (_, site), stack in profile_module.SITE_STACKS.items():
        assert site in SITE_NAMES.values()
        assert stack[0] in SITE_NAMES.values() or stack[0] == profile_module.HEAPALLOC
