"""The `goruntime` command. Workload subcommands (run, profile, compare, stress) take the same
flags with the same defaults (`goruntime <subcommand> --help`); --json prints one JSON
document on stdout."""
import argparse
import json
import sys

from goruntime.cmd import compare, explain, heapmap, profile
from goruntime.cmd.flags import add_workload_args, run_command, run_kwargs, runtime_kwargs
from goruntime.cmd.progress import run_progress
from stress import runner


def cmd_run(args):
    from goruntime import Runtime
    from goruntime.cmd.report import format_run, path_shares

    interrupted = None
    # With --gctrace the collections' lines are the progress: no live bar between them.
    bar, tick = run_progress("goruntime run", args.duration if args.ops is None else None,
                             enabled=not args.gctrace)
    with Runtime(**runtime_kwargs(args), gctrace=args.gctrace) as rt, bar:
        try:
            if args.trace:
                with rt.trace(args.trace) as recording:
                    result = rt.run(progress=tick, **run_kwargs(args))
                print(f"goruntime run: wrote {args.trace}: {recording.result!r} (open it in ui.perfetto.dev)",
                      file=sys.stderr)
            else:
                result = rt.run(progress=tick, **run_kwargs(args))
        except KeyboardInterrupt as e:
            # Ctrl-C: the Ms stopped at their next safe point; report what they did.
            result, interrupted = e.partial, e
        result.config.update(rt.modes)
        ms = rt.memstats()
        locks = rt.lockstats()
    if args.json:
        json.dump({"result": result.as_dict(), "allocs_per_sec": result.allocs_per_sec,
                   "paths": path_shares(ms), "memstats": ms.as_dict(), "lockstats": locks,
                   "interrupted": interrupted is not None},
                  sys.stdout, indent=1)
        print()
    else:
        print(format_run(result, ms, locks))
    if interrupted is not None:
        raise interrupted


def cmd_sizeclasses(args):
    from goruntime.mksizeclasses import format_table
    from goruntime.sizeclasses import normalize_version

    sys.stdout.write(format_table(normalize_version(args.go)))


def parser():
    """The command's parser, every subcommand on it."""
    p = argparse.ArgumentParser(prog="goruntime", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           title="commands (goruntime COMMAND --help for the flags)")
    run = sub.add_parser("run", help="run the churn workload: throughput, allocation paths, locks, GC, memstats",
                         description="Runs the churn kernel (Ms allocating from a size mix and freeing "
                         "at random, a bounded live set each) and reports throughput per M, the "
                         "allocation paths taken, lock contention, GC and memstats.")
    add_workload_args(run)
    run.add_argument("--trace", metavar="FILE", default=None,
                     help="record a timeline of every M (P held, refills, grows, large objects, lock "
                          "waits, stop-the-world, sweep) as a Perfetto trace for ui.perfetto.dev")
    run.add_argument("--gctrace", action="store_true",
                     help="print a line per collection to stderr, in the format of Go's GODEBUG=gctrace=1 "
                          "for the size-class table's Go version")
    run.set_defaults(func=cmd_run)
    sc = sub.add_parser("sizeclasses", help="print a size-class table like Go's sizeclasses.go",
                        description="Prints a size-class table in the form of Go's sizeclasses.go.")
    sc.add_argument("--go", default="1.13", help="1.13 (default) or 1.19")
    sc.set_defaults(func=cmd_sizeclasses)
    profile.register(sub)
    compare.register(sub)
    runner.register(sub)
    explain.register(sub)
    heapmap.register(sub)
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    return run_command(p, args)


if __name__ == "__main__":
    sys.exit(main())
