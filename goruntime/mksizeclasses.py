"""Generate the small-object size-class tables (port of Go's mksizeclasses.go).

Size classes are chosen so that rounding a request up to its class wastes at
most 12.5%, and each class gets the smallest span (a run of pages) whose
chopping into objects also wastes at most 12.5%.

The tables depend on the modelled Go version: before Go 1.16 the alignment
became 16 bytes from size 16 onward, so there was no 24-byte class.

Run ``python -m goruntime.mksizeclasses`` to regenerate
``goruntime/sizeclasses_data.py``, which the runtime imports so that it never
has to run this generator.
"""

import argparse
import sys
from pathlib import Path

MAX_SMALL_SIZE = 32768
SMALL_SIZE_DIV = 8
SMALL_SIZE_MAX = 1024
LARGE_SIZE_DIV = 128
PAGE_SHIFT = 13
PAGE_SIZE = 1 << PAGE_SHIFT

VERSIONS = ("go1.13", "go1.19")

# Size at which alignment first bumps to 16 bytes, and the resulting number of
# classes (including the dummy class 0).
_ALIGN16_FROM = {"go1.13": 16, "go1.19": 32}
_NUM_CLASSES = {"go1.13": 67, "go1.19": 68}

_DATA_PATH = Path(__file__).with_name("sizeclasses_data.py")


def _is_power_of_two(x):
    return x != 0 and x & (x - 1) == 0


def _check_version(version):
    if version not in VERSIONS:
        raise ValueError(f"unknown Go version {version!r}; expected one of {VERSIONS}")


