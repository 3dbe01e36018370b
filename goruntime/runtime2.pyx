# cython: language_level=3
# runtime2: the scheduler structures are declared in runtime2.pxd (Go's
# runtime/runtime2.go); this module only exposes their enums (PStatus,
# MCacheMode) to Python.
from goruntime.mheap cimport mheap_t
from goruntime.mcentral cimport mcentral_t
from goruntime.mspan cimport mspan_t


def struct_layout():
    """Sizes, and offsets of the fields whose cache lines matter, of the
    structures several Ms share or each M owns (the tests check them: no two Ms
    write one line on the allocation path)."""
    cdef p_t p
    cdef sched_t sc
    cdef runtime_t rt
    cdef mheap_t h
    cdef mcentral_t c
    cdef mspan_t s
    return {
        "m_t": sizeof(m_t),
        "p_t": {"size": sizeof(p_t), "mcache_end": <size_t>&p.mcache + sizeof(p.mcache) - <size_t>&p,
                "status": <size_t>&p.status - <size_t>&p, "owner_end": <size_t>&p.owner + 8 - <size_t>&p,
                "pcache": <size_t>&p.pcache - <size_t>&p},
        "sched_t": {"lock_end": <size_t>&sc.lock + sizeof(sc.lock) - <size_t>&sc,
                    "gcwaiting": <size_t>&sc.gcwaiting - <size_t>&sc,
                    "closed_end": <size_t>&sc.closed + 4 - <size_t>&sc,
                    "pidle_cond": <size_t>&sc.pidle_cond - <size_t>&sc},
        "runtime_t": {"size": sizeof(runtime_t), "sched_end": sizeof(sched_t),
                      "heap": <size_t>&rt.heap - <size_t>&rt,
                      "central_end": <size_t>&rt.central + sizeof(rt.central) - <size_t>&rt,
                      "heap_marked": <size_t>&rt.heap_marked - <size_t>&rt},
        "mheap_t": {"lock_end": sizeof(h.lock), "arenas": <size_t>&h.arenas - <size_t>&h,
                    "emptyspan_end": <size_t>&h.emptyspan + sizeof(mspan_t) - <size_t>&h,
                    "spanfree": <size_t>&h.spanfree - <size_t>&h,
                    "heap_live": <size_t>&h.heap_live - <size_t>&h,
                    "large": <size_t>&h.large - <size_t>&h,
                    "regions": <size_t>&h.regions - <size_t>&h, "sizeof_region": sizeof(h.regions[0]),
                    "search_hint": <size_t>&h.search_hint - <size_t>&h},
        "mcentral_t": {"size": sizeof(mcentral_t), "lock_end": sizeof(c.lock),
                       "nonempty": <size_t>&c.nonempty - <size_t>&c,
                       "heap_end": <size_t>&c.heap + 8 - <size_t>&c,
                       "spanclass": <size_t>&c.spanclass - <size_t>&c},
        "mspan_t": {"size": sizeof(mspan_t), "owner_line_end": <size_t>&s.tinyObjs + 8 - <size_t>&s},
    }
