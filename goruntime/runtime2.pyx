# cython: language_level=3
# runtime2: the scheduler structures are declared in runtime2.pxd (Go's
# runtime/runtime2.go); this module only exposes their enums (PStatus,
# MCacheMode) to Python.
