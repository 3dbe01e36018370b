# cython: language_level=3
# mcentral: runtime/mcentral.go's cacheSpan, uncacheSpan and grow, in both
# designs (see mcentral.pxd). mcentral_allocObject has no Go counterpart: it
# serves the "none" mcache mode, where every small object comes from here.
from libc.stdlib cimport malloc
from libc.string cimport memset
from libc.stdint cimport int64_t
from goruntime.sys cimport xadd64, GR_ASSERT, nanotime, load32, store32
from goruntime.trace cimport tracebuf_t, trace_current, trace_put, EV_GROW
from goruntime.lock cimport (mutex_init, mutex_destroy, lock, unlock, mutex_stats,
    SITE_CACHESPAN, SITE_UNCACHESPAN, SITE_GROW, SITE_SWEEP, SITE_FREESPAN)
from goruntime.mheap cimport mheap_alloc, mheap_freeSpan, sweepspans_push, SWEEP_BY_CACHESPAN
from goruntime.mspan cimport (list_insert, list_insertBack, list_remove, refillAllocCache,
    nextFreeIndex, span_copy, span_sweep_bits)
from goruntime.mspanset cimport spanset_init, spanset_destroy, spanset_push, spanset_pop, spanset_len, spanset_at


cdef void mcentral_init(mcentral_t* c, int spanclass, mheap_t* heap, int mode) noexcept nogil:
    cdef int i
    memset(c, 0, sizeof(mcentral_t))
    mutex_init(&c.lock)
    c.spanclass = spanclass
    c.mode = mode
    c.heap = heap
    for i in range(2):
        spanset_init(&c.partial[i])
        spanset_init(&c.full[i])


cdef void mcentral_destroy(mcentral_t* c) noexcept nogil:
    cdef int i
    for i in range(2):
        spanset_destroy(&c.partial[i])
        spanset_destroy(&c.full[i])
    mutex_destroy(&c.lock)


cdef mspan_t* _grow(mcentral_t* c, pagecache_t* pc) noexcept nogil:
    cdef int sizeclass = spanClassSizeclass(c.spanclass)
    cdef tracebuf_t* tb = trace_current()
    cdef uint64_t t0 = nanotime() if tb != NULL else 0
    cdef mspan_t* s = mheap_alloc(c.heap, c.heap.sc.class_to_allocnpages[sizeclass], c.spanclass,
                                  SITE_GROW, pc)
    if tb != NULL:
        trace_put(tb, EV_GROW, t0, nanotime(), c.spanclass, 0)
    if s != NULL:
        xadd64(&c.ngrow, 1)
    return s


cdef bint mcentral_sweep(mcentral_t* c, mspan_t* s, bint preserve, int by) noexcept nogil:
    """Sweeps a small span the caller has claimed (sweepgen h-1): Go's
    (*mspan).sweep and, for the mutex design, mcentral.freeSpan. Returns True
    if the span had no object left and went back to the mheap.

    preserve (cacheSpan and the "none" mode, which hold the span to allocate
    from it): the span stays where the caller put it, even empty. Otherwise it
    is filed by what the sweep found: freed to the mheap when empty; in the
    mutex design moved from empty to nonempty when it gained a free slot; in the
    spanset design pushed on the swept set it now belongs to (Go 1.16: a stale
    copy of it may remain in an unswept set; whoever pops that copy fails to
    claim it and drops it)."""
    cdef mheap_t* h = c.heap
    cdef uint32_t sg = h.sweepgen
    cdef uint32_t nfreed
    cdef uint64_t t0 = nanotime()
    GR_ASSERT(load32(&s.sweepgen) == sg - 1, "sweeping a span that was not claimed")
    GR_ASSERT(s.spanclass == c.spanclass, "sweeping a span of another span class")
    nfreed = span_sweep_bits(s)
    if nfreed:
        xadd64(&c.nfree, nfreed)
    xadd64(&h.pages_swept, <int64_t>s.npages)
    xadd64(&h.nswept[by], 1)
    xadd64(&h.sweep_ns, <int64_t>(nanotime() - t0))
    if not preserve and s.allocCount == 0:
        if c.mode != MCENTRAL_SPANSET:
            lock(&c.lock, SITE_SWEEP)
            list_remove(s.list, s)
            unlock(&c.lock)
        store32(&s.sweepgen, sg)        # waiters in ensureSwept let go of it
        mheap_freeSpan(h, s, SITE_FREESPAN)
        return True
    if preserve:
        store32(&s.sweepgen, sg)
    elif c.mode == MCENTRAL_SPANSET:
        store32(&s.sweepgen, sg)
        spanset_push(partialSwept(c, sg) if s.allocCount < s.nelems else fullSwept(c, sg), s)
    elif nfreed and s.allocCount < s.nelems:
        lock(&c.lock, SITE_SWEEP)
        if s.list == &c.empty:
            list_remove(&c.empty, s)
            list_insert(&c.nonempty, s)
        store32(&s.sweepgen, sg)
        unlock(&c.lock)
    else:
        store32(&s.sweepgen, sg)
    sweepspans_push(h, s)
    return False


