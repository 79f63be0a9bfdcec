"""How much memory a batch task reserves, and how much more it gets after running out.

A reservation is in MB of the Dask worker resource ``MEMORY``: a worker advertising
``MEMORY=8000`` runs tasks whose reservations add up to at most 8000 at once.

Where an estimate comes from, in order:

1. ``model``: the resource model's upper bound (:func:`calpipe.model.reservation_mb`) when
   the training database holds a model for the exposure's family and its features lie in
   the model's training range; the source records the model's id (``model image/v3``);
2. ``history``: the size rule below scaled by the largest ratio of measured to ruled peak
   among earlier tasks (their ``meta.resources.exposure_pipeline`` peaks, kept in the
   state database);
3. ``size-rule``: the size rule alone.

The size rule counts what the exposure pipeline holds at its peak, per science pixel: the
ramp as float32 plus its uint8 group flags (5 bytes per pixel and resultant, the raw uint16
resultants freed by then) and about 40 bytes for the image, its flags, variances, the
source catalog's background and detection images; plus the interpreter with its libraries
(``BASE_MB``, a Dask worker with calpipe imported: 350-370 MB measured at 256x256). A
full 4096x4096 detector with 6 resultants comes to about 1.5 GB; the exposure pipeline
measured 1.33 GB there in one process of its own.
"""

from dataclasses import dataclass

from calpipe.errors import CalpipeError
from calpipe.model import reservation_mb

BASE_MB = 400.0
BYTES_PER_PIXEL_RESULTANT = 5.0
BYTES_PER_PIXEL = 40.0
HISTORY_SCALE_LIMITS = (0.5, 4.0)

# The ladder: each retry after running out of memory doubles the reservation, up to the
# largest worker's capacity; a task that runs out at the cap fails for good.
LADDER_FACTOR = 2.0


@dataclass(frozen=True)
class Estimate:
    mb: float
    source: str  # "model <id>", "history" or "size-rule"


def size_rule_mb(npixels, nresultants):
    """Expected peak (MB) of calibrating one exposure of ``npixels`` with ``nresultants``."""
    per_pixel = BYTES_PER_PIXEL_RESULTANT * nresultants + BYTES_PER_PIXEL
    return BASE_MB + npixels * per_pixel / 2**20


def estimate_memory_mb(path, *, npixels, nresultants, history=(), database=None):
    """The memory (MB) to reserve for calibrating one exposure, and where that figure came from.

    Parameters
    ----------
    path : path-like
        The raw exposure.
    npixels : int
        Pixels of one resultant.
    nresultants : int
        Resultants in the exposure.
    history : iterable of (npixels, nresultants, peak_mb)
        Earlier tasks' sizes and measured peaks.
    database : str, optional
        The training database holding the resource models (default: the model's own default).

    Returns
    -------
    Estimate
        ``mb`` and ``source`` (``"model <id>"``, ``"history"`` or ``"size-rule"``).
    """
    try:
        predicted = reservation_mb([path], database=database)
    except CalpipeError:
        predicted = None  # an unreadable exposure or model: the task itself reports the file
    if predicted is not None and predicted[0] > 0:
        return Estimate(float(predicted[0]), f"model {predicted[1]}")
    rule = size_rule_mb(npixels, nresultants)
    return _scaled(rule, [peak / size_rule_mb(n, r) for n, r, peak in history if peak and n and r])


def _scaled(rule, ratios):
    """The rule scaled by the largest measured-to-ruled ratio (bounded), or the rule alone."""
    if ratios:
        low, high = HISTORY_SCALE_LIMITS
        return Estimate(rule * min(max(max(ratios), low), high), "history")
    return Estimate(rule, "size-rule")


def fit_memory_mb(history=()):
    """The memory (MB) to reserve for an association's tweakreg fit.

    The fit holds the members' entries (WCS and selected sources, a few kB each) and no
    image: ``BASE_MB``, scaled like members' estimates by the largest ratio of measured
    peak to ``BASE_MB`` among earlier fits (``history``: their peaks, MB). Returns an
    :class:`Estimate` (``history`` or ``size-rule``).
    """
    return _scaled(BASE_MB, [peak / BASE_MB for peak in history if peak])


def apply_memory_mb(npixels, history=()):
    """The memory (MB) to reserve for aligning one member of ``npixels`` by its fit and writing it.

    The task holds one calibrated image: the size rule without the ramp, ``BASE_MB`` plus
    ``BYTES_PER_PIXEL`` per pixel, scaled like members' estimates by the largest ratio of
    measured to ruled peak among earlier such tasks (``history``: their ``(npixels,
    peak_mb)``). Returns an :class:`Estimate` (``history`` or ``size-rule``).
    """
    return _scaled(size_rule_mb(npixels, 0), [peak / size_rule_mb(n, 0) for n, peak in history if peak and n])


def next_reservation(current_mb, cap_mb):
    """The next rung of the ladder after running out at ``current_mb``; None past the cap."""
    if cap_mb is not None and current_mb >= cap_mb:
        return None
    bigger = current_mb * LADDER_FACTOR
    return min(bigger, cap_mb) if cap_mb is not None else bigger


__all__ = ["Estimate", "apply_memory_mb", "estimate_memory_mb", "fit_memory_mb", "next_reservation", "size_rule_mb"]
