# cython: language_level=3
# mheap: the page heap's operations. Go counterparts: runtime/mheap.go:
# (*mheap).alloc and allocSpan (mheap_alloc), initSpan (_init_span),
# allocMSpanLocked (_new_span_struct), allocNeedsZero (_alloc_needs_zero),
# grow (_grow), freeSpanLocked, spanOf; runtime/malloc.go:
# sysReserveAligned (_grow's over-reserve and trim for 64 MiB alignment);
# runtime/mpagealloc.go: find, alloc, free (_find_run, _set_pages);
# runtime/mpagecache.go: (*pageCache).alloc, flush and (*pageAlloc).allocToCache
# (_alloc_from_pagecache, pagecache_flush, _refill_pagecache);
# runtime/mgcscavenge.go: the page-level half of scavenging, Go 1.13's
# (*mheap).scavengeLocked (mheap_scavenge: the highest free, unreleased pages
# first; the madvise without the heap lock, unlike Go 1.13) and the
# scavAddr cursor of Go 1.14 (mheap_scavenge's reset); runtime/mem_linux.go:
# sysUnused (madvise MADV_DONTNEED). The pacing is goruntime/mgcscavenge.pyx.
# freeSpan (mheap_freeSpan), and Go 1.13's sweepSpans (sweepspans_push). MHeap is the Python
# view; its reserve() (prefaulted arenas for benchmarks) and
# fail_reservations() (fault injection) have no Go counterpart.
from libc.stdlib cimport calloc, free
from libc.string cimport memset
from libc.stdint cimport int64_t, uint32_t, uint64_t
from goruntime.sys cimport (mmap, munmap, PROT_READ, PROT_WRITE, MAP_PRIVATE,
    MAP_ANONYMOUS, MAP_NORESERVE, MAP_FAILED, alloc_aligned, ctz64, log2_64, popcount64,
    storep, xadd64, load64, cas64, store32, load32, store_release32, GR_ASSERT)
from goruntime.lock cimport (mutex_init, mutex_destroy, lock, unlock, mutex_stats, SITE_OTHER, SITE_PCACHE,
    SITE_SCAVENGE)
from goruntime.mspanset cimport spanset_init, spanset_destroy, spanset_push
from goruntime.mspan cimport (SPAN_DEAD, SPAN_INUSE, span_alloc_bits, span_free_bits,
    list_insert, list_remove)

cdef extern from "<sys/mman.h>" nogil:
    int madvise(void* addr, size_t length, int advice)
    int MADV_DONTNEED

