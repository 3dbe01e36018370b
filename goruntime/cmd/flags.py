"""The flags and defaults that the workload subcommands (run, profile, compare, stress) share,
and how every subcommand ends: add_workload_args() puts the same flags with the same defaults
on each parser; run_kwargs() and runtime_kwargs() turn them into Runtime's and Runtime.run's
arguments; run_command() runs a parsed command.

A subcommand that truly needs another default passes it to add_workload_args() with the
reason, which its --help prints. compare sweeps some dimensions, so there those flags take
comma-separated lists (sweep=True)."""
import argparse
import math
import os
import re
import sys

from goruntime import MCACHE_MODES, MCENTRAL_MODES, SWEEP_MODES
from goruntime.sizeclasses import VERSIONS, normalize_version
from goruntime.workload import MAX_SIZE

# A realistic mix: mostly small objects, some tiny (noscan under 16 B), a few
# large. Weights loosely follow Go heap profiles of services, where half of the
# objects are 32 B or less.
DEFAULT_SIZES = [8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 16384]
DEFAULT_WEIGHTS = [10, 5, 12, 10, 14, 10, 10, 6, 6, 6, 4, 3, 2, 1.5, 0.5]
# The share of large objects (32 KiB to 256 KiB) that goes with the mix; with --sizes the
# sizes given are all there is, unless --large-share adds large objects.
DEFAULT_LARGE_SHARE = 0.001

# The shared flags' defaults (argparse dests). gomaxprocs: the CPUs; ms None: 2 x GOMAXPROCS;
# sizes None: the mix above; large_share None: DEFAULT_LARGE_SHARE with the mix, else 0;
# seed None: a random seed, printed with the results. duration is Runtime.run's default too.
DEFAULTS = {
    "gomaxprocs": os.cpu_count() or 1, "ms": None, "duration": 1.0, "ops": None, "sizes": None,
    "noscan": 0.5, "live": 4096, "large_share": None, "mcache": "lockfree", "mcentral": "mutex",
    "pagecache": False, "sweep": "concurrent", "sizeclasses": "go1.13", "gogc": 100, "seed": None,
    "json": False,
}

# compare's sweep: every combination of these runs as a cell.
SWEEP_DEFAULTS = {"ms": [1, 2, 4, 8, 16], "sizes": [16, 256, 4096], "mcache": list(MCACHE_MODES),
                  "mcentral": list(MCENTRAL_MODES), "pagecache": [False]}

MAX_MS = 4096
MAX_LIVE = 1 << 24


# -- value types: a bad value is an argparse usage error naming the flag -----------------------

def _int(text, lo, hi, what):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({lo} to {hi})")
    return value


def positive_int(text):
    return _int(text, 1, 1 << 62, "a positive integer")


def ms_count(text):
    return _int(text, 1, MAX_MS, "a number of Ms")


def live_count(text):
    return _int(text, 0, MAX_LIVE, "a number of objects")


