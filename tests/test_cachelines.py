"""False sharing, checked where it is decided: the layout of every structure that
several Ms share or that each M (or P, or stress slot) owns. Two Ms on two Ps must
not write one cache line on the allocation path unless the design shares it (a
lock, heap_live); these tests read the sizes and offsets back from the compiled
structures (struct_layout, kernel_layout, slot_layout, mutex_layout), so that a
field added in the wrong place fails here rather than as a benchmark that no
longer scales."""
from goruntime.runtime2 import struct_layout
from goruntime.workload import kernel_layout
from stress.kernels import slot_layout
from goruntime.cmd.benchkernels import bench_layout

LINE = 64


def line(offset):
    return offset // LINE


def test_per_m_kernel_state_is_one_line_each():
    # The churn kernel's per-M array: each element whole lines, so neighbours never share.
    assert kernel_layout()["mwork_t"] % LINE == 0
    for name, size in bench_layout().items():
        assert size % LINE == 0, (name, size)


def test_stress_slots_and_their_inboxes_are_apart():
    lay = slot_layout()
    assert lay["slot_t"] % LINE == 0, lay
    own, enq, deq, ro = (line(lay["err_found_end"] - 1), line(lay["inbox.enq"]),
                         line(lay["inbox.deq"]), line(lay["inbox.mask"]))
    # What the slot's M writes, what pushers write, what the popper writes, what all read.
    assert own < enq < deq < ro, lay


def test_p_status_and_page_cache_are_off_the_mcache_lines():
    p = struct_layout()["p_t"]
    assert p["size"] % LINE == 0
    assert line(p["mcache_end"] - 1) < line(p["status"]), p
    assert line(p["owner_end"] - 1) < line(p["pcache"]), p


def test_safepoint_flags_have_a_line_of_their_own():
    s = struct_layout()["sched_t"]
    assert line(s["lock_end"] - 1) < line(s["gcwaiting"]) == line(s["closed_end"] - 1) < line(s["pidle_cond"]), s
    rt = struct_layout()["runtime_t"]
    # The read-mostly root (heap, allp, central, heap_goal) is off the scheduler's lines and
    # off the figures each collection writes.
    assert line(rt["sched_end"] - 1) < line(rt["heap"]), rt
    assert line(rt["central_end"] - 1) < line(rt["heap_marked"]), rt


def test_mheap_lines_by_writer():
    h = struct_layout()["mheap_t"]
    assert line(h["lock_end"] - 1) < line(h["arenas"]), h
    # Every span allocation writes spanfree and the in-use counts, and every refill adds
    # to heap_live: one line, not the read-mostly one (arenas, sweepgen, emptyspan) every
    # refill and free reads, and not the cold rest.
    assert line(h["emptyspan_end"] - 1) < line(h["spanfree"]) == line(h["heap_live"]) < line(h["large"]), h
    # The regions, which spanOf reads on every free, hold nothing a span allocation
    # writes: their search hints live in an array of their own.
    assert h["search_hint"] + 8 * 1024 <= h["regions"] or h["regions"] + 1024 * h["sizeof_region"] <= h["search_hint"], h


def test_mcentral_lists_share_one_line_after_the_lock():
    c = struct_layout()["mcentral_t"]
    assert c["size"] % LINE == 0
    assert line(c["lock_end"] - 1) < line(c["nonempty"]) == line(c["heap_end"] - 1) < line(c["spanclass"]), c


def test_span_hot_fields_fit_the_first_line():
    s = struct_layout()["mspan_t"]
    assert s["owner_line_end"] <= LINE, s
