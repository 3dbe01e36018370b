"""gctrace: Runtime(gctrace=True) and `goruntime run --gctrace` print Go's GODEBUG=gctrace=1
line for each collection on the process's fd 2. One regular expression parses the model's
lines in both formats (go1.13, and go1.19 with stacks and globals) and real Go's."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from goruntime import Runtime
from goruntime.mgc import format_gctrace

from conftest import ROOT, run_python

_MS = r"\d+(?:\.\d+)?"
# gc N @S.SSSs P%: clock ms (sweep termination + mark + mark termination), cpu ms (sweep
# termination + assist/background/idle mark + mark termination), heap at start -> at mark
# end -> live, goal, [stacks, globals,] Ps, and " (forced)" for a runtime.GC().
GCTRACE_RE = re.compile(
    r"gc (?P<num>\d+) @(?P<at>\d+\.\d{3})s (?P<pct>\d+)%: "
    rf"(?P<clock_sweepterm>{_MS})\+(?P<clock_mark>{_MS})\+(?P<clock_markterm>{_MS}) ms clock, "
    rf"(?P<cpu_sweepterm>{_MS})\+(?P<cpu_assist>{_MS})/(?P<cpu_bg>{_MS})/(?P<cpu_idle>{_MS})"
    rf"\+(?P<cpu_markterm>{_MS}) ms cpu, "
    r"(?P<heap0>\d+)->(?P<heap1>\d+)->(?P<heap2>\d+) MB, (?P<goal>\d+) MB goal, "
    r"(?:(?P<stacks>\d+) MB stacks, (?P<globals>\d+) MB globals, )?"
    r"(?P<procs>\d+) P(?P<forced> \(forced\))?")


def parse(line):
    """One gctrace line's fields (ints, floats for the times; forced a bool); fails the test
    if the line does not parse."""
    m = GCTRACE_RE.fullmatch(line)
    assert m, f"not a gctrace line: {line!r}"
    d = {k: v for k, v in m.groupdict().items()}
    out = {"forced": d.pop("forced") is not None}
    for k, v in d.items():
        if v is None:
            out[k] = None
        elif k.startswith(("clock", "cpu")) or k == "at":
            out[k] = float(v)
        else:
            out[k] = int(v)
    return out


def parse_all(stderr):
    lines = stderr.splitlines()
    assert lines, "no gctrace line"
    return [parse(line) for line in lines]


# -- the formatter ---------------------------------------------------------------------------

def _line(clock=(0, 0, 0), cpu=(0, 0, 0, 0, 0), **kw):
    args = dict(num=1, since_ns=0, util=0, clock=clock, cpu=cpu, heap=(0, 0, 0), goal=0, procs=2)
    args.update(kw)
    return format_gctrace(**args)


@pytest.mark.parametrize("ns,text", [
    (0, "0"), (999, "0"), (1000, "0.001"), (53_000, "0.053"), (99_999, "0.099"), (100_000, "0.10"),
    (530_000, "0.53"), (999_999, "0.99"), (1_000_000, "1.0"), (5_300_000, "5.3"),
    (9_999_999, "9.9"), (10_000_000, "10"), (123_456_789, "123"), (4_000_000_000, "4000"),
])
def test_times_are_formatted_as_go_formats_them(ns, text):
    """Go's fmtNSAsMS: two significant digits, at most three decimals, whole ms from 10 ms."""
    line = _line(clock=(ns, 0, 0), cpu=(0, 0, 0, 0, ns))
    assert line.startswith(f"gc 1 @0.000s 0%: {text}+0+0 ms clock, 0+0/0/0+{text} ms cpu, ")


