"""The `goruntime` command: `run` (the main job) and `sizeclasses`."""
import argparse
import json
import os
import sys

# A realistic mix: mostly small objects, some tiny (noscan under 16 B), a few
# large. Weights loosely follow Go heap profiles of services, where half of the
# objects are 32 B or less.
DEFAULT_SIZES = [8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 16384]
DEFAULT_WEIGHTS = [10, 5, 12, 10, 14, 10, 10, 6, 6, 6, 4, 3, 2, 1.5, 0.5]


def _parse_sizes(text):
    """'64' (fixed), '16-1024' (uniform) or '8,16,64' / '8:5,16:3' (weighted list)."""
    try:
        if "-" in text:
            lo, hi = text.split("-", 1)
            return (int(lo), int(hi)), None
        if "," in text or ":" in text:
            sizes, weights = [], []
            for item in text.split(","):
                size, _, weight = item.partition(":")
                sizes.append(int(size))
                weights.append(float(weight) if weight else 1.0)
            return sizes, weights
        return int(text), None
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --sizes {text!r}: use 64, 16-1024 or 8:5,16:3,64")


def _parse_gogc(text):
    if text.lower() == "off":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --gogc {text!r}: a percentage or 'off'")
    if value < 0:
        raise argparse.ArgumentTypeError("--gogc must not be negative")
    return value


def _add_workload_args(p):
    p.add_argument("--gomaxprocs", type=int, default=os.cpu_count() or 1, help="number of Ps (default: CPUs)")
    p.add_argument("--ms", type=int, default=None, help="number of Ms (default: 2 x GOMAXPROCS)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds to run (default 3)")
    p.add_argument("--sizes", type=_parse_sizes, default=None,
                   help="64 | 16-1024 | 8:5,16:3,64 (default: a realistic mix)")
    p.add_argument("--noscan", type=float, default=0.5, help="share of pointer-free objects (default 0.5)")
    p.add_argument("--live", type=int, default=4096, help="objects each M keeps alive (default 4096)")
    p.add_argument("--large-share", type=float, default=0.001, help="share of objects over 32 KiB (default 0.001)")
    p.add_argument("--sizeclasses", "--go", dest="sizeclasses", default="go1.13",
                   help="size-class table: go1.13 (default) or go1.19")
    p.add_argument("--gogc", type=_parse_gogc, default=100, help="GOGC percentage or 'off' (default 100)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def cmd_run(args):
    from goruntime import Runtime
    from goruntime.report import format_run, path_shares

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
    _add_workload_args(run)
    run.set_defaults(func=cmd_run)
    sc = sub.add_parser("sizeclasses", help="print a size-class table like Go's sizeclasses.go")
    sc.add_argument("--go", default="1.13", help="1.13 (default) or 1.19")
    sc.set_defaults(func=cmd_sizeclasses)
    from goruntime import compare, profile, stressrun
    profile.register(sub)
    compare.register(sub)
    stressrun.register(sub)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, MemoryError) as e:
        parser.exit(2, f"goruntime: {e}\n")


if __name__ == "__main__":
    main()
