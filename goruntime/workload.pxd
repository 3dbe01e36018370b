# The pieces every workload kernel shares (workload.pyx's churn kernel and
# stress.pyx's stress kernels): error codes, the live-object record, the RNG,
# and the tag each object carries from its allocation to its drop.
from libc.stdint cimport uint64_t, uintptr_t
from libc.string cimport memcpy

cpdef enum KernelError:
    KERNEL_OK = 0
    KERNEL_OOM = 1
    KERNEL_TAG = 2          # an object's bytes changed while it was live
    KERNEL_FREE = 3         # free() refused an object the kernel owned

ctypedef struct liveobj_t:
    uintptr_t addr
    size_t size
    uint64_t tag

cdef inline uint64_t _rand(uint64_t* state) noexcept nogil:
    # xorshift64*: plenty for picking sizes, and reproducible from a seed.
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * <uint64_t>0x2545F4914F6CDD1DULL


cdef inline void _write_tag(uintptr_t x, size_t size, uint64_t tag) noexcept nogil:
    if size >= 8:
        memcpy(<void*>x, &tag, 8)
        if size >= 16:
            memcpy(<void*>(x + size - 8), &tag, 8)
    else:
        memcpy(<void*>x, &tag, size)


cdef inline bint _tag_ok(liveobj_t* o, uint64_t* found) noexcept nogil:
    cdef uint64_t head = 0, tail = 0
    if o.size >= 8:
        memcpy(&head, <void*>o.addr, 8)
        if o.size >= 16:
            memcpy(&tail, <void*>(o.addr + o.size - 8), 8)
            if tail != o.tag:
                found[0] = tail
                return False
        found[0] = head
        return head == o.tag
    memcpy(&head, <void*>o.addr, o.size)
    found[0] = head
    return head == (o.tag & ((<uint64_t>1 << (8 * o.size)) - 1))
