"""`goruntime compare`: one pytest case per (small) sweep cell, so pytest-xdist spreads the
sweep over workers the way users spread theirs; the table and the plot (the command itself
is tested in test_cli.py). Cells are sized in allocations per M: nothing here depends on
timing."""
import importlib.util
import json
import sys

import pytest

from goruntime.cmd import compare
from goruntime.cmd.main import main

OPS = 4000
# Every mcache mode with the go1.13 mcentral, the spanset mcentral with and without per-P
# caches, and the page cache: on 1 and 2 Ms, one size that fits many objects in a span and
# one that fits two.
CELLS = [c for modes in (dict(modes=["lockfree", "locked", "shared", "none"]),
                         dict(modes=["lockfree", "none"], mcentral=["spanset"]),
                         dict(modes=["lockfree"], pagecache=[True]))
         for c in compare.cells(ms=[1, 2], sizes=[16, 4096], gomaxprocs=2, ops=OPS, live=256,
                                **modes)]


@pytest.mark.parametrize("cell", CELLS, ids=compare.cell_id)
def test_cell(cell):
    r = compare.run_cell(cell)
    json.dumps(r)                           # results travel between processes as JSON
    assert {k: r[k] for k in cell} == cell
    assert r["mode"] == compare.mode_label(cell["mcache"], cell["mcentral"], cell["pagecache"])
    assert r["allocs"] == cell["ms"] * OPS and r["allocs_per_sec"] > 0
    assert 0 <= r["lock_wait_share"] <= 1 and 0 <= r["p_wait_share"] <= 1
    assert 0 <= r["contended"] <= r["acquisitions"] and 0 <= r["contended_rate"] <= 1
    assert r["acquisitions"] == sum(v["acquisitions"] for v in r["locks"].values())
    assert r["num_gc"] >= 0 and r["pause_total_ns"] >= r["pause_max_ns"] >= 0
    mcentral = r["locks"]["mcentral"]["acquisitions"]
    mcache = r["locks"].get("mcache", {"acquisitions": 0})["acquisitions"]
    if cell["mcentral"] == "spanset":
        assert mcentral == 0                # lock-free span sets: no mcentral mutex at all
    elif cell["mcache"] == "none":
        assert mcentral >= r["allocs"]      # every allocation goes to its mcentral
    else:
        assert mcentral > 0                 # refills (and the sweeper) do
    if cell["mcache"] == "locked":
        assert mcache >= r["allocs"]        # every allocation locks its P's mcache
    else:
        assert mcache == 0
    shared = r["locks"].get("sharedcache", {"acquisitions": 0})["acquisitions"]
    if cell["mcache"] == "shared":
        assert shared >= r["allocs"]        # every allocation locks the one shared cache
    else:
        assert shared == 0


def test_cells_order_and_checks():
    cs = compare.cells(ms=[1, 4], modes=["lockfree", "none"], mcentral=["mutex", "spanset"],
                       sizes=[16, 256], duration=0.5)
    assert len(cs) == 2 * 2 * 2 * 2
    assert [compare.cell_id(c) for c in cs[:4]] == ["16B-1M-lockfree", "16B-4M-lockfree",
                                                   "16B-1M-none", "16B-4M-none"]
    assert compare.cell_id(cs[4]) == "16B-1M-lockfree+spanset"
    assert {c["seed"] for c in cs} == {1} and {c["duration"] for c in cs} == {0.5}
    assert {c["ops"] for c in cs} == {None}
    assert {c["duration"] for c in compare.cells(ms=[1], ops=10)} == {None}
    with pytest.raises(ValueError):
        compare.cells(modes=["global"])
    with pytest.raises(ValueError):
        compare.cells(ms=[0])
    with pytest.raises(ValueError):
        compare.cells(sizes=[])


def made_up_results():
    out = []
    for size in (16, 4096):
        for mode in ("lockfree", "none"):
            for n in (1, 2, 4):
                if (size, mode, n) == (4096, "none", 4):
                    continue                # a cell that is missing
                slow = 1 if mode == "lockfree" else 5
                out.append({**compare.CELL_DEFAULTS, "size": size, "ms": n, "mcache": mode,
                            "mode": mode, "ops": 1000, "duration": None,
                            "allocs_per_sec": 12.5e6 / slow / n ** 0.5,
                            "lock_wait_share": 0.0 if mode == "lockfree" else 0.05 * n,
                            "acquisitions": 1000 * n, "contended": 0 if mode == "lockfree" else 10 * n,
                            "contended_rate": 0.0 if mode == "lockfree" else 0.01, "p_wait_share": 0.0,
                            "num_gc": n, "pause_total_ns": 1500 * n, "repeat": 0})
    return out


def test_format_table():
    text = compare.format_table(made_up_results())
    lines = text.splitlines()
    assert lines[0].startswith("goruntime compare: churn on GOMAXPROCS=2, 1,000 allocations per M")
    blocks = text.split("\n\n")[1:]
    assert [b.splitlines()[0].split(" (")[0] for b in blocks] == ["throughput", "lock wait", "contended", "GC"]
    for b in blocks:
        rows = b.splitlines()
        assert rows[1].split() == ["size", "Ms", "lockfree", "none"]
        assert len(rows) == 3 + 6           # title, header, rule, (2 sizes x 3 Ms)
    thr, wait, cont, gc = (b.splitlines()[3:] for b in blocks)
    assert thr[0].split() == ["16B", "1", "12.50", "2.50"]
    assert wait[2].split() == ["16B", "4", "0.00%", "20.00%"]
    assert cont[1].split() == ["16B", "2", "0.00%", "1.00%"]
    assert gc[5].split() == ["4096B", "4", "4", "/", "6.0us", "-"]
    assert compare.format_table([]) == "goruntime compare: no cells"


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_plot_writes_png(tmp_path):
    path = tmp_path / "compare.png"
    assert compare.plot(made_up_results(), str(path)) == str(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000


def test_plot_without_matplotlib(monkeypatch, tmp_path, capsys):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)        # import raises ImportError
    with pytest.raises(compare.PlotUnavailable, match=r"goruntime\[plot\]"):
        compare.plot(made_up_results(), str(tmp_path / "x.png"))
    # The command refuses before it runs the sweep.
    with pytest.raises(SystemExit, match=r"matplotlib.*goruntime\[plot\]"):
        main(["compare", "--ms", "1", "--modes", "lockfree", "--mcentral", "mutex",
              "--sizes", "64", "--ops", "100", "--plot", str(tmp_path / "x.png")])
    assert "[1/1]" not in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