def test_line_fields_in_go_order():
    line = _line(num=4, since_ns=317_400_000, util=1, clock=(10_000, 530_000, 3_000),
                 cpu=(40_000, 260_000, 510_000, 680_000, 15_000), heap=(4 << 20, (4 << 20) + 5, 1 << 20),
                 goal=5 << 20)
    assert line == ("gc 4 @0.317s 1%: 0.010+0.53+0.003 ms clock, 0.040+0.26/0.51/0.68+0.015 ms cpu, "
                    "4->4->1 MB, 5 MB goal, 2 P")
    assert parse(line)["heap1"] == 4
    line = _line(num=12, since_ns=12_345_678_901, util=37, heap=(3 << 20, 3 << 20, (1 << 20) - 1),
                 goal=(5 << 20) - 1, procs=8, go119=True, forced=True)
    assert line == ("gc 12 @12.345s 37%: 0+0+0 ms clock, 0+0/0/0+0 ms cpu, 3->3->0 MB, 4 MB goal, "
                    "0 MB stacks, 0 MB globals, 8 P (forced)")
    f = parse(line)
    assert (f["num"], f["at"], f["pct"], f["stacks"], f["globals"], f["procs"], f["forced"]) == (
        12, 12.345, 37, 0, 0, 8, True)
    assert parse(_line())["stacks"] is None


# -- arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["yes", 1, 0, None, 1.0])
def test_gctrace_must_be_a_bool(bad):
    with pytest.raises(TypeError, match="gctrace"):
        Runtime(gomaxprocs=1, gctrace=bad)


def test_gctrace_takes_bools():
    for value in (False, True, np.bool_(True)):
        with Runtime(gomaxprocs=1, gctrace=value) as rt:
            assert rt.gctrace is bool(value)


# -- the model's lines -----------------------------------------------------------------------

_CHILD = """
import json, sys
from goruntime import Runtime

version, gctrace = sys.argv[1], sys.argv[2] == "on"
forced = []                                     # per forced gc: NextGC before, HeapAlloc after
with Runtime(gomaxprocs=2, sizeclasses=version, gctrace=gctrace) as rt:
    keep = []
    for round in range(3):
        # Single-threaded churn of 4 KiB objects, a live set of 1.5 MiB: several
        # collections triggered by the heap goal (4 MiB), then a forced one.
        for i in range(4000):
            keep.append(rt.malloc(4096))
            if len(keep) > 384:
                rt.free(keep.pop(0))
        big = [rt.malloc(100_000) for _ in range(round * 10)]   # live large objects too
        before = rt.memstats()
        rt.gc()
        after = rt.memstats()
        forced.append({"num": after["NumGC"], "NextGC": before["NextGC"], "HeapAlloc": after["HeapAlloc"]})
        for x in big:
            rt.free(x)
    ms = rt.memstats()
print(json.dumps({"forced": forced, "NumGC": ms["NumGC"], "gomaxprocs": rt.gomaxprocs}))
"""