cdef mspan_t* _spanset_find(mcentral_t* c, uint32_t sg) noexcept nogil:
    """Go 1.16's cacheSpan search: a swept span with a free slot, else unswept
    ones swept on the way (at most SPAN_BUDGET of them, which bounds the time an
    allocation spends sweeping, and the space a fresh span wastes, to about 1%);
    NULL if the caller must grow."""
    cdef mspan_t* s = spanset_pop(partialSwept(c, sg))
    cdef int budget = SPAN_BUDGET
    if s != NULL:
        return s
    while budget >= 0:
        s = spanset_pop(partialUnswept(c, sg))
        if s == NULL:
            break
        budget -= 1
        if span_tryAcquire(s, sg):
            mcentral_sweep(c, s, True, SWEEP_BY_CACHESPAN)
            return s
        # A stale copy: its span was swept where it lay (ensureSwept), and filed.
    while budget >= 0:
        s = spanset_pop(fullUnswept(c, sg))
        if s == NULL:
            break
        budget -= 1
        if span_tryAcquire(s, sg):
            mcentral_sweep(c, s, True, SWEEP_BY_CACHESPAN)
            if s.allocCount < s.nelems:
                return s
            spanset_push(fullSwept(c, sg), s)
    return NULL


cdef mspan_t* _mutex_find(mcentral_t* c, uint32_t sg) noexcept nogil:
    """Go 1.13's cacheSpan search, c.lock held: a span with a free slot, moved
    to empty (where a cached span stays), swept first if it was not. Returns
    with the lock released if it found one, held if not. An unswept span is
    claimed under the lock and swept after it is dropped, as Go does."""
    cdef mspan_t* s
    cdef uint32_t spg
    cdef bint retry = True
    while retry:
        retry = False
        s = c.nonempty.first
        while s != NULL:
            spg = load32(&s.sweepgen)
            if spg == sg - 2 and span_tryAcquire(s, sg):
                list_remove(&c.nonempty, s)
                list_insertBack(&c.empty, s)
                unlock(&c.lock)
                mcentral_sweep(c, s, True, SWEEP_BY_CACHESPAN)
                return s
            if spg == sg - 2 or spg == sg - 1:
                s = s.next          # another sweeper has it
                continue
            list_remove(&c.nonempty, s)
            list_insertBack(&c.empty, s)
            unlock(&c.lock)
            return s
        s = c.empty.first
        while s != NULL:
            spg = load32(&s.sweepgen)
            if spg == sg - 2 and span_tryAcquire(s, sg):
                list_remove(&c.empty, s)
                list_insertBack(&c.empty, s)
                unlock(&c.lock)
                mcentral_sweep(c, s, True, SWEEP_BY_CACHESPAN)
                if s.allocCount < s.nelems:
                    return s
                lock(&c.lock, SITE_CACHESPAN)
                retry = True
                break
            if spg == sg - 2 or spg == sg - 1:
                s = s.next
                continue
            # Swept and full (or cached): so is every span after it, swept
            # spans being put at the back.
            break
    return NULL


