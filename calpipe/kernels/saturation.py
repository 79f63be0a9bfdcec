"""Saturation flagging of up-the-ramp resultants.

A pixel whose measured counts reach its full well stops responding: that resultant and
every later one carry no information about the flux. Resultants are means of reads, so
the resultant just before the first saturated one may already average some saturated
reads; it is caught by comparing it with the threshold diluted by the fraction of its
read time that can have been spent below saturation (mean read index / last read index).
"""

import numpy as np
from numba import njit, prange

from calpipe import dqflags

_SAT = np.uint8(dqflags.SATURATED | dqflags.DO_NOT_USE)
_FLOOR = np.uint8(dqflags.AD_FLOOR | dqflags.DO_NOT_USE)
_NO_SAT_CHECK = np.uint32(dqflags.NO_SAT_CHECK)


def dilution_factors(read_pattern):
    """Per resultant: mean read index over last read index (1 for a single-read resultant)."""
    return np.array([np.mean(reads) / reads[-1] for reads in read_pattern], dtype=np.float64)


@njit(parallel=True, cache=True)
def _flag(resultants, threshold, dilution, groupdq, pixeldq, threshold_dq):
    nres, ny, nx = resultants.shape
    for y in prange(ny):
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
            if first < nres:
                for i in range(first, nres):
                    groupdq[i, y, x] |= _SAT
                # the resultant before may average reads taken after saturation
                if first > 0 and resultants[first - 1, y, x] >= thr * dilution[first - 1]:
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
    SATURATED|DO_NOT_USE; the resultant just before is flagged too if it reaches the
    threshold times its dilution factor. Resultants <= 0 get AD_FLOOR|DO_NOT_USE.
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
    _flag(
        resultants,
        threshold,
        dilution_factors(read_pattern),
        groupdq,
        pixeldq,
        threshold_dq.astype(np.uint32, copy=False),
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
