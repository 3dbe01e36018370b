"""Size classes: the generated tables (goruntime/mksizeclasses.py, sizeclasses_data.py)
against their derivation and Go's runtime, and the runtime's SizeClasses lookups."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from goruntime import Runtime
from goruntime import mksizeclasses, sizeclasses_data
from goruntime.mksizeclasses import VERSIONS
from conftest import PAGE, MAX_SMALL


# -- the generated tables --------------------------------------------------------------

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


CLASS_SIZES = {
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


@pytest.mark.parametrize("size", sorted(CLASS_SIZES))
@pytest.mark.parametrize("version", VERSIONS)
def test_boundary_lookups(version, size):
    tables = sizeclasses_data.TABLES[version]
    cls = size_to_class(tables, size)
    assert tables["class_to_size"][cls] == CLASS_SIZES[size][VERSIONS.index(version)]


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


# -- the runtime's SizeClasses ---------------------------------------------------------

# size -> (size class, class size) for each table; None: a large object (class 0).
LOOKUPS = {
    "go1.13": {0: (0, None), 1: (1, 8), 8: (1, 8), 9: (2, 16), 16: (2, 16), 17: (3, 32),
               24: (3, 32), 25: (3, 32), 1024: (31, 1024), 1025: (32, 1152),
               32768: (66, 32768), 32769: (0, None)},
    "go1.19": {0: (0, None), 1: (1, 8), 8: (1, 8), 9: (2, 16), 16: (2, 16), 17: (3, 24),
               24: (3, 24), 25: (4, 32), 1024: (32, 1024), 1025: (33, 1152),
               32768: (67, 32768), 32769: (0, None)},
}
NUM_CLASSES = {"go1.13": 67, "go1.19": 68}


@pytest.mark.parametrize("size", sorted(LOOKUPS["go1.13"]))
def test_size_class_lookup(rt_sc, sc_version, size):
    sc = rt_sc.sizeclasses
    want_class, want_size = LOOKUPS[sc_version][size]
    assert sc.size_to_class(size) == want_class
    if want_size is not None:
        assert sc.class_to_size(want_class) == want_size


def test_size_class_tables_are_consistent(rt_sc, sc_version):
    sc = rt_sc.sizeclasses
    assert sc.num_classes == NUM_CLASSES[sc_version]
    assert sc.num_span_classes == 2 * sc.num_classes
    sizes = [sc.class_to_size(c) for c in range(1, sc.num_classes)]
    assert sizes == sorted(set(sizes)) and sizes[0] == 8 and sizes[-1] == MAX_SMALL
    for c in range(1, sc.num_classes):
        size, npages = sc.class_to_size(c), sc.class_to_npages(c)
        assert npages >= 1
        assert sc.class_to_nelems(c) == npages * PAGE // size >= 1
    # Every small size maps to the smallest class that holds it.
    for size in range(1, MAX_SMALL + 1):
        c = sc.size_to_class(size)
        assert sc.class_to_size(c) >= size
        assert c == 1 or sc.class_to_size(c - 1) < size
    assert sc.size_to_class(MAX_SMALL + 1) == 0
    assert sc.size_to_class(1 << 40) == 0
    with pytest.raises(ValueError):
        sc.class_to_size(0)
    with pytest.raises(ValueError):
        sc.class_to_size(sc.num_classes)


@pytest.mark.parametrize("version", ["1.13", 1.19, "go1.19"])
def test_sizeclasses_name_forms(version):
    with Runtime(gomaxprocs=1, sizeclasses=version, gogc=None) as r:
        assert r.sizeclasses.version in VERSIONS
        assert r.sizeclasses.version.endswith(str(version).removeprefix("go"))


@pytest.mark.parametrize("name", ["go1.99", "1.1", "", "latest", 1.99])
def test_unknown_sizeclasses(name):
    with pytest.raises(ValueError):
        Runtime(gomaxprocs=1, sizeclasses=name)


@pytest.mark.parametrize("name", [None, 113, True, b"go1.13"])
def test_mistyped_sizeclasses(name):
    with pytest.raises(TypeError, match="sizeclasses must be a str"):
        Runtime(gomaxprocs=1, sizeclasses=name)
