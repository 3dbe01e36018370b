"""The helpers the kernels and tools share: one RNG seeding, one launch of Ms
behind a start gate, lock site names from one place, and the debug-assert
build switch."""
import pytest

from goruntime import Runtime
from goruntime.cmd import profile
from goruntime.cmd.benchkernels import mcache_hit
from goruntime.lock import SITE_NAMES, LockSite


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
