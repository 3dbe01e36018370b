# cython: language_level=3
# mstats: Go's MemStats, read as Go's ReadMemStats does: with the world stopped
# and every mcache flushed, so that per-P counters (plain P-owned fields) and
# the spans agree. Go counterparts: runtime/mstats.go: MemStats, ReadMemStats,
# readmemstats_m (Go 1.13's updatememstats); memstats_problems checks what
# runtime/malloc_test.go's TestMemStats checks, and more. The heap figures are
# recounted from the spans and the page bitmaps, not kept as running totals,
# so the invariants below are real checks:
#   HeapIdle + HeapInuse == HeapSys
#   Mallocs - Frees == HeapObjects
#   HeapAlloc <= HeapInuse
#   HeapReleased <= HeapIdle
# HeapReleased counts the free pages whose memory is the OS's: never touched
# since their arena was reserved (Go counts fresh memory as released too), or
# returned by the scavenger or free_os_memory (mgcscavenge.pyx). A release in
# progress is never seen here: it holds gc_sema, as this read does.
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy
from goruntime.sys cimport popcount64, load32, load64, GR_ASSERT
from goruntime.mspan cimport mspan_t, mspanlist_t
from goruntime.mheap cimport mheap_t, heapregion_t, ARENA_BYTES, SWEEP_BY_COUNT
from goruntime.mcentral cimport mcentral_t, MCENTRAL_SPANSET, partialUnswept
from goruntime.sizeclasses cimport spanClassSizeclass
from goruntime.mspanset cimport spanset_t, spanset_len, spanset_at
from goruntime.runtime2 cimport p_t, num_mcaches, mcache_holder
from goruntime.mgc cimport flushallmcaches
from goruntime.sizeclasses cimport PAGE_SIZE, MAX_SMALL_SIZE


cdef inline void _count_span(mspan_t* s, uint64_t* pages, uint64_t* alloc, uint64_t* objects) noexcept nogil:
    pages[0] += s.npages
    alloc[0] += <uint64_t>s.allocCount * s.elemsize
    objects[0] += s.allocCount


cdef void _count_list(mspanlist_t* l, uint64_t* pages, uint64_t* alloc, uint64_t* objects) noexcept nogil:
    cdef mspan_t* s = l.first
    while s != NULL:
        _count_span(s, pages, alloc, objects)
        s = s.next


cdef void _count_set(spanset_t* st, bint unswept, uint32_t sg, uint64_t* pages, uint64_t* alloc,
                     uint64_t* objects) noexcept nogil:
    """Counts a span set's spans. An unswept set may also hold stale copies of
    spans swept where they lay and filed elsewhere (mcentral_sweep): those are
    counted where they are filed."""
    cdef uint64_t i
    cdef mspan_t* s
    for i in range(spanset_len(st)):
        s = spanset_at(st, i)
        if not unswept or load32(&s.sweepgen) == sg - 2:
            _count_span(s, pages, alloc, objects)


