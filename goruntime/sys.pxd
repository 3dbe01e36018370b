# sys: C declarations shared by every module: the primitives of sys.h (see it
# for their Go counterparts), pthreads and the OS memory calls. Kept apart from
# the model's own structures, as uvloop keeps its includes/*.pxd.
#
# Go counterparts of the OS side: runtime/mem_linux.go (sysReserveOS and
# sysMapOS: one mmap with MAP_NORESERVE here), runtime/os_linux.go
# (newosproc: pthread_create here; osyield: sched_yield). Go's runtime locks
# and notes are futexes; the model uses pthread mutexes and condition
# variables so that contention is real and measurable (lock.pxd).
from libc.stdint cimport uint16_t, uint32_t, int32_t, uint64_t, int64_t, uintptr_t
from libc.string cimport memset

cdef extern from "sys.h" nogil:
    # A zero-size struct member: the next member starts a new cache line, and
    # the struct is line aligned and padded (see sys.h).
    ctypedef struct cacheline_t "gr_cacheline_t":
        pass
    int lockstats_enabled "gr_lockstats_enabled"() noexcept
    # A debug-build check (see sys.h); `what` is a string literal naming the invariant.
    void GR_ASSERT(bint cond, const char* what) noexcept
    int assertions_enabled "gr_assertions_enabled"() noexcept
    int ctz64 "gr_ctz64"(uint64_t x) noexcept
    int popcount64 "gr_popcount64"(uint64_t x) noexcept
    int log2_64 "gr_log2_64"(uint64_t x) noexcept
    uint64_t nanotime "gr_nanotime"() noexcept
    uint64_t thread_cputime "gr_thread_cputime"() noexcept
    uintptr_t thread_id "gr_thread_id"() noexcept
    void cpu_relax "gr_cpu_relax"() noexcept
    uint32_t load_relaxed32 "gr_load_relaxed32"(const uint32_t* p) noexcept
    void store_relaxed32 "gr_store_relaxed32"(uint32_t* p, uint32_t v) noexcept
    uint16_t load_relaxed16 "gr_load_relaxed16"(const uint16_t* p) noexcept
    uint64_t load_relaxed64 "gr_load_relaxed64"(const uint64_t* p) noexcept
    void store_relaxed64 "gr_store_relaxed64"(uint64_t* p, uint64_t v) noexcept
    uint32_t load_acquire32 "gr_load_acquire32"(const uint32_t* p) noexcept
    void store_release32 "gr_store_release32"(uint32_t* p, uint32_t v) noexcept
    uint64_t load_acquire64 "gr_load_acquire64"(const uint64_t* p) noexcept
    void store_release64 "gr_store_release64"(uint64_t* p, uint64_t v) noexcept
    uint32_t load32 "gr_load32"(const uint32_t* p) noexcept
    void store32 "gr_store32"(uint32_t* p, uint32_t v) noexcept
    uint64_t load64 "gr_load64"(const uint64_t* p) noexcept
    void store64 "gr_store64"(uint64_t* p, uint64_t v) noexcept
    void* loadp "gr_loadp"(void** p) noexcept
    void storep "gr_storep"(void** p, void* v) noexcept
    uint64_t or64 "gr_or64"(uint64_t* p, uint64_t v) noexcept
    uint16_t or16 "gr_or16"(uint16_t* p, uint16_t v) noexcept
    uint32_t xadd32 "gr_xadd32"(uint32_t* p, int32_t v) noexcept
    uint64_t xadd64 "gr_xadd64"(uint64_t* p, int64_t v) noexcept
    bint cas64 "gr_cas64"(uint64_t* p, uint64_t old, uint64_t new) noexcept
    bint cas32 "gr_cas32"(uint32_t* p, uint32_t old, uint32_t new) noexcept

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_mutexattr_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    ctypedef struct pthread_condattr_t:
        pass
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_attr_t:
        pass
    int pthread_mutex_init(pthread_mutex_t*, const pthread_mutexattr_t*)
    int pthread_mutex_destroy(pthread_mutex_t*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_trylock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_cond_init(pthread_cond_t*, const pthread_condattr_t*)
    int pthread_cond_destroy(pthread_cond_t*)
    int pthread_cond_wait(pthread_cond_t*, pthread_mutex_t*)
    int pthread_cond_signal(pthread_cond_t*)
    int pthread_cond_broadcast(pthread_cond_t*)
    int pthread_create(pthread_t*, const pthread_attr_t*, void* (*)(void*) noexcept nogil, void*)
    int pthread_join(pthread_t, void**)

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<sys/mman.h>" nogil:
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE
    void* MAP_FAILED

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void** memptr, size_t alignment, size_t size)

cdef enum:
    CACHE_LINE = 64

cdef inline void* alloc_aligned(size_t size) noexcept nogil:
    """Zeroed, cache-line aligned and padded C memory, or NULL."""
    cdef void* p = NULL
    cdef size_t padded = (size + CACHE_LINE - 1) & ~(<size_t>CACHE_LINE - 1)
    if posix_memalign(&p, CACHE_LINE, padded) != 0:
        return NULL
    memset(p, 0, padded)
    return p

