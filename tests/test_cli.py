"""The command line: `goruntime stress`, `goruntime profile` and `goruntime compare`."""
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from goruntime.cmd import compare
from goruntime.cmd.main import main
from goruntime.lock import SITE_NAMES
from goruntime.cmd.pprof import decode_profile
from goruntime.cmd.profile import SITE_STACKS, site_stack

SITES = set(SITE_NAMES.values())
HIST = 40


# -- goruntime stress ------------------------------------------------------------------

@pytest.mark.stress
def test_cli_stress_runs_and_reports(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # --ops: each workload runs once, whatever the machine's load (a duration could end in the first).
    out = subprocess.run([sys.executable, "-m", "goruntime", "stress", "--ops", "20000",
                          "--workload", "larson,prodcons", "--ms", "3", "--gomaxprocs", "2", "--live", "200",
                          "--seed", "5", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["violations"] == 0 and summary["ops"] > 0 and summary["checks"] > 0
    assert [s["workload"] for s in summary["slices"]][:2] == ["larson", "prodcons"]
    assert summary["seed"] == 5 and summary["slices"][0]["seed"] == 5
    assert "[stress 00:00:0" in out.stderr and "checks" in out.stderr   # the progress line


def test_cli_stress_rejects_bad_arguments():
    for args in (["--workload", "nope"], ["--duration", "soon"], ["--ms", "0"]):
        out = subprocess.run([sys.executable, "-m", "goruntime", "stress", *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, (args, out.stderr)


@pytest.mark.stress
def test_cli_failure_exits_nonzero_with_report():
    out = subprocess.run([sys.executable, "-m", "goruntime", "stress", "--duration", "2", "--workload", "larson",
                          "--ms", "3", "--gomaxprocs", "2", "--seed", "9", "--inject", "corrupt", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "FAILED in larson" in out.stderr and "seed:       9" in out.stderr
    assert "overwritten while live" in out.stderr


# -- goruntime profile -----------------------------------------------------------------

def test_cli_profile_json_shape_and_pprof(tmp_path, capsys):
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
    assert names[:3] == ["mcentral (all)", "mheap", "sched"] and set(names[3:]) <= {"mcache (all Ps)", "span sets' spine locks"}
    row_keys = {"name", "class", "instance", "acquisitions", "contended", "contended_rate", "wait_ns",
                "mean_wait_ns", "max_wait_ns", "wait_p50_ns", "wait_p99_ns", "wait_hist", "hold_ns_est",
                "max_hold_ns", "hold_samples", "owner_switches", "max_waiters", "sites"}
    for row in doc["lock_classes"] + doc["locks"]:
        assert set(row) == row_keys
        assert len(row["wait_hist"]) == HIST and sum(row["wait_hist"]) == row["contended"]
        assert 0 <= row["contended"] <= row["acquisitions"]
        assert sum(s["acquisitions"] for s in row["sites"]) == row["acquisitions"]
        for s in row["sites"]:
            assert s["site"] in SITES and (row["class"], s["site"]) in SITE_STACKS, (row["class"], s)
            assert s["stack"] == list(site_stack(row["class"], s["site"]))
    mcentral = doc["lock_classes"][0]
    assert mcentral["acquisitions"] > 0
    assert "runtime.(*mcentral).cacheSpan" in {s["site"] for s in mcentral["sites"]}
    insts = [r for r in doc["locks"] if r["class"] == "mcentral"]
    assert insts and all(isinstance(r["instance"], int) and r["acquisitions"] for r in insts)
    assert sum(r["acquisitions"] for r in insts) == mcentral["acquisitions"]
    assert {r["name"] for r in doc["locks"]} >= {"mheap", "sched"}
    assert len(doc["per_m"]) == 2
    for m in doc["per_m"]:
        assert m["allocs"] == 3000 and m["tid"] > 0 and m["cpu_ns"] > 0 and m["elapsed_ns"] > 0
        # Where the M's time went: the waits, each measured on its own, fit in its lifetime,
        # and running is the rest.
        assert m["lock_wait_ns"] <= m["elapsed_ns"] and m["p_wait_ns"] <= m["elapsed_ns"], m
        assert m["running_ns"] == max(0, m["elapsed_ns"] - m["lock_wait_ns"] - m["p_wait_ns"])
        assert m["lock_wait_share"] == pytest.approx(m["lock_wait_ns"] / m["elapsed_ns"])
        assert m["running_share"] == pytest.approx(m["running_ns"] / m["elapsed_ns"])
        # Its CPU time is its own thread's: no more than its wall-clock time (give or take
        # the moments between reading the two clocks at either end).
        assert m["cpu_ns"] <= m["elapsed_ns"] * 1.001 + 50_000, m
    # The Ms' lock waits are among the waits the locks recorded, and their context switches
    # among the process's over the run.
    assert sum(m["lock_wait_ns"] for m in doc["per_m"]) <= sum(c["wait_ns"] for c in doc["lock_classes"])
    for key in ("voluntary_ctx_switches", "involuntary_ctx_switches"):
        assert sum(m[key] for m in doc["per_m"]) <= doc["process"][key], key
    assert set(doc["gc"]) == {"num_gc", "pause_total_ns", "pause_max_ns"}
    assert doc["memstats"]["Mallocs"] >= 6000
    decode_profile(path.read_bytes())


def test_cli_profile_text_table(capsys):
    main(["profile", "--gomaxprocs", "2", "--ms", "3", "--ops", "2000", "--sizes", "16,64,1024",
          "--top", "2"])
    text = capsys.readouterr().out
    assert text.startswith("goruntime profile: 3 Ms on GOMAXPROCS=2, mcache lockfree, mcentral mutex")
    for section in ("throughput: 6,000 allocations", "lock classes", "lock instances",
                    "call sites", "call stacks (leaf first", "wait times", "per M"):
        assert section in text, section
    # A lock class has a row if it was contended, else the line under the table names it.
    classes = text.split("lock classes")[1].split("\n\n")[0]
    quiet = re.search(r"^never contended, not shown: (.*)$", classes, re.M)
    for name in ("mcentral (all)", "mheap", "sched"):
        assert (re.search(rf"^{re.escape(name)}\s+\d+\s+[1-9]", classes, re.M)
                or (quiet and name in quiet.group(1).split(", "))), name
    assert "mcache (all Ps)" not in text        # no mcache locks in the lock-free mode
    instances = text.split("lock instances")[1].split("\n\n")[0]
    contended = int(re.search(r"(\d+) of the \d+ mcentral/mcache locks taken were contended", instances).group(1))
    assert len(re.findall(r"^  mcentral\[\d+\] \d+B (no)?scan\s+\d+", instances, re.M)) == min(2, contended)  # --top 2
    assert re.search(r"^runtime\.\(\*mcentral\)\.cacheSpan\s+mcentral\s+[\d,]+", text, re.M)
    assert "runtime.(*mcentral).cacheSpan <- runtime.(*mcache).refill" in text
    assert len(re.findall(r"^M[012]\s+\d+\s+2,000 ", text, re.M)) == 3


# -- goruntime compare -----------------------------------------------------------------

def test_cli_compare_json(capsys):
    main(["compare", "--ms", "1,2", "--modes", "lockfree", "--mcentral", "mutex", "--sizes", "64",
          "--ops", "2000", "--repeat", "2", "--json"])
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert doc["complete"] is True
    # Every repeat of every cell, all cells once before any a second time.
    assert [(r["ms"], r["mode"], r["size"], r["allocs"], r["repeat"]) for r in doc["runs"]] == [
        (1, "lockfree", 64, 2000, 0), (2, "lockfree", 64, 4000, 0),
        (1, "lockfree", 64, 2000, 1), (2, "lockfree", 64, 4000, 1)]
    for p in doc["points"]:
        runs = [r["allocs_per_sec"] for r in doc["runs"] if r["ms"] == p["ms"]]
        assert p["runs"] == 2
        assert (p["min_allocs_per_sec"], p["max_allocs_per_sec"]) == (min(runs), max(runs))
        assert p["allocs_per_sec"] == sum(runs) / 2            # the median of two
    assert "[4/4] 64B-2M-lockfree run 2" in cap.err


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_cli_compare_table_and_plot(capsys, tmp_path):
    path = tmp_path / "c.png"
    main(["compare", "--ms", "1,2", "--modes", "lockfree,shared", "--mcentral", "mutex", "--sizes", "16,1024",
          "--ops", "1000", "--gogc", "off", "--repeat", "1", "--plot", str(path), "-q"])
    cap = capsys.readouterr()
    assert "GOGC=off" in cap.out and "throughput" in cap.out
    assert re.search(r"^\s+1024B\s+2\s+\d+\.\d\d\s+\d+\.\d\d$", cap.out, re.M)
    assert cap.err.strip() == f"goruntime compare: wrote {path}"
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_rejects_bad_lists():
    for args in (["--modes", "lockfree,global"], ["--ms", "1,x"], ["--mcentral", "tree"],
                 ["--pagecache", "maybe"], ["--repeat", "0"]):
        with pytest.raises(SystemExit):
            main(["compare", *args])


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_cli_compare_checks_the_plot_path_before_the_sweep(tmp_path, capsys):
    for bad in (tmp_path / "no-such-folder" / "c.png", tmp_path / "c.notapicture"):
        with pytest.raises(SystemExit) as e:
            main(["compare", "--ms", "1", "--modes", "lockfree", "--sizes", "64", "--ops", "100",
                  "--plot", str(bad)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "--plot" in err and "[1/" not in err         # refused before any cell ran


def test_cli_compare_keeps_finished_cells_when_one_fails(monkeypatch, capsys):
    real = compare.run_cell

    def run_cell(cell):
        if cell["ms"] == 2:
            raise MemoryError("injected: the heap cannot grow")
        return real(cell)

    monkeypatch.setattr(compare, "run_cell", run_cell)
    assert main(["compare", "--ms", "1,2", "--modes", "lockfree", "--mcentral", "mutex", "--sizes", "64", "--ops", "500",
                 "--repeat", "1", "--json", "-q"]) == 1
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert doc["complete"] is False and [r["ms"] for r in doc["runs"]] == [1]
    assert "a cell failed: MemoryError: injected" in cap.err and "1 of 2 runs finished" in cap.err


def test_cli_compare_ctrl_c_prints_what_finished_and_exits_130(monkeypatch, capsys):
    real = compare.run_cell

    def run_cell(cell):
        if cell["ms"] == 2:
            raise KeyboardInterrupt
        return real(cell)

    monkeypatch.setattr(compare, "run_cell", run_cell)
    assert main(["compare", "--ms", "1,2", "--modes", "lockfree", "--mcentral", "mutex", "--sizes", "64",
                 "--ops", "500", "--repeat", "1", "-q"]) == 130
    cap = capsys.readouterr()
    assert re.search(r"^\s+64B\s+1\s+\d+\.\d\d$", cap.out, re.M)      # the finished cell's row
    assert "interrupted; 1 of 2 runs finished" in cap.err



# -- goruntime explain -----------------------------------------------------------------

def test_cli_explain_a_small_size_then_its_requests(capsys):
    main(["explain", "24", "--json"])
    e = json.loads(capsys.readouterr().out)
    # Go 1.13 rounds 24 B up to its 32 B class (Go 1.16 added a 24 B class).
    assert (e["path"], e["sizeclass"], e["class_size"], e["waste"], e["spanclass"]) == ("small", 3, 32, 8, 6)
    assert (e["npages"], e["nelems"], e["tail_waste"]) == (1, 256, 0)
    first, second = e["requests"]
    sites = {(m["lock"], m["site"]) for m in first["locks"]}
    # The first span also gives the mheap's sweepSpans set its first block (its spine lock).
    assert sites == {("mcentral", "runtime.(*mcentral).cacheSpan"), ("mcentral", "runtime.(*mcentral).grow"),
                     ("mheap", "runtime.(*mcentral).grow"), ("spanset", "runtime.(*spanSet).spineLock")}
    assert first["arenas_reserved"] == 1
    assert second["locks"] == [] and second["arenas_reserved"] == 0     # an mcache hit
    assert second["addr"] == first["addr"] + 32
    main(["explain", "24", "--go", "1.19", "--json"])
    assert json.loads(capsys.readouterr().out)["class_size"] == 24


def test_cli_explain_tiny_and_large(capsys):
    main(["explain", "8", "--noscan", "--json"])
    tiny = json.loads(capsys.readouterr().out)
    assert (tiny["path"], tiny["class_size"], tiny["spanclass"]) == ("tiny", 16, 5)
    assert tiny["requests"][1]["locks"] == [] and tiny["requests"][1]["addr"] == tiny["requests"][0]["addr"] + 8
    main(["explain", "40000"])
    text = capsys.readouterr().out
    assert "large (> 32 KiB)" in text and "40,960 B (5 pages of 8 KiB), waste 960 B" in text
    assert text.count("took the mheap lock in runtime.largeAlloc") == 2


def test_cli_explain_table_and_bad_sizes(capsys):
    main(["explain", "--sizes", "1-64"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 64
    assert lines[2 + 32].split()[:4] == ["33", "small", "4", "48"]
    for bad in (["explain", "-5"], ["explain", "lots"], ["explain", "--sizes", "9-3"], ["explain"],
                ["explain", "8", "--sizes", "1-2"]):
        with pytest.raises(SystemExit) as e:
            main(bad)
        assert e.value.code == 2, bad


# -- goruntime heapmap -----------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_cli_heapmap_png_and_json(tmp_path, capsys):
    path = tmp_path / "heap.png"
    main(["heapmap", "--gomaxprocs", "2", "--ms", "2", "--ops", "2000", "--sizes", "64,40000",
          "--seed", "1", "--png", str(path), "--json"])
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert path.read_bytes()[:4] == b"\x89PNG" and f"wrote {path}" in cap.err
    assert sum(doc["counts"].values()) == sum(a["npages"] for a in doc["arenas"]) == 8192 * len(doc["arenas"])
    assert doc["counts"]["large"] > 0 and doc["counts"]["mcache"] > 0
    with pytest.raises(SystemExit) as e:
        main(["heapmap", "--ops", "10"])            # neither --png nor --json
    assert e.value.code == 2


# -- progress --------------------------------------------------------------------------

def test_run_calls_progress_while_the_ms_run():
    from goruntime import Runtime
    ticks = []
    with Runtime(gomaxprocs=2) as rt:
        r = rt.run(ms=2, duration=0.3, sizes=64, progress=lambda: ticks.append(1))
        with pytest.raises(TypeError, match="progress must be callable"):
            rt.run(ms=1, ops=10, progress=5)
    assert r.allocs > 0 and len(ticks) >= 3          # every ~50 ms of a 0.3 s run


def test_progress_prints_plain_lines_off_a_terminal():
    import io
    from goruntime.cmd.progress import Progress
    log = io.StringIO()                      # not a terminal: no bar, a line per update here
    with Progress(10, "runs", "job", stream=log, every=0) as bar:
        bar.update(3, "cell a")
        bar.update(4)
    assert log.getvalue().splitlines() == ["job: 3/10 runs, cell a", "job: 4/10 runs"]
