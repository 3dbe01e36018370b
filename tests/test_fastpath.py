"""Evidence that the mcache path executes no atomic read-modify-write and no
fence: the machine code of mallocgc's small-object path, compiled on its own
(testkernels.mcache_path_probe), is read back with objdump."""
import platform
import re
import shutil
import subprocess

import pytest

import testkernels as bk
from goruntime.runtime import ASSERTIONS

pytestmark = [
    # The patterns below are x86-64 machine code: `lock`-prefixed instructions,
    # xchg / cmpxchg / xadd, mfence / sfence / lfence, `call`.
    pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                       reason=f"x86-64 machine code checks; this machine is {platform.machine()}"),
    pytest.mark.skipif(shutil.which("objdump") is None, reason="needs binutils' objdump"),
]


def _disassemble():
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", bk.__file__],
                         check=True, capture_output=True, text=True).stdout
    start = out.index(f"<{bk.probe_symbol()}>:")
    body = out[start:out.index("\n\n", start)]
    return [line.split("\t", 1)[1].strip() for line in body.splitlines()[1:] if "\t" in line]


@pytest.mark.skipif(ASSERTIONS, reason="a `make debug` build is compiled with -O0, which inlines nothing")
def test_probe_is_the_whole_inlined_path():
    code = _disassemble()
    calls = [ins for ins in code if ins.startswith("call")]
    # Inlined: tiny allocator, size-class lookup and nextFreeFast; out of line
    # only the refill (malloc_nextFree), the large/locked/none modes and memclr.
    assert len(code) > 40
    assert any("malloc_nextFree" in c for c in calls)
    assert all(re.search(r"malloc_nextFree|mallocgc_slow|memset", c) for c in calls), calls


def test_no_atomic_read_modify_write_or_fence():
    code = _disassemble()
    atomics = [ins for ins in code
               if ins.startswith("lock")
               or re.match(r"(xchg|cmpxchg|xadd)\S*\s+.*\(", ins)
               or ins.startswith(("mfence", "sfence", "lfence"))]
    assert atomics == []
