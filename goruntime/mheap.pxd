# mheap: the page heap. Memory is reserved from the OS in 64 MiB arenas (mmap,
# 64 MiB aligned) and handed out in runs of 8 KiB pages, first fit in address
# order, from a free-page bitmap under one global lock. A page is in exactly
# one of two states: free (its bit set) or owned by one in-use span (its spans[]
# entry); adjacent free runs coalesce by construction.
#
# An address finds its span in O(1), as in Go: the arena index (Go's
# mheap_.arenas, one level as on linux/amd64) maps each 64 MiB arena of the
# 48-bit address space to the reservation holding it, and the reservation's
# spans array maps the page to its span. The index is one NORESERVE mapping of
# 4 Mi pointers (32 MiB of address space); only the few pages holding entries
# of reserved arenas are ever touched.
#
# Go counterparts: runtime/mheap.go: mheap (mheap_), mheap_.arenas (arenas),
# heapArena.spans (here one page -> span array per reservation), spanOf,
# mspan structure recycling (spanfree,
# Go's spanalloc fixalloc); runtime/mpagealloc.go: pageAlloc (a flat bitmap
# here, with the same address-ordered first fit, and no radix tree of
# summaries); runtime/mpagecache.go: pageCache and p.mspancache (pagecache_t).
#
# Released memory (Go's "scavenged" pages). A free page is either retained
# (its physical memory is still the process's) or released (scav_bits: never
# touched since its arena was reserved, or given back to the OS by the
# scavenger with madvise(MADV_DONTNEED), goruntime/mgcscavenge.pyx); fresh
# memory counts as released, as Go's mheap.grow counts it. HeapReleased counts released
# pages, heap_retained() is Go's heapRetained (HeapSys - HeapReleased).
# Whether a new span must be zeroed is Go's allocNeedsZero rule, not the
# released state: each 64 MiB arena has a zeroedBase, the offset below which
# its memory has ever been handed out; a span that reaches below it is zeroed
# (released pages are below it, so they are zeroed again on reuse, as in Go),
# fresh memory above it never is.
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from goruntime.sys cimport loadp, load64, cacheline_t
from goruntime.lock cimport mutex_t
from goruntime.mspan cimport mspan_t, mspanlist_t
from goruntime.mspanset cimport spanset_t
from goruntime.sizeclasses cimport sizeclasses_t, spanClassSizeclass, PAGE_SHIFT, PAGE_SIZE

cdef enum:
    ARENA_SHIFT = 26
    ARENA_BYTES = 1 << ARENA_SHIFT
    PAGES_PER_ARENA = ARENA_BYTES >> PAGE_SHIFT
    MAX_REGIONS = 1024          # 64 GiB of arenas at least
    HEAP_ADDR_BITS = 48         # Go's heapAddrBits on amd64 and arm64
    ARENA_INDEX_LEN = 1 << (HEAP_ADDR_BITS - ARENA_SHIFT)   # 4 Mi arenas

# Who swept a span (MemStats' SweptBy): Go counts its background and
# stop-the-world sweeps (sweep.nbgsweep, npausesweep); the model counts each kind.
cpdef enum SweptBy:
    SWEEP_BY_CACHESPAN = 0      # lazily, by the refill about to cache it
    SWEEP_BY_BACKGROUND = 1     # the background sweeper M
    SWEEP_BY_CREDIT = 2         # proportional sweeping (deductSweepCredit)
    SWEEP_BY_RECLAIM = 3        # the mheap, before it grows
    SWEEP_BY_ENSURE = 4         # free/read/write of an object in it (ensureSwept)
    SWEEP_BY_STW = 5            # with the world stopped: finishsweep_m, or sweep="stw"
    SWEEP_BY_GC_CALL = 6        # Runtime.gc(), which returns once the sweep is done
    SWEEP_BY_COUNT = 7

