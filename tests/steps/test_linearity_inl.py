"""linearity: the integral non-linearity table applied to the raw counts it was made for, or a logged skip."""

import logging

import numpy as np
from support.tiny_data import exposure_meta, ref_meta

from calpipe import datamodels as dm
from calpipe.simulate import make_detector, make_scene, simulate_exposure
from calpipe.steps import LinearityStep, RefPixStep

N, NCHANNELS = 64, 4
PATTERN = [[1], [2], [3], [4]]
VALUE = np.linspace(0.0, 65535.0, 513)


def inl(nchannels=NCHANNELS):
    """Per channel, a ripple of a few DN over the counts."""
    channel = np.arange(1, nchannels + 1)[:, None]
    return dm.IntegralNonlinearityRefModel(
        meta=dict(ref_meta("integralnonlinearity"), input_counts="raw"), value=VALUE,
        correction=(1.0 + channel) * np.sin(VALUE / (1500.0 * channel)))


def identity(n, input_counts):
    coeffs = np.zeros((2, n, n), np.float32)
    coeffs[1] = 1.0
    return dm.LinearityRefModel(meta=dict(ref_meta("linearity"), input_counts=input_counts), coeffs=coeffs,
                                dq=np.zeros((n, n), np.uint32))


def ramp(data, pattern=PATTERN):
    meta = exposure_meta(nresultants=len(pattern), read_pattern=pattern)
    return dm.RampModel(meta=meta, data=data.astype(np.float32), groupdq=np.zeros(data.shape, np.uint8),
                        pixeldq=np.zeros(data.shape[1:], np.uint32))


def biased_counts():
    """Single-read resultants of a ramp on a bias of about 12,000 DN: raw counts."""
    rng = np.random.default_rng(4)
    signal = np.linspace(0, 30000, 4)[:, None, None] * np.ones((1, N, N))
    bias = np.repeat(12000 + rng.normal(0, 20, (4, NCHANNELS)), N // NCHANNELS, axis=1)[:, None, :]
    raw = signal + bias
    raw[:, :4] = raw[:, -4:] = bias  # the border sees no light
    raw[:, :, :4] = raw[:, :, -4:] = bias[:, :, :4]
    return raw


def expected_after_inl(raw):
    table = inl().correction
    out = raw.copy()
    for c in range(NCHANNELS):
        cols = np.s_[:, :, c * 16:(c + 1) * 16]
        out[cols] += np.interp(raw[cols], VALUE, table[c])
    return out


def test_the_table_applies_to_the_raw_counts_whatever_the_polynomial_expects():
    raw = biased_counts()
    sci = np.s_[:, 4:-4, 4:-4]
    for input_counts in ("raw", "bias_removed"):
        refpixed = RefPixStep.call(ramp(raw), nchannels=NCHANNELS)
        removed = raw - refpixed.data
        out = LinearityStep.call(refpixed, override_linearity=identity(N, input_counts),
                                 override_integralnonlinearity=inl())
        # the identity polynomial leaves what the table did, on the counts with the bias removed
        np.testing.assert_allclose(out.data[sci], (expected_after_inl(raw) - removed)[sci], atol=0.02)
        assert out.meta.linearity.integral_nonlinearity is True
        assert out.meta.ref_file.integralnonlinearity.startswith("<IntegralNonlinearityRefModel")


def test_without_a_table_only_the_polynomial_applies(tmp_path, caplog):
    raw = biased_counts()
    with caplog.at_level(logging.INFO, logger="calpipe"):
        logging.getLogger("calpipe").propagate = True
        out = LinearityStep.call(ramp(raw), override_linearity=identity(N, "raw"),
                                 override_integralnonlinearity="N/A")
    np.testing.assert_allclose(out.data, raw, atol=0.01)
    assert out.meta.linearity.integral_nonlinearity is False
    assert any("Integral non-linearity not corrected: override_integralnonlinearity is N/A" in r.getMessage()
               for r in caplog.records)


def test_removes_the_distortion_the_simulator_adds_read_by_read():
    """Truth: the same exposure (same noise draws) simulated without the converter's distortion;
    resultants of several reads."""
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11, 12, 13], [14, 15, 16, 17, 18, 19], [20]]
    detector = make_detector(128, seed=2)
    flux, _ = make_scene((120, 120), seed=2)
    table = inl(32).correction
    width = 128 // 32

    def distort(k, read):
        for c in range(32):
            true = read[:, c * width:(c + 1) * width].copy()
            measured = true.copy()
            for _ in range(4):
                measured = true - np.interp(measured, VALUE, table[c]).astype(np.float32)
            read[:, c * width:(c + 1) * width] = measured

    plain = simulate_exposure(detector, flux, read_pattern=pattern, seed=3).raw.astype(np.float32)
    distorted = simulate_exposure(detector, flux, read_pattern=pattern, seed=3, read_signal=distort).raw
    model = ramp(distorted, pattern)
    assert np.abs(model.data - plain).max() > 5
    out = LinearityStep.call(model, override_linearity=identity(128, "raw"), override_integralnonlinearity=inl(32))
    residual = (out.data - plain)[:, 4:-4, 4:-4]
    usable = plain[:, 4:-4, 4:-4] < 60000
    # both exposures are rounded to whole DN, one through the distortion: within one DN, but
    # for the brightest pixels (thousands of DN per read), whose reads the straight ramp places
    # less well
    assert np.quantile(np.abs(residual[usable]), 0.999) < 1.0
    assert np.abs(residual[usable]).max() < 2.0
    assert abs(np.median(residual[usable])) < 0.05
