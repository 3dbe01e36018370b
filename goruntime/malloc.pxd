# malloc: Go's mallocgc. Small requests are served by the P's mcache without a
# lock (tiny allocator for noscan objects under 16 B, then nextFreeFast on the
# cached span); only a full span goes to the mcentral, and objects over 32 KiB
# go straight to the mheap.
from libc.stdint cimport uint16_t, uint32_t, uintptr_t
from libc.string cimport memset
from goruntime.sys cimport load64, load_relaxed32, store_relaxed32
from goruntime.mspan cimport mspan_t, nextFreeFast
from goruntime.mcache cimport mcache_t, mcache_nextFree
from goruntime.sizeclasses cimport (size_to_class, makeSpanClass, MAX_SMALL_SIZE, TINY_SIZE,
    TINY_SIZE_CLASS, TINY_SPAN_CLASS)
from goruntime.runtime2 cimport p_t, runtime_t, MCACHE_LOCKFREE

cpdef enum FreeResult:
    FREE_OK = 0
    FREE_BAD_POINTER = 1
    FREE_DOUBLE_FREE = 2

cdef uintptr_t mallocgc_slow(runtime_t* rt, p_t* pp, size_t size, bint noscan, bint* gc) noexcept nogil
cdef int free_object(runtime_t* rt, uintptr_t addr) noexcept nogil
cdef int object_extent(runtime_t* rt, uintptr_t addr, size_t* size) noexcept nogil


cdef inline bint gc_trigger(runtime_t* rt) noexcept nogil:
    """Go's gcTrigger{kind: gcTriggerHeap}.test(), with GOGC's heap goal."""
    return rt.gogc >= 0 and load64(&rt.heap.heap_live) >= rt.heap_goal


cdef inline void tiny_mark(mspan_t* s, uintptr_t x, size_t size) noexcept nogil:
    # Records where a tiny object starts and ends, so that free() can tell it
    # from an interior pointer and read/write stay inside it; only the owning P
    # writes this word.
    cdef uint32_t* w = &s.tinyObjs[(x - s.startAddr) >> 4]
    store_relaxed32(w, load_relaxed32(w) | (<uint32_t>1 << (x & 15)) | (<uint32_t>1 << (16 + ((x + size - 1) & 15))))


cdef inline uintptr_t mallocgc_small(runtime_t* rt, mcache_t* c, size_t size, bint noscan, bint* refilled) noexcept nogil:
    """The mcache path of mallocgc for 0 < size <= 32 KiB; 0 if out of memory."""
    cdef uintptr_t x, off
    cdef mspan_t* s
    cdef int sizeclass, spc
    if noscan and size < TINY_SIZE:
        off = c.tinyoffset
        if (size & 7) == 0:
            off = (off + 7) & ~(<uintptr_t>7)
        elif (size & 3) == 0:
            off = (off + 3) & ~(<uintptr_t>3)
        elif (size & 1) == 0:
            off = (off + 1) & ~(<uintptr_t>1)
        if off + size <= TINY_SIZE and c.tiny != 0:
            x = c.tiny + off
            c.tinyoffset = off + size
            c.tinyallocs += 1
            tiny_mark(c.tinyspan, x, size)
            return x
        s = c.alloc[TINY_SPAN_CLASS]
        x = nextFreeFast(s)
        if x == 0:
            x = mcache_nextFree(c, TINY_SPAN_CLASS, refilled)
            if x == 0:
                return 0
            s = c.alloc[TINY_SPAN_CLASS]
        memset(<void*>x, 0, TINY_SIZE)
        tiny_mark(s, x, size)
        c.nmalloc[TINY_SIZE_CLASS] += 1
        if size < c.tinyoffset or c.tiny == 0:
            c.tiny = x
            c.tinyoffset = size
            c.tinyspan = s
        return x
    sizeclass = size_to_class(rt.sc, size)
    spc = makeSpanClass(sizeclass, noscan)
    s = c.alloc[spc]
    x = nextFreeFast(s)
    if x == 0:
        x = mcache_nextFree(c, spc, refilled)
        if x == 0:
            return 0
        s = c.alloc[spc]
    if s.needzero:
        memset(<void*>x, 0, s.elemsize)
    c.nmalloc[sizeclass] += 1
    return x


cdef inline uintptr_t mallocgc(runtime_t* rt, p_t* pp, size_t size, bint noscan, bint* gc) noexcept nogil:
    """An object of `size` bytes for the M holding pp; 0 if the heap cannot grow.

    Sets *gc when this allocation took the heap to its goal: the caller starts
    a collection, as Go's mallocgc does after a refill or a large allocation.
    """
    cdef uintptr_t x
    cdef bint refilled = False
    if size == 0:
        return <uintptr_t>&rt.zerobase
    if size > MAX_SMALL_SIZE or rt.mcache_mode != MCACHE_LOCKFREE:
        return mallocgc_slow(rt, pp, size, noscan, gc)
    x = mallocgc_small(rt, &pp.mcache, size, noscan, &refilled)
    if refilled and gc_trigger(rt):
        gc[0] = True
    return x
