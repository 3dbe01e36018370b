"""goruntime: a concurrency-faithful model of Go's memory allocator.

Each P owns a lock-free mcache; a full span is refilled from the mcentral of
its span class (a real mutex); mcentrals grow from the mheap (8 KiB pages in
64 MiB arenas, one lock); objects over 32 KiB come straight from the mheap.
Ms are real OS threads that must hold a P to allocate.
"""
from goruntime.errors import GoRuntimeError
from goruntime.runtime import MCACHE_MODES, MCENTRAL_MODES, SWEEP_MODES, MemStats, Runtime, check_modes
from goruntime.sizeclasses import SizeClasses
from goruntime.workload import RunResult

__all__ = ["GoRuntimeError", "MCACHE_MODES", "MCENTRAL_MODES", "SWEEP_MODES", "MemStats", "Runtime", "RunResult", "SizeClasses",
           "check_modes"]