# A region is one reservation: one arena, or several contiguous arenas for an
# object larger than an arena.
ctypedef struct heapregion_t:
    uintptr_t base
    uintptr_t end
    size_t npages
    uint64_t* free_bits         # set: the page is free
    uint64_t* scav_bits         # set: the page is free and released (never used, or scavenged)
    mspan_t** spans             # page -> span; read without the lock
    uint64_t* zeroed            # per 64 MiB arena of the region: Go's heapArena.zeroedBase,
                                # the byte offset in the arena below which memory has been
                                # handed out; only grows, by CAS (allocNeedsZero)
    # Nothing here changes once the region is published (spanOf reads it on
    # every free); its search hint, which every span allocation moves, is
    # mheap_t.search_hint[region index], and its zeroedBase words are apart.

cdef enum:
    PAGE_CACHE_PAGES = 64       # Go 1.14's pageCachePages: one 64-bit bitmap
    SPAN_CACHE_SIZE = 16        # span structures a P keeps (Go's mspancache holds 128)

# Go 1.14's per-P page cache: a 64-page aligned chunk whose free pages this P
# may hand out without the heap lock, for spans of fewer than 16 pages; plus a
# few span structures, so that such a span needs no heap lock at all.
ctypedef struct pagecache_t:
    uintptr_t base              # 0: empty
    uint64_t cache              # set: free page of the chunk, owned by this P
    uint64_t scav               # set: that page is released (never used, or scavenged)
    mspan_t* spans[SPAN_CACHE_SIZE]
    uint32_t nspans

# Laid out by who writes what: the lock; what every refill and free reads and
# only growth or a collection writes; what every span allocation and refill
# writes (under the lock, or atomically), in one line; the rest.
ctypedef struct mheap_t:
    mutex_t lock
    cacheline_t _read_mostly
    heapregion_t** arenas       # the arena index: ARENA_INDEX_LEN entries, each
                                # release-stored once its reservation is set up
    const sizeclasses_t* sc
    uint32_t nregions           # published with a release store
    uint32_t sweepgen
    bint pagecache              # serve small spans from per-P page caches
    uint32_t fail_reserves      # fault injection: the next n reservations fail
    size_t max_bytes            # cap on HeapSys; 0 for none
    mspan_t emptyspan           # what an empty mcache slot points at (nelems 0)
    cacheline_t _alloc_line
    mspan_t* spanfree           # recycled span structures, like Go's h.spanalloc
    # statistics; the ones a page-cache allocation also changes are atomic
    uint64_t pages_inuse        # atomic
    uint64_t nspans_inuse       # atomic
    uint64_t bits_bytes         # atomic
    uint64_t pcache_allocs      # atomic
    # Every refill adds to it, most of them after a span allocation that has
    # just brought this line over: one line moves between the Ms, not two.
    uint64_t heap_live          # atomic: bytes of spans given to mcaches, plus large objects (Go's heap_live)
    # The sweep of the current cycle (Go 1.13's mheap_ fields of the same names;
    # mgcsweep.pyx). Written by every sweeper, one span at a time.
    cacheline_t _sweep_line
    uint32_t sweepdone          # atomic: no span is left to sweep this cycle
    uint32_t sweep_central      # atomic: spanset design, the first span class that may hold unswept spans
    uint64_t pages_swept        # atomic: pages swept this cycle
    # Set with the world stopped, when the cycle starts (gcPaceSweeper):
    # proportional sweeping keeps pages_swept >= sweep_pages_per_byte *
    # (heap_live - sweep_heap_live_basis).
    double sweep_pages_per_byte
    uint64_t sweep_heap_live_basis
    uint64_t large_frees        # atomic: large objects swept away
    uint64_t sweep_ns           # atomic: time spent sweeping, by every sweeper
    uint64_t nswept[SWEEP_BY_COUNT]     # atomic: spans swept, by who swept them
    # Go 1.13's sweepSpans: every in-use span, in two lock-free sets that swap
    # roles each cycle: [sweepgen/2 % 2] holds the swept ones, the other the
    # unswept ones, which the background sweeper drains. In the spanset design
    # the unswept spans are in the mcentrals' sets, and these hold large spans only.
    spanset_t sweepSpans[2]
    bint sweepspans_small       # small spans go on sweepSpans too (the mutex design)
    uint32_t sweepspans_lost    # a push failed (out of memory): finish the sweep by walking the heap
    # The sweeper's reclaim (mgcsweep.reclaim), called before the heap grows
    # while a sweep is under way, and the mcentrals it sweeps (mcentral_t**):
    # untyped, since the sweeper and the mcentral import this module.
    void (*reclaim)(void* h, size_t npages) noexcept nogil
    void** central
    uint64_t released           # atomic: released pages (scav_bits and the page caches' scav bits)
    cacheline_t _cold
    mspanlist_t large           # in-use large-object spans
    size_t search_hint[MAX_REGIONS]     # per region: no free page below this index (under the lock)
    uint64_t pcache_refills
    uint64_t heap_sys           # written under the lock with atomic adds: the scavenger reads it without
    # The scavenger's cursor (Go's scavAddr): it releases the highest free,
    # unreleased pages below this address, and moves it down; a new GC cycle
    # and free_os_memory put it back at the top. Under the lock, as is the run
    # a release has in flight (taken out of free_bits while madvise runs
    # without the lock, so that no allocation takes it meanwhile).
    uintptr_t scav_addr
    uintptr_t scav_inflight_base
    size_t scav_inflight_npages
    uint64_t nspans_alloc
    uint64_t table_bytes
    uint64_t heap_grows
    uint32_t order[MAX_REGIONS] # region indices in address order (under the lock)
    heapregion_t regions[MAX_REGIONS]