def make_classes(version):
    """Return [(size, npages), ...] for every class; class 0 is (0, 0)."""
    _check_version(version)
    align16_from = _ALIGN16_FROM[version]
    classes = [(0, 0)]

    align = 8
    size = align
    while size <= MAX_SMALL_SIZE:
        if _is_power_of_two(size):
            if size >= 2048:
                align = 256
            elif size >= 128:
                align = size // 8
            elif size >= align16_from:
                # Heap bitmaps assume 16-byte alignment from here on.
                align = 16
        if not _is_power_of_two(align):
            raise RuntimeError(f"incorrect alignment {align} at size {size}")

        allocsize = PAGE_SIZE
        while allocsize % size > allocsize // 8:
            allocsize += PAGE_SIZE
        npages = allocsize // PAGE_SIZE

        # A larger size with the same span and object count costs nothing
        # extra, so it replaces the previous class instead of adding one.
        prev_size, prev_npages = classes[-1]
        if (len(classes) > 1 and npages == prev_npages
                and allocsize // size == allocsize // prev_size):
            classes[-1] = (size, npages)
        else:
            classes.append((size, npages))
        size += align

    # Grow each class to the largest size that still fits as many objects in
    # its span; keep LARGE_SIZE_DIV alignment so size_to_class128 stays valid.
    for i in range(1, len(classes)):
        size, npages = classes[i]
        span = npages * PAGE_SIZE
        new_size = (span // (span // size)) & ~(LARGE_SIZE_DIV - 1)
        if new_size > size:
            classes[i] = (new_size, npages)

    if len(classes) != _NUM_CLASSES[version]:
        raise RuntimeError(
            f"{version}: number of size classes changed: {len(classes)}, "
            f"expected {_NUM_CLASSES[version]}")
    return classes


def check_divmagic(classes):
    """Verify n // size == (n * (2**32 - 1) // size + 1) >> 32 in every span.

    The runtime computes object indices with this 32-bit multiply, so it must
    be exact for 0 <= n <= npages * PAGE_SIZE.  Raises ValueError otherwise.
    """
    for size, npages in classes:
        if size == 0:
            continue
        limit = npages * PAGE_SIZE

        # Lemire, Kaser, Kurz, "Faster Remainder by Direct Computation"
        # (arXiv:1902.01961), algorithm 2: fewest fractional bits F needed.
        nbits = limit.bit_length()
        if _is_power_of_two(size):
            frac_bits = size.bit_length() - 1
        else:
            extra = 0
            while size > (1 << (nbits + extra)) % size + (1 << extra):
                extra += 1
            frac_bits = nbits + extra
        if frac_bits > 32:
            raise ValueError(
                f"size {size} (max {limit}) needs {frac_bits} > 32 bits of precision")

        # Brute-force double check of the exact computation the runtime does.
        magic = 0xFFFFFFFF // size + 1
        for n in range(limit + 1):
            if (n * magic) >> 32 != n // size:
                raise ValueError(
                    f"bad 32-bit multiply magic {magic} for size {size} at n={n}")


def _first_class_at_least(classes, size):
    return next(i for i, (csize, _) in enumerate(classes) if csize >= size)


def make_tables(version):
    """Return the runtime lookup tables for ``version`` as tuples."""
    classes = make_classes(version)
    return {
        "class_to_size": tuple(size for size, _ in classes),
        "class_to_allocnpages": tuple(npages for _, npages in classes),
        "size_to_class8": tuple(
            _first_class_at_least(classes, i * SMALL_SIZE_DIV)
            for i in range(SMALL_SIZE_MAX // SMALL_SIZE_DIV + 1)),
        "size_to_class128": tuple(
            _first_class_at_least(classes, SMALL_SIZE_MAX + i * LARGE_SIZE_DIV)
            for i in range((MAX_SMALL_SIZE - SMALL_SIZE_MAX) // LARGE_SIZE_DIV + 1)),
    }


def table_rows(version):
    """Return one dict per class (1..) with the columns of Go's table comment.

    "max waste" is a fraction: the worst case of a request one byte above the
    previous class, plus the span's tail waste, over the span size.
    """
    rows = []
    prev_size = 0
    for cls, (size, npages) in enumerate(make_classes(version)):
        if cls == 0:
            continue
        span = npages * PAGE_SIZE
        objects = span // size
        tail_waste = span - size * objects
        # Objects are never aligned beyond the page they start in.
        align_bits = min((size & -size).bit_length() - 1, PAGE_SHIFT)
        rows.append({
            "class": cls,
            "bytes/obj": size,
            "bytes/span": span,
            "objects": objects,
            "tail waste": tail_waste,
            "max waste": ((size - prev_size - 1) * objects + tail_waste) / span,
            "min align": 1 << align_bits,
        })
        prev_size = size
    return rows


def format_table(version):
    """Return the class table as in the header comment of Go's sizeclasses.go,
    without the leading "// " on each line."""
    lines = ["%-5s  %-9s  %-10s  %-7s  %-10s  %-9s  %-9s" % (
        "class", "bytes/obj", "bytes/span", "objects", "tail waste",
        "max waste", "min align")]
    for row in table_rows(version):
        lines.append("%5d  %9d  %10d  %7d  %10d  %8.2f%%  %9d" % (
            row["class"], row["bytes/obj"], row["bytes/span"], row["objects"],
            row["tail waste"], 100 * row["max waste"], row["min align"]))
    return "\n".join(lines) + "\n"


def render_data():
    """Return the source text of goruntime/sizeclasses_data.py."""
    out = [
        "# Code generated by mksizeclasses.py; DO NOT EDIT.",
        "# Regenerate with: python -m goruntime.mksizeclasses",
        '"""Small-object size-class tables for each modelled Go version."""',
        "",
        "TABLES = {",
    ]
    for version in VERSIONS:
        out.append(f'    "{version}": {{')
        for name, values in make_tables(version).items():
            out.append(f'        "{name}": {values!r},')
        out.append("    },")
    out.append("}")
    out.append("")
    num = ", ".join(f'"{v}": {len(make_classes(v))}' for v in VERSIONS)
    out.append(f"NUM_SIZE_CLASSES = {{{num}}}")
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m goruntime.mksizeclasses",
        description=f"Regenerate {_DATA_PATH.name} from the size-class algorithm.")
    parser.add_argument("--stdout", action="store_true",
                        help=f"write to stdout instead of {_DATA_PATH.name}")
    args = parser.parse_args(argv)

    text = render_data()
    if args.stdout:
        sys.stdout.write(text)
    else:
        _DATA_PATH.write_text(text)


if __name__ == "__main__":
    main()
