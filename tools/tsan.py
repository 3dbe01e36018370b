#!/usr/bin/env python3
"""`make tsan`: ThreadSanitizer over the concurrency and stress tests.

1. Builds the extension with -fsanitize=thread into build-tsan/ (goruntime.cmd.bench's
   _variant: setup.py build_ext --build-lib build-tsan, then the packages' .py
   files copied beside the modules).
2. Runs the tests in a subprocess with gcc's libtsan preloaded (CPython itself
   is not instrumented, and without the preload the import fails with "cannot
   allocate memory in static TLS block"), PYTHONPATH=build-tsan and
   PYTHONSAFEPATH so that the in-place build of the checkout cannot shadow it.
   The kernels pass a start gate before they allocate (workload.launch_ms),
   so that their nogil sections really overlap and races can be seen.
3. Fails if any process (the tests spawn `goruntime stress` too) reports
   "WARNING: ThreadSanitizer"; every report is copied to stderr.

Usage: tools/tsan.py [--no-build] [--scale S] [--quick] [pytest args...]
(pytest args, e.g. "tests/test_stress.py -k larson", replace the default selection)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build-tsan"
CFLAGS = "-fsanitize=thread -O1 -g -fno-omit-frame-pointer"
LDFLAGS = "-fsanitize=thread"
MARK = "WARNING: ThreadSanitizer"

# The concurrency tests: the stress workloads, the scheduler (Ms, Ps, stop-the-world),
# the API and mcache tests that run workloads or threads, the sweep and the scavenger.
SUITES = [
    ["tests/test_stress.py"],
    ["tests/test_proc.py"],
    ["tests/test_mstats.py", "tests/test_mgc.py", "-k", "thread or run or during or goal"],
    ["tests/test_api.py", "tests/test_mcache.py", "-k", "thread or workload or churn or close or proc or run"],
    # The sweepers racing for spans, the background sweeper, proportional sweeping.
    ["tests/test_mgcsweep.py"],
    # The background scavenger against Ms, collections, free_os_memory and close (the RSS
    # and CPU-share measurements left out: TSan's shadow memory and pace skew them; and fork:
    # TSan kills a child of a multi-threaded process that starts a thread, die_after_fork).
    ["tests/test_mgcscavenge.py", "-k", "not rss and not percent and not fork"],
]
# A quick selection (tests/test_tsan.py): a short run of every workload, the
# hand-off, and a kernel stopping half-way.
QUICK = [["tests/test_stress.py", "-k",
          "test_short_stress and (larson-go113 or prodcons-locked-spanset or mstress-nomcache-pagecache "
          "or oom-spanset-pagecache) "
          "or hands_objects_over or half_way or absorbed"]]


def libtsan():
    """The path of gcc's libtsan.so, or None."""
    try:
        path = subprocess.run(["gcc", "-print-file-name=libtsan.so"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return path if os.path.isabs(path) and os.path.exists(path) else None


def build():
    """Builds the TSan variant into build-tsan/ (incremental) and returns its path."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from goruntime.cmd.bench import _variant
    saved = os.environ.get("GORUNTIME_LDFLAGS")
    os.environ["GORUNTIME_LDFLAGS"] = LDFLAGS       # _variant passes the environment on
    try:
        return _variant("tsan", CFLAGS)
    finally:
        if saved is None:
            del os.environ["GORUNTIME_LDFLAGS"]
        else:
            os.environ["GORUNTIME_LDFLAGS"] = saved


def tsan_env(lib, out, reports, scale):
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(out),
        PYTHONSAFEPATH="1",
        LD_PRELOAD=lib,
        # log_path: one file per process, so reports from child processes (the
        # CLI tests) are not lost in their captured output.
        TSAN_OPTIONS=f"halt_on_error=0 report_signal_unsafe=0 second_deadlock_stack=1 "
                     f"history_size=4 log_path={reports}/tsan",
        GORUNTIME_STRESS_SCALE=str(scale),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def run(suites, *, scale=1.0, do_build=True, stream=sys.stderr):
    """Builds (unless do_build is False) and runs the suites under TSan.

    Returns (number of reports, seconds, pytest summary lines)."""
    lib = libtsan()
    if lib is None:
        raise RuntimeError("gcc's libtsan.so is not installed (Debian: libtsan2)")
    out = build() if do_build else OUT
    reports = out / "reports"
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    env = tsan_env(lib, out, reports, scale)
    # The modules must come from build-tsan, not from the checkout.
    where = subprocess.run([sys.executable, "-c", "import stress.kernels as s, goruntime.runtime as r; "
                            "print(s.__file__); print(r.__file__)"],
                           env=env, cwd=out, capture_output=True, text=True)
    if where.returncode != 0 or any(not line.startswith(str(out)) for line in where.stdout.split()):
        raise RuntimeError(f"the TSan build is not the one imported: {where.stdout}{where.stderr}")
    # A positive control: a deliberate race must be reported, else "0 reports"
    # would mean nothing.
    canary = out / "canary"
    shutil.rmtree(canary, ignore_errors=True)
    canary.mkdir()
    subprocess.run([sys.executable, "-c", "from tests.testkernels import tsan_canary; tsan_canary(100000)"],
                   env=tsan_env(lib, out, canary, scale), cwd=out, capture_output=True, text=True)
    seen = "".join(f.read_text(errors="replace") for f in canary.glob("tsan*"))
    if MARK not in seen or "_canary_main" not in seen:
        raise RuntimeError("ThreadSanitizer did not report the deliberate race of tsan_canary(): "
                           "the setup is broken, a clean run would prove nothing")
    t0 = time.monotonic()
    summaries = []
    stderr_text = ""
    failed = False
    for suite in suites:
        if not (ROOT / suite[0]).exists():
            continue
        files = [str(ROOT / a) if a.startswith("tests/") else a for a in suite]
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-n", "0", *files]
        proc = subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True)
        stderr_text += proc.stderr
        lines = [l for l in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", l)]
        summaries.append(lines[-1] if lines else proc.stdout[-2000:])
        if proc.returncode not in (0, 5):
            failed = True
            stream.write(proc.stdout[-6000:] + proc.stderr[-3000:])
    seconds = time.monotonic() - t0
    text = stderr_text
    for f in sorted(reports.glob("tsan*")):
        text += f.read_text(errors="replace")
    n = text.count(MARK)
    if n:
        stream.write(text)
    return n, seconds, summaries, failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-build", action="store_true", help="reuse build-tsan/ as it is")
    ap.add_argument("--scale", type=float, default=1.0, help="GORUNTIME_STRESS_SCALE for the stress tests")
    ap.add_argument("--quick", action="store_true", help="the short selection of tests/test_tsan.py")
    args, extra = ap.parse_known_args(argv)
    t0 = time.monotonic()
    try:
        suites = [extra] if extra else QUICK if args.quick else SUITES
        n, seconds, summaries, failed = run(suites, scale=args.scale, do_build=not args.no_build)
    except RuntimeError as e:
        print(f"tsan: {e}", file=sys.stderr)
        return 2
    for s in summaries:
        print(f"tsan: {s}")
    print(f"tsan: {n} ThreadSanitizer reports; tests {seconds:.0f} s, total {time.monotonic() - t0:.0f} s "
          f"(build in {OUT.name}/)")
    return 1 if n or failed else 0


if __name__ == "__main__":
    sys.exit(main())
