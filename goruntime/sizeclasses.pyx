# cython: language_level=3
# sizeclasses: one of the size-class tables (sizeclasses_data.py) held as C
# arrays for the allocator, and its Python view. Go counterpart:
# runtime/sizeclasses.go, whose tables Go compiles in; the model picks one per
# Runtime, so the tables are loaded at run time instead.
from goruntime.sizeclasses_data import TABLES, NUM_SIZE_CLASSES
from goruntime import mksizeclasses

VERSIONS = tuple(TABLES)


def normalize_version(version):
    """Accepts "go1.13", "1.13" or 1.13 style names; raises ValueError otherwise."""
    name = str(version)
    if not name.startswith("go"):
        name = "go" + name
    if name not in TABLES:
        raise ValueError(f"unknown size-class table {version!r}: choose one of {', '.join(VERSIONS)}")
    return name


cdef class SizeClasses:
    """One of Go's size-class tables, held as C arrays for the allocator."""

    def __cinit__(self, version="go1.13"):
        self.version = normalize_version(version)
        tables = TABLES[self.version]
        n = NUM_SIZE_CLASSES[self.version]
        self.t.num_classes = n
        for i in range(n):
            size = tables["class_to_size"][i]
            npages = tables["class_to_allocnpages"][i]
            self.t.class_to_size[i] = size
            self.t.class_to_allocnpages[i] = npages
            self.t.class_to_nelems[i] = (npages * PAGE_SIZE) // size if size else 0
        for i, c in enumerate(tables["size_to_class8"]):
            self.t.size_to_class8[i] = c
        for i, c in enumerate(tables["size_to_class128"]):
            self.t.size_to_class128[i] = c

    @property
    def num_classes(self):
        return self.t.num_classes

    @property
    def num_span_classes(self):
        return self.t.num_classes * 2

    def size_to_class(self, size):
        """The size class serving a request of `size` bytes (0 for large objects)."""
        if size < 0:
            raise ValueError(f"negative size {size}")
        if size == 0 or size > MAX_SMALL_SIZE:
            return 0
        return size_to_class(&self.t, size)

    def class_to_size(self, int sizeclass):
        self._check(sizeclass)
        return self.t.class_to_size[sizeclass]

    def class_to_npages(self, int sizeclass):
        self._check(sizeclass)
        return self.t.class_to_allocnpages[sizeclass]

    def class_to_nelems(self, int sizeclass):
        self._check(sizeclass)
        return self.t.class_to_nelems[sizeclass]

    def _check(self, int sizeclass):
        if not 0 < sizeclass < self.t.num_classes:
            raise ValueError(f"size class {sizeclass} out of range 1..{self.t.num_classes - 1}")

    def format_table(self):
        return mksizeclasses.format_table(self.version)
