/* sys.h: the few machine primitives the model needs, as static inline C so
 * that Cython inlines them into the nogil hot paths (declared for Cython in
 * sys.pxd).
 *
 * Go counterparts: runtime/internal/sys (Ctz64, OnesCount64, Len64);
 * runtime/internal/atomic (Load, Store, LoadAcq/StoreRel, Loadp/StorepNoWB,
 * Xadd, Xadd64, Cas64, Or8/Or); nanotime (runtime/time_nofake.go); procyield
 * (gr_cpu_relax); and throw (runtime/panic.go), which GR_ASSERT stands for in
 * debug builds. The lock-counter switch and the thread clocks have no Go
 * counterpart: they serve the model's lock profiles and per-M figures.
 *
 * Atomics are GCC __atomic builtins on plain integer fields: ThreadSanitizer
 * understands them and no special field types leak into the Cython structs. */
#ifndef GORUNTIME_SYS_H
#define GORUNTIME_SYS_H

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sched.h>

/* Lock counters are always on; a benchmark build defines this to 0 to measure
 * what they cost. */
#ifndef GORUNTIME_LOCKSTATS
#define GORUNTIME_LOCKSTATS 1
#endif

static inline int gr_lockstats_enabled(void) { return GORUNTIME_LOCKSTATS; }

/* Thread-local storage read on every call from Python: initial-exec, so that
 * each access is one %fs-relative load. The default model for a shared object
 * (general or local dynamic) calls __tls_get_addr instead; these few words fit
 * in the static TLS that glibc reserves for modules loaded with dlopen. */
#define GR_THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))

/* GR_ASSERT(cond, what): the model's own invariants, checked where a breach
 * would otherwise show up much later as corrupt memory (the role of Go's
 * throw). Only in builds without NDEBUG (`make debug`), where a failure prints
 * the C file and line with `what` and aborts, so that gdb stops right there.
 * Python's own flags define NDEBUG, so the optimised build compiles every
 * check to nothing: the hot path cannot pay for them. Bad input from Python is
 * not an invariant: it is refused with an error, never asserted. */
#ifdef NDEBUG
#define GR_ASSERT(cond, what) ((void)0)
static inline int gr_assertions_enabled(void) { return 0; }
#else
#include <stdio.h>
#include <stdlib.h>
__attribute__((noreturn, cold, unused))
static void gr_assert_fail(const char *what, const char *cond, const char *file, int line) {
    fprintf(stderr, "goruntime: invariant broken: %s\n  %s:%d: %s\n", what, file, line, cond);
    fflush(stderr);
    abort();
}
#define GR_ASSERT(cond, what) \
    (__builtin_expect(!!(cond), 1) ? (void)0 : gr_assert_fail((what), #cond, __FILE__, __LINE__))
static inline int gr_assertions_enabled(void) { return 1; }
#endif

/* A member of no size that starts the next member of a struct on a new cache
 * line, and makes the struct cache-line aligned and a whole number of lines
 * long (GNU C: zero-length array, aligned type). The model's structs mark with
 * it every boundary between what one M writes and what another reads or
 * writes; their memory comes from alloc_aligned (sys.pxd), 64-byte aligned. */
#define GR_CACHE_LINE 64
typedef struct { char _line[0]; } __attribute__((aligned(GR_CACHE_LINE))) gr_cacheline_t;

/* Go's sys.Ctz64: 64 for a zero word (the C builtin is undefined there). */
static inline int gr_ctz64(uint64_t x) { return x ? __builtin_ctzll(x) : 64; }
/* Without -mpopcnt, GCC's __builtin_popcountll is a call into libgcc on x86-64:
 * the sweeper counts two words per bitmap word, so count inline instead. */
static inline int gr_popcount64(uint64_t x) {
#if defined(__POPCNT__) || !(defined(__x86_64__) || defined(__i386__))
    return __builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
#endif
}
static inline int gr_log2_64(uint64_t x) { return x ? 63 - __builtin_clzll(x) : 0; }

static inline uint64_t gr_nanotime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t gr_thread_cputime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uintptr_t gr_thread_id(void) { return (uintptr_t)pthread_self(); }

static inline void gr_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Relaxed loads and stores compile to plain moves on x86-64 and arm64: they
 * cost nothing on the mcache path but make a racing reader (a free from another
 * P checking freeindex) well defined. */
static inline uint32_t gr_load_relaxed32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void gr_store_relaxed32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint16_t gr_load_relaxed16(const uint16_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint64_t gr_load_relaxed64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void gr_store_relaxed64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint32_t gr_load_acquire32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gr_store_release32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t gr_load_acquire64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gr_store_release64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline uint32_t gr_load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void gr_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t gr_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void gr_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline void *gr_loadp(void *const *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gr_storep(void **p, void *v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline uint64_t gr_or64(uint64_t *p, uint64_t v) { return __atomic_fetch_or(p, v, __ATOMIC_ACQ_REL); }
static inline uint16_t gr_or16(uint16_t *p, uint16_t v) { return __atomic_fetch_or(p, v, __ATOMIC_ACQ_REL); }
static inline uint32_t gr_xadd32(uint32_t *p, int32_t v) { return __atomic_add_fetch(p, (uint32_t)v, __ATOMIC_ACQ_REL); }
static inline uint64_t gr_xadd64(uint64_t *p, int64_t v) { return __atomic_add_fetch(p, (uint64_t)v, __ATOMIC_ACQ_REL); }
static inline int gr_cas64(uint64_t *p, uint64_t old, uint64_t new_) {
    return __atomic_compare_exchange_n(p, &old, new_, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline int gr_cas32(uint32_t *p, uint32_t old, uint32_t new_) {
    return __atomic_compare_exchange_n(p, &old, new_, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

#endif
