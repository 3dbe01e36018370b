# cython: language_level=3
# malloc: mallocgc's slow paths and free (the design is written in malloc.pxd).
# Go counterparts: runtime/malloc.go: largeAlloc (Go 1.13; (*mcache).allocLarge
# later), the large branch of mallocgc. _central_alloc and the "locked" branch
# serve the comparison modes and have none. free_object and object_extent have
# none either, Go having no free: they find the object as findObject
# (runtime/mbitmap.go) does, then mark it dead or measure it.
from libc.stdint cimport uint64_t, int64_t
from goruntime.sys cimport xadd64, or64, or16, load_relaxed16, ctz64, GR_ASSERT, nanotime
from goruntime.trace cimport tracebuf_t, trace_current, trace_put, EV_LARGE
from goruntime.lock cimport lock, unlock, SITE_LARGE, SITE_MCACHE, SITE_SHARED
from goruntime.mcentral cimport mcentral_allocObject
from goruntime.mcache cimport mcache_nextFree
from goruntime.runtime2 cimport MCACHE_NONE, MCACHE_SHARED
from goruntime.mheap cimport mheap_alloc, spanOf
from goruntime.mgcsweep cimport ensureSwept, span_swept, deductSweepCredit
from goruntime.mspan cimport SPAN_INUSE, slot_allocated, slot_freed, span_objindex
from goruntime.sizeclasses cimport PAGE_SHIFT, PAGE_SIZE, spanClassSizeclass


cdef uintptr_t _large_alloc(runtime_t* rt, p_t* pp, size_t size, bint noscan, bint* gc) noexcept nogil:
    cdef size_t npages = size >> PAGE_SHIFT
    cdef mspan_t* s
    cdef tracebuf_t* tb = trace_current()
    cdef uint64_t t0 = nanotime() if tb != NULL else 0
    if size & (PAGE_SIZE - 1):
        npages += 1
    deductSweepCredit(rt.heap, npages * PAGE_SIZE, npages)
    s = mheap_alloc(rt.heap, npages, makeSpanClass(0, noscan), SITE_LARGE, NULL)
    if tb != NULL:
        trace_put(tb, EV_LARGE, t0, nanotime(), size, 0)
    if s == NULL:
        return 0
    GR_ASSERT(s.nelems == 1, "a large object's span has more than one slot")
    GR_ASSERT(s.elemsize >= size, "a large object's span is smaller than the object")
    s.limit = s.startAddr + size
    s.freeindex = 1
    s.allocCount = 1
    if s.needzero:
        memset(<void*>s.startAddr, 0, size)
    pp.mcache.large_allocs += 1
    pp.mcache.large_bytes += s.elemsize
    xadd64(&rt.heap.heap_live, <int64_t>s.elemsize)
    if gc_trigger(rt):
        gc[0] = True
    return s.startAddr


cdef uintptr_t _central_alloc(runtime_t* rt, p_t* pp, size_t size, bint noscan, bint* gc) noexcept nogil:
    """The "none" mcache mode: every small object comes from its mcentral (no
    per-P span cache, so no tiny blocks either)."""
    cdef int sizeclass = size_to_class(rt.sc, size)
    cdef mspan_t* s
    cdef bint grew = False
    cdef uintptr_t x
    deductSweepCredit(rt.heap, rt.sc.class_to_size[sizeclass], 0)
    x = mcentral_allocObject(rt.central[makeSpanClass(sizeclass, noscan)], &pp.pcache, &s, &grew)
    if x == 0:
        return 0
    if s.needzero:
        memset(<void*>x, 0, s.elemsize)
    pp.mcache.nmalloc[sizeclass] += 1
    xadd64(&rt.heap.heap_live, <int64_t>s.elemsize)
    if grew:
        pp.mcache.refills += 1
        if gc_trigger(rt):
            gc[0] = True
    return x


cdef uintptr_t malloc_nextFree(runtime_t* rt, mcache_t* c, int spc, bint* gc) noexcept nogil:
    """mallocgc_small past nextFreeFast: Go's c.nextFree, and after a refill
    (shouldhelpgc: the span changed) the heap-goal test; 0 if out of memory."""
    cdef mspan_t* s = c.alloc[spc]
    cdef uintptr_t x = mcache_nextFree(c, spc)
    if x != 0 and c.alloc[spc] != s and gc_trigger(rt):
        gc[0] = True
    return x


