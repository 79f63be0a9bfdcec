"""The simulated exposure and its reference set written as Roman mission files.

The physics is :func:`calpipe.simulate.simulate`'s; this module only converts its files at
the edge, through :mod:`calpipe.datamodels.roman`. Two conventions change on the way:

- the exposure is encoded as on board: the detector's bias pedestal (one value per channel)
  stands in for the reference read and is subtracted, and ``DATA_ENCODING_OFFSET`` is added;
- the linearity polynomial is rewritten for raw counts with that pedestal in, as the
  mission's linearity references are made (``P(r) = c(r - pedestal) + pedestal``).

Three readout effects that only the Roman references describe are added read by read, with
the references that remove them (:func:`readout_effects`): the dark decay after reset
(``darkdecaysignal``) and, on WFI18 only, the first-read transient, both on the
light-sensitive pixels (not the reference border), and the integral non-linearity of each
channel's converter (``integralnonlinearity``) on every pixel. The truth is the exposure
without them.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np

from .exposure import BORDER, FRAME_TIME, NCHANNELS, make_detector
from .write import SimResult, _ref_meta, simulate

DATA_ENCODING_OFFSET = 2048
INL_VALUES = 1025
"""Counts at which the integral non-linearity is tabulated (evenly from 0 to 65535)."""
INL_AMPLITUDE = (2.0, 4.0)
"""Range of the per-channel integral non-linearity amplitudes, DN."""
TRANSIENT = (60.0, -6.0, 0.2, 0.7)
"""WFI18's first-read transient: ``a`` DN, ``b`` DN, ``tau_a`` s, ``tau_b`` s."""


def decay_table():
    """The simulated dark decay of every WFI detector: amplitude (DN) and time constant (s)."""
    return {f"WFI{n:02d}": {"amplitude": 20.0 + 2.0 * n, "time_constant": 15.0 + n} for n in range(1, 19)}


def inl_table(seed):
    """Counts (uint16, increasing) and the correction per channel (float64, (NCHANNELS, n))
    that maps a read of those counts to the true one: smooth ripples of a few DN."""
    rng = np.random.default_rng([seed, 7])
    value = np.rint(np.linspace(0, 65535, INL_VALUES)).astype(np.uint16)
    amplitude = rng.uniform(*INL_AMPLITUDE, (NCHANNELS, 1))
    period = rng.uniform(6000.0, 12000.0, (NCHANNELS, 1))
    phase = rng.uniform(0, 2 * np.pi, (NCHANNELS, 1))
    return value, amplitude * np.sin(2 * np.pi * value[None, :] / period + phase)


def readout_effects(size, detector, frame_time, seed):
    """The per-read function :func:`simulate` adds the effects with (see the module docstring)."""
    from calpipe.kernels.dark_decay import pixel_read_times, read_decay
    from calpipe.kernels.wfi18_transient import double_exponential

    number = int(detector[3:])
    decay = decay_table()[detector]
    times = pixel_read_times((size, size), frame_time, number).astype(np.float32)
    value, correction = inl_table(seed)
    value = value.astype(np.float64)
    width = size // NCHANNELS
    # the decay and the transient are the light-sensitive pixels' (refpix would take them
    # for bias drifts otherwise); every pixel goes through the converter
    pixels = np.zeros((size, size), np.float32)
    pixels[BORDER:-BORDER, BORDER:-BORDER] = 1.0
    transient = pixels * double_exponential(times, *TRANSIENT) if detector == "WFI18" else None

    def add(k, read):
        read += pixels * read_decay(k, frame_time, decay["amplitude"], decay["time_constant"], times)
        if k == 1 and transient is not None:
            read += transient
        # measured = true - correction(measured): a few fixed-point steps (the ripple is gentle)
        for c in range(NCHANNELS):
            true = read[:, c * width:(c + 1) * width].copy()
            measured = true.copy()
            for _ in range(3):
                measured = true - np.interp(measured, value, correction[c]).astype(np.float32)
            read[:, c * width:(c + 1) * width] = measured

    return add


def effect_references(detector, seed):
    """calpipe models of the darkdecaysignal and integralnonlinearity references of the effects."""
    from calpipe import datamodels as dm

    value, correction = inl_table(seed)
    inl_meta = _ref_meta("integralnonlinearity", detector, "Integral non-linearity per readout channel, DN")
    return {
        "darkdecaysignal": dm.DarkDecaySignalRefModel(
            meta=_ref_meta("darkdecaysignal", "ANY", "Dark decay after reset: amplitude in DN, time constant in s"),
            decay_table=decay_table()),
        "integralnonlinearity": dm.IntegralNonlinearityRefModel(
            meta=dict(inl_meta, input_counts="raw"), value=value, correction=correction),
    }


def simulate_roman(out_dir, *, progress=None, detector_seed=0, **options):
    """Run :func:`simulate` and write its exposure and references as Roman files.

    Writes ``<root>_uncal.asdf`` (a Roman ``ScienceRawModel``), ``<root>_truth.asdf`` and the
    reference catalog as :func:`simulate` does, and ``refs/`` with Roman reference files,
    indexed in place as a calpipe store. Returns a :class:`SimResult`.
    """
    from calpipe import datamodels
    from calpipe.datamodels import roman
    from calpipe.references import RefStore

    progress = progress or (lambda message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = out_dir / "refs"
    refs.mkdir(exist_ok=True)
    size = options.get("size", 4096)
    detector_name = options.get("detector", "WFI01")
    effects = readout_effects(size, detector_name, options.get("frame_time", FRAME_TIME), detector_seed)
    with tempfile.TemporaryDirectory(prefix=".calpipe-sim-", dir=out_dir) as tmp:
        result = simulate(tmp, progress=progress, detector_seed=detector_seed, read_signal=effects, **options)
        detector = make_detector(size, seed=detector_seed)
        pedestal = detector.pedestal[detector.channel_of_column()]
        reference_read = np.broadcast_to(np.rint(pedestal).astype(np.uint16), (size, size))

        uncal = out_dir / result.uncal.name
        with datamodels.open(result.uncal) as raw:
            roman.write_raw(uncal, raw, reference_read=reference_read, data_encoding_offset=DATA_ENCODING_OFFSET)
        progress(f"wrote {uncal.name} (Roman Level 1)")

        ref_files = {}
        for reftype, path in result.ref_files.items():
            target = refs / f"roman_{path.name}"
            with datamodels.open(path) as ref:
                ref.load_arrays()
                if reftype == "linearity":
                    ref.coeffs = roman.linearity_for_raw_counts(ref.coeffs, pedestal[None, :])
                roman.write_reference(target, reftype, ref, options.get("optical_element", "F158"))
            ref_files[reftype] = target
            progress(f"wrote refs/{target.name} (Roman {reftype})")
        for reftype, ref in effect_references(detector_name, detector_seed).items():
            target = refs / f"roman_calpipe_{detector_name.lower()}_{reftype}.asdf"
            roman.write_reference(target, reftype, ref)
            ref_files[reftype] = target
            progress(f"wrote refs/{target.name} (Roman {reftype})")
        truth = out_dir / result.truth.name
        shutil.move(result.truth, truth)
        refcat = out_dir / result.refcat.name
        shutil.move(result.refcat, refcat)
    RefStore(refs).import_tree(refs)
    progress(f"indexed {len(ref_files)} references in {refs}")
    return SimResult(uncal=uncal, truth=truth, refs=refs, root=result.root, ref_files=ref_files, refcat=refcat)