@pytest.mark.parametrize("version", ["go1.13", "go1.19"])
def test_runtime_gctrace_lines(version):
    proc = run_python(_CHILD, version, "on", timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    lines = parse_all(proc.stderr)
    # One line per collection, numbered 1, 2, ...; the forced ones are exactly rt.gc()'s.
    assert [f["num"] for f in lines] == list(range(1, out["NumGC"] + 1))
    assert [f["num"] for f in lines if f["forced"]] == [f["num"] for f in out["forced"]]
    assert out["NumGC"] > 2 * len(out["forced"])            # the heap trigger collected too
    by_num = {f["num"]: f for f in lines}
    for f in out["forced"]:
        line = by_num[f["num"]]
        assert line["goal"] == f["NextGC"] >> 20             # the goal this cycle ran against
        assert line["heap2"] == f["HeapAlloc"] >> 20          # live after the cycle
        assert line["heap0"] >= line["heap2"]
    prev_goal = None
    for f in lines:
        assert (f["stacks"], f["globals"]) == ((0, 0) if version == "go1.19" else (None, None))
        assert f["procs"] == out["gomaxprocs"] == 2
        assert 0 <= f["pct"] <= 100
        assert f["heap0"] <= f["heap1"]                      # one thread: nothing allocated meanwhile
        assert f["heap0"] == f["heap1"]
        assert f["clock_mark"] == 0 and (f["cpu_assist"], f["cpu_bg"], f["cpu_idle"]) == (0, 0, 0)
        if not f["forced"]:
            # The trigger: the allocation that took heap_live to the goal started it.
            assert f["heap0"] >= f["goal"] >= 4
        if prev_goal is not None:
            assert f["at"] >= prev_goal["at"]
        prev_goal = f


def test_no_lines_without_gctrace():
    proc = run_python(_CHILD, "go1.13", "off", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["NumGC"] > 0
    assert proc.stderr == ""


def test_lines_go_to_fd_2_not_sys_stderr():
    """The line is written to the process's fd 2 by C code: Python's sys.stderr may be
    anything (here a StringIO that must stay empty)."""
    proc = run_python("""
        import io, sys
        from goruntime import Runtime
        sys.stderr = io.StringIO()
        with Runtime(gomaxprocs=1, gctrace=True) as rt:
            rt.gc()
        assert sys.stderr.getvalue() == ""
        print("OK")
        """)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr
    (f,) = parse_all(proc.stderr)
    assert f["num"] == 1 and f["forced"] and f["procs"] == 1 and f["heap0"] == f["heap2"] == 0
    assert f["goal"] == 4


# -- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["go1.13", "go1.19"])
def test_cli_run_gctrace(tmp_path, version):
    """goruntime run --gctrace: the lines reach a file given as stderr (2>file), one per
    collection the run's MemStats count."""
    err = tmp_path / "stderr.txt"
    with open(err, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "goruntime", "run", "--gctrace", "--gomaxprocs", "2",
                               "--ms", "2", "--ops", "20000", "--sizes", "4096", "--seed", "3",
                               "--sizeclasses", version, "--json"],
                              stdout=subprocess.PIPE, stderr=f, text=True, cwd=ROOT, timeout=120)
    text = err.read_text()
    assert proc.returncode == 0, text
    doc = json.loads(proc.stdout)
    lines = parse_all(text)
    assert [f["num"] for f in lines] == list(range(1, doc["memstats"]["NumGC"] + 1))
    assert len(lines) > 3 and not any(f["forced"] for f in lines)
    assert all(f["procs"] == 2 for f in lines)
    assert all((f["stacks"] is not None) == (version == "go1.19") for f in lines)


def test_cli_run_without_gctrace_prints_no_line():
    proc = subprocess.run([sys.executable, "-m", "goruntime", "run", "--gomaxprocs", "2", "--ms", "2",
                           "--ops", "20000", "--sizes", "4096", "--seed", "3", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["memstats"]["NumGC"] > 0
    assert not any(GCTRACE_RE.fullmatch(line) for line in proc.stderr.splitlines())


# -- real Go ---------------------------------------------------------------------------------

_GO_PROGRAM = """
package main

import (
	"runtime"
	"time"
)

var sink [][]byte

func main() {
	for i := 0; i < 100000; i++ {
		sink = append(sink, make([]byte, 1024))
		if len(sink) > 2000 {
			sink = sink[1:]
		}
	}
	runtime.GC()
	runtime.GC()
	// runtime.GC returns once the cycle is counted, and the line may be printed after
	// that (by the goroutine that ran mark termination): let it finish before exiting.
	time.Sleep(200 * time.Millisecond)
}
"""


def test_regex_parses_real_go(tmp_path):
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not on PATH")
    (tmp_path / "main.go").write_text(textwrap.dedent(_GO_PROGRAM))
    env = dict(os.environ, GOTOOLCHAIN="local", GO111MODULE="off", GOFLAGS="")
    env.pop("GODEBUG", None)
    build = subprocess.run([go, "build", "-o", str(tmp_path / "prog"), "main.go"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    proc = subprocess.run([str(tmp_path / "prog")], env=dict(env, GODEBUG="gctrace=1", GOMAXPROCS="2"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = parse_all(proc.stderr)
    assert [f["num"] for f in lines] == list(range(1, len(lines) + 1))
    # The two runtime.GC() calls end it. (A cycle under way when the first is called may also
    # print " (forced)" in Go 1.19: runtime.GC finishes it first.)
    assert [f["forced"] for f in lines[-2:]] == [True, True]
    assert all(f["procs"] == 2 for f in lines)
    # Go 1.19 and later print stacks and globals, as the model's go1.19 format does.
    version = subprocess.run([go, "env", "GOVERSION"], env=env, capture_output=True, text=True).stdout
    minor = int(re.match(r"go1\.(\d+)", version.strip()).group(1))
    assert all((f["stacks"] is not None) == (minor >= 19) for f in lines)
