"""The tiny allocator packs noscan objects under 16 B into 16 B blocks."""
from goruntime import Runtime

with Runtime(gomaxprocs=1) as rt:
    with rt.proc():
        xs = [rt.malloc(n, noscan=True) for n in (5, 3, 8, 4, 12)]
    block = xs[0] & ~15
    print("offsets from the first block:", [x - block for x in xs])
    ms = rt.memstats()
    print(f"5 objects: {ms.Mallocs} mallocs, {ms.TinyAllocs} packed into an existing block, "
          f"{ms.Mallocs - ms.TinyAllocs} blocks taken from the 16 B noscan span")
