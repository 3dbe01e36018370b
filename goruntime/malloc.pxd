# malloc: mallocgc, the allocator's front door, and the design of the whole
# model, written here as Go writes its own at the top of runtime/malloc.go.
#
# Go counterpart of this file: runtime/malloc.go: mallocgc (with the tiny
# allocator inlined in it) and the span-class lookup it does; runtime/mgc.go:
# gcTrigger.test (gc_trigger). malloc.pyx holds the slow paths and free().
#
# ---------------------------------------------------------------------------
# The model
#
# goruntime is Go's memory allocator in its Go 1.13 shape, run on real OS
# threads with the GIL released, real pthread mutexes and real mmap'd memory.
# Later designs are options of a Runtime (below). Memory is handled in runs of
# 8 KiB pages; a request of at most 32 KiB is rounded up to a size class, and
# objects of one class and one scan kind are carved out of spans kept for
# that class, whose free slots are found in a bitmap. Larger objects get a run
# of pages of their own.
#
# The structures
#
#   M           an OS thread: a pthread running a nogil kernel, or a Python
#               thread for the length of one call. It must hold a P to
#               allocate. (runtime2.pxd m_t; proc.pyx M)
#   P           the right to allocate. There are gomaxprocs Ps, each owning
#               an mcache; an M takes one with acquirep and gives it back with
#               releasep. A P's status word is written by other threads, so
#               it sits on its own cache lines, away from the mcache.
#   mcache      the P's private cache: one span per span class and the tiny
#               block. Only the M holding the P touches it, so it needs
#               neither a lock nor an atomic read-modify-write.
#   mcentral    one per span class, shared by every P: the spans of that
#               class that no mcache holds (and, in Go 1.13's design, the
#               cached ones too, on its empty list).
#   mheap       the page heap, one per Runtime: the arenas, a free-page
#               bitmap and a page -> span map per reservation, the arena index
#               (Go's mheap_.arenas: arena -> reservation, so that spanOf is two
#               loads), and the list of large objects. One lock.
#   mspan       a run of pages holding nelems slots of one span class, or
#               one large object, with its bitmaps (allocBits, gcmarkBits,
#               freedBits). Span metadata lives in C memory of its own, never
#               in the heap it describes.
#   size class  a rounded object size. Two tables (go1.13: 67 classes, go1.19:
#               68 with the 24 B class) map a size to its class, and a class to
#               its size and to the pages of its spans. Class 0 means large.
#   span class  a size class and a noscan bit (makeSpanClass), so that objects
#               with and without pointers never share a span: 134 or 136
#               mcentrals. TINY_SPAN_CLASS (16 B, noscan) holds tiny blocks.
#   arena       64 MiB of address space from one mmap, aligned to 64 MiB. The
#               heap grows by whole arenas (a reservation is one arena, or
#               several contiguous ones for an object larger than an arena)
#               and never unmaps one; free pages go back to the OS with
#               madvise (the scavenger, mgcscavenge.pyx).
#   tiny        noscan requests under 16 B share 16 B blocks, packed at the
#               alignment their size needs; a block is swept away once its
#               last object has been freed.
#   GC          liveness is explicit: free() marks an object dead. A
#               collection stops the world only to take every span back from
#               the mcaches, take the live heap and advance sweepgen, which
#               leaves every span unswept; the spans are then swept while the
#               Ms run (mgcsweep). The allocation that takes heap_live to the
#               goal GOGC sets starts one.
#   scheduler   Ms wait for a P on a condition variable, hand their P over
#               after a 10 ms slice when others wait, and park at their next
#               safe point when the world stops; when no M waits for a P, the
#               restart gives each P back to the M it parked, which spins
#               for it (as Go's Ms spin before they sleep). A Python
#               thread between two calls inside `with rt.proc():` holds its
#               P like a goroutine in a system call: the P can be taken from it.
#               There are no goroutines: a kernel's loop is one goroutine
#               pinned to its M.
#
# Allocating a small object (size <= 32 KiB), mallocgc below
#
#   1. Tiny (noscan, size < 16): place the object in the current tiny block
#      if it fits after aligning tinyoffset; otherwise take a new 16 B block
#      as in step 2 from the tiny span class and keep, of the old and the new
#      block, the one with more room left.
#   2. Round the size to its class (size_to_class), build the span class and
#      look at c.alloc[spanclass]. nextFreeFast finds the next free slot with
#      one count-trailing-zeros of allocCache, the inverted 64-slot window of
#      allocBits at freeindex.
#   3. When the window is used up, mcache_nextFree moves it along allocBits
#      (nextFreeIndex). When the span is full, mcache_refill swaps it for a
#      span with a free slot from the class's mcentral.
#   4. mcentral_cacheSpan hands out a span with a free slot, or, with none
#      left, grows: asks the mheap for a fresh span of the class's length.
#   5. mheap_alloc takes the lowest free run of pages long enough (first fit
#      in address order); when no reservation has one, it reserves another
#      arena from the OS.
#   The slot is zeroed unless its span is known to be zero (needzero clear:
#   Go's allocNeedsZero, the span lies above its arena's zeroedBase, in memory
#   never handed out since the arena was reserved).
#
# Large objects (> 32 KiB) bypass mcache and mcentral: mheap_alloc gives each
# one a span of its own (span class 0), kept on the mheap's large list.
#
# Freeing and sweeping. Any thread may free any object: free_object finds the
# span with spanOf (O(1): the arena index gives the reservation, its page map
# the span), sweeps it first if it is unswept (ensureSwept: the frees it holds
# came before the last snapshot), and sets the slot's bit in freedBits (for a
# tiny object, its bit in tinyFreed) with an atomic OR, whose old value reveals
# a double free. The slot stays allocated until its span is swept after the
# next collection. A collection (mgc.gcStart) stops the world, finishes the
# last sweep, hands every cached span back to its mcentral (flushallmcaches),
# takes the live heap and advances sweepgen by 2. Every span is then swept by
# whoever needs it first, each sweeper claiming it with a CAS of its sweepgen
# (h-2 -> h-1): the refill about to cache it (mcentral.cacheSpan), the mheap
# before it grows (reclaim), each refill in proportion to its bytes
# (deductSweepCredit), the background sweeper M on an idle P, or a free. A
# sweep's new allocBits are the allocated slots less the freed ones; a span
# left with no object returns its pages to the mheap, as does a freed large
# object. sweep="stw" keeps the old way: the whole sweep inside the pause.
#
# Locks and atomics, step by step
#
#   mcache hit (tiny block, nextFreeFast, nextFreeIndex)
#       no lock and no atomic read-modify-write: the span and the counters
#       belong to the P, and the hit writes nothing but the span's allocation
#       state and the tiny block (object counts are taken a span at a time,
#       at refill and releaseAll, as Go 1.16 does). freeindex is stored with
#       a relaxed atomic store (a plain mov) only so that a free() on another
#       P may read it; tests/test_fastpath.py checks the machine code.
#   refill / cacheSpan
#       "mutex" mcentral: its lock around taking the span, dropped before
#       grow and taken again to list the grown span. "spanset" mcentral: a
#       CAS on the span set, no lock (its spine lock only grows the spine and
#       clears the slot of an emptied block, once per 512 pops).
#       Either way the span's free bytes go to heap_live with an atomic add.
#   grow, large objects
#       the mheap lock, for the page search and, when needed, the arena
#       reservation. No mcentral lock is held meanwhile.
#   page cache (pagecache=True)
#       a small span comes from the P's 64-page chunk without the heap lock;
#       the lock is taken only to refill the chunk or the spare span structs.
#   free
#       no lock: spanOf reads the arena index and the page map with acquire
#       loads; one atomic OR.
#   GC  one collection at a time (sched.gc_sema); the scheduler lock to stop
#       and start the world (the stopper spins a little, the lock dropped,
#       before it sleeps).
#   sweep
#       a CAS on the span's sweepgen claims it; filing it takes its mcentral's
#       lock (mutex design) or pushes it on a span set, and freeing it the
#       mheap lock, never both at once. Pacing reads heap_live and adds to
#       pages_swept (one atomic add per span).
#   scheduler
#       acquirep, releasep, handoffp and stop-the-world take the scheduler
#       lock; the safe point before every allocation is one relaxed load
#       (two more every 256 allocations, for preemption and close).
#   Every runtime lock spins briefly before it sleeps (Go's lock2), and what
#   an acquisition writes (the mutex, its counters) spans two cache lines.
#   Nothing two Ms write on the allocation path shares a cache line unless
#   the design shares it (a lock, the lists it guards, heap_live):
#   tests/test_cachelines.py checks every such structure's layout.
#   Lock order: the mcache lock ("locked" and "shared" modes) comes first and may be held
#   while an mcentral lock, a span set's spine lock or the mheap lock is
#   taken; those three are never nested. gc_sema comes before the scheduler
#   lock, and neither is taken with an allocator lock held.
#
# Comparison modes (Runtime(mcache=, mcentral=, pagecache=, sizeclasses=))
#
#   mcache="lockfree"   Go's per-P cache, as above (default).
#          "locked"     the same cache behind a per-P mutex that only its P
#                       takes, never contended: what the lock alone costs.
#          "shared"     one cache for every P behind one mutex (lock site
#                       runtime.(*sharedcache).lock): the design without per-P
#                       caches, whose lock every allocating M contends for.
#          "none"       no cache: each small object comes from its mcentral
#                       under the mcentral's lock, and there are no tiny blocks.
#   mcentral="mutex"    Go 1.13: nonempty/empty span lists under one mutex; a
#                       cached span stays on empty (default).
#           "spanset"   Go 1.15: lock-free partial/full span sets whose swept
#                       and unswept halves swap roles every collection.
#   pagecache=True      Go 1.14's per-P page cache in front of the mheap.
#   sweep="concurrent"  Go 1.13's sweep, lazy and in the background (default).
#        "stw"          the whole sweep inside the stop-the-world pause.
#   sizeclasses="go1.19"  the size-class tables of Go 1.16 and later.
#   The three slower mcache modes leave mallocgc through mallocgc_slow, so the
#   lock-free path pays one load and a branch for them.
#
# Where each piece lives
#
#   goruntime/sys.h, sys.pxd      atomics, bit tricks, clocks, pthreads, mmap,
#                                 GR_ASSERT (debug builds)
#   goruntime/sizeclasses.*       size and span classes; the tables are in
#                                 sizeclasses_data.py, made by mksizeclasses.py
#   goruntime/mspan.*             mspan, its bitmaps, nextFreeFast, span lists
#   goruntime/mspanset.*          Go 1.15's lock-free span set
#   goruntime/lock.*              the counting mutex; lock call sites (SITE_NAMES)
#   goruntime/mheap.*             arenas, page allocator, page cache, spanOf
#   goruntime/mcentral.*          cacheSpan, uncacheSpan, grow (both designs)
#   goruntime/mcache.*            refill, nextFree, releaseAll
#   goruntime/runtime2.pxd        P, M, the scheduler and the runtime root
#   goruntime/proc.*              acquirep/releasep, hand-off, safe points,
#                                 stop-the-world, M threads
#   goruntime/malloc.*            mallocgc, large objects, the slow mcache
#                                 modes, free
#   goruntime/mgc.*               collection, heap goal, background sweeper M,
#                                 heap verifier
#   goruntime/mgcsweep.*          the sweepers: sweepone, ensureSwept,
#                                 proportional sweeping, reclaim
#   goruntime/mgcscavenge.*       the background scavenger thread, free_os_memory
#   goruntime/mstats.*            MemStats and the identities it must satisfy
#   goruntime/runtime.*           the Python API (Runtime)
#   goruntime/workload.*          the churn kernel, and what every kernel
#                                 shares: launch_ms and its start gate, the
#                                 RNG, object tags
#   goruntime/cmd/                the tools: the `goruntime` command (main.py,
#                                 flags.py, report.py), profile.py and
#                                 pprof.py, compare.py, bench.py with its
#                                 kernels (benchkernels.pyx)
#   stress/                       the stress kernels (kernels.pyx) and their
#                                 runner (`goruntime stress`, `make stress`)
#   tests/                        the test suite; testkernels.pyx holds the
#                                 test-only kernels
#   tools/tsan.py                 `make tsan`
# ---------------------------------------------------------------------------
from libc.stdint cimport uint16_t, uint32_t, uintptr_t
from libc.string cimport memset
from goruntime.sys cimport load64, load_relaxed32, store_relaxed32
from goruntime.mspan cimport mspan_t, nextFreeFast
from goruntime.mcache cimport mcache_t
from goruntime.sizeclasses cimport (size_to_class, makeSpanClass, MAX_SMALL_SIZE, TINY_SIZE,
    TINY_SPAN_CLASS)
