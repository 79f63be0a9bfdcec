"""The chunk driver shared by the ramp fits: its median, its compile-time dispatch, and
that the fits' kernels are cached on disk."""

import numpy as np
import pytest

from calpipe.kernels import ramp_driver, ramp_likely, ramp_optimal
from calpipe.kernels.ramp import fit_ramps

PATTERN = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10, 11, 12, 13, 14], [15, 16]]


@pytest.mark.parametrize("k", range(1, 14))
def test_median_is_numpys_and_sorts_in_place(k):
    rng = np.random.default_rng(k)
    for values in (rng.normal(size=k), rng.integers(-3, 3, k).astype(float)):  # ties too
        buf = np.concatenate([values, rng.normal(size=3)])  # beyond k: left alone
        tail = buf[k:].copy()
        assert ramp_driver.median(buf, k) == np.median(values)
        assert np.array_equal(buf[:k], np.sort(values))
        assert np.array_equal(buf[k:], tail)


def _tiny_ramp(seed=0):
    rng = np.random.default_rng(seed)
    n, ny, nx = len(PATTERN), 3, 300  # more than one chunk per row
    rate = rng.uniform(0.5, 50.0, (ny, nx))
    tbar = np.array([3.04 * np.mean(reads) for reads in PATTERN])
    res = (rate * tbar[:, None, None] + rng.normal(0.0, 3.0, (n, ny, nx))).astype(np.float32)
    res[3:, 1, 7] += 500.0  # a jump: the per-pixel path
    gdq = np.zeros((n, ny, nx), np.uint8)
    gdq[4:, 2, 11] = 2  # saturated: the per-pixel path
    return res, gdq, np.full((ny, nx), 3.0, np.float32), np.full((ny, nx), 2.0, np.float32)


@pytest.mark.parametrize("algorithm", ["optimal", "likely"])
def test_each_fit_is_cached_on_disk(algorithm):
    # The dispatch on the Constants type must leave the kernels cacheable: after a fit,
    # every compiled signature of the fit's entry point loads back from the disk cache.
    fit = fit_ramps(*_tiny_ramp(), PATTERN, 3.04, algorithm=algorithm)
    assert fit.dq[1, 7] & ramp_driver._JUMP_DET
    kernel = {"optimal": ramp_optimal, "likely": ramp_likely}[algorithm].fit_block
    assert kernel.signatures
    for signature in kernel.signatures:
        assert kernel._cache.load_overload(signature, kernel.targetctx) is not None


def test_constants_types_are_distinct():
    # The driver's overloads apply by Numba type: each fit's constants type is its own,
    # although both are tuples of arrays and scalars.
    import numba

    tbar = np.array([3.04 * np.mean(reads) for reads in PATTERN])
    nreads = np.array([len(reads) for reads in PATTERN], np.int32)
    optimal = ramp_optimal.Constants(*ramp_optimal.prepare(tbar, tbar, nreads), True, 5.5)
    likely = ramp_likely.Constants(*ramp_likely.prepare(tbar, tbar, nreads), True, 20.25, 30.0)
    assert ramp_driver.is_constants(numba.typeof(optimal), ramp_optimal.Constants)
    assert ramp_driver.is_constants(numba.typeof(likely), ramp_likely.Constants)
    assert not ramp_driver.is_constants(numba.typeof(likely), ramp_optimal.Constants)
    assert not ramp_driver.is_constants(numba.typeof(optimal), ramp_likely.Constants)
    assert not ramp_driver.is_constants(numba.typeof(tuple(likely)), ramp_likely.Constants)


def test_no_refcount_options_compile_without_reference_counting():
    # NO_REFCOUNT relies on Numba's private ``_nrt`` option: this fails when it stops
    # taking the reference counting out (the per-pixel fits would be several times slower).
    from numba import njit

    def total(a, b):
        s = 0.0
        for k in range(b.shape[0]):
            view = a[k:] if b[k] > 0 else a[: k + 1]  # views made in a loop: counted
            s += view[0]
        return s

    a, b = np.arange(5.0), np.ones(4)
    counted = njit(error_model="numpy")(total)
    plain = njit(**ramp_driver.NO_REFCOUNT)(total)
    assert counted(a, b) == plain(a, b) == 6.0
    assert "NRT_" in counted.inspect_llvm(counted.signatures[0])
    assert "NRT_" not in plain.inspect_llvm(plain.signatures[0])
