"""Saturation flagging of up-the-ramp resultants.

A pixel whose measured counts reach its full well stops responding: that resultant and
every later one carry no information about the flux. Resultants are means of reads, so a
resultant whose mean stays below the threshold may still average reads taken at or after
saturation: the one just before the first resultant that reaches the threshold, or the
last resultant when none reaches it. That resultant is tested against the lowest mean it
can have if its last read reached the threshold (see :func:`flag_saturation`).
"""

import numpy as np
from numba import njit

from calpipe import dqflags
from calpipe.kernels.threads import on_threads, read_only

_SAT = np.uint8(dqflags.SATURATED | dqflags.DO_NOT_USE)
_FLOOR = np.uint8(dqflags.AD_FLOOR | dqflags.DO_NOT_USE)
_NO_SAT_CHECK = np.uint32(dqflags.NO_SAT_CHECK)


def read_index_moments(read_pattern):
    """Per resultant: mean read index and last read index (float64 arrays)."""
    mean = np.array([np.mean(reads) for reads in read_pattern], dtype=np.float64)
    last = np.array([reads[-1] for reads in read_pattern], dtype=np.float64)
    return mean, last


@njit(cache=True)
def _holds_saturated_read(resultants, i, y, x, thr, mean_read, last_read):
    """True when resultant ``i``'s mean is at least the lowest mean it can have if its last
    read reached ``thr``.

    Below saturation the measured counts rise with the read index and bend down (the
    response is concave); from saturation on they stay at or over ``thr``. So the reads of
    such a ramp lie on or above the straight line from an earlier point of the ramp to
    ``thr`` at the last read, and so does their mean. The earlier point is the resultant
    before (its mean read index and value, which by concavity lies on or below the ramp;
    the nearest one gives the tightest line), or the reset (read index 0, value 0) when
    ``i`` is the first resultant; the bias level, being in every read, then only raises
    the mean and errs on the side of flagging.
    """
    value = resultants[i, y, x]
    k_mean = mean_read[i]
    k_last = last_read[i]
    if k_mean == k_last:
        return value >= thr  # one read
    if i == 0:
        return value >= thr * k_mean / k_last
    start = resultants[i - 1, y, x]
    fraction = (k_mean - mean_read[i - 1]) / (k_last - mean_read[i - 1])
    return value >= start + (thr - start) * fraction


@njit(nogil=True, cache=True)
def _flag(worker, nworkers, resultants, threshold, mean_read, last_read, groupdq, pixeldq, threshold_dq):
    nres, ny, nx = resultants.shape
    for y in range(worker, ny, nworkers):
        for x in range(nx):
            thr = threshold[y, x]
            refdq = threshold_dq[y, x]
            pixeldq[y, x] |= refdq
            check = True
            if np.isnan(thr) or (refdq & _NO_SAT_CHECK):
                pixeldq[y, x] |= _NO_SAT_CHECK
                check = False
            first = nres
            for i in range(nres):
                value = resultants[i, y, x]
                if value <= 0:
                    groupdq[i, y, x] |= _FLOOR
                if check and first == nres and value >= thr:
                    first = i
            if not check:
                continue
            for i in range(first, nres):
                groupdq[i, y, x] |= _SAT
            # the resultant before the first saturated one (the last one if none is) may
            # average reads taken at or after saturation
            if first > 0 and _holds_saturated_read(resultants, first - 1, y, x, thr, mean_read, last_read):
                groupdq[first - 1, y, x] |= _SAT


def flag_saturation(resultants, threshold, read_pattern, groupdq, pixeldq, threshold_dq=None):
    """Flag saturated and floored resultants, in place.

    Parameters
    ----------
    resultants : float32 (nresultants, ny, nx), raw DN (bias included).
    threshold : float (ny, nx), saturation level in raw DN; NaN never saturates.
    read_pattern : list of lists of read indices, one per resultant.
    groupdq : uint8 (nresultants, ny, nx), updated in place.
    pixeldq : uint32 (ny, nx), updated in place: the reference's ``threshold_dq`` is
        propagated, and NO_SAT_CHECK is set where the threshold is NaN.
    threshold_dq : uint32 (ny, nx) or None; pixels with NO_SAT_CHECK are never saturated.

    Once a resultant reaches the threshold, it and all later ones get
    SATURATED|DO_NOT_USE. The resultant just before the first saturated one (the last
    resultant when none reaches the threshold) gets them too when its mean is at least the
    lowest mean it can have if its last read reached the threshold: with ``kbar`` the mean
    and ``klast`` the last read index of a resultant,
    ``R_i >= R_{i-1} + (thr - R_{i-1}) (kbar_i - kbar_{i-1}) / (klast_i - kbar_{i-1})``, and
    for the first resultant ``R_0 >= thr kbar_0 / klast_0``. A single-read resultant is
    thus only flagged at the threshold. Resultants <= 0 get AD_FLOOR|DO_NOT_USE.
    """
    if resultants.ndim != 3:
        raise ValueError(f"resultants must be 3-D (nresultants, ny, nx), got shape {resultants.shape}")
    if len(read_pattern) != resultants.shape[0]:
        raise ValueError(
            f"read_pattern has {len(read_pattern)} resultants, data has {resultants.shape[0]}"
        )
    if groupdq.shape != resultants.shape or pixeldq.shape != resultants.shape[1:]:
        raise ValueError("groupdq must match resultants and pixeldq one resultant")
    if threshold.shape != resultants.shape[1:]:
        raise ValueError(f"threshold shape {threshold.shape} does not match {resultants.shape[1:]}")
    if threshold_dq is None:
        threshold_dq = np.zeros(threshold.shape, dtype=np.uint32)
    on_threads(
        _flag,
        resultants.shape[1],
        resultants,
        read_only(threshold),
        *read_index_moments(read_pattern),
        groupdq,
        pixeldq,
        read_only(threshold_dq.astype(np.uint32, copy=False)),
    )


def fully_saturated(groupdq, pixeldq=None):
    """True when every resultant of every pixel carries SATURATED.

    Pixels whose ``pixeldq`` has NO_SAT_CHECK cannot saturate and do not count, unless no
    pixel can.
    """
    unchecked = None if pixeldq is None else (pixeldq & dqflags.NO_SAT_CHECK) > 0
    if unchecked is not None and unchecked.all():
        return False
    for plane in groupdq:
        saturated = (plane & dqflags.SATURATED) > 0
        if unchecked is not None:
            saturated |= unchecked
        if not saturated.all():
            return False
    return True


def saturated_pixel_dq(pixeldq, first_groupdq):
    """Pixel DQ of a fully saturated exposure: pixel flags, first-resultant flags, SATURATED, DO_NOT_USE."""
    flags = np.uint32(dqflags.SATURATED | dqflags.DO_NOT_USE)
    return (pixeldq | first_groupdq | flags).astype(np.uint32)
