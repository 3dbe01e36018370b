"""The flags and defaults that the workload subcommands share."""
import argparse
import os

# A realistic mix: mostly small objects, some tiny (noscan under 16 B), a few
# large. Weights loosely follow Go heap profiles of services, where half of the
# objects are 32 B or less.
DEFAULT_SIZES = [8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 16384]
DEFAULT_WEIGHTS = [10, 5, 12, 10, 14, 10, 10, 6, 6, 6, 4, 3, 2, 1.5, 0.5]


def parse_sizes(text):
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


def parse_gogc(text):
    if text.lower() == "off":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --gogc {text!r}: a percentage or 'off'")
    if value < 0:
        raise argparse.ArgumentTypeError("--gogc must not be negative")
    return value


def add_workload_args(p):
    p.add_argument("--gomaxprocs", type=int, default=os.cpu_count() or 1, help="number of Ps (default: CPUs)")
    p.add_argument("--ms", type=int, default=None, help="number of Ms (default: 2 x GOMAXPROCS)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds to run (default 3)")
    p.add_argument("--sizes", type=parse_sizes, default=None,
                   help="64 | 16-1024 | 8:5,16:3,64 (default: a realistic mix)")
    p.add_argument("--noscan", type=float, default=0.5, help="share of pointer-free objects (default 0.5)")
    p.add_argument("--live", type=int, default=4096, help="objects each M keeps alive (default 4096)")
    p.add_argument("--large-share", type=float, default=0.001, help="share of objects over 32 KiB (default 0.001)")
    p.add_argument("--sizeclasses", "--go", dest="sizeclasses", default="go1.13",
                   help="size-class table: go1.13 (default) or go1.19")
    p.add_argument("--gogc", type=parse_gogc, default=100, help="GOGC percentage or 'off' (default 100)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