cdef int mheap_init(mheap_t* h, const sizeclasses_t* sc, size_t max_bytes) noexcept nogil
cdef void mheap_destroy(mheap_t* h) noexcept nogil
cdef mspan_t* mheap_alloc(mheap_t* h, size_t npages, int spanclass, int site, pagecache_t* pc) noexcept nogil
cdef void mheap_freeSpanLocked(mheap_t* h, mspan_t* s) noexcept nogil
cdef void mheap_freeSpan(mheap_t* h, mspan_t* s, int site) noexcept nogil
cdef void sweepspans_push(mheap_t* h, mspan_t* s) noexcept nogil


cdef inline spanset_t* sweptSpans(mheap_t* h) noexcept nogil:
    return &h.sweepSpans[(h.sweepgen // 2) % 2]


cdef inline spanset_t* unsweptSpans(mheap_t* h) noexcept nogil:
    return &h.sweepSpans[1 - (h.sweepgen // 2) % 2]
cdef void pagecache_flush(mheap_t* h, pagecache_t* pc) noexcept nogil
cdef size_t mheap_scavenge(mheap_t* h, size_t max_pages, bint reset, size_t* released) noexcept nogil


cdef inline uint64_t heap_retained(mheap_t* h) noexcept nogil:
    """Go's heapRetained: HeapSys - HeapReleased, in bytes, without the lock.
    _grow adds to released before heap_sys, and this loads them the other way
    round, so a reservation in progress never counts as retained."""
    cdef uint64_t sys = load64(&h.heap_sys)
    cdef uint64_t rel = load64(&h.released) * PAGE_SIZE
    return sys - rel if sys > rel else 0


cdef inline heapregion_t* regionOf(mheap_t* h, uintptr_t addr) noexcept nogil:
    """The reservation holding addr, or NULL: one load from the arena index."""
    cdef uintptr_t i = addr >> ARENA_SHIFT
    if i >= ARENA_INDEX_LEN:
        return NULL
    return <heapregion_t*>loadp(<void**>&h.arenas[i])


cdef inline mspan_t* spanOf(mheap_t* h, uintptr_t addr) noexcept nogil:
    """The span holding addr, or NULL; needs no lock (Go's spanOf): the arena
    index, then the reservation's page -> span array, both read with acquire
    loads (plain moves on x86-64)."""
    cdef heapregion_t* r = regionOf(h, addr)
    if r == NULL:
        return NULL
    return <mspan_t*>loadp(<void**>&r.spans[(addr - r.base) >> PAGE_SHIFT])


cdef class MHeap:
    cdef mheap_t* h
    cdef object _runtime        # a weak reference to the Runtime (no reference cycle)
    cdef object __weakref__