cdef int mheap_init(mheap_t* h, const sizeclasses_t* sc, size_t max_bytes) noexcept nogil:
    """-1 if the arena index cannot be mapped (h is then left for mheap_destroy)."""
    memset(h, 0, sizeof(mheap_t))
    mutex_init(&h.lock)
    # Go's arenas map: reserved, never faulted in beyond the entries written.
    cdef void* index = mmap(NULL, ARENA_INDEX_LEN * sizeof(heapregion_t*), PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if index == MAP_FAILED:
        return -1
    h.arenas = <heapregion_t**>index
    h.sc = sc
    h.max_bytes = max_bytes
    # Not 2: a span structure being recycled is zeroed for a moment, and a
    # sweeper holding a stale pointer to it must never see 0 as h-2 (unswept).
    h.sweepgen = 4
    h.sweepdone = 1
    h.emptyspan.state = SPAN_DEAD
    spanset_init(&h.sweepSpans[0])
    spanset_init(&h.sweepSpans[1])
    h.scav_addr = <uintptr_t>-1
    return 0


cdef void mheap_destroy(mheap_t* h) noexcept nogil:
    cdef uint32_t i
    cdef heapregion_t* r
    cdef mspan_t* s
    cdef mspan_t* nxt
    cdef size_t p
    for i in range(h.nregions):
        r = &h.regions[i]
        p = 0
        while p < r.npages:
            s = r.spans[p]
            if s != NULL and s.startAddr == r.base + p * PAGE_SIZE:
                p += s.npages           # s is freed below: read nothing of it after
                span_free_bits(s)
                free(s)
            else:
                p += 1
        munmap(<void*>r.base, r.end - r.base)
        free(r.free_bits)
        free(r.scav_bits)
        free(r.spans)
        free(r.zeroed)
    h.nregions = 0
    s = h.spanfree
    while s != NULL:
        nxt = s.next
        span_free_bits(s)
        free(s)
        s = nxt
    h.spanfree = NULL
    if h.arenas != NULL:
        munmap(h.arenas, ARENA_INDEX_LEN * sizeof(heapregion_t*))
        h.arenas = NULL
    spanset_destroy(&h.sweepSpans[0])
    spanset_destroy(&h.sweepSpans[1])
    mutex_destroy(&h.lock)


cdef inline bint _page_free(heapregion_t* r, size_t i) noexcept nogil:
    return (r.free_bits[i >> 6] >> (i & 63)) & 1


cdef inline bint _page_in(heapregion_t* r, size_t i, bint released, uintptr_t fb, uintptr_t fe) noexcept nogil:
    """Free (or, with released, free and released) page i of r; a page of the
    run in flight [fb, fe) counts as free and not released yet."""
    cdef uintptr_t a = r.base + i * PAGE_SIZE
    if released:
        return (r.scav_bits[i >> 6] >> (i & 63)) & 1
    return _page_free(r, i) or (fb <= a < fe)


cdef inline size_t* _hint(mheap_t* h, heapregion_t* r) noexcept nogil:
    """The search hint of region r: no free page below it."""
    return &h.search_hint[r - h.regions]


cdef size_t _find_run(heapregion_t* r, size_t hint, size_t npages) noexcept nogil:
    """First fit: the lowest page index at or above hint starting npages free
    pages, or r.npages."""
    cdef size_t i = hint
    cdef size_t run
    cdef uint64_t w
    cdef int ones
    while i + npages <= r.npages:
        w = r.free_bits[i >> 6] >> (i & 63)
        if w == 0:
            i = (i | 63) + 1
            continue
        i += ctz64(w)
        run = 0
        while run < npages and i + run < r.npages:
            w = ~(r.free_bits[(i + run) >> 6] >> ((i + run) & 63))
            ones = ctz64(w)
            if ones > 64 - <int>((i + run) & 63):
                ones = 64 - <int>((i + run) & 63)
            if ones == 0:
                break
            run += ones
        if run >= npages:
            return i
        i += run
    return r.npages


cdef void _set_pages(heapregion_t* r, size_t start, size_t n, bint isfree) noexcept nogil:
    cdef size_t i
    for i in range(start, start + n):
        GR_ASSERT(_page_free(r, i) != isfree, "a page run changes hands twice (freed while free, or allocated while in use)")
        if isfree:
            r.free_bits[i >> 6] |= (<uint64_t>1) << (i & 63)
        else:
            r.free_bits[i >> 6] &= ~((<uint64_t>1) << (i & 63))


cdef size_t _take_released(heapregion_t* r, size_t start, size_t n) noexcept nogil:
    """Clears the released marks of a run being allocated; returns how many
    pages had one (heap lock held). Go's allocSpan then calls sysUsed, which
    is nothing on Linux: a released page faults in again, zero, when touched."""
    cdef size_t i, count = 0
    cdef uint64_t bit
    for i in range(start, start + n):
        bit = (<uint64_t>1) << (i & 63)
        if r.scav_bits[i >> 6] & bit:
            count += 1
            r.scav_bits[i >> 6] &= ~bit
    return count


cdef bint _alloc_needs_zero(heapregion_t* r, uintptr_t base, size_t npages) noexcept nogil:
    """Go's allocNeedsZero: whether a new span of npages at base must be zeroed,
    arena by arena, moving each arena's zeroedBase up to the span's end in it.

    Memory below zeroedBase has been handed out before (and may have been
    written, freed, even released and faulted in again): it is zeroed. Memory
    at or above it was never handed out since the arena was mapped, so it is
    the kernel's zero pages and is never cleared. The page-cache path calls
    this without the heap lock, so zeroedBase only ever moves up, by CAS; two
    allocations racing in one arena own disjoint runs, so whichever order
    their CASes land in, neither sees the other's run as below zeroedBase."""
    cdef bint needzero = False
    cdef uintptr_t off, limit
    cdef uint64_t zb
    cdef uint64_t* word
    cdef size_t ai, n
    while npages > 0:
        ai = (base - r.base) >> ARENA_SHIFT
        word = &r.zeroed[ai]
        off = (base - r.base) & (ARENA_BYTES - 1)     # the span's start in this arena
        zb = load64(word)
        if off < zb:
            needzero = True
        limit = off + npages * PAGE_SIZE
        if limit > ARENA_BYTES:
            limit = ARENA_BYTES
        while limit > zb:
            if cas64(word, zb, limit):
                break
            zb = load64(word)
            GR_ASSERT(not (off < zb <= limit), "allocNeedsZero: zeroedBase moved into a run being allocated")
        n = (limit - off) // PAGE_SIZE
        base += limit - off
        npages -= n
    return needzero


cdef int _grow(mheap_t* h, size_t npages) noexcept nogil:
    """Reserves a new region of whole arenas holding at least npages; -1 on failure."""
    cdef size_t size = ((npages * PAGE_SIZE + ARENA_BYTES - 1) // ARENA_BYTES) * ARENA_BYTES
    cdef size_t words, k
    cdef uintptr_t raw, base
    cdef heapregion_t* r
    cdef uint32_t idx, pos
    if npages == 0 or npages > (<size_t>1 << 40) // PAGE_SIZE:
        return -1
    if h.nregions >= MAX_REGIONS:
        return -1
    if h.max_bytes and h.heap_sys + size > h.max_bytes:
        return -1
    if h.fail_reserves:
        h.fail_reserves -= 1
        return -1
    # Over-reserve by one arena, then trim, to get 64 MiB alignment.
    cdef void* mem = mmap(NULL, size + ARENA_BYTES, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if mem == MAP_FAILED:
        return -1
    raw = <uintptr_t>mem
    base = (raw + ARENA_BYTES - 1) & ~(<uintptr_t>ARENA_BYTES - 1)
    if base > raw:
        munmap(mem, base - raw)
    if base + size < raw + size + ARENA_BYTES:
        munmap(<void*>(base + size), raw + size + ARENA_BYTES - (base + size))
    if (base + size - 1) >> ARENA_SHIFT >= ARENA_INDEX_LEN:
        munmap(<void*>base, size)       # beyond the arena index (Go: sysReserve past heapAddrBits)
        return -1
    idx = h.nregions
    r = &h.regions[idx]
    r.base = base
    r.end = base + size
    r.npages = size // PAGE_SIZE
    words = (r.npages + 63) // 64
    r.free_bits = <uint64_t*>calloc(words, 8)
    r.scav_bits = <uint64_t*>calloc(words, 8)
    r.spans = <mspan_t**>calloc(r.npages, sizeof(mspan_t*))
    r.zeroed = <uint64_t*>calloc(size // ARENA_BYTES, 8)
    if r.free_bits == NULL or r.scav_bits == NULL or r.spans == NULL or r.zeroed == NULL:
        free(r.free_bits); free(r.scav_bits); free(r.spans); free(r.zeroed)
        r.free_bits = r.scav_bits = r.zeroed = NULL
        r.spans = NULL
        munmap(<void*>base, size)
        return -1
    for k in range(words):
        r.free_bits[k] = ~(<uint64_t>0)
        r.scav_bits[k] = ~(<uint64_t>0)
    h.search_hint[idx] = 0
    # Keep the address order for first fit.
    pos = idx
    while pos > 0 and h.regions[h.order[pos - 1]].base > base:
        h.order[pos] = h.order[pos - 1]
        pos -= 1
    h.order[pos] = idx
    # Fresh memory is released (Go's grow: sysAlloc'd memory is untouched). The
    # released count first: heap_retained reads heap_sys first.
    xadd64(&h.released, <int64_t>r.npages)
    xadd64(&h.heap_sys, <int64_t>size)
    h.table_bytes += 2 * words * 8 + r.npages * sizeof(mspan_t*) + (size // ARENA_BYTES) * 8
    h.heap_grows += 1
    # Publish: spanOf finds the region through the index from here on.
    for k in range(base >> ARENA_SHIFT, (base + size) >> ARENA_SHIFT):
        _index_page_touch(h, k)
        storep(<void**>&h.arenas[k], r)
    store_release32(&h.nregions, idx + 1)
    return 0


cdef inline void _index_page_touch(mheap_t* h, size_t k) noexcept nogil:
    """Counts the OS page of the arena index that entry k lives on in
    table_bytes the first time an entry on it is set (heap lock held)."""
    cdef size_t per_page = 4096 // sizeof(heapregion_t*)
    cdef size_t first = k & ~(per_page - 1), j
    for j in range(first, first + per_page):
        if h.arenas[j] != NULL:
            return
    h.table_bytes += 4096


cdef mspan_t* _new_span_struct(mheap_t* h) noexcept nogil:
    """A zeroed span structure (Go's allocMSpanLocked), from the recycled ones
    if any; a recycled one keeps its bitmap block for span_alloc_bits."""
    cdef mspan_t* s = h.spanfree
    cdef void* bits
    cdef size_t bits_size
    if s != NULL:
        h.spanfree = s.next
        bits = s.bits
        bits_size = s.bits_size
        memset(s, 0, sizeof(mspan_t))
        s.bits = bits
        s.bits_size = bits_size
        return s
    s = <mspan_t*>alloc_aligned(sizeof(mspan_t))
    if s != NULL:
        h.nspans_alloc += 1
    return s


cdef void _init_span(mheap_t* h, mspan_t* s, uintptr_t base, size_t npages, int spanclass) noexcept nogil:
    cdef int sizeclass = spanClassSizeclass(spanclass)
    s.startAddr = base
    s.npages = npages
    s.spanclass = spanclass
    if sizeclass == 0:
        s.elemsize = npages * PAGE_SIZE
        s.nelems = 1
        s.divMul = 0
    else:
        s.elemsize = h.sc.class_to_size[sizeclass]
        s.nelems = h.sc.class_to_nelems[sizeclass]
        s.divMul = <uint32_t>((<uint64_t>0xFFFFFFFFU) // s.elemsize + 1)
    s.limit = s.startAddr + s.nelems * s.elemsize


cdef void _publish(mheap_t* h, heapregion_t* r, mspan_t* s) noexcept nogil:
    """Makes s findable by spanOf and counts it in use; s owns its pages."""
    cdef size_t i, start = (s.startAddr - r.base) // PAGE_SIZE
    store32(&s.sweepgen, h.sweepgen)
    s.state = SPAN_INUSE
    for i in range(start, start + s.npages):
        storep(<void**>&r.spans[i], s)
    xadd64(&h.pages_inuse, <int64_t>s.npages)
    xadd64(&h.nspans_inuse, 1)
    xadd64(&h.bits_bytes, <int64_t>s.bits_size)


cdef mspan_t* _alloc_from_pagecache(mheap_t* h, size_t npages, int spanclass, pagecache_t* pc) noexcept nogil:
    """Go 1.14's allocSpan fast path: pages and span structure from the P's own
    caches, with the heap lock taken only to refill an empty cache."""
    cdef uint64_t run = ((<uint64_t>1) << npages) - 1
    cdef uint64_t free, mask
    cdef int i
    cdef heapregion_t* r
    cdef mspan_t* s
    if pc.cache == 0 or pc.nspans == 0:
        lock(&h.lock, SITE_PCACHE)
        if pc.cache == 0:
            _refill_pagecache(h, pc)
        while pc.nspans < SPAN_CACHE_SIZE // 2:
            s = _new_span_struct(h)
            if s == NULL:
                break
            pc.spans[pc.nspans] = s
            pc.nspans += 1
        unlock(&h.lock)
        if pc.cache == 0 or pc.nspans == 0:
            return NULL
    # First fit inside the chunk: the lowest run of npages free pages.
    free = pc.cache
    for i in range(PAGE_CACHE_PAGES - <int>npages + 1):
        mask = run << i
        if free & mask == mask:
            break
    else:
        return NULL
    pc.nspans -= 1
    s = pc.spans[pc.nspans]
    _init_span(h, s, pc.base + <uintptr_t>i * PAGE_SIZE, npages, spanclass)
    if span_alloc_bits(s) != 0:
        pc.nspans += 1
        return NULL
    pc.cache &= ~mask
    if pc.scav & mask:
        xadd64(&h.released, -<int64_t>popcount64(pc.scav & mask))
        pc.scav &= ~mask
    r = regionOf(h, s.startAddr)
    # No heap lock here: another P may be moving the same arena's zeroedBase.
    s.needzero = _alloc_needs_zero(r, s.startAddr, npages)
    _publish(h, r, s)
    xadd64(&h.pcache_allocs, 1)
    sweepspans_push(h, s)
    return s


cdef void _refill_pagecache(mheap_t* h, pagecache_t* pc) noexcept nogil:
    """Go's allocToCache: takes every free page of the lowest 64-page chunk that
    has one; heap lock held."""
    cdef uint32_t k
    cdef size_t w, words
    cdef heapregion_t* r
    for k in range(h.nregions):
        r = &h.regions[h.order[k]]
        words = r.npages // 64
        for w in range(_hint(h, r)[0] // 64, words):
            if r.free_bits[w] != 0:
                pc.base = r.base + w * 64 * PAGE_SIZE
                pc.cache = r.free_bits[w]
                pc.scav = r.scav_bits[w] & pc.cache
                r.free_bits[w] = 0
                r.scav_bits[w] &= ~pc.cache
                h.pcache_refills += 1
                if _hint(h, r)[0] < (w + 1) * 64:
                    _hint(h, r)[0] = (w + 1) * 64
                return


cdef void pagecache_flush(mheap_t* h, pagecache_t* pc) noexcept nogil:
    """Gives a P's cached pages and span structures back to the heap (heap lock held)."""
    cdef heapregion_t* r
    cdef size_t w
    if pc.cache:
        r = regionOf(h, pc.base)
        w = (pc.base - r.base) // (64 * PAGE_SIZE)
        r.free_bits[w] |= pc.cache
        r.scav_bits[w] |= pc.scav
        if w * 64 < _hint(h, r)[0]:
            _hint(h, r)[0] = w * 64
    pc.base = pc.cache = pc.scav = 0
    while pc.nspans:
        pc.nspans -= 1
        pc.spans[pc.nspans].next = h.spanfree
        h.spanfree = pc.spans[pc.nspans]


cdef mspan_t* mheap_alloc(mheap_t* h, size_t npages, int spanclass, int site, pagecache_t* pc) noexcept nogil:
    """Allocates a span of npages for spanclass (sizeclass 0: one large object).

    Returns NULL when the heap cannot grow. pc is the calling P's page cache, or
    NULL; spans under 16 pages come from it when the heap runs page caches.
    Otherwise takes the heap lock; the caller must not hold an mcentral lock.
    """
    cdef heapregion_t* r = NULL
    cdef size_t start = 0, scav
    cdef uint32_t k
    cdef mspan_t* s
    cdef int attempt
    if h.reclaim != NULL and not load32(&h.sweepdone):
        # Sweep first: spans freed by this cycle's sweep may hold the pages.
        h.reclaim(h, npages)
    if pc != NULL and h.pagecache and npages < PAGE_CACHE_PAGES // 4:
        s = _alloc_from_pagecache(h, npages, spanclass, pc)
        if s != NULL:
            return s
    lock(&h.lock, site)
    for attempt in range(2):
        for k in range(h.nregions):
            r = &h.regions[h.order[k]]
            start = _find_run(r, _hint(h, r)[0], npages)
            if start < r.npages:
                break
            r = NULL
        if r != NULL or _grow(h, npages) != 0:
            break
    if r == NULL:
        unlock(&h.lock)
        return NULL
    s = _new_span_struct(h)
    if s == NULL:
        unlock(&h.lock)
        return NULL
    _init_span(h, s, r.base + start * PAGE_SIZE, npages, spanclass)
    if span_alloc_bits(s) != 0:
        s.next = h.spanfree
        h.spanfree = s
        unlock(&h.lock)
        return NULL
    _set_pages(r, start, npages, False)
    if start == _hint(h, r)[0]:
        _hint(h, r)[0] = start + npages
    scav = _take_released(r, start, npages)
    if scav:
        xadd64(&h.released, -<int64_t>scav)
    s.needzero = _alloc_needs_zero(r, s.startAddr, npages)
    _publish(h, r, s)
    if spanClassSizeclass(spanclass) == 0:
        list_insert(&h.large, s)
    unlock(&h.lock)
    sweepspans_push(h, s)
    return s


cdef void sweepspans_push(mheap_t* h, mspan_t* s) noexcept nogil:
    """Puts a swept in-use span on this cycle's swept sweepSpans set, for the
    next cycle's sweepers (Go 1.13 does it in allocSpan and after each sweep).
    No lock may be held: the set's spine lock is never nested in another."""
    if not h.sweepspans_small and spanClassSizeclass(s.spanclass) != 0:
        return
    if spanset_push(sweptSpans(h), s) != 0:
        store32(&h.sweepspans_lost, 1)


cdef void mheap_freeSpanLocked(mheap_t* h, mspan_t* s) noexcept nogil:
    cdef heapregion_t* r = regionOf(h, s.startAddr)
    cdef size_t start = (s.startAddr - r.base) // PAGE_SIZE
    cdef size_t i
    GR_ASSERT(s.state == SPAN_INUSE, "freeing a span that is not in use")
    if spanClassSizeclass(s.spanclass) == 0:
        list_remove(&h.large, s)
    for i in range(start, start + s.npages):
        GR_ASSERT(r.spans[i] == s, "freeing a span whose pages point at another")
        storep(<void**>&r.spans[i], NULL)
    _set_pages(r, start, s.npages, True)
    if start < _hint(h, r)[0]:
        _hint(h, r)[0] = start
    xadd64(&h.pages_inuse, -<int64_t>s.npages)
    xadd64(&h.nspans_inuse, -1)
    xadd64(&h.bits_bytes, -<int64_t>s.bits_size)
    s.state = SPAN_DEAD
    # The structure and its bitmap block go back together (span_alloc_bits).
    s.next = h.spanfree
    h.spanfree = s


cdef void mheap_freeSpan(mheap_t* h, mspan_t* s, int site) noexcept nogil:
    lock(&h.lock, site)
    mheap_freeSpanLocked(h, s)
    unlock(&h.lock)


# -- scavenging: the page-level half (the pacing is goruntime/mgcscavenge.pyx) ----------

cdef inline uint64_t _below(size_t i) noexcept nogil:
    """The bits of the pages below i within i's 64-page word (i & 63 of them)."""
    return ((<uint64_t>1) << (i & 63)) - 1


cdef heapregion_t* _scav_find(mheap_t* h, size_t max_pages, size_t* start, size_t* n) noexcept nogil:
    """The highest run of at most max_pages free, unreleased pages below the
    cursor, and moves the cursor down to its start; NULL (the cursor at the
    bottom) when there is none. Heap lock held.

    Highest first, as Go's scavenger goes: the allocator takes the lowest free
    pages first, so the highest are the ones least likely to be wanted again
    soon."""
    cdef int k
    cdef heapregion_t* r
    cdef size_t top, i, w, hi, j
    cdef uint64_t cand
    for k in range(<int>h.nregions - 1, -1, -1):
        r = &h.regions[h.order[k]]
        if r.base >= h.scav_addr:
            continue
        top = r.npages
        if h.scav_addr - r.base < r.npages * PAGE_SIZE:
            top = (h.scav_addr - r.base) // PAGE_SIZE
        i = top                              # candidates: pages below i
        while i > 0:
            w = (i - 1) >> 6
            cand = r.free_bits[w] & ~r.scav_bits[w]
            if (i & 63) != 0:
                cand &= _below(i)
            if cand == 0:
                i = w * 64
                continue
            hi = w * 64 + <size_t>log2_64(cand) + 1      # the run's end (exclusive)
            j = hi - 1
            while j > 0 and hi - j < max_pages:
                if not ((r.free_bits[(j - 1) >> 6] & ~r.scav_bits[(j - 1) >> 6]) >> ((j - 1) & 63)) & 1:
                    break
                j -= 1
            start[0] = j
            n[0] = hi - j
            h.scav_addr = r.base + j * PAGE_SIZE
            return r
        h.scav_addr = r.base
    return NULL


cdef size_t mheap_scavenge(mheap_t* h, size_t max_pages, bint reset, size_t* released) noexcept nogil:
    """Releases to the OS one run of at most max_pages free, unreleased pages:
    the highest below the scavenger's cursor (Go 1.13's scavengeLocked, one
    run); with reset, the cursor first goes back above every region (Go 1.14
    resets its scavAddr at each new GC cycle). Returns the pages taken, 0 when
    none is left below the cursor; *released is how many were released (all
    of them, unless madvise failed).

    The madvise runs without the heap lock: the run is first taken out of the
    free bitmap (and recorded as in flight), so that no allocation, page-cache
    refill or second release can take it meanwhile, then put back free and
    released. Go 1.13 held the lock across the madvise; later Go (1.19's
    scavengeOne) drops it too, marking the pages allocated meanwhile.

    The caller holds gc_sema (the background scavenger, Runtime.free_os_memory,
    Runtime.scavenger_step): a stop-the-world reader (verify, memstats,
    heapmap), which reads the bitmaps without the heap lock, never sees a run
    in flight, and one run at most is in flight at a time."""
    cdef heapregion_t* r
    cdef size_t start = 0, n = 0, i, hint
    cdef int err
    released[0] = 0
    if max_pages == 0:
        return 0
    lock(&h.lock, SITE_SCAVENGE)
    GR_ASSERT(h.scav_inflight_npages == 0, "two page releases in flight at once")
    if reset:
        h.scav_addr = <uintptr_t>-1
    r = _scav_find(h, max_pages, &start, &n)
    if r == NULL:
        unlock(&h.lock)
        return 0
    _set_pages(r, start, n, False)
    h.scav_inflight_base = r.base + start * PAGE_SIZE
    h.scav_inflight_npages = n
    unlock(&h.lock)
    # sysUnused: the kernel drops the pages; the next touch faults in a zero page.
    err = madvise(<void*>(r.base + start * PAGE_SIZE), n * PAGE_SIZE, MADV_DONTNEED)
    lock(&h.lock, SITE_SCAVENGE)
    _set_pages(r, start, n, True)
    if err == 0:
        for i in range(start, start + n):
            r.scav_bits[i >> 6] |= (<uint64_t>1) << (i & 63)
        xadd64(&h.released, <int64_t>n)
        released[0] = n
    hint = _hint(h, r)[0]
    if start < hint:
        _hint(h, r)[0] = start
    h.scav_inflight_base = 0
    h.scav_inflight_npages = 0
    unlock(&h.lock)
    return n


cdef class MHeap:
    """The page heap (Go's mheap_): arenas, the page allocator and large spans."""

    def __cinit__(self):
        self.h = NULL

    def __dealloc__(self):
        if self.h != NULL:
            mheap_destroy(self.h)
            free(self.h)
            self.h = NULL

    @property
    def arenas(self):
        """(base, size) of each reservation, in address order."""
        self._check()
        lock(&self.h.lock, SITE_OTHER)
        try:
            return [(self.h.regions[self.h.order[k]].base,
                     self.h.regions[self.h.order[k]].end - self.h.regions[self.h.order[k]].base)
                    for k in range(self.h.nregions)]
        finally:
            unlock(&self.h.lock)

    def free_runs(self):
        """The free page runs as (base address, npages), in address order (a run
        the scavenger is releasing at this moment counts as free)."""
        return self._runs(False)

    def released_runs(self):
        """The free runs of released pages (never used since their arena was
        reserved, or given back to the OS), as (base address, npages), in address
        order; pages in the Ps' page caches are not listed."""
        return self._runs(True)

    def _runs(self, bint released):
        self._check()
        cdef heapregion_t* r
        cdef size_t i, start
        cdef uintptr_t fb, fe
        runs = []
        lock(&self.h.lock, SITE_OTHER)
        try:
            fb = self.h.scav_inflight_base
            fe = fb + self.h.scav_inflight_npages * PAGE_SIZE
            for k in range(self.h.nregions):
                r = &self.h.regions[self.h.order[k]]
                i = 0
                while i < r.npages:
                    if _page_in(r, i, released, fb, fe):
                        start = i
                        while i < r.npages and _page_in(r, i, released, fb, fe):
                            i += 1
                        runs.append((r.base + start * PAGE_SIZE, i - start))
                    else:
                        i += 1
        finally:
            unlock(&self.h.lock)
        return runs

    def reserve(self, nbytes, prefault=False):
        """Grows the heap by a reservation of at least nbytes (whole arenas).

        prefault touches every page with a zero write, so that benchmarks do not
        measure the kernel's page faults; the pages stay zero, as never-used
        pages are, and count as released until handed out.
        """
        self._check()
        if not 0 < nbytes <= 1 << 40:
            raise ValueError(f"cannot reserve {nbytes} bytes")
        cdef size_t npages = (nbytes + PAGE_SIZE - 1) // PAGE_SIZE
        cdef int err
        cdef heapregion_t* r
        cdef uintptr_t a
        cdef bint touch = prefault
        # The GIL stays held: heap-lock holders never wait for it, and close()
        # cannot release the heap under us.
        lock(&self.h.lock, SITE_OTHER)
        err = _grow(self.h, npages)
        if err == 0 and touch:
            r = &self.h.regions[self.h.nregions - 1]
            a = r.base
            while a < r.end:
                (<char*>a)[0] = 0
                a += 4096
        unlock(&self.h.lock)
        if err:
            raise MemoryError(f"cannot reserve {nbytes} bytes for the heap")

    def fail_reservations(self, n):
        """Fault injection: the next n arena reservations fail as if mmap had."""
        self._check()
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**32:
            raise ValueError(f"n must be an int in 0..2**32-1, not {n!r}")
        lock(&self.h.lock, SITE_OTHER)
        self.h.fail_reserves = n
        unlock(&self.h.lock)

    def span_of(self, addr):
        """A view (goruntime.mspan.Span) of the in-use span holding addr, or None: the
        Runtime's span_of, which copies it with the world stopped."""
        self._check()
        rt = self._runtime()
        if rt is None:
            from goruntime.errors import GoRuntimeError
            raise GoRuntimeError("runtime closed")
        return rt.span_of(addr)

    def lockstats(self):
        self._check()
        return mutex_stats(&self.h.lock)

    def _check(self):
        if self.h == NULL:
            from goruntime.errors import GoRuntimeError
            raise GoRuntimeError("runtime closed")
