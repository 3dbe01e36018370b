"""Stress workloads for goruntime: nogil kernels that hammer the allocator from
many Ms (stress.kernels) and the runner that checks the heap while they run
(stress.runner). `python -m stress --help`, `goruntime stress`, `make stress`."""
