"""The sweep puts spans back on nonempty: freed slots come back only after a collection."""
from goruntime import Runtime

with Runtime(gomaxprocs=1, gogc=None) as rt:
    spc = rt.sizeclasses.size_to_class(512) << 1           # 512 B scan objects: 16 to a span
    central = rt.centrals[spc]
    xs = [rt.malloc(512) for _ in range(16)]
    rt.memstats()                                           # flush the mcache: the full span is on empty
    for x in xs[:10]:
        rt.free(x)
    print("10 freed, no gc yet:  nonempty", [s.allocCount for s in central.nonempty],
          " empty", [s.allocCount for s in central.empty])
    y = rt.malloc(512)
    print("a malloc gets a fresh slot:", y not in xs)
    rt.gc()
    print("after the sweep:      nonempty", [(s.allocCount, s.sweep_state) for s in central.nonempty],
          " empty", [s.allocCount for s in central.empty])
    z = rt.malloc(512)
    print("a malloc now reuses a freed slot:", z in xs[:10])
