# runtime: the Python API (Runtime); no single Go counterpart, see runtime.pyx.
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from goruntime.runtime2 cimport runtime_t, p_t, m_t
from goruntime.mheap cimport MHeap
from goruntime.sizeclasses cimport SizeClasses
from goruntime.mgcscavenge cimport scavenger_t

# A copy made with the world stopped (Runtime._stopped): C only, 0 or -1 (out of memory).
ctypedef int (*stopped_fn)(runtime_t* rt, void* arg) noexcept nogil


cdef class Runtime:
    cdef runtime_t* rt
    cdef readonly MHeap heap
    cdef readonly SizeClasses sizeclasses
    cdef readonly dict modes
    cdef bint _closed             # close() was called (see the closed property for forks)
    cdef bint _ready              # every structure allocated and initialised
    cdef uint64_t serial          # unique per Runtime in the process: a thread's proc() binding names it
    cdef object _bgsweep          # the background sweeper's M (proc.M), with sweep="concurrent"
    cdef scavenger_t* scav        # the background scavenger (its thread runs if scavenger=True)
    cdef object __weakref__

    cdef bint _usable(self) noexcept
    cdef int _check_call(self) except -1
    cdef m_t* _enter(self, m_t* scratch) except NULL
    cdef void _leave(self, m_t* mp) noexcept
    cdef int _extent(self, uintptr_t addr, size_t want) noexcept
    cdef void _release_heap(self) noexcept
    cdef void _join_bgsweep(self) noexcept
    cdef int _stopped(self, stopped_fn fn, void* arg) except -1
    cdef int _trace_start(self, uint32_t per_buf) except -1
    cdef object _trace_stop(self)
    cdef dict _lock_names(self)
