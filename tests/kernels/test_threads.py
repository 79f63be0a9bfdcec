"""Sharing work over threads: serial kernels by worker, numpy code by blocks of rows."""

import threading

import numpy as np

from calpipe.kernels.threads import on_row_blocks, on_threads, thread_count


def test_every_row_block_is_done_once():
    seen = []
    lock = threading.Lock()

    def work(rows):
        with lock:
            seen.append((rows.start, rows.stop))

    on_row_blocks(work, 50, 7)
    assert sorted(seen) == [(s, s + 7) for s in range(0, 50, 7)]
    image = np.zeros((50, 3))
    on_row_blocks(lambda rows: image.__setitem__(rows, image[rows] + 1), 50, 7)
    assert (image == 1).all()  # the last block is cut at the image's edge


def test_every_worker_does_its_share():
    shares = []

    def kernel(worker, nworkers, out):
        out.append((worker, nworkers))

    on_threads(kernel, 10, shares)
    n = thread_count(10)
    assert sorted(shares) == [(w, n) for w in range(n)]
    assert thread_count(1) == 1
