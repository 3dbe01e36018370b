# cython: language_level=3
# mspanset: the span set's operations (runtime/mspanset.go: push, pop, reset);
# see mspanset.pxd.
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from goruntime.sys cimport (load64, xadd64, xadd32, cas64, loadp, storep, cpu_relax, store64,
    alloc_aligned)
from goruntime.lock cimport mutex_init, mutex_destroy, lock, unlock, SITE_SPINE

cdef struct retired:
    retired* next
    spansetblock_t** spine

ctypedef retired retired_t

cdef uint64_t TAIL_MASK = 0xFFFFFFFFU


cdef void spanset_init(spanset_t* b) noexcept nogil:
    memset(b, 0, sizeof(spanset_t))
    mutex_init(&b.spineLock)


cdef void spanset_destroy(spanset_t* b) noexcept nogil:
    spanset_reset(b)
    free(b.spine)
    b.spine = NULL
    mutex_destroy(&b.spineLock)


cdef spansetblock_t* _block(spanset_t* b, uint64_t top) noexcept nogil:
    """The block for spine slot top, adding it (and growing the spine) if needed."""
    cdef spansetblock_t** spine
    cdef spansetblock_t** bigger
    cdef spansetblock_t* block
    cdef retired_t* old
    cdef uint64_t n
    if top < load64(&b.spineLen):
        spine = <spansetblock_t**>loadp(<void**>&b.spine)
        return <spansetblock_t*>loadp(<void**>&spine[top])
    lock(&b.spineLock, SITE_SPINE)
    n = b.spineLen
    while n <= top:
        if n == b.spineCap:
            b.spineCap = b.spineCap * 2 if b.spineCap else SPANSET_INIT_SPINE_CAP
            bigger = <spansetblock_t**>calloc(b.spineCap, sizeof(spansetblock_t*))
            if bigger == NULL:
                unlock(&b.spineLock)
                return NULL
            if b.spine != NULL:
                memcpy(bigger, b.spine, n * sizeof(spansetblock_t*))
                # Readers may still hold the old spine: retire it, free it at reset.
                old = <retired_t*>calloc(1, sizeof(retired_t))
                if old == NULL:
                    free(bigger)
                    unlock(&b.spineLock)
                    return NULL
                old.spine = b.spine
                old.next = <retired_t*>b.retired
                b.retired = old
            storep(<void**>&b.spine, bigger)
        block = <spansetblock_t*>alloc_aligned(sizeof(spansetblock_t))
        if block == NULL:
            unlock(&b.spineLock)
            return NULL
        storep(<void**>&b.spine[n], block)
        n += 1
        store64(&b.spineLen, n)
    spine = b.spine
    unlock(&b.spineLock)
    return spine[top]


cdef int spanset_push(spanset_t* b, mspan_t* s) noexcept nogil:
    cdef uint64_t cursor = (xadd64(&b.index, 1) - 1) & TAIL_MASK
    cdef spansetblock_t* block = _block(b, cursor // SPANSET_BLOCK_ENTRIES)
    if block == NULL:
        return -1
    storep(<void**>&block.spans[cursor % SPANSET_BLOCK_ENTRIES], s)
    return 0


cdef mspan_t* spanset_pop(spanset_t* b) noexcept nogil:
    cdef uint64_t idx, head, tail
    cdef spansetblock_t** spine
    cdef spansetblock_t* block
    cdef mspan_t* s
    while True:
        idx = load64(&b.index)
        head = idx >> 32
        tail = idx & TAIL_MASK
        if head >= tail:
            return NULL
        # A pusher claims its slot before adding the slot's block: until the
        # block is on the spine, the set is empty as far as pop is concerned.
        if load64(&b.spineLen) <= head // SPANSET_BLOCK_ENTRIES:
            return NULL
        if cas64(&b.index, idx, ((head + 1) << 32) | tail):
            break
    spine = <spansetblock_t**>loadp(<void**>&b.spine)
    block = <spansetblock_t*>loadp(<void**>&spine[head // SPANSET_BLOCK_ENTRIES])
    # The pusher claimed the slot before storing into it: wait for the store.
    s = <mspan_t*>loadp(<void**>&block.spans[head % SPANSET_BLOCK_ENTRIES])
    while s == NULL:
        cpu_relax()
        s = <mspan_t*>loadp(<void**>&block.spans[head % SPANSET_BLOCK_ENTRIES])
    storep(<void**>&block.spans[head % SPANSET_BLOCK_ENTRIES], NULL)
    if xadd32(&block.popped, 1) == SPANSET_BLOCK_ENTRIES:
        # Every slot was pushed and popped: nobody can reach this block again. Its
        # slot is cleared in the current spine, under the spine lock: a push growing
        # the spine copies the slots under that lock, so clearing the spine loaded
        # above could leave the block in a newer spine, and reset would free it twice.
        lock(&b.spineLock, SITE_SPINE)
        storep(<void**>&b.spine[head // SPANSET_BLOCK_ENTRIES], NULL)
        unlock(&b.spineLock)
        free(block)
    return s


cdef void spanset_reset(spanset_t* b) noexcept nogil:
    """Empties the set's storage; the set must be empty and quiescent (world stopped)."""
    cdef uint64_t i
    cdef retired_t* r
    for i in range(b.spineLen):
        free(b.spine[i])
        b.spine[i] = NULL
    b.spineLen = 0
    b.index = 0
    while b.retired != NULL:
        r = <retired_t*>b.retired
        b.retired = r.next
        free(r.spine)
        free(r)


cdef uint64_t spanset_len(spanset_t* b) noexcept nogil:
    cdef uint64_t idx = load64(&b.index)
    return (idx & TAIL_MASK) - (idx >> 32)


cdef mspan_t* spanset_at(spanset_t* b, uint64_t i) noexcept nogil:
    """The i-th span still in the set (0 <= i < spanset_len); world stopped."""
    cdef uint64_t pos = (b.index >> 32) + i
    return b.spine[pos // SPANSET_BLOCK_ENTRIES].spans[pos % SPANSET_BLOCK_ENTRIES]