cdef uintptr_t mallocgc_slow(runtime_t* rt, p_t* pp, size_t size, bint noscan, bint* gc) noexcept nogil:
    cdef uintptr_t x
    if size > MAX_SMALL_SIZE:
        # Refuse what no arena reservation could hold before rounding overflows.
        if size > (<size_t>1 << 46):
            return 0
        return _large_alloc(rt, pp, size, noscan, gc)
    if rt.mcache_mode == MCACHE_NONE:
        return _central_alloc(rt, pp, size, noscan, gc)
    if rt.mcache_mode == MCACHE_SHARED:
        # One cache for every P, behind one mutex: the design without per-P
        # caches, whose lock every allocating M contends for.
        lock(&rt.shared.mcache.lock, SITE_SHARED)
        x = mallocgc_small(rt, &rt.shared.mcache, size, noscan, gc)
        unlock(&rt.shared.mcache.lock)
    else:
        # MCACHE_LOCKED: the P's own mcache behind its own mutex, which only
        # that P takes: what the lock alone costs, uncontended.
        lock(&pp.mcache.lock, SITE_MCACHE)
        x = mallocgc_small(rt, &pp.mcache, size, noscan, gc)
        unlock(&pp.mcache.lock)
    return x


cdef inline int _locate(runtime_t* rt, uintptr_t addr, mspan_t** sp, uint32_t* idx, uintptr_t* rem) noexcept nogil:
    """Finds the slot holding addr, in a swept span: a span still unswept is swept
    first (the frees it holds came before this cycle's snapshot), and one swept
    away meanwhile is looked up again. The caller holds a P, so the span stays
    swept until it is done."""
    cdef mspan_t* s = spanOf(rt.heap, addr)
    cdef uintptr_t off
    while s != NULL and not span_swept(rt.heap, s):
        ensureSwept(rt.heap, s)
        s = spanOf(rt.heap, addr)       # the sweep may have given the span back
    if s == NULL or s.state != SPAN_INUSE or addr < s.startAddr or addr >= s.limit:
        return FREE_BAD_POINTER
    off = addr - s.startAddr
    idx[0] = span_objindex(s, off)
    rem[0] = off - <uintptr_t>idx[0] * s.elemsize
    sp[0] = s
    if not slot_allocated(s, idx[0]):
        return FREE_BAD_POINTER
    return FREE_OK


cdef inline bint _is_tiny_block(mspan_t* s, uint32_t idx) noexcept nogil:
    return s.tinyObjs != NULL and load_relaxed32(&s.tinyObjs[idx]) != 0


cdef int free_object(runtime_t* rt, mcache_t* c, uintptr_t addr) noexcept nogil:
    """Marks the object at addr dead, for the M holding the P whose mcache is c.
    Any P may free any object: the slot becomes reusable when its span is swept
    after the next collection's snapshot. c counts the bytes freed, for that
    snapshot's live heap (a tiny block counts when its last object goes)."""
    cdef mspan_t* s
    cdef uint32_t idx, objs
    cdef uintptr_t rem
    cdef uint16_t tbit, old
    cdef uint64_t bit
    cdef int err = _locate(rt, addr, &s, &idx, &rem)
    if err != FREE_OK:
        return err
    if _is_tiny_block(s, idx):
        tbit = <uint16_t>(1 << rem)
        objs = load_relaxed32(&s.tinyObjs[idx])
        if not (objs & tbit):
            return FREE_BAD_POINTER
        old = or16(&s.tinyFreed[idx], tbit)
        if old & tbit:
            return FREE_DOUBLE_FREE
        if (old | tbit) == <uint16_t>objs:
            c.freed_bytes += TINY_SIZE
        return FREE_OK
    if rem != 0:
        return FREE_BAD_POINTER
    bit = (<uint64_t>1) << (idx & 63)
    if or64(&s.freedBits[idx >> 6], bit) & bit:
        return FREE_DOUBLE_FREE
    c.freed_bytes += s.elemsize
    return FREE_OK


cdef int object_extent(runtime_t* rt, uintptr_t addr, size_t* size) noexcept nogil:
    """How many bytes from addr belong to the live object starting there."""
    cdef mspan_t* s
    cdef uint32_t idx
    cdef uintptr_t rem
    cdef uint32_t objs
    cdef uint16_t tbit
    cdef int err = _locate(rt, addr, &s, &idx, &rem)
    if err != FREE_OK:
        return err
    if _is_tiny_block(s, idx):
        objs = load_relaxed32(&s.tinyObjs[idx])
        tbit = <uint16_t>(1 << rem)
        if not (objs & tbit) or (load_relaxed16(&s.tinyFreed[idx]) & tbit):
            return FREE_BAD_POINTER
        # The object's last byte is the first end mark at or after its start.
        size[0] = ctz64((objs >> 16) >> rem) + 1
        return FREE_OK
    if rem != 0 or slot_freed(s, idx):
        return FREE_BAD_POINTER
    size[0] = s.limit - addr if spanClassSizeclass(s.spanclass) == 0 else s.elemsize
    return FREE_OK
