"""How calibration arrays take memory from the system and give it back.

Part of calpipe's bottom layer.

Huge pages. numpy advises the kernel to back arrays of 4 MB and more with transparent huge
pages. Where the kernel then compacts memory on the first touch (``/sys/kernel/mm/
transparent_hugepage/defrag`` is ``madvise``, a common default), filling a new array stalls
while page-cache pages are moved: filling a 400 MB array took 0.33-0.49 s with the advice
and 0.13-0.16 s without on a 2-core machine whose page cache held 11 GB. Every step allocates
full-detector arrays, so :func:`without_huge_page_advice` turns the advice off while a step
runs (:meth:`calpipe.step.CalStep.run`). numpy offers no public switch at run time (its
``NUMPY_MADVISE_HUGEPAGE`` variable is read when numpy is imported): the private one is used
here only, and ``tests/test_memory.py`` fails when numpy drops it.

Reusing freed arrays. glibc's malloc serves every allocation of 32 MB or more (a
full-detector array) with a memory map of its own and unmaps it when the array is freed: the
next array's pages are taken from the system again, each faulted in and zeroed by the kernel
on its first touch. A calibration makes and frees dozens of such arrays.
:func:`arrays_from_the_heap` has malloc serve them from the heap and keep what is freed for
the next one while a run lasts (:meth:`calpipe.step.CalStep.run`); on a 2-core virtual machine
a full Roman detector's pipeline took 2.0 s instead of 2.6 s, its peak memory 7 % higher. The
heap's free memory is handed back when the run ends. glibc's ``mallopt`` sets this at run
time; elsewhere nothing changes.

Releasing rows. The ramp cube is the largest array of a calibration (400 MB
for a full detector with 6 resultants, with 100 MB of group DQ beside it), and the ramp fit
is its last reader: once a block of rows is fitted, those rows are never read again. A cube
made by :func:`releasable` lives on an anonymous private memory map of its own, so that
:func:`release_rows` can return the pages of fitted rows to the system while the fit's
outputs fill up: the fit's peak is then about the larger of the two, not their sum.
Released rows read as zeros. Arrays made otherwise are never touched by
:func:`release_rows`. Elsewhere than on Linux, :func:`releasable` is ``np.zeros`` and nothing
is released.
"""

import ctypes
import mmap
import sys
import threading
from contextlib import contextmanager

import numpy as np

try:
    from numpy._core.multiarray import _set_madvise_hugepage
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _set_madvise_hugepage

RELEASES = sys.platform.startswith("linux")
"""Whether this system gives memory back (Linux: a released page of a private anonymous map
is freed at once and reads as zeros)."""


@contextmanager
def without_huge_page_advice():
    """numpy's huge-page advice off inside the block, back as it was after."""
    previous = _set_madvise_hugepage(False)
    try:
        yield
    finally:
        _set_madvise_hugepage(previous)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None  # not glibc
    return libc


# glibc's mallopt parameters and their defaults
M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD = -1, 128 * 1024
M_MMAP_MAX, DEFAULT_MMAP_MAX = -4, 65536
_heap_users = [0]  # runs inside arrays_from_the_heap (a batch worker runs tasks on threads)
_heap_lock = threading.Lock()


@contextmanager
def arrays_from_the_heap(give_back=True):
    """Inside the block (and blocks nested in it) malloc serves large arrays from the heap and
    keeps the memory they free for the next ones; after the outermost block, what the heap
    holds free is handed back (``give_back``: a process that ends there need not)."""
    libc = _glibc()
    if libc is None:
        yield
        return
    with _heap_lock:
        if _heap_users[0] == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
        _heap_users[0] += 1
    try:
        yield
    finally:
        with _heap_lock:
            _heap_users[0] -= 1
            if _heap_users[0] == 0:  # glibc's defaults again
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                if give_back:
                    libc.malloc_trim(0)


def return_freed_memory():
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere
    nothing): memory freed by threads stays in their malloc arenas otherwise."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def releasable(shape, dtype):
    """A zero-filled C-ordered array on a private anonymous memory map of its own.

    Its pages are taken from the system as they are first written, as for ``np.zeros``.
    """
    if not RELEASES:
        return np.zeros(shape, dtype)
    dtype = np.dtype(dtype)
    nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


def _mapping(array):
    """The memory map under ``array`` (numpy holds it through a memoryview), or None."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    base = base.obj if isinstance(base, memoryview) else base
    return base if isinstance(base, mmap.mmap) else None


def release_rows(array, start, stop):
    """Give back the pages of rows ``start:stop`` (second-to-last axis) of every plane of a
    :func:`releasable` array, which then read as zeros. A page shared with a row outside the
    range is kept. Returns the number of bytes released (0 for any other array)."""
    buffer = _mapping(array)
    if buffer is None or not array.flags.c_contiguous or array.ndim < 2 or start >= stop:
        return 0
    page = mmap.PAGESIZE
    row_bytes = array.shape[-1] * array.itemsize
    plane_bytes = array.shape[-2] * row_bytes
    origin = array.__array_interface__["data"][0] - np.frombuffer(buffer, np.uint8).ctypes.data
    released = 0
    for plane in range(int(np.prod(array.shape[:-2]))):
        first = origin + plane * plane_bytes + start * row_bytes
        last = origin + plane * plane_bytes + stop * row_bytes
        first, last = -(-first // page) * page, last // page * page
        if last > first:
            buffer.madvise(mmap.MADV_DONTNEED, first, last - first)
            released += last - first
    return released
