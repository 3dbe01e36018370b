"""One set of CLI flags: run, profile, compare and stress take the same workload flags with the
same defaults (goruntime/cmd/flags.py); the sizes spec of Runtime.run and --sizes; --json
prints only JSON; a closed pipe ends quietly; text tables print bytes with units and leave
out locks never contended. Every workload here runs at most 0.3 s."""
import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_memstats_invariants
from goruntime import MCACHE_MODES, MCENTRAL_MODES, Runtime
from goruntime.cmd import flags
from goruntime.cmd.main import main, parser
from goruntime.cmd.report import format_bytes, format_lock_table
from stress import runner

ROOT = Path(__file__).resolve().parents[1]
GORUNTIME = [sys.executable, "-m", "goruntime"]
WORKLOAD_COMMANDS = ("run", "profile", "compare", "stress")
# A small, quick workload for the commands that run one.
QUICK = ["--gomaxprocs", "2", "--ms", "2", "--ops", "300", "--live", "64", "--seed", "1"]


def _subparsers():
    p = parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def _shared(p):
    """dest -> action of the shared flags on parser p."""
    return {a.dest: a for a in p._actions if a.dest in flags.DEFAULTS}


def _run(args, **kw):
    return subprocess.run(GORUNTIME + args, capture_output=True, text=True, timeout=120, cwd=ROOT, **kw)


# -- the same flags, the same defaults ---------------------------------------------------------

def test_every_workload_subcommand_has_the_shared_flags():
    subs = _subparsers()
    stress_main = argparse.ArgumentParser()
    runner.add_arguments(stress_main)           # `python -m stress`
    parsers = {name: subs[name] for name in WORKLOAD_COMMANDS}
    parsers["python -m stress"] = stress_main
    expected = {dest: set(a.option_strings) for dest, a in _shared(subs["run"]).items()}
    assert set(expected) == set(flags.DEFAULTS)
    assert expected["sizes"] == {"--sizes", "--size"} and "--ops" in expected["ops"]
    for name, p in parsers.items():
        actions = _shared(p)
        assert set(actions) == set(flags.DEFAULTS), name
        for dest, a in actions.items():
            want = expected[dest]
            if name == "compare" and dest == "mcache":
                want = want | {"--modes"}       # compare's old name for its list of mcache modes
            if name == "compare" and dest == "pagecache":
                want = {"--pagecache"}          # a list there: --pagecache off,on
            assert set(a.option_strings) == want, (name, dest)
    # Mode choices come from the model's one list of names.
    for name in ("run", "profile", "stress"):
        actions = _shared(subs[name])
        assert tuple(actions["mcache"].choices) == MCACHE_MODES
        assert tuple(actions["mcentral"].choices) == MCENTRAL_MODES


def test_defaults_are_the_same_but_where_the_help_says_why():
    subs = _subparsers()
    defaults = {name: vars(subs[name].parse_args([])) for name in WORKLOAD_COMMANDS}
    for name in ("run", "profile"):
        assert {k: defaults[name][k] for k in flags.DEFAULTS} == flags.DEFAULTS, name
    # compare: its sweep dimensions take lists; every other flag as in run.
    differ = {k for k in flags.DEFAULTS if defaults["compare"][k] != flags.DEFAULTS[k]}
    assert differ == set(flags.SWEEP_DEFAULTS)
    assert {k: defaults["compare"][k] for k in flags.SWEEP_DEFAULTS} == flags.SWEEP_DEFAULTS
    # stress: a run's total time, a live set that fits many Ms, and the Runtime's modes
    # and the noscan share drawn per slice unless given.
    differ = {k for k in flags.DEFAULTS if defaults["stress"][k] != flags.DEFAULTS[k]}
    assert differ == {"duration", "live", "noscan", "mcache", "mcentral", "pagecache", "sweep", "sizeclasses",
                      "gogc"}
    help_of = {a.dest: a.help for a in subs["stress"]._actions}
    for dest in differ:
        assert defaults["stress"][dest] == runner.STRESS_DEFAULTS[dest][0]
        assert runner.STRESS_DEFAULTS[dest][1] in help_of[dest], dest
    assert defaults["stress"]["duration"] == 60.0


def test_duration_and_ops_are_exclusive_everywhere(capsys):
    for name in WORKLOAD_COMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--duration", "1", "--ops", "10"])
        assert info.value.code == 2
        assert "not allowed with argument" in capsys.readouterr().err


