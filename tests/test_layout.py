"""The architecture and the build, checked: the model (goruntime/) never imports
its tools (goruntime/cmd/) or the stress workloads (stress/), no import cycle
exists anywhere, every Cython source is built, and GR_ASSERT is on exactly in
builds without NDEBUG (`make debug`)."""
import ast
import importlib
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import goruntime

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("goruntime", "goruntime/cmd", "stress")
# `python -m goruntime` is the command's entry point, not part of the model.
ENTRY_POINTS = {"goruntime.__main__"}
# A cimport of a cdef class or of a function a .pxd exports imports that module
# when this one loads, so cimports are edges too.
_PYX_FROM = re.compile(r"^\s*from\s+([\w.]+)\s+c?import\s+\(?([\w, ]+)", re.M)
_PYX_IMPORT = re.compile(r"^\s*import\s+([\w.]+)", re.M)


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """Every module a source file imports at run time, at any depth (lazy imports
    inside functions included: they hide cycles, they don't remove them)."""
    text = path.read_text()
    if path.suffix == ".py":
        found = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        return found
    found = set(_PYX_IMPORT.findall(text))
    for module, names in _PYX_FROM.findall(text):
        found.add(module)
        found.update(f"{module}.{n.strip()}" for n in names.split(",") if n.strip())
    return found


def _graph():
    sources = [p for d in PACKAGES for p in (ROOT / d).glob("*") if p.suffix in (".py", ".pyx")]
    names = {_module_name(p) for p in sources} | {d.replace("/", ".") for d in PACKAGES}
    graph = {}
    for p in sources:
        me = _module_name(p)
        # A module's own packages are imported before it in any case: not an edge.
        deps = {m for m in _imports(p) if m in names and not me.startswith(m + ".")}
        graph.setdefault(me, set()).update(deps)
    return graph


def _in(module, package):
    return module == package or module.startswith(package + ".")


def test_the_model_never_imports_its_tools_or_the_stress_workloads():
    graph = _graph()
    model = [m for m in graph if _in(m, "goruntime") and not _in(m, "goruntime.cmd") and m not in ENTRY_POINTS]
    assert "goruntime.runtime" in model and "goruntime.malloc" in model
    bad = {m: sorted(d for d in graph[m] if _in(d, "goruntime.cmd") or _in(d, "stress")) for m in model}
    assert {m: d for m, d in bad.items() if d} == {}


def _check_cycles():
    graph = _graph()
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for d in sorted(graph.get(m, ())):
            visit(d)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
    return graph


def test_no_import_cycle():
    graph = _check_cycles()
    assert {"goruntime.cmd.flags", "goruntime.cmd.profile"} <= graph["goruntime.cmd.main"] | graph["goruntime.cmd.compare"]


def test_a_cycle_would_be_found(tmp_path, monkeypatch):
    """The check itself can fail: a lazy import inside a function closes a cycle."""
    pkg = tmp_path / "stress"
    pkg.mkdir()
    (pkg / "a.py").write_text("import stress.b\n")
    (pkg / "b.py").write_text("def f():\n    from stress.a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("stress",))
    with pytest.raises(AssertionError, match=r"import cycle: stress\.a -> stress\.b -> stress\.a"):
        _check_cycles()


@pytest.mark.parametrize("pyx", sorted(str(p.relative_to(ROOT)) for d in PACKAGES for p in (ROOT / d).glob("*.pyx")))
def test_every_cython_module_is_built(pyx):
    module = importlib.import_module(pyx[:-len(".pyx")].replace("/", "."))
    assert Path(module.__file__).suffix == ".so"


_ASSERT_PROGRAM = r"""
#include "sys.h"
int main(int argc, char **argv) {
    (void)argv;
    GR_ASSERT(argc < 2, "argc stays below 2");
    return gr_assertions_enabled() ? 3 : 4;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("ndebug", [False, True])
def test_gr_assert_aborts_only_without_ndebug(tmp_path, ndebug):
    src = tmp_path / "a.c"
    src.write_text(_ASSERT_PROGRAM)
    exe = tmp_path / "a"
    include = Path(goruntime.__file__).parent
    subprocess.run(["cc", f"-I{include}", *(["-DNDEBUG"] if ndebug else []), "-o", str(exe), str(src)],
                   check=True)
    ok = subprocess.run([str(exe)], capture_output=True, text=True)
    assert ok.returncode == (4 if ndebug else 3)
    broken = subprocess.run([str(exe), "x"], capture_output=True, text=True)
    if ndebug:
        assert broken.returncode == 4 and broken.stderr == ""
    else:
        assert broken.returncode == -signal.SIGABRT
        assert "invariant broken: argc stays below 2" in broken.stderr and "a.c:5" in broken.stderr
