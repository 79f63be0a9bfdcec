"""linearity: references made for raw counts get the bias that refpix removed put back."""

import numpy as np
from support.tiny_data import exposure_meta, ref_meta

from calpipe import datamodels as dm
from calpipe import dqflags
from calpipe.steps import LinearityStep, RefPixStep

A = 2e-6  # the polynomial adds A r^2 to raw counts r
N, NRES = 64, 4


def _ramp(tmp_path, input_counts):
    """Noiseless raw counts on a bias of about 12,000 DN with per-resultant drifts, and a
    linearity reference P(r) = r + A r^2 for raw counts (or, as calpipe's own, for m)."""
    rng = np.random.default_rng(4)
    meta = exposure_meta(nresultants=NRES, read_pattern=[[1], [2], [3], [4]])
    signal = np.linspace(0, 30000, NRES)[:, None, None] * np.ones((1, N, N))
    channel_bias = 12000 + rng.normal(0, 20, (NRES, 4))
    bias = np.repeat(channel_bias, N // 4, axis=1)[:, None, :]
    raw = (signal + bias).astype(np.float32)
    raw[:, :4] = raw[:, -4:] = bias  # the border sees no light
    raw[:, :, :4] = raw[:, :, -4:] = bias[:, :, :4]
    ramp = dm.RampModel(meta=meta, data=raw, groupdq=np.zeros(raw.shape, np.uint8),
                        pixeldq=np.zeros((N, N), np.uint32))
    coeffs = np.zeros((3, N, N), np.float32)
    coeffs[1], coeffs[2] = 1.0, A
    lin_meta = dict(ref_meta("linearity"), input_counts=input_counts)
    ref = dm.LinearityRefModel(meta=lin_meta, coeffs=coeffs, dq=np.zeros((N, N), np.uint32))
    return ramp, ref.save(tmp_path / f"lin_{input_counts}.asdf"), signal + bias


def test_raw_count_polynomial_applies_to_the_counts_with_the_bias_in(tmp_path):
    ramp, lin, raw = _ramp(tmp_path, "raw")
    refpixed = RefPixStep.call(ramp, nchannels=4)
    removed = raw - refpixed.data  # what refpix took: the bias (channel offsets and rows)
    out = LinearityStep.call(refpixed, override_linearity=lin)
    expected = raw + A * raw**2 - removed
    sci = np.s_[:, 4:-4, 4:-4]
    np.testing.assert_allclose(out.data[sci], expected[sci], rtol=2e-6, atol=0.05)
    assert not (out.pixeldq & dqflags.NO_LIN_CORR).any()
    # Without the bias the same polynomial changes the slope by percent: what it prevents
    m = raw[sci] - removed[sci]
    wrong = m + A * m**2
    slope_error = (wrong[-1] - wrong[0]) / (expected[sci][-1] - expected[sci][0]) - 1
    assert np.all(np.abs(slope_error) > 0.02)


def test_calpipe_polynomials_apply_to_bias_removed_counts(tmp_path):
    ramp, lin, _ = _ramp(tmp_path, "bias_removed")
    refpixed = RefPixStep.call(ramp, nchannels=4)
    m = refpixed.data.astype(np.float64)
    out = LinearityStep.call(refpixed, override_linearity=lin)
    np.testing.assert_allclose(out.data, m + A * m**2, rtol=1e-6, atol=0.05)