def test_help_lists_every_subcommand():
    out = _run(["--help"])
    assert out.returncode == 0
    names = re.findall(r"^    (\w+)", out.stdout.split("COMMAND\n", 2)[-1], re.M)
    assert sorted(names) == sorted(main.__globals__["parser"]()._subparsers._group_actions[0].choices)
    for name in ("run", "sizeclasses", "profile", "compare", "stress", "explain", "heapmap"):
        # the name, then a one-line description on its line or the next
        assert re.search(rf"^ +{name}(  +| *\n +)[a-z][\w-]+ ", out.stdout, re.M), name


# -- sizes --------------------------------------------------------------------------------------

def test_sizes_above_32k_take_the_large_path_from_the_cli():
    out = _run(["run", *QUICK, "--sizes", "40000", "--json"])
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["result"]["config"]["sizes"] == 40000
    assert doc["memstats"]["LargeAllocs"] == doc["memstats"]["Mallocs"] == 600
    assert doc["paths"]["large (mheap, > 32 KiB)"] == 600


def test_large_sizes_in_run_keep_the_memstats_invariants():
    with Runtime(gomaxprocs=2, gogc=100) as rt:
        r = rt.run(ms=2, ops=400, sizes=[64, 32768, 32769, 100000], weights=[4, 1, 1, 2], live=32, seed=3)
        assert r.frees == r.allocs == 800
        ms = rt.memstats()
        assert_memstats_invariants(ms, rt)
        assert ms.Mallocs == 800 and 0 < ms.LargeAllocs < 800
        r2 = rt.run(ms=2, ops=200, sizes=range(32000, 33001), live=16, seed=4)    # both paths
        assert r2.config["sizes"] == {"range": [32000, 33000]}
        rt.gc()
        ms = rt.memstats()
        assert_memstats_invariants(ms, rt)
        assert ms.HeapObjects == 0 and ms.HeapInuse == 0 and ms.Mallocs == ms.Frees == 1200


def test_size_specs_and_their_config():
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        assert rt.run(ms=1, ops=20, sizes=64).config["sizes"] == 64
        assert rt.run(ms=1, ops=20, sizes=range(16, 1025)).config["sizes"] == {"range": [16, 1024]}
        # A tuple is a list of sizes, never a range.
        cfg = rt.run(ms=1, ops=20, sizes=(16, 64)).config
        assert cfg["sizes"] == {"sizes": [16, 64], "weights": [1.0, 1.0]}
        cfg = rt.run(ms=1, ops=20, sizes=[8, 16, 64], weights=[5, 3, 1]).config
        assert cfg["sizes"] == {"sizes": [8, 16, 64], "weights": [5.0, 3.0, 1.0]}


def test_range_spelling_round_trips_through_the_json_config():
    out = _run(["run", *QUICK, "--sizes", "16-1024", "--json"])
    assert out.returncode == 0, out.stderr
    sizes = json.loads(out.stdout)["result"]["config"]["sizes"]
    assert sizes == {"range": [16, 1024]}
    assert flags.format_sizes(sizes) == "16-1024"
    assert flags.parse_sizes(flags.format_sizes(sizes)) == (range(16, 1025), None)
    weighted = {"sizes": [8, 16, 64], "weights": [5.0, 3.0, 1.0]}
    assert flags.format_sizes(weighted) == "8:5,16:3,64"
    assert flags.parse_sizes("8:5,16:3,64") == ([8, 16, 64], [5.0, 3.0, 1.0])
    assert flags.parse_sizes("64") == (64, None)


@pytest.mark.parametrize("kwargs,match", [
    ({"sizes": range(16, 65), "weights": [1] * 49}, "weights"),
    ({"sizes": 64, "weights": [1]}, "weights"),
    ({"sizes": 0}, "sizes"),
    ({"sizes": (1 << 30) + 1}, "sizes"),
    ({"sizes": [16, 0]}, "sizes"),
    ({"sizes": range(0, 16)}, "sizes"),
    ({"sizes": range(16, 1025, 16)}, "sizes"),
    ({"sizes": range(64, 16)}, "sizes"),
])
def test_bad_size_specs_raise_value_error(kwargs, match):
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        with pytest.raises(ValueError, match=match):
            rt.run(ms=1, ops=10, **kwargs)
        with pytest.raises(TypeError, match="sizes"):
            rt.run(ms=1, ops=10, sizes=True)
        assert rt.memstats().Mallocs == 0


