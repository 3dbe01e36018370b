# mgc: stop-the-world collection. Liveness is explicit in the model (an object
# is live until free() marks it), so "mark" is computing each span's
# gcmarkBits from allocBits and freedBits; the sweep then works as Go's does.
from goruntime.runtime2 cimport p_t, runtime_t

cdef void gcStart(runtime_t* rt, p_t* mine) noexcept nogil
cdef bint gcTryStart(runtime_t* rt, p_t* mine) noexcept nogil
cdef void flushallmcaches(runtime_t* rt) noexcept nogil
cdef void set_heap_goal(runtime_t* rt) noexcept nogil
cdef tuple verify_heap(runtime_t* rt)