cdef mspan_t* mcentral_cacheSpan(mcentral_t* c, pagecache_t* pc) noexcept nogil:
    """A swept span with at least one free object, for an mcache; NULL if out of
    memory. The caller has paid its sweep credit (deductSweepCredit)."""
    cdef mspan_t* s
    cdef uint32_t sg = c.heap.sweepgen
    if c.mode == MCENTRAL_SPANSET:
        s = _spanset_find(c, sg)
        if s == NULL:
            s = _grow(c, pc)
            if s == NULL:
                return NULL
    else:
        lock(&c.lock, SITE_CACHESPAN)
        s = _mutex_find(c, sg)
        if s == NULL:
            unlock(&c.lock)
            s = _grow(c, pc)
            if s == NULL:
                return NULL
            lock(&c.lock, SITE_GROW)
            list_insertBack(&c.empty, s)
            unlock(&c.lock)
    GR_ASSERT(load32(&s.sweepgen) == sg, "cacheSpan returns an unswept span")
    # Go's havespan: the cache window starts at freeindex.
    refillAllocCache(s, s.freeindex >> 6)
    s.allocCache >>= s.freeindex & 63
    return s


cdef void mcentral_uncacheSpan(mcentral_t* c, mspan_t* s) noexcept nogil:
    """Takes a span back from an mcache (releaseAll, or a Go 1.16 refill).

    Every mcache is flushed before sweepgen advances (with the world stopped),
    so a span comes back swept (h+3), never stale (h+1) as it may in Go."""
    GR_ASSERT(s.allocCount <= s.nelems, "allocCount exceeds nelems")
    GR_ASSERT(load32(&s.sweepgen) == c.heap.sweepgen + 3, "uncaching a span that is not cached")
    store32(&s.sweepgen, c.heap.sweepgen)
    if c.mode == MCENTRAL_SPANSET:
        if s.allocCount < s.nelems:
            spanset_push(partialSwept(c, c.heap.sweepgen), s)
        else:
            spanset_push(fullSwept(c, c.heap.sweepgen), s)
    elif s.allocCount < s.nelems:
        lock(&c.lock, SITE_UNCACHESPAN)
        list_remove(&c.empty, s)
        list_insert(&c.nonempty, s)
        unlock(&c.lock)


cdef inline uintptr_t _take(mspan_t* s) noexcept nogil:
    cdef uint32_t idx = nextFreeIndex(s)
    GR_ASSERT(idx < s.nelems, "a full span was taken for an object")
    s.allocCount += 1
    return s.startAddr + <uintptr_t>idx * s.elemsize


cdef uintptr_t mcentral_allocObject(mcentral_t* c, pagecache_t* pc, mspan_t** sp, bint* grew) noexcept nogil:
    """One object straight from the mcentral, for the "none" mcache mode (no
    per-P cache); 0 if out of memory. *sp is its span."""
    cdef mspan_t* s
    cdef uintptr_t x
    cdef uint32_t sg = c.heap.sweepgen
    if c.mode == MCENTRAL_SPANSET:
        s = _spanset_find(c, sg)
        if s == NULL:
            s = _grow(c, pc)
            if s == NULL:
                return 0
            grew[0] = True
        x = _take(s)
        if s.allocCount < s.nelems:
            spanset_push(partialSwept(c, sg), s)
        else:
            spanset_push(fullSwept(c, sg), s)
        sp[0] = s
        return x
    lock(&c.lock, SITE_CACHESPAN)
    s = c.nonempty.first
    if s == NULL or load32(&s.sweepgen) != sg:
        # Unswept spans first, as cacheSpan does; the span found is now at the back of
        # empty and swept, and goes back to nonempty unless the object fills it.
        s = _mutex_find(c, sg)
        if s != NULL:
            lock(&c.lock, SITE_CACHESPAN)
            list_remove(&c.empty, s)
        else:
            unlock(&c.lock)
            s = _grow(c, pc)
            if s == NULL:
                return 0
            grew[0] = True
            lock(&c.lock, SITE_GROW)
        list_insert(&c.nonempty, s)
    x = _take(s)
    if s.allocCount == s.nelems:
        list_remove(&c.nonempty, s)
        list_insertBack(&c.empty, s)
    unlock(&c.lock)
    sp[0] = s
    return x