cdef void memstats_read(runtime_t* rt, memstats_t* st) noexcept nogil:
    """Copies what MemStats reports; the caller has stopped the world."""
    cdef mheap_t* h = rt.heap
    cdef int spc, i, sc
    cdef uint32_t k
    cdef size_t w
    cdef heapregion_t* r
    cdef mcentral_t* c
    cdef p_t* pp
    cdef bint unswept
    memset(st, 0, sizeof(memstats_t))
    flushallmcaches(rt)
    for spc in range(2, rt.sc.num_classes * 2):
        c = rt.central[spc]
        _count_list(&c.nonempty, &st.pages, &st.alloc, &st.objects)
        _count_list(&c.empty, &st.pages, &st.alloc, &st.objects)
        for k in range(2):
            unswept = &c.partial[k] == partialUnswept(c, h.sweepgen)
            _count_set(&c.partial[k], unswept, h.sweepgen, &st.pages, &st.alloc, &st.objects)
            _count_set(&c.full[k], unswept, h.sweepgen, &st.pages, &st.alloc, &st.objects)
        st.grows += c.ngrow
        st.frees[spanClassSizeclass(spc)] += load64(&c.nfree)
    _count_list(&h.large, &st.pages, &st.alloc, &st.objects)
    for k in range(h.nregions):
        r = &h.regions[k]
        for w in range((r.npages + 63) // 64):
            st.free_pages += popcount64(r.free_bits[w])
            st.scav_pages += popcount64(r.scav_bits[w])
    for i in range(num_mcaches(rt)):
        pp = mcache_holder(rt, i)
        # Pages in a page cache are idle: no span holds them yet.
        st.free_pages += popcount64(pp.pcache.cache)
        st.scav_pages += popcount64(pp.pcache.scav)
        for sc in range(1, rt.sc.num_classes):
            st.mallocs[sc] += pp.mcache.nmalloc[sc]
        st.tiny += pp.mcache.tinyallocs
        st.large += pp.mcache.large_allocs
        st.large_bytes += pp.mcache.large_bytes
        st.refills += pp.mcache.refills
    st.large_frees = load64(&h.large_frees)
    st.sweep_ns = load64(&h.sweep_ns)
    for i in range(SWEEP_BY_COUNT):
        st.nswept[i] = load64(&h.nswept[i])
    GR_ASSERT(st.scav_pages == load64(&h.released), "HeapReleased recounted from the bitmaps differs from the released count")
    st.heap_sys = load64(&h.heap_sys)
    st.nspans_inuse = h.nspans_inuse
    st.nspans_alloc = h.nspans_alloc
    st.bits_bytes = h.bits_bytes
    st.table_bytes = h.table_bytes
    st.heap_grows = h.heap_grows
    st.pcache_refills = h.pcache_refills
    st.pcache_allocs = h.pcache_allocs
    st.heap_live = load64(&h.heap_live)
    st.heap_goal = rt.heap_goal
    st.gogc = rt.gogc
    st.last_gc_ns = rt.last_gc_ns
    st.numgc = rt.numgc
    st.pause_total_ns = rt.pause_total_ns
    memcpy(st.pause_ns, rt.pause_ns, sizeof(rt.pause_ns))


cdef dict memstats_dict(runtime_t* rt, memstats_t* st):
    """MemStats fields by Go's names, from a snapshot (the world may run)."""
    cdef uint64_t nmalloc = 0, nfree = 0, total = 0
    cdef int sc
    by_size = []
    for sc in range(1, rt.sc.num_classes):
        by_size.append({"Size": rt.sc.class_to_size[sc], "Mallocs": st.mallocs[sc], "Frees": st.frees[sc]})
        nmalloc += st.mallocs[sc]
        nfree += st.frees[sc]
        total += st.mallocs[sc] * rt.sc.class_to_size[sc]
    pauses = [st.pause_ns[(st.numgc - 1 - j) % NUM_PAUSES] for j in range(min(st.numgc, NUM_PAUSES))]
    span_struct = sizeof(mspan_t) + (-sizeof(mspan_t)) % 64
    mcache_struct = sizeof(p_t)
    central_struct = sizeof(mcentral_t) + (-sizeof(mcentral_t)) % 64
    return {
        "Mallocs": nmalloc + st.tiny + st.large,
        "Frees": nfree + st.tiny + st.large_frees,
        "HeapAlloc": st.alloc,
        "Alloc": st.alloc,
        "TotalAlloc": total + st.large_bytes,
        "HeapSys": st.heap_sys,
        "HeapIdle": st.free_pages * PAGE_SIZE,
        "HeapInuse": st.pages * PAGE_SIZE,
        "HeapReleased": st.scav_pages * PAGE_SIZE,
        "HeapObjects": st.objects,
        "MSpanInuse": st.nspans_inuse * span_struct,
        "MSpanSys": st.nspans_alloc * span_struct,
        "MCacheInuse": num_mcaches(rt) * mcache_struct,
        "MCacheSys": num_mcaches(rt) * mcache_struct,
        "GCSys": st.bits_bytes,
        "OtherSys": st.table_bytes + rt.sc.num_classes * 2 * central_struct,
        "NextGC": st.heap_goal if st.gogc >= 0 else 0,
        "LastGC": st.last_gc_ns,
        "NumGC": st.numgc,
        "PauseTotalNs": st.pause_total_ns,
        "PauseNs": pauses,
        "BySize": by_size,
        # allocation paths
        "TinyAllocs": st.tiny,
        "MCacheHits": nmalloc - st.refills,
        "Refills": st.refills,
        "MCentralGrows": st.grows,
        "HeapGrows": st.heap_grows,
        "PageCacheRefills": st.pcache_refills,
        "PageCacheAllocs": st.pcache_allocs,
        "LargeAllocs": st.large,
        "LargeFrees": st.large_frees,
        "HeapLive": st.heap_live,
        # Sweeping, outside the pauses since sweep="concurrent": its time, and
        # who swept how many spans (Go reports GC CPU time apart from pauses).
        "SweepTotalNs": st.sweep_ns,
        "SweptBy": {name: st.nswept[i] for i, name in enumerate(SWEPT_BY_NAMES)},
    }


cdef int heapmap_fill(runtime_t* rt, heapmap_t* m) noexcept nogil:
    """Fills m with the place and span class of every page; the caller has stopped
    the world and frees m with heapmap_free. -1 if out of memory.

    A span's place follows from its own fields: sweepgen h+3 marks a span cached
    in an mcache, a large span has size class 0, a Go 1.13 span points at its
    list, and a Go 1.15 span in no mcache is in its partial or its full set."""
    cdef mheap_t* h = rt.heap
    cdef heapregion_t* r
    cdef mspan_t* s
    cdef mcentral_t* c
    cdef size_t k, pg, at = 0
    memset(m, 0, sizeof(heapmap_t))
    m.nregions = h.nregions
    for k in range(h.nregions):
        m.total += h.regions[k].npages
    m.bases = <uintptr_t*>malloc((m.nregions + 1) * sizeof(uintptr_t))
    m.npages = <size_t*>malloc((m.nregions + 1) * sizeof(size_t))
    m.place = <uint8_t*>malloc(m.total + 1)
    m.spanclass = <uint16_t*>malloc((m.total + 1) * sizeof(uint16_t))
    if m.bases == NULL or m.npages == NULL or m.place == NULL or m.spanclass == NULL:
        heapmap_free(m)
        return -1
    for k in range(h.nregions):
        r = &h.regions[h.order[k]]
        m.bases[k] = r.base
        m.npages[k] = r.npages
        for pg in range(r.npages):
            s = r.spans[pg]
            if s == NULL:
                m.spanclass[at] = 0
                m.place[at] = PAGE_FREE if (r.free_bits[pg >> 6] >> (pg & 63)) & 1 else PAGE_PAGECACHE
            else:
                m.spanclass[at] = s.spanclass
                if spanClassSizeclass(s.spanclass) == 0:
                    m.place[at] = PAGE_LARGE
                elif s.sweepgen == h.sweepgen + 3:
                    m.place[at] = PAGE_MCACHE
                else:
                    c = rt.central[s.spanclass]
                    if c.mode == MCENTRAL_SPANSET:
                        m.place[at] = PAGE_PARTIAL if s.allocCount < s.nelems else PAGE_FULL
                    else:
                        m.place[at] = PAGE_NONEMPTY if s.list == &c.nonempty else PAGE_EMPTY
            at += 1
    return 0


cdef void heapmap_free(heapmap_t* m) noexcept nogil:
    free(m.bases)
    free(m.npages)
    free(m.place)
    free(m.spanclass)
    memset(m, 0, sizeof(heapmap_t))


# MemStats' SweptBy keys, in mheap.SweptBy order.
SWEPT_BY_NAMES = ("cacheSpan", "background", "proportional", "reclaim", "ensureSwept",
                  "stop-the-world", "gc()")
PLACE_NAMES = ("free", "page cache", "mcache", "nonempty", "empty", "partial", "full", "large")


class HeapArena:
    """One reservation of the heap map: its pages' places (PLACE_NAMES indices, a bytes
    object) and span classes (a list), page by page from base."""

    def __init__(self, base, places, spanclasses):
        self.base = base
        self.places = places
        self.spanclasses = spanclasses

    @property
    def npages(self):
        return len(self.places)

    def __repr__(self):
        used = sum(1 for p in self.places if p >= PAGE_MCACHE)
        return f"<arena {self.base:#x}: {self.npages} pages, {used} in spans>"


class HeapMap:
    """Runtime.heapmap(): where every page of the heap was at one moment (read with the
    world stopped; reading flushes nothing)."""

    def __init__(self, arenas):
        self.arenas = arenas

    def counts(self):
        """Pages per place, by PLACE_NAMES."""
        out = dict.fromkeys(PLACE_NAMES, 0)
        for a in self.arenas:
            for i, name in enumerate(PLACE_NAMES):
                out[name] += a.places.count(i)
        return out

    def __repr__(self):
        shown = ", ".join(f"{n} {name}" for name, n in self.counts().items() if n)
        return f"<HeapMap {len(self.arenas)} arena{'s' if len(self.arenas) != 1 else ''}: {shown}>"


cdef object heapmap_object(heapmap_t* m):
    """The HeapMap of a filled heapmap_t (built with the world running again)."""
    cdef size_t k, at = 0
    arenas = []
    for k in range(m.nregions):
        n = m.npages[k]
        arenas.append(HeapArena(m.bases[k], bytes((<char*>m.place)[at:at + n]),
                                [m.spanclass[at + i] for i in range(n)]))
        at += n
    return HeapMap(arenas)


def memstats_problems(ms, prev=None):
    """The identities every MemStats snapshot must satisfy, and that it breaks:
    a list of descriptions, empty when all hold. With `prev`, an earlier
    snapshot of the same Runtime, the cumulative counters must not go back.
    The tests, the stress runner and the fuzzer all check through this."""
    p = []

    def check(ok, text):
        if not ok:
            p.append(text)

    check(ms.HeapIdle + ms.HeapInuse == ms.HeapSys,
          f"HeapIdle {ms.HeapIdle} + HeapInuse {ms.HeapInuse} != HeapSys {ms.HeapSys}")
    check(ms.Mallocs - ms.Frees == ms.HeapObjects,
          f"Mallocs {ms.Mallocs} - Frees {ms.Frees} != HeapObjects {ms.HeapObjects}")
    check(0 <= ms.HeapObjects <= ms.Mallocs, f"HeapObjects {ms.HeapObjects} outside 0..Mallocs {ms.Mallocs}")
    check(0 <= ms.HeapAlloc <= ms.HeapInuse, f"HeapAlloc {ms.HeapAlloc} outside 0..HeapInuse {ms.HeapInuse}")
    check(ms.Alloc == ms.HeapAlloc, f"Alloc {ms.Alloc} != HeapAlloc {ms.HeapAlloc}")
    check(ms.HeapReleased <= ms.HeapIdle, f"HeapReleased {ms.HeapReleased} > HeapIdle {ms.HeapIdle}")
    check(ms.HeapInuse % PAGE_SIZE == 0 and ms.HeapIdle % PAGE_SIZE == 0,
          f"HeapInuse {ms.HeapInuse} or HeapIdle {ms.HeapIdle} is not whole pages")
    check(ms.HeapSys % ARENA_BYTES == 0, f"HeapSys {ms.HeapSys} is not whole arenas")
    check(ms.HeapObjects != 0 or ms.HeapAlloc == 0, f"no HeapObjects but HeapAlloc {ms.HeapAlloc}")
    check(ms.TotalAlloc >= ms.HeapAlloc, f"TotalAlloc {ms.TotalAlloc} < HeapAlloc {ms.HeapAlloc}")

    by_mallocs = sum(b["Mallocs"] for b in ms.BySize)
    by_frees = sum(b["Frees"] for b in ms.BySize)
    sizes = [b["Size"] for b in ms.BySize]
    check(sizes == sorted(set(sizes)) and max(sizes) == MAX_SMALL_SIZE,   # no negative index: wraparound is off
          f"BySize sizes are not increasing up to {MAX_SMALL_SIZE}: {sizes}")
    for b in ms.BySize:
        if not 0 <= b["Frees"] <= b["Mallocs"]:
            p.append(f"size class {b['Size']}: Frees {b['Frees']} outside 0..Mallocs {b['Mallocs']}")
            break
    # Every allocation is exactly one of: a small object (or a tiny block), a
    # tiny object packed into an existing block, or a large object.
    check(ms.Mallocs == by_mallocs + ms.TinyAllocs + ms.LargeAllocs,
          f"Mallocs {ms.Mallocs} != BySize {by_mallocs} + TinyAllocs {ms.TinyAllocs} "
          f"+ LargeAllocs {ms.LargeAllocs}")
    check(ms.Frees == by_frees + ms.TinyAllocs + ms.LargeFrees,
          f"Frees {ms.Frees} != BySize {by_frees} + TinyAllocs {ms.TinyAllocs} + LargeFrees {ms.LargeFrees}")
    check(0 <= ms.LargeFrees <= ms.LargeAllocs, f"LargeFrees {ms.LargeFrees} outside 0..LargeAllocs {ms.LargeAllocs}")
    check(ms.MCacheHits >= 0 and ms.MCacheHits + ms.Refills == by_mallocs,
          f"MCacheHits {ms.MCacheHits} + Refills {ms.Refills} != BySize Mallocs {by_mallocs}")
    check(ms.MCentralGrows <= ms.Refills, f"MCentralGrows {ms.MCentralGrows} > Refills {ms.Refills}")
    check(len(ms.PauseNs) == min(ms.NumGC, NUM_PAUSES),
          f"{len(ms.PauseNs)} PauseNs entries for NumGC {ms.NumGC}")
    check(ms.PauseTotalNs >= sum(ms.PauseNs), f"PauseTotalNs {ms.PauseTotalNs} < sum of PauseNs")
    check(ms.HeapGrows * ARENA_BYTES <= ms.HeapSys, f"HeapGrows {ms.HeapGrows} arenas exceed HeapSys {ms.HeapSys}")
    check(ms.MSpanInuse <= ms.MSpanSys, f"MSpanInuse {ms.MSpanInuse} > MSpanSys {ms.MSpanSys}")
    check(ms.HeapInuse != 0 or (ms.MSpanInuse == 0 and ms.GCSys == 0),
          f"no HeapInuse but MSpanInuse {ms.MSpanInuse}, GCSys {ms.GCSys}")
    if prev is not None:
        for name in ("Mallocs", "Frees", "TotalAlloc", "NumGC", "HeapSys", "PauseTotalNs"):
            check(getattr(ms, name) >= getattr(prev, name),
                  f"{name} went backwards: {getattr(prev, name)} -> {getattr(ms, name)}")
    return p
