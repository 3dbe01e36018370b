# runtime: the Python API (Runtime); no single Go counterpart, see runtime.pyx.
from libc.stdint cimport uint32_t
from goruntime.runtime2 cimport runtime_t, p_t, m_t
from goruntime.mheap cimport MHeap
from goruntime.sizeclasses cimport SizeClasses

cdef class Runtime:
    cdef runtime_t* rt
    cdef readonly MHeap heap
    cdef readonly SizeClasses sizeclasses
    cdef readonly tuple centrals
    cdef readonly tuple ps
    cdef readonly bint closed
    cdef readonly dict modes
    cdef readonly object shared_mcache     # the "shared" mode's cache (an MCache view), else None
    cdef bint _ready              # every structure allocated and initialised
    cdef object _calls            # threading.Condition: close() waits for _inflight == 0
    cdef int _inflight            # calls that released the GIL (see _begin_call)
    cdef object __weakref__

    cdef p_t* _enter(self, m_t* scratch) except NULL
    cdef void _leave(self, m_t* mp) noexcept
    cdef void _check_open(self) except *
    cdef void _begin_call(self) except *
    cdef void _end_call(self) noexcept
    cdef int _check_extent(self, object addr, size_t want) except -1
    cdef object _world_stopped(self, fn)
    cdef int _trace_start(self, uint32_t per_buf) except -1
    cdef object _trace_stop(self)
    cdef dict _lock_names(self)
