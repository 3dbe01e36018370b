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
    cdef bint _ready              # every structure allocated and initialised
    cdef object _runs             # threading.Condition guarding _active_runs
    cdef int _active_runs
    cdef object __weakref__

    cdef p_t* _enter(self, m_t* scratch) except NULL
    cdef void _leave(self, m_t* mp) noexcept
    cdef void _check_open(self) except *
    cdef void _begin_run(self) except *
    cdef void _end_run(self) noexcept
    cdef int _check_extent(self, object addr, size_t want) except -1
