"""ThreadSanitizer over the stress kernels: `tools/tsan.py --quick` must find 0
reports (and its positive control, a deliberate race, must be reported).

Skipped when gcc's libtsan is missing. Cost: the TSan build of the extension
(about 1.5 min of CPU on a fresh checkout, incremental afterwards) plus about
15 s of tests; `make tsan` runs the full selection."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("goruntime_tools_tsan", ROOT / "tools" / "tsan.py")
tsan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tsan)

pytestmark = pytest.mark.skipif(tsan.libtsan() is None, reason="gcc's libtsan.so is not installed")


def test_stress_kernels_have_no_data_races():
    reports, seconds, summaries, failed = tsan.run(tsan.QUICK, scale=0.5)
    assert reports == 0, f"{reports} ThreadSanitizer reports (printed above)"
    assert not failed, summaries
    assert all("passed" in s and "failed" not in s for s in summaries), summaries
