# sizeclasses: every small request is rounded up to one of ~67 object sizes,
# each with a fixed span length, through two lookup tables (8-byte steps up to
# 1 KiB, 128-byte steps above), so that the mcache path finds its span class
# with two loads and no division.
#
# Go counterparts: runtime/sizeclasses.go (the constants and tables: here for
# go1.13 and go1.19, in sizeclasses_data.py, made by mksizeclasses.py, Go's
# mksizeclasses.go); the size -> class lookup mallocgc does inline
# (size_to_class); runtime/mheap.go: spanClass, makeSpanClass,
# spanClass.sizeclass, spanClass.noscan.
from libc.stdint cimport uint8_t, uint16_t

cdef enum:
    PAGE_SHIFT = 13
    PAGE_SIZE = 8192
    MAX_SMALL_SIZE = 32768
    SMALL_SIZE_DIV = 8
    SMALL_SIZE_MAX = 1024
    LARGE_SIZE_DIV = 128
    MAX_SIZE_CLASSES = 68           # the larger of the two tables (go1.19)
    MAX_SPAN_CLASSES = MAX_SIZE_CLASSES * 2
    TINY_SIZE = 16
    TINY_SIZE_CLASS = 2             # 16 B in both tables
    TINY_SPAN_CLASS = TINY_SIZE_CLASS << 1 | 1   # makeSpanClass(TINY_SIZE_CLASS, noscan), spelt out for the enum
    MAX_OBJS_PER_SPAN = 1024        # PAGE_SIZE / 8
    SIZE_TO_CLASS8_LEN = 129        # SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1
    SIZE_TO_CLASS128_LEN = 249      # (MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1

ctypedef struct sizeclasses_t:
    int num_classes
    uint16_t class_to_size[MAX_SIZE_CLASSES]
    uint8_t class_to_allocnpages[MAX_SIZE_CLASSES]
    uint16_t class_to_nelems[MAX_SIZE_CLASSES]
    uint8_t size_to_class8[SIZE_TO_CLASS8_LEN]
    uint8_t size_to_class128[SIZE_TO_CLASS128_LEN]


cdef inline int size_to_class(const sizeclasses_t* t, size_t size) noexcept nogil:
    """The size class of a small request, 0 < size <= MAX_SMALL_SIZE."""
    if size <= SMALL_SIZE_MAX - 8:
        return t.size_to_class8[(size + SMALL_SIZE_DIV - 1) // SMALL_SIZE_DIV]
    return t.size_to_class128[(size - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) // LARGE_SIZE_DIV]


# A span class is a size class and a noscan bit in one small int, so that
# scan and noscan objects of one size never share a span (Go's spanClass).
cdef inline int makeSpanClass(int sizeclass, bint noscan) noexcept nogil:
    return (sizeclass << 1) | noscan


cdef inline int spanClassSizeclass(int spc) noexcept nogil:
    return spc >> 1


cdef inline bint spanClassNoscan(int spc) noexcept nogil:
    return spc & 1


cdef class SizeClasses:
    cdef sizeclasses_t t
    cdef readonly str version