from goruntime.runtime2 cimport p_t, runtime_t, MCACHE_LOCKFREE

cpdef enum FreeResult:
    FREE_OK = 0
    FREE_BAD_POINTER = 1
    FREE_DOUBLE_FREE = 2

cdef uintptr_t mallocgc_slow(runtime_t* rt, p_t* pp, size_t size, bint noscan, bint* gc) noexcept nogil
cdef uintptr_t malloc_nextFree(runtime_t* rt, mcache_t* c, int spc, bint* gc) noexcept nogil
cdef int free_object(runtime_t* rt, mcache_t* c, uintptr_t addr) noexcept nogil
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


cdef inline uintptr_t mallocgc_small(runtime_t* rt, mcache_t* c, size_t size, bint noscan, bint* gc) noexcept nogil:
    """The mcache path of mallocgc for 0 < size <= 32 KiB; 0 if out of memory.

    The hit path writes the span's allocation state and the tiny block only: the
    small-object counts are taken a span at a time (mcache_refill counts a
    span's free slots when it caches it, releaseAll gives back those left), as
    Go 1.16 and later do. Everything past nextFreeFast is one out-of-line call
    (malloc_nextFree), so that this stays small enough to be inlined."""
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
            x = malloc_nextFree(rt, c, TINY_SPAN_CLASS, gc)
            if x == 0:
                return 0
            s = c.alloc[TINY_SPAN_CLASS]
        memset(<void*>x, 0, TINY_SIZE)
        tiny_mark(s, x, size)
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
        x = malloc_nextFree(rt, c, spc, gc)
        if x == 0:
            return 0
        s = c.alloc[spc]
    if s.needzero:
        memset(<void*>x, 0, s.elemsize)
    return x


cdef inline uintptr_t mallocgc(runtime_t* rt, p_t* pp, size_t size, bint noscan, bint* gc) noexcept nogil:
    """An object of `size` bytes for the M holding pp; 0 if the heap cannot grow.

    Sets *gc when this allocation took the heap to its goal: the caller starts
    a collection, as Go's mallocgc does after a refill or a large allocation.
    """
    if size == 0:
        return <uintptr_t>&rt.zerobase
    if size > MAX_SMALL_SIZE or rt.mcache_mode != MCACHE_LOCKFREE:
        return mallocgc_slow(rt, pp, size, noscan, gc)
    return mallocgc_small(rt, &pp.mcache, size, noscan, gc)
