# cython: language_level=3
# The scheduler structures are declared in runtime2.pxd; this module exposes
# their enums (PStatus, MCacheMode) to Python.
