"""The benchmark table's kernels (goruntime/cmd/benchkernels.pyx) and the pieces of
goruntime.cmd.bench that need no timing: they do the work they claim, leave the heap
consistent, and the Go row is skipped with a reason when Go is missing. No test
here asserts a speed: the targets live in `make bench`'s table."""
import shutil

import pytest

from goruntime import Runtime
from goruntime.cmd import bench
from goruntime.cmd.benchkernels import batch_churn, c_churn, c_fresh_touch
from conftest import assert_memstats_invariants


@pytest.mark.parametrize("threads", [1, 2])
def test_c_baselines_do_work(threads):
    for rate, share in (c_churn(threads, [(8, 8, 1.0), (64, 4096, 2.0)], 0.02, live=64),
                        c_fresh_touch(threads, 64, 0.02, mem_per_thread=8 << 20)):
        assert rate > 0 and 0 < share <= 1


def test_c_baseline_refuses_bad_thread_counts():
    with pytest.raises(ValueError):
        c_churn(0, [(64, 64, 1.0)], 0.01)


@pytest.mark.parametrize("procs", [1, 2])
def test_batch_churn_frees_every_batch(procs):
    with Runtime(gomaxprocs=procs, gogc=100) as rt:
        rate, share = batch_churn(rt, procs, 64, 1000, 0.05)
        ms = rt.memstats()
        assert rate > 0 and 0 < share <= 1
        assert ms.Mallocs == ms.Frees + ms.HeapObjects       # only the last sweep is pending
        assert_memstats_invariants(ms, rt)
        rt.gc()
        ms = rt.memstats()
        assert ms.HeapObjects == 0 and ms.Mallocs == ms.Frees > 0
        assert ms.NumGC > 1                              # the heap goal started collections


def test_go_row_is_skipped_without_go(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    built, why = bench._go_binary(tmp_path)
    assert built is None and "not on PATH" in why


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go on PATH")
def test_gochurn_builds_and_reports(tmp_path):
    import json
    import subprocess
    (binary, version), why = bench._go_binary(tmp_path)
    assert why is None and version.startswith("go")
    out = subprocess.run([binary, "-duration=0.02s", "-batch=100"], capture_output=True, text=True,
                         check=True, env={"GOMAXPROCS": "1", "GOGC": "100"}).stdout
    fig = json.loads(out)
    assert fig["objects"] > 0 and fig["objects"] % 100 == 0 and fig["gomaxprocs"] == 1
    assert fig["cpu_ns"] > 0 and fig["elapsed_ns"] > 0


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go on PATH")
def test_gopause_builds_and_reports(tmp_path):
    import json
    import subprocess
    (binary, version), why = bench._go_binary(tmp_path, "gopause")
    assert why is None
    out = subprocess.run([binary, f"-live={4 << 20}", "-duration=0.2s"], capture_output=True, text=True,
                         check=True, env={"GOMAXPROCS": "1", "GOGC": "100"}).stdout
    fig = json.loads(out)
    assert fig["gomaxprocs"] == 1 and fig["collections"] > 0
    assert 0 < fig["median_pause_ns"] <= fig["max_pause_ns"]


def test_model_pause_is_measured_after_collections():
    assert bench._model_pause(1, 8 << 20, "concurrent", 0.2) > 0


def test_bench_rejects_unknown_groups():
    with pytest.raises(SystemExit):
        bench.main(["--only", "nonsense"])


def test_bench_keeps_only_clean_repetitions():
    """A repetition in which a thread got too little CPU is measured again."""
    shares = iter([0.5, 1.0, 0.2, 0.95])
    figs = bench._clean_reps("test", 2, lambda: ({"x": 1}, next(shares)))
    assert figs == [{"x": 1}, {"x": 1}]
    assert any("2 repetition(s) discarded" in note for note in bench._discarded)
