"""Size classes and span classes, scan and noscan, in both tables."""
from goruntime import Runtime, SizeClasses

for version in ("go1.13", "go1.19"):
    sc = SizeClasses(version)
    print(f"{version}: {sc.num_classes} size classes (class 0 stands for large objects), "
          f"{sc.num_span_classes} span classes (a scan and a noscan one per size class)")
with Runtime(gomaxprocs=1) as rt:
    scan, noscan = rt.span_of(rt.malloc(48)), rt.span_of(rt.malloc(48, noscan=True))
    print(f"48 B scan:   size class {scan.sizeclass}, span class {scan.spanclass}")
    print(f"48 B noscan: size class {noscan.sizeclass}, span class {noscan.spanclass}")
    print("the two share a span:", scan.base == noscan.base)
