"""The first-read transient of detector WFI18: an offset that fades along the first frame.

Units: counts in DN, times in seconds. In WFI18's first read every pixel carries an extra
signal that depends only on when in the frame the pixel is read, modelled as the sum of two
exponentials ``a exp(-t / tau_a) + b exp(-t / tau_b)`` of the row's read time ``t``. It is
measured on the first resultant against the ramp of the next two: the first resultant is
predicted by extrapolating the count rate of resultants 2 and 3 back to its mean read time,
and the residual (measured - predicted) of the faint pixels of each row (a pixel is faint when
its rise between resultants 4 and 5, a pair the prediction does not use, is below the row's
median) is averaged with 3-sigma clipping. The two exponentials are fitted to those row means
and their value at each pixel's read time subtracted from the first resultant.

Without five resultants, or when the fit fails, the rows read first (:data:`MASK_FRACTION` of
the frame time) are flagged in the first resultant instead.
"""

import warnings

import numpy as np
from astropy.stats import sigma_clipped_stats
from scipy import optimize

MIN_RESULTANTS = 5
MASK_FRACTION = 1000 / 4096
"""Share of the frame time, from its start, whose rows are flagged when the fit cannot be made."""


def double_exponential(t, a, b, tau_a, tau_b):
    """``a exp(-t / tau_a) + b exp(-t / tau_b)``."""
    return a * np.exp(-t / tau_a) + b * np.exp(-t / tau_b)


def residual_rows(resultants, usable, mean_times):
    """Per row: the clipped mean residual of the first resultant's faint pixels (DN).

    ``resultants`` (>= 5, ny, nx) DN; ``usable`` bool (ny, nx), pixels whose first five
    resultants may be used; ``mean_times`` (nresultants,) seconds.
    """
    r = resultants
    dt = np.diff(mean_times[:3])
    rate = (r[2] - r[1]) / dt[1]
    residual = r[0] - (r[1] - rate * dt[0])
    rise = np.where(usable, r[4] - r[3], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bright = ~(rise <= np.nanmedian(rise, axis=1)[:, None])
        mean, _, _ = sigma_clipped_stats(residual, mask=bright | ~usable, sigma=3.0, axis=1)
    return np.ma.filled(np.ma.asarray(mean, dtype=np.float64), np.nan)


def fit_transient(row_times, rows):
    """Fit :func:`double_exponential` to the row means ``rows`` at ``row_times``; the four
    parameters ``(a, b, tau_a, tau_b)``, or None when the fit fails."""
    good = np.isfinite(rows)
    if good.sum() < 8:
        return None
    t, y = row_times[good], rows[good]
    start = [1.1 * y[0], -0.1 * y[0], np.quantile(t, 300 / 4088), np.quantile(t, 1000 / 4088)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(double_exponential, t, y, p0=start, maxfev=5000)
    except (ValueError, RuntimeError):
        return None
    if not np.all(np.isfinite(params)) or params[2] <= 0 or params[3] <= 0:
        return None
    return tuple(float(p) for p in params)


def rows_to_flag(row_times, frame_time, fraction=MASK_FRACTION):
    """Bool per row: read within the first ``fraction`` of the frame."""
    return (row_times - row_times.min()) < fraction * frame_time


def correct_transient(resultants, usable, mean_times, pixel_times):
    """Fit and subtract the transient from the first resultant, in place.

    Parameters
    ----------
    resultants : float32 (nresultants >= 5, ny, nx), DN (science pixels).
    usable : bool (ny, nx), pixels whose first five resultants are unflagged.
    mean_times : float (nresultants,), mean read time of each resultant, seconds.
    pixel_times : float (ny, nx), each pixel's read time within the frame, seconds.

    Returns the fitted ``(a, b, tau_a, tau_b)``, or None (data unchanged) when the fit fails.
    """
    if resultants.shape[0] < MIN_RESULTANTS:
        raise ValueError(f"the transient fit needs {MIN_RESULTANTS} resultants, got {resultants.shape[0]}")
    row_times = pixel_times.mean(axis=1)
    params = fit_transient(row_times, residual_rows(resultants, usable, mean_times))
    if params is not None:
        resultants[0] -= double_exponential(pixel_times, *params).astype(np.float32)
    return params
