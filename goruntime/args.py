"""One argument policy for every public entry point: Runtime(), malloc/free/read/write,
run(), the stress, profile and compare helpers and the CLI all check their arguments with
these helpers, before they take a P or start a thread.

- A wrong type is a TypeError naming the parameter. A bool is not an int and a str is not a
  number; anything with __index__ (numpy integers too) is accepted where an int is expected,
  and turned into a plain int (operator.index), so that no comparison or conversion after
  the check runs user code or can fail.
- A value out of range is a ValueError naming the parameter and its range, never an
  OverflowError from a C conversion. NaN and infinity are out of every range.
- Nothing is silently ignored or replaced: None means "the documented default" only where
  the signature says so.
"""
import math
import numbers
import operator

__all__ = ["check_int", "check_number", "check_share", "check_seconds", "check_bool",
           "check_choice", "check_seed", "describe_range"]


def _num(x):
    """A bound as people read it: 2**46 rather than 70368744177664."""
    if isinstance(x, int) and abs(x) >= 1 << 20:
        for k in range(20, 130):
            if abs(x) == 1 << k:
                return f"{'-' if x < 0 else ''}2**{k}"
            if abs(x) == (1 << k) - 1:
                return f"{'-' if x < 0 else ''}2**{k}-1"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return f"{x:g}"
    return str(x)


def describe_range(lo=None, hi=None, lo_open=False):
    if lo is not None and hi is not None:
        if lo_open:
            return f"greater than {_num(lo)} and at most {_num(hi)}"
        return f"between {_num(lo)} and {_num(hi)}"
    if lo is not None:
        return f"greater than {_num(lo)}" if lo_open else f"at least {_num(lo)}"
    if hi is not None:
        return f"at most {_num(hi)}"
    return "any value"


def _typename(value):
    return type(value).__name__


def check_int(name, value, lo=None, hi=None):
    """value as a plain int, lo <= value <= hi (either bound may be None)."""
    if isinstance(value, bool) or _is_numpy_bool(value):
        raise TypeError(f"{name} must be an int, not bool")
    if type(value) is not int:
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must be an int, not {_typename(value)}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be an int {describe_range(lo, hi)}, not {value}")
    return value


def check_number(name, value, lo=None, hi=None, lo_open=False):
    """value as a finite float, in [lo, hi] (or (lo, hi] with lo_open)."""
    if isinstance(value, bool) or _is_numpy_bool(value):
        raise TypeError(f"{name} must be a number, not bool")
    if isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        if hasattr(value, "__index__"):
            value = operator.index(value)
        else:
            raise TypeError(f"{name} must be a number, not {_typename(value)}")
    try:
        x = float(value)
    except OverflowError:
        x = math.inf if value > 0 else -math.inf
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, not {x}")
    if (lo is not None and (x <= lo if lo_open else x < lo)) or (hi is not None and x > hi):
        raise ValueError(f"{name} must be {describe_range(lo, hi, lo_open)}, not {value}")
    return x


def check_share(name, value, allow_bool=False):
    """A share between 0 and 1 as a float; with allow_bool, True and False are 1.0 and 0.0."""
    if allow_bool and (isinstance(value, bool) or _is_numpy_bool(value)):
        return 1.0 if value else 0.0
    try:
        return check_number(name, value, 0.0, 1.0)
    except TypeError:
        if allow_bool:
            raise TypeError(f"{name} must be a bool or a share between 0 and 1, "
                            f"not {_typename(value)}") from None
        raise


# The longest duration any workload takes (a week).
MAX_SECONDS = 7 * 86400


def check_seconds(name, value, hi=MAX_SECONDS, zero_ok=False):
    """A duration in seconds: positive (or zero with zero_ok), finite, at most hi."""
    if zero_ok:
        return check_number(name, value, 0.0, hi)
    return check_number(name, value, 0.0, hi, lo_open=True)


def check_bool(name, value):
    """True or False (numpy's bool too); ints and strings are not bools."""
    if isinstance(value, bool):
        return value
    if _is_numpy_bool(value):
        return bool(value)
    raise TypeError(f"{name} must be True or False, not {_typename(value)}")


def check_choice(name, value, choices):
    """One of the strings in choices."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(map(str, choices))}; "
                        f"not {_typename(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")
    return value


def check_seed(name, value):
    """A seed: None (random) or any int; only its low 64 bits count."""
    if value is None:
        return None
    return check_int(name, value)


def _is_numpy_bool(value):
    t = type(value)
    return t.__name__ in ("bool_", "bool") and t.__module__ == "numpy"
