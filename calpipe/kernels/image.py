"""Kernels on count-rate images: dark-current subtraction and flat fielding."""

import numpy as np

from calpipe import dqflags

from .threads import on_row_blocks


def dark_scale(reference_temperature, exposure_temperature, factor, interval):
    """Dark-current scale from the reference's temperature to the exposure's.

    Dark current grows by ``factor`` for every ``interval`` kelvin:
    ``factor ** ((exposure_temperature - reference_temperature) / interval)``.
    """
    if interval <= 0:
        raise ValueError(f"temperature interval must be positive, got {interval}")
    if factor <= 0:
        raise ValueError(f"dark scaling factor must be positive, got {factor}")
    return float(factor ** ((exposure_temperature - reference_temperature) / interval))


def _check_shapes(reference, **arrays):
    for name, array in arrays.items():
        if array is not None and array.shape != reference.shape:
            raise ValueError(f"{name} shape {array.shape} does not match data {reference.shape}")


def subtract_dark(data, dq, dark_rate, dark_dq=None, scale=1.0):
    """Subtract ``scale * dark_rate`` (DN/s) from a rate image, in place.

    ``dark_dq`` is propagated into ``dq``; where the dark is not finite nothing is
    subtracted and the pixel gets UNRELIABLE_DARK.
    """
    _check_shapes(data, dq=dq, dark_rate=dark_rate, dark_dq=dark_dq)
    if dark_dq is not None:
        dq |= dark_dq.astype(dq.dtype, copy=False)
    good = np.isfinite(dark_rate)
    dq[~good] |= dq.dtype.type(dqflags.UNRELIABLE_DARK)
    np.subtract(data, np.float32(scale) * dark_rate, out=data, where=good, casting="same_kind")


def apply_flat(data, var_poisson, var_rnoise, err, dq, flat, flat_err=None, flat_dq=None):
    """Divide by the flat field, in place, and return the flat-field variance.

    ``data /= flat``; ``var_poisson`` and ``var_rnoise`` are divided by ``flat**2``;
    the returned ``var_flat = data**2 * (flat_err / flat)**2`` (data already divided);
    ``err = sqrt(var_poisson + var_rnoise + var_flat)``. Where the flat is NaN or <= 0
    the pixel gets NO_FLAT_FIELD and is left uncorrected (var_flat 0). ``flat_dq`` is
    propagated into ``dq``.

    The image is done a block of rows at a time on every thread: numpy releases the GIL, and
    the temporaries stay a block's size rather than the image's.
    """
    _check_shapes(
        data, var_poisson=var_poisson, var_rnoise=var_rnoise, err=err, dq=dq, flat=flat,
        flat_err=flat_err, flat_dq=flat_dq,
    )
    var_flat = np.zeros(data.shape, dtype=np.float32)
    arrays = (data, var_poisson, var_rnoise, err, dq, flat, flat_err, flat_dq, var_flat)
    on_row_blocks(lambda rows: _flat_block(*(None if a is None else a[rows] for a in arrays)),
                  data.shape[0], FLAT_BLOCK_ROWS)
    return var_flat


FLAT_BLOCK_ROWS = 128


def _flat_block(data, var_poisson, var_rnoise, err, dq, flat, flat_err, flat_dq, var_flat):
    if flat_dq is not None:
        dq |= flat_dq.astype(dq.dtype, copy=False)
    good = np.isfinite(flat) & (flat > 0)
    dq[~good] |= dq.dtype.type(dqflags.NO_FLAT_FIELD)
    safe = np.where(good, flat, 1).astype(np.float32)
    np.divide(data, safe, out=data, casting="same_kind")
    square = safe * safe
    np.divide(var_poisson, square, out=var_poisson, casting="same_kind")
    np.divide(var_rnoise, square, out=var_rnoise, casting="same_kind")
    if flat_err is not None:
        relative = np.where(good & np.isfinite(flat_err), flat_err / safe, 0).astype(np.float32)
        np.square(data * relative, out=var_flat, casting="same_kind")
        var_flat[~np.isfinite(var_flat)] = 0
    err[...] = np.sqrt(var_poisson + var_rnoise + var_flat)
