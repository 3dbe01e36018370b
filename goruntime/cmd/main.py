"""The `goruntime` command: `run` (the main job) and `sizeclasses`."""
import argparse
import json
import sys

from goruntime.cmd.flags import DEFAULT_SIZES, DEFAULT_WEIGHTS, add_workload_args

def cmd_run(args):
    from goruntime import Runtime
    from goruntime.cmd.report import format_run, path_shares

    if args.sizes is None:
        sizes, weights = DEFAULT_SIZES, DEFAULT_WEIGHTS
    else:
        sizes, weights = args.sizes
    with Runtime(gomaxprocs=args.gomaxprocs, sizeclasses=args.sizeclasses, gogc=args.gogc) as rt:
        result = rt.run(ms=args.ms, duration=args.duration, sizes=sizes, weights=weights,
                        noscan=args.noscan, live=args.live, large_share=args.large_share, seed=args.seed)
        ms = rt.memstats()
        locks = rt.lockstats()
    if args.json:
        json.dump({"result": result.as_dict(), "allocs_per_sec": result.allocs_per_sec,
                   "paths": path_shares(ms), "memstats": ms.as_dict(), "lockstats": locks},
                  sys.stdout, indent=1)
        print()
    else:
        print(format_run(result, ms, locks))


def cmd_sizeclasses(args):
    from goruntime.mksizeclasses import format_table
    from goruntime.sizeclasses import normalize_version

    sys.stdout.write(format_table(normalize_version(args.go)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="goruntime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the churn workload and report throughput, paths, locks, GC, memstats")
    add_workload_args(run)
    run.set_defaults(func=cmd_run)
    sc = sub.add_parser("sizeclasses", help="print a size-class table like Go's sizeclasses.go")
    sc.add_argument("--go", default="1.13", help="1.13 (default) or 1.19")
    sc.set_defaults(func=cmd_sizeclasses)
    from goruntime.cmd import compare, profile
    from stress import runner
    profile.register(sub)
    compare.register(sub)
    runner.register(sub)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, MemoryError) as e:
        parser.exit(2, f"goruntime: {e}\n")


if __name__ == "__main__":
    main()
