"""Builds the Cython extension modules: every .pyx of the model (goruntime/),
its tools (goruntime/cmd/), the stress kernels (stress/) and the test-only
kernels (tests/, built in place and never packaged).

GORUNTIME_CFLAGS overrides the C flags (the ThreadSanitizer, debug and
counters-compiled-out benchmark builds use it). The build fails on any Cython
"performance hint": each one marks a hot call that silently takes the GIL.

binding=False: the methods of cdef classes are CPython method descriptors, which
check the type of `self`. Cython's binding functions do not (cython/cython#1903):
`Runtime.gc(3)` from Python would run the method on an int and crash.
"""
import io
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from Cython.Build import cythonize

PACKAGES = ["goruntime", "goruntime/cmd", "stress"]
# The test-only kernels are built in place for the tests, never into a wheel.
if "bdist_wheel" not in sys.argv and "sdist" not in sys.argv:
    PACKAGES.append("tests")
PYX = sorted(str(p) for d in PACKAGES for p in Path(d).glob("*.pyx"))
CFLAGS = os.environ.get("GORUNTIME_CFLAGS", "-O3").split()
LDFLAGS = os.environ.get("GORUNTIME_LDFLAGS", "").split()


class _Tee(io.TextIOBase):
    """Copies Cython's diagnostics to stderr and keeps the performance hints."""

    def __init__(self, stream):
        self.stream = stream
        self.hints = []

    def write(self, text):
        if "performance hint" in text:
            self.hints.append(text.rstrip())
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def _cythonize():
    extensions = [Extension(pyx[:-len(".pyx")].replace("/", "."), [pyx], include_dirs=["goruntime"],
                            extra_compile_args=CFLAGS + ["-Wno-unused-function", "-Wno-unused-variable", "-Wno-unused-const-variable", "-Wno-sign-compare"],
                            extra_link_args=LDFLAGS)
                  for pyx in PYX]
    tee = _Tee(sys.stderr)
    real, sys.stderr = sys.stderr, tee
    try:
        # Cython regenerates a .c only when its .pyx changed; a change of the directives
        # here must regenerate them all.
        stale = any(os.path.exists(p[:-4] + ".c") and os.path.getmtime(p[:-4] + ".c") < os.path.getmtime(__file__)
                    for p in PYX)
        modules = cythonize(extensions, language_level=3, nthreads=0, force=stale,
                            compiler_directives={"boundscheck": False, "wraparound": False,
                                                 "cdivision": True, "initializedcheck": False,
                                                 "binding": False})
    finally:
        sys.stderr = real
    if tee.hints:
        raise SystemExit("Cython performance hints are build errors here:\n" + "\n".join(tee.hints))
    return modules


setup(ext_modules=_cythonize(), options={"build_ext": {"parallel": os.cpu_count() or 1}})
