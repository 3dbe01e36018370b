"""`goruntime profile`: lock figures, call-site attribution, the pprof export, JSON and text
output, and the evidence that contention is where it must be and nowhere it must
not be. No timing assertions: runs are sized in allocations, and tests that need
contention retry until they see some."""
import json
import os
import re
import shutil
import subprocess
from collections import Counter

import pytest

from goruntime import Runtime

from goruntime.cmd.main import main
from goruntime.lock import SITE_NAMES
from goruntime.cmd.pprof import decode_profile
from goruntime.cmd.profile import (GROW, MALLOCGC, Profile, profile, site_stack)
from goruntime.cmd.report import format_wait_hist, hist_quantile_ns
from goruntime.lock import sum_lockstats

SITES = set(SITE_NAMES.values())
HIST = 40


def _contended(prof):
    ls = prof.lockstats
    return sum(ls[k]["contended"] for k in ("mcentral", "mheap", "sched", "mcache") if ls.get(k))


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


# -- pprof against lockstats --------------------------------------------------------------------

@pytest.mark.parametrize("mcache", ["lockfree", "locked", "none"])
def test_pprof_values_match_lockstats(tmp_path, mcache):
    prof = contended_profile(mcache=mcache)
    path = tmp_path / "mutex.pb.gz"
    prof.write_pprof(path)
    dec = decode_profile(path.read_bytes())
    assert dec["sample_type"] == [("contentions", "count"), ("delay", "nanoseconds")]
    assert dec["period_type"] == ("contentions", "count") and dec["period"] == 1
    assert dec["duration_ns"] > 0 and dec["samples"]

    ls = prof.lockstats
    by_class, by_site, by_central = Counter(), Counter(), Counter()
    for s in dec["samples"]:
        c, d = s["values"]
        lock = s["labels"]["lock"]
        site = _site_of(s["stack"])
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
    assert site_stack("mheap", "runtime.(*mheap).freeSpan")[-1] == "runtime.gcStart"
    assert site_stack("mcache", "runtime.(*mcache).lock") == ("runtime.(*mcache).lock", MALLOCGC)
    assert site_stack("mheap", "runtime.somethingNew") == ("runtime.somethingNew",)
    # Without mcaches mallocgc goes to the mcentral itself.
    assert site_stack("mcentral", "runtime.(*mcentral).cacheSpan", "none") == (
        "runtime.(*mcentral).cacheSpan", MALLOCGC)
    assert site_stack("mheap", GROW, "none") == ("runtime.(*mheap).alloc", GROW,
                                                 "runtime.(*mcentral).cacheSpan", MALLOCGC)
    for site in SITES:                  # every site the core can report has a stack
        for lock in ("mcentral", "mheap", "sched", "mcache"):
            assert site_stack(lock, site) and all(f.startswith("runtime.") for f in site_stack(lock, site))


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


# -- the Python API and the command ---------------------------------------------------------------

def test_cli_json_shape_and_pprof(tmp_path, capsys):
    path = tmp_path / "p.pb.gz"
    main(["profile", "--gomaxprocs", "2", "--ms", "2", "--ops", "3000", "--size", "1024",
          "--seed", "7", "--json", "--pprof", str(path)])
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert str(path) in cap.err
    assert set(doc) >= {"config", "throughput", "lock_wait_share", "lock_classes", "locks",
                        "per_m", "gc", "process", "memstats", "wait_hist_buckets"}
    cfg = doc["config"]
    assert (cfg["mcache"], cfg["mcentral"], cfg["pagecache"], cfg["mode"]) == ("lockfree", "mutex", False, "lockfree")
    assert cfg["ms"] == 2 and cfg["ops"] == 3000 and cfg["sizes"] == 1024 and cfg["seed"] == 7
    assert cfg["large_share"] == 0.0
    assert doc["throughput"]["allocs"] == 6000 and doc["throughput"]["allocs_per_sec"] > 0
    names = [c["name"] for c in doc["lock_classes"]]
    assert names[:3] == ["mcentral (all)", "mheap", "sched"] and set(names[3:]) <= {"mcache (all Ps)"}
    row_keys = {"name", "class", "instance", "acquisitions", "contended", "contended_rate", "wait_ns",
                "mean_wait_ns", "max_wait_ns", "wait_p50_ns", "wait_p99_ns", "wait_hist", "hold_ns_est",
                "max_hold_ns", "hold_samples", "owner_switches", "max_waiters", "sites"}
    for row in doc["lock_classes"] + doc["locks"]:
        assert set(row) == row_keys
        assert len(row["wait_hist"]) == HIST and sum(row["wait_hist"]) == row["contended"]
        assert 0 <= row["contended"] <= row["acquisitions"]
        assert sum(s["acquisitions"] for s in row["sites"]) == row["acquisitions"]
        for s in row["sites"]:
            assert s["site"] in SITES and s["stack"] == list(site_stack(row["class"], s["site"]))
    mcentral = doc["lock_classes"][0]
    assert mcentral["acquisitions"] > 0
    assert "runtime.(*mcentral).cacheSpan" in {s["site"] for s in mcentral["sites"]}
    insts = [r for r in doc["locks"] if r["class"] == "mcentral"]
    assert insts and all(isinstance(r["instance"], int) and r["acquisitions"] for r in insts)
    assert sum(r["acquisitions"] for r in insts) == mcentral["acquisitions"]
    assert {r["name"] for r in doc["locks"]} >= {"mheap", "sched"}
    assert len(doc["per_m"]) == 2
    for m in doc["per_m"]:
        assert m["allocs"] == 3000 and m["tid"] > 0 and m["cpu_ns"] > 0
        assert m["voluntary_ctx_switches"] >= 0 and m["involuntary_ctx_switches"] >= 0
        assert m["lock_wait_ns"] + m["p_wait_ns"] + m["running_ns"] >= m["elapsed_ns"] > 0
        assert 0 <= m["lock_wait_share"] <= 1 and 0 <= m["running_share"] <= 1
    assert set(doc["gc"]) == {"num_gc", "pause_total_ns", "pause_max_ns"}
    assert doc["memstats"]["Mallocs"] >= 6000
    decode_profile(path.read_bytes())


