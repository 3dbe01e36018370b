"""The timeline (goruntime/trace.pyx): rt.trace() records what each M did off the hit path,
and the Perfetto file it writes decodes with Perfetto's own protobuf classes into one track
per M, a GC track and counter tracks, with exactly the contended lock waits that
lockstats() counted over the same run."""
import collections

import pytest

from goruntime import Runtime
from goruntime.trace import TraceEvent

Trace = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2").Trace
TrackEvent = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2").TrackEvent


def _decode(path):
    t = Trace()
    t.ParseFromString(path.read_bytes())
    tracks = {p.track_descriptor.uuid: p.track_descriptor.name for p in t.packet if p.HasField("track_descriptor")}
    slices = collections.Counter()
    waits = collections.Counter()
    counters = collections.Counter()
    open_slices = collections.Counter()
    for p in t.packet:
        if not p.HasField("track_event"):
            continue
        e = p.track_event
        track = tracks[e.track_uuid]
        if e.type == TrackEvent.TYPE_SLICE_BEGIN:
            slices[track, e.name] += 1
            open_slices[track] += 1
            if e.name.startswith("wait: "):
                ann = {a.name: a.string_value for a in e.debug_annotations}
                waits[ann["lock"], ann["site"]] += 1
        elif e.type == TrackEvent.TYPE_SLICE_END:
            open_slices[track] -= 1
        elif e.type == TrackEvent.TYPE_COUNTER:
            counters[track] += 1
    return tracks, slices, waits, counters, open_slices


@pytest.mark.parametrize("mcache", ["lockfree", "shared"])
def test_trace_file_has_a_track_per_m_and_the_lock_waits_of_lockstats(tmp_path, mcache):
    path = tmp_path / "run.pftrace"
    for attempt in range(5):          # until some lock waited: the check needs contention
        with Runtime(gomaxprocs=2, mcache=mcache) as rt:
            with rt.trace(path) as recording:
                r = rt.run(ms=3, ops=4000 * (attempt + 1), sizes=[64, 4096, 40000], live=64, seed=attempt)
            ls = rt.lockstats()
        if any(ls[c]["contended"] for c in ("mheap", "sched", "mcentral", "sharedcache") if ls[c]):
            break
    result = recording.result
    assert result.dropped == 0 and len(r.per_m) == 3
    tracks, slices, waits, counters, open_slices = _decode(path)
    assert sorted(n for n in tracks.values() if n.startswith("M")) == ["M0", "M1", "M2"]
    assert {"GC", "HeapAlloc", "HeapInuse", "NumGC"} <= set(tracks.values())
    assert all(n == 0 for n in open_slices.values())            # every slice ends
    expected = collections.Counter()
    for cls in ("mheap", "sched", "mcentral", "mcache", "sharedcache", "spanset"):
        for site, v in ((ls[cls] or {}).get("sites") or {}).items():
            # The background scavenger is no M: it has no track, its waits are not traced.
            if v["contended"] and site != "runtime.(*mheap).scavengeLocked":
                expected[cls, site] = v["contended"]
    assert waits == expected and sum(waits.values()) > 0
    assert result.lock_waits() == dict(expected)
    ms_slices = {n: sum(c for (t, name), c in slices.items() if t == n and name == "holding a P") for n in ("M0", "M1", "M2")}
    assert all(n >= 1 for n in ms_slices.values()), ms_slices
    large = sum(c for (t, name), c in slices.items() if name == "large object (mheap)")
    assert large == result.count(TraceEvent.EV_LARGE) > 0
    ngc = slices["GC", "GC (world stopped)"]
    assert ngc == result.count(TraceEvent.EV_GC) and counters["NumGC"] == ngc
    assert slices["GC", "stop the world"] == slices["GC", "mark termination"] == ngc


def test_trace_records_nothing_outside_the_block_and_bounds_its_buffers():
    with Runtime(gomaxprocs=1, gogc=None) as rt:
        rt.run(ms=1, ops=5000, sizes=4096, seed=1)
        with rt.trace(events_per_m=10) as small:
            rt.run(ms=1, ops=5000, sizes=4096, seed=2)
        rt.run(ms=1, ops=5000, sizes=4096, seed=3)
        with pytest.raises(ValueError, match="events_per_m"):
            rt.trace(events_per_m=0)
    assert len([e for e in small.result.events if e[0] == 0]) == 10 and small.result.dropped > 0


def test_cli_run_trace(tmp_path, capsys):
    from goruntime.cmd.main import main
    path = tmp_path / "cli.pftrace"
    main(["run", "--gomaxprocs", "2", "--ms", "2", "--ops", "3000", "--sizes", "64,40000", "--seed", "1",
          "--trace", str(path), "--json"])
    cap = capsys.readouterr()
    assert f"wrote {path}" in cap.err
    tracks = _decode(path)[0]
    assert sorted(n for n in tracks.values() if n.startswith("M")) == ["M0", "M1"]
