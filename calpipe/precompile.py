"""Compile the exposure pipeline's kernels into Numba's on-disk cache before a run
(``calpipe compile``), the independent ones in parallel processes.

A first run compiles each kernel when a step first calls it, one after the other (the ramp
fit in a background process, :mod:`calpipe.compile_notice`). Compiling ahead spreads the
work over every core, and a container image, a cluster's shared installation or a batch
of many workers then starts warm: each worker would otherwise compile the same kernels.

Each job compiles its kernels as the steps call them, through the kernels' own functions on
a few pixels, so that the cache holds the very specialisations a run loads
(``benchmarks/kernel_compile.py`` checks that a pipeline run after ``calpipe compile``
compiles nothing). ``python -m calpipe.precompile JOB...`` runs jobs in this process.
Read patterns of more than 32 or 64 resultants compile variants of the ``optimal`` fit of
their own when first fitted (``docs/ramp_fitting.md``).
"""

import functools
import subprocess
import sys
import time

import numpy as np

from calpipe.errors import CalpipeError

PATTERN = [[1], [2, 3], [4]]
"""The read pattern of the row kernels' jobs (the ramp fits need at least 4 resultants)."""


def _ramp_fit(algorithm):
    """A tiny ramp fitted as the ramp_fit step passes it: a view of a float32 cube's inner
    pixels (six uneven resultants, so that ``"likely"`` is not replaced by ``"optimal"``)."""
    from calpipe.kernels.ramp import fit_ramps, resultant_times

    pattern = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10, 11, 12, 13, 14], [15, 16]]
    tbar = resultant_times(pattern, 1.0)[0]
    cube = (np.ones((1, 12, 12), np.float32) * tbar[:, None, None].astype(np.float32))[:, 2:-2, 2:-2]
    ones = np.ones(cube.shape[1:], np.float32)
    fit_ramps(cube, np.zeros(cube.shape, np.uint8), ones, ones, pattern, 1.0, algorithm=algorithm)


def _saturation():
    from calpipe.kernels.saturation import flag_saturation

    cube = np.ones((3, 8, 8), np.float32)
    flag_saturation(cube, np.full((8, 8), 10.0, np.float32), PATTERN, np.zeros(cube.shape, np.uint8),
                    np.zeros((8, 8), np.uint32), np.zeros((8, 8), np.uint32))


def _linearity():
    from calpipe.kernels.linearity import correct_integral_nonlinearity, correct_linearity

    cube = np.ones((3, 8, 8), np.float32)
    groupdq = np.zeros(cube.shape, np.uint8)
    correct_linearity(cube, groupdq, np.zeros((3, 8, 8), np.float32), np.zeros((8, 8), np.uint32), PATTERN,
                      np.zeros((8, 8), np.uint32))
    correct_integral_nonlinearity(cube, groupdq, PATTERN, np.arange(4.0), np.zeros((2, 4)))


def _refpix():
    from calpipe.kernels.refpix import refpix_offsets

    refpix_offsets(np.ones((3, 16, 64), np.float32), border=4, nchannels=32)


def _catalog():
    from calpipe.kernels.catalog import background

    background(np.ones((16, 16), np.float32), np.zeros((16, 16), bool), box_size=8)


JOBS = {
    # name: (compile CPU seconds on the 2-core development machine, for scheduling; job)
    "likely": (11.0, functools.partial(_ramp_fit, "likely")),
    "optimal": (11.5, functools.partial(_ramp_fit, "optimal")),
    "linearity": (2.5, _linearity),
    "refpix": (2.3, _refpix),
    "catalog": (1.0, _catalog),
    "saturation": (0.4, _saturation),
}


def plan(names, processes):
    """Share the jobs ``names`` among at most ``processes`` processes, longest first, each to
    the least loaded one; returns the non-empty groups of names."""
    unknown = sorted(set(names) - set(JOBS))
    if unknown:
        raise ValueError(f"no kernels named {', '.join(unknown)} (known: {', '.join(JOBS)})")
    processes = max(1, min(int(processes), len(names)))
    groups = [[] for _ in range(processes)]
    loads = [0.0] * processes
    for name in sorted(set(names), key=lambda name: -JOBS[name][0]):
        least = loads.index(min(loads))
        groups[least].append(name)
        loads[least] += JOBS[name][0]
    return [group for group in groups if group]


def precompile(groups):
    """Compile the kernels of each group of jobs (:func:`plan`'s) in a process of its own, all
    at once, into the on-disk cache; returns the wall seconds. Raises CalpipeError, with the
    failing process's last line, if one fails."""
    start = time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-m", __name__, *group], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for group in groups]
    failures = []
    try:
        for group, child in zip(groups, children):
            _, err = child.communicate()
            if child.returncode:
                last = (err.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
                failures.append(f"{', '.join(group)}: {last}")
    finally:  # interrupted: no compiler left running (what it had cached stays valid)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    if failures:
        raise CalpipeError(f"compiling kernels failed ({'; '.join(failures)})")
    return time.perf_counter() - start


if __name__ == "__main__":  # python -m calpipe.precompile JOB...: compile in this process
    for name in sys.argv[1:]:
        JOBS[name][1]()