def share(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return value


def parse_duration(text):
    """'90', '2.5', '90s', '5m', '1h', '1h30m' -> seconds."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d*)?|\.\d+", text):
        value = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise argparse.ArgumentTypeError(f"bad duration {text!r}: use 90, 2.5, 90s, 5m, 1h or 1h30m")
        value = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if not 0 < value <= 7 * 86400:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be positive, at most a week")
    return value


def _size(text):
    value = int(text)
    if not 1 <= value <= MAX_SIZE:
        raise ValueError
    return value


_SIZES_HELP = "64 (one size), 16-1024 (uniform over a range), 8,16,64 or 8:5,16:3,64 (sizes:weights)"


def parse_sizes(text):
    """--sizes: '64' (one size), '16-1024' (uniform, inclusive) or '8,16,64' / '8:5,16:3,64'
    (a list drawn with weights, 1 by default). Returns the (sizes, weights) that Runtime.run
    takes: an int, a range or a list, and None or one weight per size."""
    bad = argparse.ArgumentTypeError(f"bad value {text!r}: use {_SIZES_HELP}; "
                                     f"sizes from 1 B to 1 GiB, over 32 KiB the large path")
    text = text.strip()
    try:
        if "," in text or ":" in text:
            sizes, weights = [], []
            for item in text.split(","):
                size, colon, weight = item.partition(":")
                sizes.append(_size(size))
                weights.append(float(weight) if colon else 1.0)
            if not all(0 <= w < math.inf for w in weights) or sum(weights) <= 0:
                raise ValueError
            return sizes, weights
        if "-" in text:
            lo, hi = (_size(x) for x in text.split("-", 1))
            if lo > hi:
                raise ValueError
            return range(lo, hi + 1), None
        return _size(text), None
    except ValueError:
        raise bad from None


def format_sizes(sizes, weights=None):
    """The --sizes spelling of Runtime.run's sizes and weights (or of a config's "sizes")."""
    if isinstance(sizes, dict):
        if "range" in sizes:
            return "-".join(map(str, sizes["range"]))
        sizes, weights = sizes["sizes"], sizes.get("weights")
    if isinstance(sizes, range):
        return f"{sizes.start}-{sizes.stop - 1}"
    if isinstance(sizes, int):
        return str(sizes)
    weights = weights or [1] * len(sizes)
    return ",".join(f"{s}:{w:g}" if w != 1 else str(s) for s, w in zip(sizes, weights))


def parse_gogc(text):
    if text.lower() == "off":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --gogc {text!r}: a percentage or 'off'") from None
    if value < 0:
        raise argparse.ArgumentTypeError("--gogc must not be negative")
    return value


def parse_sizeclasses(text):
    try:
        return normalize_version(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown size-class table {text!r}: choose "
                                         f"{' or '.join(VERSIONS)}") from None


def on_off(text):
    values = {"off": False, "on": True, "false": False, "true": True, "0": False, "1": True}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"not on or off: {text!r}")
    return values[text.lower()]


def comma_list(kind, choices=None):
    """A comma-separated list of `kind` values (compare's sweep dimensions)."""
    def parse(text):
        items = [x.strip() for x in text.split(",") if x.strip()]
        try:
            values = [kind(x) for x in items]
        except (ValueError, argparse.ArgumentTypeError):
            values = None
        if not values or (choices and any(v not in choices for v in values)):
            raise argparse.ArgumentTypeError(
                f"bad list {text!r}" + (f": choose from {','.join(map(str, choices))}" if choices else ""))
        return values
    parse.__name__ = f"list of {getattr(kind, '__name__', 'values')}"
    return parse


# -- the flags ---------------------------------------------------------------------------------

def add_workload_args(p, *, sweep=False, defaults=None):
    """Puts the shared workload flags on parser `p`.

    sweep: compare's form, where --ms, --sizes, --mcache (also --modes), --mcentral and
    --pagecache take comma-separated lists and every combination runs.
    defaults: {dest: (default, reason)} for a subcommand that needs another default than
    DEFAULTS; the reason goes into the help text."""
    defaults = dict(defaults or {})
    unknown = set(defaults) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"not shared flags: {sorted(unknown)}")
    used = set()

    def default(dest, text):
        """(default value, help suffix) of flag `dest`; `text` describes the shared default."""
        used.add(dest)
        if dest in defaults:
            value, reason = defaults[dest]
            return value, f" (default {reason})"
        if sweep and dest in SWEEP_DEFAULTS:
            value = SWEEP_DEFAULTS[dest]
            shown = ",".join(("on" if v else "off") if isinstance(v, bool) else str(v) for v in value)
            return value, f" (default {shown}; compare sweeps them)"
        return DEFAULTS[dest], f" (default {text})"

    g = p.add_argument_group("workload (the same flags and defaults in run, profile, compare and stress)")
    value, note = default("gomaxprocs", "CPUs")
    g.add_argument("--gomaxprocs", type=positive_int, default=value, metavar="N", help="number of Ps" + note)
    value, note = default("ms", "2 x GOMAXPROCS")
    if sweep:
        g.add_argument("--ms", type=comma_list(ms_count), default=value, metavar="N,...",
                       help="numbers of Ms" + note)
    else:
        g.add_argument("--ms", type=ms_count, default=value, metavar="N", help="number of Ms" + note)
    work = g.add_mutually_exclusive_group()
    value, note = default("duration", f"{DEFAULTS['duration']:g} s")
    work.add_argument("--duration", type=parse_duration, default=value, metavar="TIME",
                      help="how long: 90, 2.5, 90s, 5m or 1h" + (" per cell" if sweep else "") + note)
    value, note = default("ops", "none: --duration")
    work.add_argument("--ops", type=positive_int, default=value, metavar="N",
                      help="allocations per M instead of --duration" + note)
    value, note = default("sizes", "a realistic mix of 8 B to 16 KiB")
    if sweep:
        g.add_argument("--sizes", "--size", type=comma_list(_cell_size), default=value, metavar="SIZE,...",
                       help="object sizes, one per cell, 1 B to 1 GiB" + note)
    else:
        g.add_argument("--sizes", "--size", type=parse_sizes, default=value, metavar="SIZES",
                       help=_SIZES_HELP + "; 1 B to 1 GiB, over 32 KiB the large path" + note)
    value, note = default("noscan", f"{DEFAULTS['noscan']:g}")
    g.add_argument("--noscan", type=share, default=value, metavar="SHARE",
                   help="share of pointer-free objects" + note)
    value, note = default("live", str(DEFAULTS["live"]))
    g.add_argument("--live", type=live_count, default=value, metavar="N", help="objects each M keeps alive" + note)
    value, note = default("large_share", "0: the cells' sizes are given" if sweep else
                          f"{DEFAULT_LARGE_SHARE:g} with the default mix, 0 with --sizes")
    g.add_argument("--large-share", type=share, default=value, metavar="SHARE",
                   help="share of extra objects of 32 KiB to 256 KiB, served by the large path" + note)
    value, note = default("mcache", DEFAULTS["mcache"])
    if sweep:
        g.add_argument("--mcache", "--modes", type=comma_list(str, MCACHE_MODES), default=value,
                       metavar="MODE,...", help=f"mcache modes: {', '.join(MCACHE_MODES)}" + note)
    else:
        g.add_argument("--mcache", choices=MCACHE_MODES, default=value, help="mcache mode" + note)
    value, note = default("mcentral", DEFAULTS["mcentral"])
    if sweep:
        g.add_argument("--mcentral", type=comma_list(str, MCENTRAL_MODES), default=value,
                       metavar="MODE,...", help=f"mcentral modes: {', '.join(MCENTRAL_MODES)}" + note)
    else:
        g.add_argument("--mcentral", choices=MCENTRAL_MODES, default=value, help="mcentral mode" + note)
    value, note = default("pagecache", "off")
    if sweep:
        g.add_argument("--pagecache", type=comma_list(on_off, (False, True)), default=value,
                       metavar="off,on", help="per-P page cache (Go 1.14+): off, on or off,on" + note)
    else:
        g.add_argument("--pagecache", action=argparse.BooleanOptionalAction, default=value,
                       help="per-P page cache in front of the mheap (Go 1.14+)" + note)
    value, note = default("sweep", DEFAULTS["sweep"])
    g.add_argument("--sweep", choices=SWEEP_MODES, default=value,
                   help="Go's sweep, concurrent with the Ms, or all of it with the world stopped" + note)
    value, note = default("sizeclasses", DEFAULTS["sizeclasses"])
    g.add_argument("--sizeclasses", "--go", dest="sizeclasses", type=parse_sizeclasses, default=value,
                   metavar="TABLE", help=f"size-class table: {' or '.join(VERSIONS)}" + note)
    value, note = default("gogc", str(DEFAULTS["gogc"]))
    g.add_argument("--gogc", type=parse_gogc, default=value, metavar="PERCENT",
                   help="GOGC percentage or 'off'" + note)
    value, note = default("seed", "random, printed with the results")
    g.add_argument("--seed", type=int, default=value, help="workload seed" + note)
    value, note = default("json", "text tables")
    g.add_argument("--json", action="store_true", default=value,
                   help="print one JSON document on stdout (progress and notes go to stderr)" + note)
    assert used == set(DEFAULTS), set(DEFAULTS) - used
    return g