def test_cli_text_table(capsys):
    main(["profile", "--gomaxprocs", "2", "--ms", "3", "--ops", "2000", "--sizes", "16,64,1024",
          "--top", "2"])
    text = capsys.readouterr().out
    assert text.startswith("goruntime profile: 3 Ms on GOMAXPROCS=2, mcache lockfree, mcentral mutex")
    for section in ("throughput: 6,000 allocations", "lock classes", "lock instances",
                    "call sites", "call stacks (leaf first", "wait times", "per M"):
        assert section in text, section
    assert re.search(r"^mcentral \(all\)\s+\d+", text, re.M)
    assert re.search(r"^mheap\s+\d+", text, re.M) and re.search(r"^sched\s+\d+", text, re.M)
    assert "mcache (all Ps)" not in text        # no mcache locks in the lock-free mode
    instances = text.split("lock instances")[1].split("\n\n")[0]
    assert len(re.findall(r"^  mcentral\[\d+\] \d+B (no)?scan\s+\d+", instances, re.M)) == 2  # --top 2
    assert re.search(r"^runtime\.\(\*mcentral\)\.cacheSpan\s+mcentral\s+[\d,]+", text, re.M)
    assert "runtime.(*mcentral).cacheSpan <- runtime.(*mcache).refill" in text
    assert len(re.findall(r"^M[012]\s+\d+\s+2,000 ", text, re.M)) == 3


def test_profile_argument_checks():
    with pytest.raises(ValueError, match="mcache"):
        profile(mcache="shared", ops=10)
    with pytest.raises(ValueError, match="mcentral"):
        profile(mcentral="lockfree", ops=10)
    with pytest.raises(ValueError, match="size"):
        profile(size=64, sizes=[16, 32], ops=10)
    with pytest.raises(SystemExit):
        main(["profile", "--mcache", "shared"])



# -- rendering and pprof labels, on made-up figures (the "locked" mode's per-P mcache locks) ------

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


# -- evidence: contention where it must be, none where it must not ----------------------------------

def _held_p(rt):
    held = [p for p in rt.ps if p.status.name == "P_SYSCALL"]
    assert len(held) == 1
    return held[0]


@pytest.mark.parametrize("size", [16, 64, 1024])
def test_lockfree_warm_loop_takes_no_mcentral_lock(size):
    """After a warm-up malloc caches a span, allocations that fit in it never lock."""
    with Runtime(gomaxprocs=2, gogc=None, mcache="lockfree") as rt:
        with rt.proc():
            first = rt.malloc(size)
            span = next(s for s in _held_p(rt).mcache.spans()
                        if s["base"] <= first < s["base"] + s["npages"] * 8192)
            room = span["nelems"] - span["allocCount"]
            assert room > 0
            before = rt.lockstats()
            xs = [rt.malloc(size) for _ in range(room)]
            after = rt.lockstats()
        assert all(span["base"] <= x < span["base"] + span["npages"] * 8192 for x in xs)
        assert after["mcentral"]["acquisitions"] == before["mcentral"]["acquisitions"]
        assert after["mheap"]["acquisitions"] == before["mheap"]["acquisitions"]
        if after.get("mcache") is not None:
            assert after["mcache"]["acquisitions"] == 0
        assert before["mcentral"]["acquisitions"] > 0      # the warm-up refill did lock


def test_mcache_none_two_ms_contend_on_mcentral():
    """Without per-P caches every allocation goes to the mcentral: with 2 Ms on 2 Ps
    allocating one size, its lock is taken and, sooner or later, contended."""
    for attempt in range(6):
        with Runtime(gomaxprocs=2, mcache="none") as rt:
            r = rt.run(ms=2, ops=20000 * (attempt + 1), sizes=4096, live=256, seed=attempt + 1)
            c = rt.lockstats()["mcentral"]
        assert c["acquisitions"] >= r.allocs > 0
        if c["contended"] > 0:
            break
    assert c["contended"] > 0, c


@pytest.mark.parametrize("mcache", ["lockfree", "none"])
def test_spanset_takes_no_mcentral_mutex(mcache):
    with Runtime(gomaxprocs=2, mcache=mcache, mcentral="spanset") as rt:
        r = rt.run(ms=3, ops=5000, sizes=[16, 256, 4096, 32768], noscan=0.5, live=256, seed=5)
        rt.gc()
        ls = rt.lockstats()
        ms = rt.memstats()
    assert r.allocs == 15000 and ms.Mallocs >= r.allocs and ms.NumGC >= 1
    assert ls["mcentral"]["acquisitions"] == 0, ls["mcentral"]["sites"]
    assert all(s["acquisitions"] == 0 for s in ls["mcentrals"].values())
