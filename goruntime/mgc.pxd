# mgc: the collection. Liveness is explicit in the model (an object is live
# until free() marks it), so the stop-the-world takes no marks: it finishes
# the last cycle's sweep, flushes the mcaches, takes the live heap (the bytes
# not freed) and advances sweepgen; the sweepers of mgcsweep then compute each
# span's gcmarkBits from allocBits and freedBits as they sweep it.
#
# Go counterparts: runtime/mgc.go: gcStart, gcMarkTermination
# (_gcMarkTermination), runtime.GC's final sweep (gcSweepAll);
# runtime/mgcsweep.go: bgsweep; runtime/mstats.go: flushallmcaches;
# runtime/mgcpacer.go: the heap goal (set_heap_goal, GOGC only). gcTryStart
# is gcStart behind a trylock of gc_sema (Go's work.startSema): an M that
# loses the race parks at its next safe point instead. verify_heap has no
# counterpart: Go checks its invariants with throw where they are used; the
# model also checks them all at once on demand (Runtime.verify). gcStart keeps
# each cycle's record (runtime2.pxd gcwork_t, Go's `work`) and, with
# Runtime(gctrace=True), prints Go's GODEBUG=gctrace=1 line (gctrace_print:
# gcMarkTermination's `if debug.gctrace > 0` block).
from goruntime.runtime2 cimport p_t, runtime_t

# forced: a user's collection (Runtime.gc, Go's gcTriggerCycle), not the heap trigger.
cdef void gcStart(runtime_t* rt, p_t* mine, bint forced=*) noexcept nogil
cdef void gcSweepAll(runtime_t* rt) noexcept nogil
cdef void* bgsweep(void* arg) noexcept nogil
cdef bint gcTryStart(runtime_t* rt, p_t* mine) noexcept nogil
cdef void flushallmcaches(runtime_t* rt) noexcept nogil
cdef void set_heap_goal(runtime_t* rt) noexcept nogil
cdef tuple verify_heap(runtime_t* rt)
cdef void gcwork_init(runtime_t* rt, int gctrace) noexcept nogil
cdef int gctrace_line(runtime_t* rt, char* buf) noexcept nogil
cdef void gctrace_print(runtime_t* rt) noexcept nogil