@pytest.mark.parametrize("command", WORKLOAD_COMMANDS)
@pytest.mark.parametrize("value", ["0", "16-8", "8:x", "8:-1,16", "64k", str((1 << 30) + 1)])
def test_bad_sizes_flag_is_a_usage_error(capsys, command, value):
    if command == "compare" and "-" in value:
        value = "16,x"                          # compare takes one size per cell
    with pytest.raises(SystemExit) as info:
        main([command, "--sizes", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err
    assert re.search(r"^goruntime \w+: error: argument --sizes/--size: bad (value|list) ", err, re.M), err


# -- --json and pipes ---------------------------------------------------------------------------

def test_json_pipes_into_json_tool():
    producer = subprocess.Popen(GORUNTIME + ["run", "--duration", "0.2", "--gomaxprocs", "2", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    tool = subprocess.run([sys.executable, "-m", "json.tool"], stdin=producer.stdout,
                          capture_output=True, text=True, timeout=120)
    producer.stdout.close()
    assert producer.wait(timeout=120) == 0, producer.stderr.read()
    assert tool.returncode == 0, tool.stderr
    assert json.loads(tool.stdout)["result"]["config"]["duration"] == 0.2


@pytest.mark.parametrize("command,args", [
    ("profile", QUICK + ["--pprof", os.devnull]),
    ("compare", ["--gomaxprocs", "2", "--ms", "1,2", "--mcache", "lockfree", "--mcentral", "mutex",
                 "--sizes", "64", "--ops", "300", "--live", "64"]),
    ("stress", QUICK + ["--workload", "larson", "--live", "50"]),
])
def test_json_is_alone_on_stdout(command, args):
    out = _run([command, *args, "--json"])
    assert out.returncode == 0, out.stderr
    json.loads(out.stdout)                      # exactly one document, nothing else
    assert out.stderr.strip()                   # the notes and progress lines went here


def test_closed_pipe_after_head_ends_quietly():
    producer = subprocess.Popen(GORUNTIME + ["run", "--duration", "0.2", "--gomaxprocs", "2", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    head = subprocess.run(["head", "-1"], stdin=producer.stdout, capture_output=True, text=True, timeout=120)
    producer.stdout.close()
    code = producer.wait(timeout=120)
    err = producer.stderr.read().decode()
    assert head.stdout == "{\n"
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""
    assert code == 141          # the JSON is larger than the pipe: the writes failed


@pytest.mark.parametrize("args", [
    ["run", *QUICK],
    ["profile", *QUICK],
    ["compare", "--ms", "1", "--mcache", "lockfree", "--mcentral", "mutex", "--sizes", "64", "--ops", "300", "-q"],
    ["stress", *QUICK, "--workload", "larson", "--live", "50", "--quiet"],
    ["sizeclasses"],
])
def test_closed_stdout_exits_quietly(args):
    p = subprocess.Popen(GORUNTIME + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.close()                            # the reader is gone before the first write
    _, err = p.communicate(timeout=120)
    assert p.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err


# -- the shared flags reach the runs --------------------------------------------------------------

def test_run_takes_modes_and_ops(capsys):
    main(["run", *QUICK, "--mcache", "none", "--mcentral", "spanset", "--pagecache", "--gogc", "off",
          "--go", "1.19", "--noscan", "0", "--sizes", "16-64", "--json"])
    doc = json.loads(capsys.readouterr().out)
    cfg = doc["result"]["config"]
    assert (cfg["mcache"], cfg["mcentral"], cfg["pagecache"]) == ("none", "spanset", True)
    assert (cfg["ops"], cfg["duration"], cfg["gogc"], cfg["sizeclasses"]) == (300, None, None, "go1.19")
    assert doc["result"]["allocs"] == 600 and doc["memstats"]["TinyAllocs"] == 0
    assert cfg["large_share"] == 0.0             # with --sizes: no large objects unless asked


def test_default_mix_brings_its_large_share(capsys):
    main(["run", *QUICK, "--json"])
    cfg = json.loads(capsys.readouterr().out)["result"]["config"]
    assert cfg["large_share"] == flags.DEFAULT_LARGE_SHARE
    assert cfg["sizes"] == {"sizes": flags.DEFAULT_SIZES, "weights": [float(w) for w in flags.DEFAULT_WEIGHTS]}


def test_compare_takes_the_shared_flags(capsys):
    main(["compare", "--gomaxprocs", "2", "--ms", "1", "--modes", "none", "--mcentral", "mutex",
          "--sizes", "40000", "--ops", "200", "--live", "16", "--noscan", "0.25", "--seed", "9",
          "--repeat", "1", "--json", "-q"])
    (r,) = json.loads(capsys.readouterr().out)["runs"]
    assert (r["mcache"], r["size"], r["ops"], r["live"], r["noscan"], r["seed"]) == ("none", 40000, 200, 16, 0.25, 9)
    assert r["allocs"] == 200 and r["large_share"] == 0.0


def test_stress_takes_the_shared_flags():
    out = _run(["stress", *QUICK, "--workload", "larson", "--live", "50", "--mcache", "locked",
                "--mcentral", "spanset", "--pagecache", "--sweep", "stw", "--gogc", "off", "--go", "1.19",
                "--noscan", "0.25", "--sizes", "40000", "--json", "--quiet"])
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (s,) = doc["slices"]
    assert s["runtime"] == {"gomaxprocs": 2, "gogc": None, "sizeclasses": "go1.19", "mcache": "locked",
                            "mcentral": "spanset", "pagecache": True, "sweep": "stw"}
    assert s["noscan"] == 0.25 and doc["ms"] == 2 and doc["ops_per_m"] == 300
    assert s["ops"] >= 2 * 2 * 300              # allocations and frees of 2 Ms


def test_stress_mix_from_the_shared_flags():
    assert runner.stress_mix() is None          # the kernels' default mix
    assert runner.stress_mix((64, None)) == ((64, 64, 1.0),)
    assert runner.stress_mix((range(16, 1025), None)) == ((16, 1024, 1.0),)
    assert runner.stress_mix(([8, 64], [3.0, 1.0]), 0.5) == ((8, 8, 3.0), (64, 64, 1.0), (32769, 262144, 4.0))
    mix = runner.stress_mix(None, 0.0)          # the default mix without its large objects
    assert mix and all(hi <= 32768 for _, hi, _ in mix)


# -- text tables ----------------------------------------------------------------------------------

def test_bytes_print_with_units(capsys):
    assert [format_bytes(n) for n in (512, 12595, 12 << 20, 3 << 30)] == ["512 B", "12.3 KiB", "12.0 MiB", "3.0 GiB"]
    main(["run", *QUICK])
    text = capsys.readouterr().out
    for field in ("HeapAlloc", "TotalAlloc", "HeapSys", "HeapInuse", "NextGC"):
        assert re.search(rf"^  {field} +\d+(\.\d)? (B|KiB|MiB|GiB)$", text, re.M), field
    assert re.search(r"^  Mallocs +600$", text, re.M)     # counts stay counts


def _lock(acq, cont, **extra):
    return dict({"acquisitions": acq, "contended": cont, "wait_ns": 100 * cont, "max_wait_ns": 50 * cont,
                 "hold_ns_est": 10 * acq, "max_hold_ns_sampled": 5, "owner_switches": 1, "max_waiters": 1,
                 "wait_hist": [0] * 40, "sites": {}}, **extra)


def test_lock_table_leaves_out_locks_never_contended():
    mcentrals = {4: _lock(100, 3, size=16, noscan=False), 5: _lock(50, 0, size=16, noscan=True),
                 6: _lock(0, 0, size=24, noscan=False)}
    stats = {"mheap": _lock(40, 0), "sched": _lock(10, 2), "mcentral": _lock(150, 3),
             "mcentrals": mcentrals, "mcache": _lock(0, 0), "mcaches": {0: _lock(0, 0)}}
    text = format_lock_table(stats)
    names = [line[:32].strip() for line in text.splitlines()[2:] if re.match(r" +\d+ +\d+ ", line[32:])]
    assert names == ["mcentral (all)", "mcentral[4] 16B scan", "sched"]
    assert "never contended, not shown: mheap, 1 of 2 mcentrals taken" in text
    stats["sched"] = _lock(10, 0)
    stats["mcentral"] = _lock(150, 0)
    mcentrals[4] = _lock(100, 0, size=16, noscan=False)
    assert "no lock was contended" in format_lock_table(stats)


# -- no import cycle ------------------------------------------------------------------------------

def test_nothing_imports_main():
    code = ("import sys, goruntime.cmd.flags, goruntime.cmd.profile, goruntime.cmd.compare, "
            "goruntime.cmd.report, goruntime.cmd.pprof, stress.runner; "
            "assert 'goruntime.cmd.main' not in sys.modules, 'main imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    sources = list((ROOT / "goruntime").rglob("*.py")) + list((ROOT / "stress").rglob("*.py"))
    importers = [p.name for p in sources if re.search(r"cmd\.main|cmd import main", p.read_text())]
    assert importers == ["__main__.py"]
