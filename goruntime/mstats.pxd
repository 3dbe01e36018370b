# mstats: MemStats (runtime/mstats.go). See mstats.pyx.
from goruntime.runtime2 cimport runtime_t

cdef dict read_memstats(runtime_t* rt)
