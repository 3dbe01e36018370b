"""A full span refills from the mcentral, under its lock, and moves from nonempty to empty."""
from goruntime import Runtime

with Runtime(gomaxprocs=1, gogc=None) as rt:
    spc = rt.sizeclasses.size_to_class(1024) << 1          # 1 KiB scan objects: 8 to a span
    central = rt.centrals[spc]
    first = [rt.malloc(1024) for _ in range(4)]
    rt.free(first[0])
    rt.gc()                                                 # the half-used span goes back to nonempty
    print("after a gc:      nonempty", [s.allocCount for s in central.nonempty],
          " empty", [s.allocCount for s in central.empty])
    locks = rt.lockstats()["mcentrals"][spc]["acquisitions"]
    with rt.proc():
        rt.malloc(1024)                                     # refill: cacheSpan takes the span
        print("first malloc:    nonempty", [s.allocCount for s in central.nonempty],
              " empty", [s.allocCount for s in central.empty],
              f" mcentral lock taken {rt.lockstats()['mcentrals'][spc]['acquisitions'] - locks}x")
        locks = rt.lockstats()["mcentrals"][spc]["acquisitions"]
        for _ in range(4):
            rt.malloc(1024)                                 # the cached span fills up: no lock
        print("4 more mallocs:  nonempty", [s.allocCount for s in central.nonempty],
              " empty", [s.allocCount for s in central.empty],
              f" mcentral lock taken {rt.lockstats()['mcentrals'][spc]['acquisitions'] - locks}x")
        rt.malloc(1024)                                     # full: refill from a new span
        print("one more malloc: nonempty", [s.allocCount for s in central.nonempty],
              " empty", [s.allocCount for s in central.empty],
              f" mcentral lock taken {rt.lockstats()['mcentrals'][spc]['acquisitions'] - locks}x")
