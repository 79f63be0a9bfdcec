"""Ramp-fit accuracy on exposures from the read-level generator (tests/support/readlevel.py).

The generator shares no code with calpipe: charge accumulated read by read, hits at
random reads (inside multi-read resultants, in the first and last resultants), several
hits per pixel. Thresholds are those of issue 9 ("Done when"). The default run uses
20000 pixels per case; the slow run (``-m slow``) 200000.
"""

import numpy as np
import pytest
from support import ramp_cases
from support import readlevel as rl

from calpipe import dqflags
from calpipe.kernels.ramp import fit_ramps

NPIX = 20000
NPIX_CLEAN = 40000  # median z known to 0.006
NPIX_SLOW = 200000
ALGORITHMS = ["likely", "optimal"]


def _multi_hit(algorithm, nhits, npix):
    r = ramp_cases.multi_hit_case(algorithm, nhits, npix, seed=nhits)
    bad_limit, flag_limit = {2: (0.02, 0.05), 3: (0.05, 0.10)}[nhits]
    assert r["bad_z"] <= bad_limit, r
    assert r["flagged"] <= flag_limit, r


@pytest.mark.parametrize("nhits", [2, 3])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_multiple_hits(algorithm, nhits):
    _multi_hit(algorithm, nhits, NPIX)


@pytest.mark.slow
@pytest.mark.parametrize("nhits", [2, 3])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_multiple_hits_large(algorithm, nhits):
    _multi_hit(algorithm, nhits, NPIX_SLOW)


def test_one_hit_err_is_honest():
    """One hit of 20-1000 sigma, found and removed: err still describes the scatter."""
    r = ramp_cases.multi_hit_case("likely", 1, NPIX, seed=5)
    assert 0.97 <= r["rstd_z"] <= 1.03, r
    assert r["bad_z"] <= 0.002 and r["flagged"] <= 0.01, r


def _three_resultants(fraction, npix):
    r = ramp_cases.clean_case("optimal", "3", fraction, npix, seed=int(fraction * 1000) + 3)
    assert r["false_jumps"] <= 0.001, r
    assert abs(r["bias_se"]) <= 3.0, r


# Near 1.5 DN/s the segment's signal-to-noise crosses 5, where the optimal weighting's
# exponent changes from 0 to 0.4: choosing weights from the data leaves a mean bias of
# about 0.016 sigma (4.8-7.1 standard errors with 100000 pixels), without false jumps.
FRACTIONS_3 = ramp_cases.FRACTIONS


@pytest.mark.parametrize("fraction", FRACTIONS_3)
def test_three_resultants_no_false_jumps_no_bias(fraction):
    _three_resultants(fraction, NPIX)


@pytest.mark.slow
@pytest.mark.parametrize("fraction", FRACTIONS_3)
def test_three_resultants_no_false_jumps_no_bias_large(fraction):
    _three_resultants(fraction, NPIX_SLOW)


def _clean(algorithm, pattern, fraction, npix):
    r = ramp_cases.clean_case(algorithm, pattern, fraction, npix,
                              seed=len(pattern) * 100 + int(fraction * 1000))
    assert abs(r["median_z"]) < 0.03, r
    assert 0.97 <= r["std_z"] <= 1.03, r
    assert r["flagged"] <= 0.001, r


def _clean_params():
    return [pytest.param(algorithm, pattern, fraction)
            for pattern in rl.PATTERNS for fraction in ramp_cases.FRACTIONS for algorithm in ALGORITHMS]


@pytest.mark.parametrize("algorithm, pattern, fraction", _clean_params())
def test_clean_pixels(algorithm, pattern, fraction):
    _clean(algorithm, pattern, fraction, NPIX_CLEAN)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, pattern, fraction", _clean_params())
def test_clean_pixels_large(algorithm, pattern, fraction):
    _clean(algorithm, pattern, fraction, NPIX_SLOW)


# ------------------------------------------------------------------ the generator
def test_generator_resultants_follow_the_documented_noise_model():
    """Means and variances of the generated resultants: f tbar and s^2/N + f tau."""
    pattern = rl.PATTERNS["6 uneven"]
    rng = np.random.default_rng(0)
    rate = np.full(50000, 40.0)
    exp = rl.generate(pattern, rate, rng, full_well=None)
    tbar, nreads = rl.pattern_times(pattern)
    np.testing.assert_allclose(exp.resultants.mean(axis=1), 40.0 * tbar, rtol=2e-3)
    # Variance of a mean of reads (electrons), from the reads' covariance directly.
    for i, reads in enumerate(pattern):
        t = np.asarray(reads) * rl.FRAME_TIME
        expected = (rl.READ_NOISE * rl.GAIN) ** 2 / len(reads) + 40.0 * rl.GAIN * np.minimum.outer(t, t).mean()
        np.testing.assert_allclose((exp.resultants[i] * rl.GAIN).var(), expected, rtol=0.03)


def test_generator_hits_and_saturation_truth():
    pattern = rl.PATTERNS["8 many-read"]
    rng = np.random.default_rng(1)
    npix = 4000
    rate = np.full(npix, rl.saturating_rate(pattern, 1.5))
    exp = rl.generate(pattern, rate, rng, nhits=rng.integers(0, 4, npix), hit_sigma=(3, 1000))
    nh = (exp.hit_read > 0).sum(axis=1)
    assert set(np.unique(nh)) == {0, 1, 2, 3}
    # Distinct reads, sizes in range, hits in the first and the last resultant.
    assert all(len(set(r[r > 0])) == len(r[r > 0]) for r in exp.hit_read)
    assert exp.hit_sigma[exp.hit_read > 0].min() >= 3 and exp.hit_sigma.max() <= 1000
    assert np.any(np.isin(exp.hit_read, pattern[0])) and np.any(np.isin(exp.hit_read, pattern[-1]))
    # Saturation from the read where the charge reached full well: the resultants
    # from the one holding that read on are flagged, the earlier ones are not.
    assert np.all(exp.saturation_read > 0)
    last = np.array([r[-1] for r in pattern])
    first_flag = np.argmax(exp.groupdq == rl.SATURATED, axis=0)
    np.testing.assert_array_equal(first_flag, np.searchsorted(last, exp.saturation_read))


def test_fit_uses_generator_groupdq():
    """A pixel saturating inside a resultant, flagged by the generator's truth: the fit
    from the earlier resultants is unbiased."""
    pattern = rl.PATTERNS["8 many-read"]
    rng = np.random.default_rng(2)
    npix = 20000
    rate = np.full(npix, rl.saturating_rate(pattern, 1.3))
    exp = rl.generate(pattern, rate, rng)
    n = len(pattern)
    out = fit_ramps(exp.resultants[:, None], exp.groupdq[:, None], np.full((1, npix), rl.READ_NOISE),
                    np.full((1, npix), rl.GAIN), pattern, rl.FRAME_TIME)
    assert np.all(out.dq[0] & dqflags.SATURATED)
    z = (out.slope[0] - rate) / out.err[0]
    assert abs(np.median(z)) < 0.03 and n == 8
