"""Statistical accuracy of both ramp fits on simulated noisy ramps with known truth.

Runs the accuracy benchmark's core (tests/support/ramp_cases.py) in a small form:
Poisson electrons per read, Gaussian read noise per read, reads averaged into
resultants, count rates from 0.1 to 1e4 DN/s.
"""

import numpy as np
import pytest
from support import ramp_cases

NPIX = 20000  # per flux bin: the median of z is then known to about 0.009


@pytest.mark.parametrize("nresultants", [6, 12])
@pytest.mark.parametrize("algorithm", ["likely", "optimal"])
def test_accuracy_table(algorithm, nresultants):
    rows = ramp_cases.accuracy_table(
        algorithm, npix=NPIX, jump_sizes=(10.0,), read_pattern=ramp_cases.READ_PATTERNS[nresultants],
        seed=nresultants)
    assert [r["flux"] for r in rows] == [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]
    for r in rows:
        assert abs(r["median_z"]) < 0.03, r
        assert 0.95 <= r["std_z"] <= 1.05, r
        assert r["false_jump_rate"] <= 0.001, r
        assert r["completeness"][10.0] >= 0.99, r


def test_simulation_matches_the_noise_model():
    """The simulator's resultant scatter is the model's: s^2/N + f tau (electrons)."""
    pattern = ramp_cases.READ_PATTERNS[6]
    rng = np.random.default_rng(0)
    flux, rn, gain = 50.0, 6.0, 2.0
    res = ramp_cases.simulate_ramps(np.full(40000, flux), pattern, 3.04, rn, gain, rng)
    tbar, tau, nreads = ramp_cases.resultant_times(pattern, 3.04)
    var_e = (rn * gain) ** 2 / nreads + flux * gain * tau
    np.testing.assert_allclose(res.mean(axis=1), flux * tbar, rtol=2e-3)
    np.testing.assert_allclose((res * gain).var(axis=1), var_e, rtol=0.03)
    # Covariance of resultants i < j is f tbar_i.
    cov = np.cov(res[1] * gain, res[4] * gain)[0, 1]
    np.testing.assert_allclose(cov, flux * gain * tbar[1], rtol=0.1)
