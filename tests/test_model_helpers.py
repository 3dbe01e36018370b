"""The helpers the kernels and tools share: one RNG seeding, one launch of Ms
behind a start gate, lock site names from one place, and the debug-assert
build switch."""
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import goruntime
from goruntime import Runtime
from goruntime.cmd import profile
from goruntime.cmd.benchkernels import mcache_hit
from goruntime.lock import SITE_NAMES, LockSite
from goruntime.runtime import ASSERTIONS


def _bytes_per_m(seed, ms=2):
    with Runtime(gomaxprocs=2, gogc=None) as rt:
        r = rt.run(ms=ms, ops=2000, sizes=(1, 4096), live=64, seed=seed)
    return [m["bytes"] for m in sorted(r.per_m, key=lambda m: m["id"])]


def test_churn_seeding_is_reproducible_and_distinct_per_m():
    # Sizes come only from each M's generator, so its byte count is a
    # function of (seed, M id), whatever the interleaving.
    first = _bytes_per_m(seed=12345)
    assert first == _bytes_per_m(seed=12345)
    assert first[0] != first[1]
    assert first != _bytes_per_m(seed=54321)


def test_seeds_beyond_64_bits_and_negative_seeds_are_accepted():
    # Only the low 64 bits of a seed count.
    assert _bytes_per_m(seed=(1 << 64) + 7) == _bytes_per_m(seed=7)
    assert len(_bytes_per_m(seed=-1)) == 2


def test_stress_slots_are_seeded_like_churn_ms():
    from stress.kernels import Stress
    sizes = []
    for _ in range(2):
        with Runtime(gomaxprocs=2, gogc=None) as rt:
            st = Stress(rt, 2, cap=64, seed=99)
            st.start([0, 1], target=32, ops=200)
            st.join()
            assert st.errors() == []
            sizes.append(sorted((slot, size) for _, size, _, slot, _ in st.objects()))
            st.release_all()
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize("ms", [1, 2])
def test_bench_kernel_launches_every_m(ms):
    with Runtime(gomaxprocs=2, gogc=None) as rt:
        per_m, aggregate = mcache_hit(rt, ms, 64, 4)
    assert len(per_m) == ms and all(ns > 0 for ns in per_m) and aggregate > 0


def test_profile_site_names_come_from_lock_sites():
    assert profile.CACHESPAN == SITE_NAMES[LockSite.SITE_CACHESPAN]
    assert profile.STOPTHEWORLD == SITE_NAMES[LockSite.SITE_STW]
    assert profile.PAGECACHE == SITE_NAMES[LockSite.SITE_PCACHE]
    assert set(SITE_NAMES) == set(LockSite) - {LockSite.NUM_SITES}
    # Every stack the profile knows starts at a lock site.
    for (_, site), stack in profile.SITE_STACKS.items():
        assert site in SITE_NAMES.values()
        assert stack[0] in SITE_NAMES.values() or stack[0] == profile.HEAPALLOC


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


def test_assertions_flag_is_a_bool():
    # True only in a `make debug` build; the suite passes in both.
    assert isinstance(ASSERTIONS, bool)