def _cell_size(text):
    try:
        return _size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size from 1 B to 1 GiB") from None


def resolve_sizes(sizes, large_share):
    """(sizes, weights, large_share) for Runtime.run from --sizes and --large-share."""
    if sizes is None:
        return (list(DEFAULT_SIZES), list(DEFAULT_WEIGHTS),
                DEFAULT_LARGE_SHARE if large_share is None else large_share)
    sizes, weights = sizes
    return sizes, weights, large_share or 0.0


def run_kwargs(args):
    """Runtime.run's arguments from the shared flags."""
    sizes, weights, large_share = resolve_sizes(args.sizes, args.large_share)
    return dict(ms=args.ms, duration=None if args.ops is not None else args.duration, ops=args.ops,
                sizes=sizes, weights=weights, noscan=args.noscan, live=args.live,
                large_share=large_share, seed=args.seed)


def runtime_kwargs(args):
    """Runtime's arguments from the shared flags."""
    return dict(gomaxprocs=args.gomaxprocs, sizeclasses=args.sizeclasses, gogc=args.gogc,
                mcache=args.mcache, mcentral=args.mcentral, pagecache=args.pagecache, sweep=args.sweep)


# -- running a command ---------------------------------------------------------------------------

def run_command(parser, args):
    """Runs the parsed command args.func(args) and returns its exit status. A ValueError,
    TypeError or MemoryError is a usage error (exit 2, the message on stderr); a closed stdout
    (`| head`) ends the command quietly with 141, the status of a process killed by SIGPIPE;
    Ctrl-C ends it with 130, the status of a process killed by SIGINT, once the command has
    printed what finished."""
    try:
        code = args.func(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.write(f"{parser.prog}: interrupted\n")
        sys.stderr.flush()
        return 130
    except BrokenPipeError:
        # Nothing more can reach the reader; point stdout at /dev/null so that the flush
        # at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        sys.exit(141)
    except (ValueError, TypeError, MemoryError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    return code or 0