cdef spanview_t* mcentral_snapshot(mcentral_t* c, int which, size_t* n) noexcept nogil:
    """Copies of the spans on one of c's lists (a malloc'd array of n[0], the caller
    frees it; NULL if out of memory). The caller keeps the lists still: the world
    is stopped."""
    cdef mspanlist_t* lst
    cdef spanset_t* sets[2]
    cdef spanview_t* out
    cdef mspan_t* s
    cdef uint64_t k, i, total = 0
    if which == LIST_NONEMPTY or which == LIST_EMPTY:
        lst = &c.nonempty if which == LIST_NONEMPTY else &c.empty
        out = <spanview_t*>malloc((lst.count + 1) * sizeof(spanview_t))
        if out == NULL:
            return NULL
        s = lst.first
        while s != NULL:
            span_copy(s, c.heap.sweepgen, &out[total])
            total += 1
            s = s.next
    else:
        sets[0] = &c.partial[0] if which == LIST_PARTIAL else &c.full[0]
        sets[1] = &c.partial[1] if which == LIST_PARTIAL else &c.full[1]
        out = <spanview_t*>malloc((spanset_len(sets[0]) + spanset_len(sets[1]) + 1) * sizeof(spanview_t))
        if out == NULL:
            return NULL
        for k in range(2):
            for i in range(spanset_len(sets[k])):
                s = spanset_at(sets[k], i)
                if s != NULL:
                    span_copy(s, c.heap.sweepgen, &out[total])
                    total += 1
    n[0] = total
    return out


class SpanList(list):
    """The spans of one mcentral list, as they were when it was read."""

    def __init__(self, spans, name):
        super().__init__(spans)
        self.name = name

    def __repr__(self):
        used = sum(s.allocCount for s in self)
        slots = sum(s.nelems for s in self)
        head = f"<{self.name}: {len(self)} span{'s' if len(self) != 1 else ''}, {used}/{slots} slots allocated"
        return head + ("" if not self else ":\n  " + "\n  ".join(map(repr, self))) + ">"
cdef object _VIEW = object()


cdef class MCentral:
    """The central free list of one span class (a view into the Runtime's array)."""

    def __cinit__(self, token=None):
        if token is not _VIEW:
            raise TypeError("MCentral objects are views of a Runtime's mcentrals: use Runtime.centrals")

    @property
    def spanclass(self):
        return self.c.spanclass

    @property
    def sizeclass(self):
        return spanClassSizeclass(self.c.spanclass)

    @property
    def noscan(self):
        return spanClassNoscan(self.c.spanclass)

    def lockstats(self):
        return mutex_stats(&self.c.lock)

    # The lists, read with the world stopped (by the Runtime) and copied: reading them
    # flushes no mcache and takes no lock these figures count.

    @property
    def nonempty(self):
        """Go 1.13: the spans with a free slot (mcentral="mutex")."""
        return self._list(LIST_NONEMPTY, "nonempty")

    @property
    def empty(self):
        """Go 1.13: the spans with no free slot, and those cached in an mcache."""
        return self._list(LIST_EMPTY, "empty")

    @property
    def partial(self):
        """Go 1.15: the spans with a free slot (mcentral="spanset"), both halves."""
        return self._list(LIST_PARTIAL, "partial")

    @property
    def full(self):
        """Go 1.15: the spans with no free slot (mcentral="spanset"), both halves."""
        return self._list(LIST_FULL, "full")

    def _list(self, int which, str name):
        spanset = self.c.mode == MCENTRAL_SPANSET
        if spanset != (which in (LIST_PARTIAL, LIST_FULL)):
            raise AttributeError(f"an mcentral in the {'spanset' if spanset else 'mutex'} mode has "
                                 f"{'partial and full' if spanset else 'nonempty and empty'}, not {name}")
        spans = self.owner._central_list(self.c.spanclass, which, f"mcentral[{self.spanclass}].{name}")
        kind = "noscan" if self.noscan else "scan"
        return SpanList(spans, f"mcentral[{self.spanclass}] ({self.elemsize} B {kind}).{name}")

    @property
    def elemsize(self):
        # From the Runtime's tables: the mheap (and c.heap) is gone once it is closed.
        sizeclass = spanClassSizeclass(self.c.spanclass)
        return self.owner.sizeclasses.class_to_size(sizeclass) if sizeclass else 0

    def __repr__(self):
        kind = "noscan" if self.noscan else "scan"
        mode = "spanset" if self.c.mode == MCENTRAL_SPANSET else "mutex"
        return f"<mcentral[{self.spanclass}] {self.elemsize} B {kind} ({mode})>"


cdef MCentral make_MCentral(object owner, mcentral_t* c):
    cdef MCentral view = MCentral.__new__(MCentral, _VIEW)
    view.c = c
    view.owner = owner
    return view
