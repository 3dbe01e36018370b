import re
import shutil
import subprocess
from pathlib import Path

import pytest

from goruntime import mksizeclasses, sizeclasses_data
from goruntime.mksizeclasses import VERSIONS

ARRAYS = ("class_to_size", "class_to_allocnpages", "size_to_class8", "size_to_class128")

requires_go = pytest.mark.skipif(shutil.which("go") is None, reason="go not on PATH")


@pytest.fixture(scope="module")
def go_sizeclasses_source():
    goroot = subprocess.run(["go", "env", "GOROOT"], check=True, capture_output=True,
                            text=True).stdout.strip()
    return (Path(goroot) / "src" / "runtime" / "sizeclasses.go").read_text()


def size_to_class(tables, size):
    """Reference for the runtime's small-size lookup."""
    if size <= mksizeclasses.SMALL_SIZE_MAX - 8:
        return tables["size_to_class8"][(size + mksizeclasses.SMALL_SIZE_DIV - 1)
                                        // mksizeclasses.SMALL_SIZE_DIV]
    return tables["size_to_class128"][(size - mksizeclasses.SMALL_SIZE_MAX
                                       + mksizeclasses.LARGE_SIZE_DIV - 1)
                                      // mksizeclasses.LARGE_SIZE_DIV]


@pytest.mark.parametrize("version", VERSIONS)
def test_checked_in_data_matches_derivation(version):
    assert sizeclasses_data.TABLES[version] == mksizeclasses.make_tables(version)
    assert sizeclasses_data.NUM_SIZE_CLASSES[version] == len(
        mksizeclasses.make_classes(version))


def test_checked_in_file_is_current_generator_output():
    data_path = Path(mksizeclasses.__file__).with_name("sizeclasses_data.py")
    assert data_path.read_text() == mksizeclasses.render_data()


@requires_go
@pytest.mark.parametrize("name", ARRAYS)
def test_go119_arrays_match_go_runtime(go_sizeclasses_source, name):
    match = re.search(rf"^var {name} = \[[^\]]*\]uint\d+\s*\{{([^}}]*)\}}",
                      go_sizeclasses_source, re.MULTILINE)
    assert match, f"{name} not found in sizeclasses.go"
    go_values = tuple(int(v) for v in match.group(1).replace(" ", "").split(",") if v)
    assert mksizeclasses.make_tables("go1.19")[name] == go_values


@requires_go
def test_go119_table_text_matches_go_comment(go_sizeclasses_source):
    lines = go_sizeclasses_source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("// class  "))
    go_table = []
    for line in lines[start:]:
        if not line.startswith("// "):
            break
        go_table.append(line[len("// "):])
    assert mksizeclasses.format_table("go1.19").splitlines() == go_table


def test_go113_is_go119_without_24_byte_class():
    old = mksizeclasses.make_classes("go1.13")
    new = mksizeclasses.make_classes("go1.19")
    assert (24, 1) in new
    assert all(size != 24 for size, _ in old)
    assert old == [c for c in new if c != (24, 1)]
    assert (len(old), len(new)) == (67, 68)
    assert (2 * len(old), 2 * len(new)) == (134, 136)  # scan + noscan span classes


def test_table_rows_columns():
    rows = mksizeclasses.table_rows("go1.19")
    assert [r["class"] for r in rows] == list(range(1, 68))
    assert rows[2] == {"class": 3, "bytes/obj": 24, "bytes/span": 8192, "objects": 341,
                       "tail waste": 8, "max waste": pytest.approx(0.2924, abs=5e-5),
                       "min align": 8}
    assert rows[-1]["min align"] == mksizeclasses.PAGE_SIZE


LOOKUPS = {
    # size: (go1.13 class size, go1.19 class size)
    1: (8, 8),
    8: (8, 8),
    9: (16, 16),
    16: (16, 16),
    17: (32, 24),
    24: (32, 24),
    25: (32, 32),
    1024: (1024, 1024),
    1025: (1152, 1152),
    32768: (32768, 32768),
}


@pytest.mark.parametrize("size", sorted(LOOKUPS))
@pytest.mark.parametrize("version", VERSIONS)
def test_boundary_lookups(version, size):
    tables = sizeclasses_data.TABLES[version]
    cls = size_to_class(tables, size)
    assert tables["class_to_size"][cls] == LOOKUPS[size][VERSIONS.index(version)]


@pytest.mark.parametrize("version", VERSIONS)
def test_lookup_picks_smallest_fitting_class(version):
    tables = sizeclasses_data.TABLES[version]
    sizes = tables["class_to_size"]
    for size in range(1, mksizeclasses.MAX_SMALL_SIZE + 1):
        cls = size_to_class(tables, size)
        assert sizes[cls - 1] < size <= sizes[cls]


@pytest.mark.parametrize("version", VERSIONS)
def test_divmagic(version):
    mksizeclasses.check_divmagic(mksizeclasses.make_classes(version))


def test_check_divmagic_rejects_inexact_magic():
    # 2**32 % 65537 == 1, so the magic overshoots and 65536 maps to index 1.
    with pytest.raises(ValueError):
        mksizeclasses.check_divmagic([(65537, 9)])


def test_unknown_version_rejected():
    with pytest.raises(ValueError):
        mksizeclasses.make_classes("go1.20")
