# mgcscavenge: the background scavenger, which gives free memory back to the
# OS. See mgcscavenge.pyx.
#
# Go counterpart: runtime/mgcscavenge.go: bgscavenge (scavenger_main), the
# retained goal of gcPaceScavenger (retained_goal), retainExtraPercent and
# scavengePercent; runtime/debug.FreeOSMemory's release of every free page
# (scavenge_all; (*mheap).scavengeAll in Go). The page-level work (which pages,
# madvise) is mheap.pyx's mheap_scavenge.
from libc.stdint cimport uint32_t, uint64_t
from goruntime.sys cimport pthread_mutex_t, pthread_cond_t, pthread_t
from goruntime.runtime2 cimport runtime_t

cdef enum:
    RETAIN_EXTRA_PERCENT = 10       # Go's retainExtraPercent: keep (100 + 10)% of the heap goal
    SCAVENGE_PERCENT = 1            # Go's scavengePercent: at most 1% of one CPU
    SCAV_STEP_PAGES = 8             # 64 KiB released per pacing step (Go 1.19's scavenge quantum)
    SCAV_ALL_CHUNK_PAGES = 512      # free_os_memory releases 4 MiB per acquisition of gc_sema

# One per Runtime (runtime.pyx allocates it, starts its thread if the scavenger
# is on, and stops it first thing in close() and __dealloc__).
ctypedef struct scavenger_t:
    runtime_t* rt
    # The thread and how to stop it: stop is written under mu, the thread waits
    # on cond (CLOCK_MONOTONIC) between steps.
    pthread_mutex_t mu
    pthread_cond_t cond
    pthread_t thread
    uint32_t started                # a thread was created (join it, unless in a fork's child); atomic
    uint64_t forkgen                # proc.fork_generation() when it was created
    uint32_t stop                   # written under mu (atomic: a burst polls it without mu)
    # Pacing state, written only by a step, and every step runs under
    # rt.sched.gc_sema (so it reads numgc and heap_goal as the collection left
    # them). goal and the figures below are read by scavenger_stats without
    # gc_sema: atomic.
    uint32_t numgc                  # the collection the goal and the cursor were last set for
    bint fresh                      # no step has run yet
    bint reset                      # the next release first puts the cursor back at the top
    bint exhausted                  # no free, unreleased page was left below the cursor this cycle
    uint64_t goal                   # bytes: retained_goal() at that collection
    uint64_t retained               # bytes: heap_retained() at the last step
    uint64_t steps                  # steps that released something
    uint64_t parks                  # steps that found nothing to do
    uint64_t released_bytes         # by the background thread and scavenger_step
    uint64_t all_bytes              # by free_os_memory
    uint64_t busy_cpu_ns            # the thread's CPU time over its working steps
    uint64_t busy_wall_ns           # and the wall time they spanned, sleeps included
    uint64_t cpu_ns                 # the thread's CPU time in all
    uint64_t start_ns
    uint64_t tid                    # the thread's kernel id (for /proc and psutil), atomic
    uint64_t last_sleep_ns

cdef scavenger_t* scavenger_new(runtime_t* rt) noexcept nogil
cdef int scavenger_start(scavenger_t* s) noexcept nogil
cdef void scavenger_stop(scavenger_t* s) noexcept nogil
cdef void scavenger_free(scavenger_t* s) noexcept nogil
cdef uint64_t retained_goal(runtime_t* rt) noexcept nogil
cdef size_t scavenge_step(scavenger_t* s, bint* idle) noexcept nogil
cdef int scavenge_all(scavenger_t* s, uint64_t* released) noexcept nogil
cdef dict scavenger_stats(scavenger_t* s)
