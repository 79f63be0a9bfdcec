"""Run a serial kernel on every thread.

calpipe's row-by-row kernels (saturation, refpix, linearity, the simulator's) are serial
and release the GIL (``nogil=True``); each takes ``worker, nworkers`` as its first
arguments and does the rows ``worker, worker + nworkers, ...`` (the ramp fits: the
chunks of a block of rows). :func:`on_threads` runs the ``nworkers`` shares on as many
threads. For these kernels Numba's parallel loop (``prange``) is no faster, or barely
(the ramp fits), and costs 1.5 to three times the compile time of the serial kernel.
:func:`on_row_blocks` shares numpy code over the threads a block of rows at a time.
Reference arrays reach the kernels through :func:`read_only`.
"""

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np


def thread_count(njobs):
    """Threads for ``njobs`` jobs: ``numba.get_num_threads()`` (NUMBA_NUM_THREADS, or
    ``numba.set_num_threads``), at most one per job."""
    return max(1, min(numba.get_num_threads(), int(njobs)))


def on_row_blocks(work, nrows, rows_at_once):
    """``work(rows)`` for every slice of ``rows_at_once`` of ``nrows`` rows, on
    ``thread_count`` threads: for numpy code, which releases the GIL in its loops, and
    whose temporaries then stay a block's size."""
    blocks = [slice(start, start + rows_at_once) for start in range(0, nrows, rows_at_once)]
    with ThreadPoolExecutor(thread_count(len(blocks))) as pool:
        list(pool.map(work, blocks))


def on_threads(kernel, njobs, *args):
    """``kernel(worker, nworkers, *args)`` for every worker, on ``thread_count(njobs)``
    threads (this one included); returns when all are done, raising the first error."""
    nworkers = thread_count(njobs)
    if nworkers == 1:
        kernel(0, 1, *args)
        return
    with ThreadPoolExecutor(nworkers - 1) as pool:
        shares = [pool.submit(kernel, worker, nworkers, *args) for worker in range(1, nworkers)]
        kernel(0, nworkers, *args)
        for share in shares:
            share.result()


def read_only(array):
    """A read-only view of ``array`` (no copy). Kernels take reference data this way, so
    that one compiled kernel serves references mapped from a file, which are read-only,
    and references converted in memory (Numba compiles a kernel for each)."""
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view
