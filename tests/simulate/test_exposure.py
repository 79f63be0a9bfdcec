import numpy as np
import pytest

from calpipe import dqflags
from calpipe.kernels.linearity import correct_linearity
from calpipe.kernels.refpix import correct_refpix, refpix_offsets
from calpipe.kernels.saturation import flag_saturation
from calpipe.simulate import (
    READ_PATTERNS,
    check_read_pattern,
    default_read_pattern,
    linearity_coefficients,
    make_detector,
    make_scene,
    mean_read_times,
    nonlinear,
    parse_read_pattern,
    render_sources,
    simulate_exposure,
)

N = 128
B = 4


@pytest.fixture(scope="module")
def detector():
    return make_detector(N, seed=5)


@pytest.fixture(scope="module")
def coeffs(detector):
    return linearity_coefficients(detector)


@pytest.fixture(scope="module")
def scene():
    return make_scene((N - 2 * B, N - 2 * B), seed=11)


def threshold_of(det):
    ped = det.pedestal[det.channel_of_column()]
    thr = (ped[None, :] + det.saturation_level).astype(np.float32)
    thr[det.nan_threshold] = np.nan
    return thr


def calibrate_resultants(exp, det, coeffs):
    """saturation -> refpix -> linearity on the raw cube; returns (cube, groupdq, pixeldq)."""
    cube = exp.raw.astype(np.float32)
    gdq = np.zeros(cube.shape, np.uint8)
    pdq = det.mask.copy()
    sat_dq = np.where(det.no_sat_check, dqflags.NO_SAT_CHECK, 0).astype(np.uint32)
    flag_saturation(cube, threshold_of(det), exp.read_pattern, gdq, pdq, sat_dq)
    correct_refpix(cube)
    correct_linearity(cube, gdq, coeffs, pdq, exp.read_pattern)
    return cube, gdq, pdq


def ols_slopes(cube, gdq, tbar):
    """Least-squares slope per pixel over the resultants not flagged DO_NOT_USE."""
    use = (gdq & dqflags.DO_NOT_USE) == 0
    w = use.astype(np.float64)
    t = tbar[:, None, None]
    n = w.sum(0)
    st, sy = (w * t).sum(0), (w * cube).sum(0)
    stt, sty = (w * t * t).sum(0), (w * t * cube).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n * sty - st * sy) / (n * stt - st * st), n


def test_default_read_pattern():
    assert default_read_pattern(6) == [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11, 12, 13],
                                       [14, 15, 16, 17, 18, 19], [20]]
    assert default_read_pattern(1) == [[1]]
    assert default_read_pattern(3) == [[1], [2, 3], [4]]
    p10 = default_read_pattern(10)
    assert len(p10) == 10 and 60 <= 3.04 * p10[-1][-1] <= 180
    np.testing.assert_allclose(mean_read_times([[1], [2, 3]], 2.0), [2.0, 5.0])
    with pytest.raises(ValueError):
        check_read_pattern([[1, 2], [2, 3]])
    with pytest.raises(ValueError):
        check_read_pattern([[0]])
    with pytest.raises(ValueError):
        default_read_pattern(0)


def test_detector_properties(detector):
    d = detector
    assert d.gain.shape == (N, N) and d.gain.dtype == np.float32
    assert 1.9 < d.gain.mean() < 2.1 and 5.3 < d.readnoise.mean() < 5.7
    border = np.ones((N, N), bool)
    border[B:-B, B:-B] = False
    assert (d.mask[border] & dqflags.REFERENCE_PIXEL).all()
    assert not (d.mask[~border] & dqflags.REFERENCE_PIXEL).any()
    assert (d.dark[border] == 0).all()
    assert d.dead.any() and (d.mask[d.dead] & (dqflags.DEAD | dqflags.DO_NOT_USE)).all()
    assert (d.flat[d.dead] == 0).all()
    hot = (d.mask & dqflags.HOT) != 0
    assert hot.any() and d.dark[hot].min() >= 0.5 and np.median(d.dark[~hot & ~border]) < 0.05
    assert d.nan_linearity.any() and d.zero_linearity.any() and d.nan_threshold.any()
    deficit = 1 - d.measured_full_well / d.full_well
    assert 0.03 < deficit.mean() < 0.07
    # the brightest raw value must fit the 16-bit ADC
    assert d.pedestal.max() + d.measured_full_well.max() + 200 < 65535
    with pytest.raises(ValueError):
        make_detector(100)


def test_detector_reproducible():
    a, b, c = make_detector(64, seed=1), make_detector(64, seed=1), make_detector(64, seed=2)
    np.testing.assert_array_equal(a.flat, b.flat)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.flat, c.flat)


def test_linearity_coefficients_invert_the_nonlinearity(detector, coeffs):
    assert coeffs.shape == (6, N, N) and coeffs.dtype == np.float32
    good = ~(detector.nan_linearity | detector.zero_linearity)
    fw = detector.full_well.astype(np.float64)
    c = np.linspace(0.0, 1.0, 41)[1:, None, None] * fw
    m = nonlinear(c, detector.nl_a, detector.nl_b, fw)
    est = sum(coeffs[k].astype(np.float64) * m**k for k in range(6))
    rel = np.abs(est / c - 1)
    assert rel[:, good].max() < 1e-4  # the brief asks 0.1 %; the fit does far better
    assert (coeffs[0][good] == 0).all()
    assert np.isnan(coeffs[:, detector.nan_linearity]).all()
    assert (coeffs[:, detector.zero_linearity] == 0).all()


def test_render_sources_conserves_flux_and_centroid():
    img = render_sources((61, 61), [30.3], [29.6], [1000.0])
    assert img.sum() == pytest.approx(1000.0, rel=1e-4)
    yy, xx = np.mgrid[0:61, 0:61]
    assert (img * xx).sum() / img.sum() == pytest.approx(30.3, abs=1e-3)
    assert (img * yy).sum() / img.sum() == pytest.approx(29.6, abs=1e-3)
    # a source half off the edge loses about half its flux
    edge = render_sources((61, 61), [-0.5], [30.0], [1000.0])
    assert edge.sum() == pytest.approx(500.0, rel=1e-3)


def test_scene(scene):
    flux, sources = scene
    assert flux.dtype == np.float32 and flux.shape == (N - 2 * B,) * 2
    assert flux.min() > 0.4 and sources["flux"].max() >= 2e4
    assert set(sources) == {"x", "y", "flux"}
    # background plus rendered stars
    stars = render_sources(flux.shape, sources["x"], sources["y"], sources["flux"])
    bg = flux - stars
    assert 0.5 < np.median(bg) < 0.7 and bg.std() < 0.05


def test_noiseless_ramp_calibrates_back_to_the_true_slope(detector, coeffs, scene):
    flux, _ = scene
    exp = simulate_exposure(detector, flux, seed=2, noise=False, cosmic_ray_fraction=0.0)
    assert exp.raw.dtype == np.uint16 and exp.raw.shape == (6, N, N)
    cube, gdq, pdq = calibrate_resultants(exp, detector, coeffs)
    tbar = mean_read_times(exp.read_pattern, exp.frame_time)
    sci = (slice(B, -B), slice(B, -B))
    slope, nused = ols_slopes(cube[:, B:-B, B:-B], gdq[:, B:-B, B:-B], tbar)
    truth = exp.truth["slope"]
    ok = (nused >= 2) & ((pdq[sci] & (dqflags.DO_NOT_USE | dqflags.NO_LIN_CORR)) == 0)
    assert ok.mean() > 0.99
    # rounding to integer DN (+-0.5 DN per resultant) is the only noise: ~0.01 DN/s
    err = slope[ok] - truth[ok]
    # and, for bright pixels, the linearity correction of multi-read resultants (< 0.05 %)
    assert (np.abs(err) < 0.05 + 5e-4 * truth[ok]).all()
    assert abs(np.median(err)) < 0.005
    # uncorrectable pixels stay non-linear: low, never high
    bad = (nused >= 2) & ((pdq[sci] & dqflags.NO_LIN_CORR) != 0) & (truth > 100)
    assert (slope[bad] < truth[bad]).all()
    # dead pixels read nothing
    assert np.abs(slope[detector.dead[sci]]).max() < 0.05


def remove_true_bias(exp):
    width = N // 32
    bias = (np.repeat(exp.truth["bias_channel"], width, axis=1)[:, None, :]
            + exp.truth["bias_row"][:, :, None])
    return (exp.raw - bias).astype(np.float32)


def test_noisy_ramp_statistics(detector, coeffs, scene):
    flux, _ = scene
    exp = simulate_exposure(detector, flux, seed=3, cosmic_ray_fraction=0.0)
    cube = remove_true_bias(exp)
    # read noise from the reference pixels of single-read resultants (first and last)
    ref = np.ones((N, N), bool)
    ref[B:-B, B:-B] = False
    diff = cube[-1][ref] - cube[0][ref]
    rn = np.sqrt(np.mean(detector.readnoise[ref] ** 2) + 1 / 12)  # plus integer rounding
    assert diff.std() / np.sqrt(2) == pytest.approx(rn, rel=0.05)
    # slopes scatter around the truth without bias
    gdq = np.zeros(cube.shape, np.uint8)
    pdq = detector.mask.copy()
    correct_linearity(cube, gdq, coeffs, pdq, exp.read_pattern)
    tbar = mean_read_times(exp.read_pattern, exp.frame_time)
    slope, _ = ols_slopes(cube[:, B:-B, B:-B], gdq[:, B:-B, B:-B], tbar)
    truth = exp.truth["slope"]
    ok = (pdq[B:-B, B:-B] == 0) & (truth < 5)
    err = slope[ok] - truth[ok]
    assert abs(err.mean()) < 4 * err.std() / np.sqrt(ok.sum())
    # OLS on this pattern: read noise ~0.08 DN/s, Poisson ~0.07 DN/s at 0.6 DN/s
    assert 0.08 < err.std() < 0.16
    # Poisson noise is there: brighter pixels scatter more
    bright = (pdq[B:-B, B:-B] == 0) & (truth > 50) & (truth < 500)
    if bright.sum() > 10:
        assert (slope[bright] - truth[bright]).std() > 2 * err.std()


def test_refpix_removes_the_simulated_bias(detector, scene):
    flux, _ = scene
    exp = simulate_exposure(detector, flux, seed=4)
    cube = exp.raw.astype(np.float32)
    channel, row = refpix_offsets(cube)
    width = N // 32
    estimate = np.repeat(channel, width, axis=1)[:, None, :] + row[:, :, None]
    truth = (np.repeat(exp.truth["bias_channel"], width, axis=1)[:, None, :]
             + exp.truth["bias_row"][:, :, None])
    # drifts are tens of DN; what is left is estimation noise
    drift = truth - truth.mean(axis=(1, 2), keepdims=True)
    assert np.abs(drift).max() > 10
    error = estimate - truth
    # noise of one channel offset: read noise over its 2*B*width reference pixels
    nreads = np.array([len(r) for r in exp.read_pattern])
    sigma_channel = 5.5 / np.sqrt(2 * B * width * nreads)
    # the level of every row rests on the two edge channels: a common error of sigma/sqrt(2)
    common = error.mean(axis=(1, 2))
    assert (np.abs(common) < 4 * sigma_channel / np.sqrt(2) + 0.1).all()
    per_channel = (error - common[:, None, None])[:, B:-B].mean(axis=1).reshape(-1, 32, width).mean(axis=2)
    assert np.sqrt((per_channel**2).mean(axis=1) / sigma_channel**2).max() < 1.6
    # with the bias switched off (all else equal) the corrected data agree to that level
    plain = simulate_exposure(detector, flux, seed=4, bias=False)
    correct_refpix(cube)
    science = cube[:, B:-B, B:-B] - plain.raw[:, B:-B, B:-B].astype(np.float32)
    unclipped = plain.raw[:, B:-B, B:-B] > 0
    assert np.abs(science[unclipped].mean()) < 1.0
    assert science[unclipped].std() < 2.0


def test_saturation_flags_match_the_truth(detector, scene):
    flux, _ = scene
    exp = simulate_exposure(detector, flux, seed=6)
    cube = exp.raw.astype(np.float32)
    gdq = np.zeros(cube.shape, np.uint8)
    pdq = np.zeros((N, N), np.uint32)
    sat_dq = np.where(detector.no_sat_check, dqflags.NO_SAT_CHECK, 0).astype(np.uint32)
    flag_saturation(cube, threshold_of(detector), exp.read_pattern, gdq, pdq, sat_dq)
    flagged = (gdq[-1, B:-B, B:-B] & dqflags.SATURATED) != 0
    truth = exp.truth["saturated"]
    checked = ~detector.no_sat_check[B:-B, B:-B]
    assert truth[checked].sum() >= 3
    assert (flagged[checked] == truth[checked]).mean() > 0.999
    assert not flagged[~checked].any()
    assert not (gdq[:, :B, :] & dqflags.SATURATED).any()


def test_cosmic_rays(detector, scene):
    flux, _ = scene
    exp = simulate_exposure(detector, flux, seed=7, cosmic_ray_fraction=0.05)
    jumps = exp.truth["jumps"]
    npix = jumps.size
    assert jumps.sum() == pytest.approx(0.05 * npix, rel=0.1)
    assert jumps[detector.dead[B:-B, B:-B]].sum() == 0
    # a jump raises the last resultant above the no-jump ramp
    clean = simulate_exposure(detector, flux, seed=7, cosmic_ray_fraction=0.0)
    rise = exp.raw[-1, B:-B, B:-B].astype(float) - clean.raw[-1, B:-B, B:-B]
    hit = (jumps > 0) & ~exp.truth["saturated"]
    assert np.all(rise[hit] > 10) and np.abs(rise[jumps == 0]).max() == 0


def test_fully_saturated(detector, scene):
    flux, _ = scene
    exp = simulate_exposure(detector, flux, seed=8, fully_saturated=True)
    cube = exp.raw.astype(np.float32)
    gdq = np.zeros(cube.shape, np.uint8)
    pdq = np.zeros((N, N), np.uint32)
    flag_saturation(cube, threshold_of(detector), exp.read_pattern, gdq, pdq)
    checked = ~detector.nan_threshold
    assert ((gdq & dqflags.SATURATED) != 0)[:, checked].all()
    assert exp.truth["saturated"].all() and exp.truth["jumps"].sum() == 0


def test_same_seed_same_exposure(detector, scene):
    flux, _ = scene
    a = simulate_exposure(detector, flux, seed=9, nresultants=4)
    b = simulate_exposure(detector, flux, seed=9, nresultants=4)
    c = simulate_exposure(detector, flux, seed=10, nresultants=4)
    np.testing.assert_array_equal(a.raw, b.raw)
    np.testing.assert_array_equal(a.truth["jumps"], b.truth["jumps"])
    assert not np.array_equal(a.raw, c.raw)
    assert a.raw.shape == (4, N, N) and a.read_pattern == default_read_pattern(4)


def test_read_patterns_by_name_and_by_list():
    assert parse_read_pattern("uneven6") == default_read_pattern(6)
    assert parse_read_pattern("skip6") == [[1], [3, 4], [6, 7, 8, 9], [11, 12, 13, 14, 15, 16],
                                           [18, 19, 20, 21, 22, 23], [25]]
    assert parse_read_pattern("3") == [[1], [2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]]
    assert parse_read_pattern("8x8")[-1] == list(range(57, 65))
    assert parse_read_pattern("40") == [[k] for k in range(1, 41)]
    assert all(check_read_pattern(p) == p for p in READ_PATTERNS.values())
    assert parse_read_pattern("1; 3,4 ;6-9") == [[1], [3, 4], [6, 7, 8, 9]]
    for bad in ("7x", "1;;2", "3;2", "1;2-x"):
        with pytest.raises(ValueError):
            parse_read_pattern(bad)


def test_multiple_hits_at_random_reads(detector, scene):
    flux, _ = scene
    pattern = READ_PATTERNS["8x8"]
    exp = simulate_exposure(detector, flux * 0.01, read_pattern=pattern, seed=11, cosmic_ray_fraction=0.2,
                            multi_hit_fraction=0.5, noise=False, bias=False)
    hits = exp.truth["cosmic_rays"]
    jumps = exp.truth["jumps"]
    assert len(hits["read"]) == jumps.sum()
    hit_pixels = jumps > 0
    # half of the hit pixels get one or two more hits (plus chance coincidences)
    assert np.mean(jumps[hit_pixels] > 1) == pytest.approx(0.5 + 0.1, abs=0.06)
    assert jumps.max() >= 3
    # reads anywhere after the first: inside resultants as well as at their starts
    reads = np.asarray(hits["read"])
    assert reads.min() == 2 and reads.max() == 64
    starts = {r[0] for r in pattern}
    assert np.mean([k not in starts for k in reads]) > 0.8
    # each hit raises the resultants by its amplitude times the share of their reads it is in
    clean = simulate_exposure(detector, flux * 0.01, read_pattern=pattern, seed=11, cosmic_ray_fraction=0.0,
                              noise=False, bias=False)
    single = np.flatnonzero((jumps == 1).ravel())[:200]
    order = np.ravel_multi_index((hits["y"], hits["x"]), jumps.shape)
    for pixel in single:
        j = np.flatnonzero(order == pixel)[0]
        y, x = hits["y"][j] + B, hits["x"][j] + B
        share = np.array([np.mean(np.asarray(r) >= hits["read"][j]) for r in pattern])
        rise = exp.raw[:, y, x].astype(float) - clean.raw[:, y, x]
        # counts stay low here: the response deficit is below 0.5 %
        np.testing.assert_allclose(rise, hits["amplitude"][j] * share, rtol=0.005, atol=1.0)


def test_saturation_inside_resultants_is_in_the_truth(detector, scene):
    flux, _ = scene
    pattern = READ_PATTERNS["8x8"]
    exp = simulate_exposure(detector, flux, read_pattern=pattern, seed=12)
    first = exp.truth["saturated_read"]
    np.testing.assert_array_equal(first > 0, exp.truth["saturated"])
    # some pixels saturate at a read inside a resultant, not at its first read
    starts = [r[0] for r in pattern]
    inside = (first > 0) & ~np.isin(first, starts)
    assert inside.sum() >= 5
    # and the read is the first whose noiseless measured counts reach the level
    level = detector.saturation_level[B:-B, B:-B]
    slope, sci = exp.truth["slope"], (slice(B, -B), slice(B, -B))
    quiet = inside & (exp.truth["jumps"] == 0)
    k = first[quiet].astype(float)
    frame = exp.frame_time
    m = lambda reads: nonlinear(slope[quiet] * frame * reads, detector.nl_a[sci][quiet],
                                detector.nl_b[sci][quiet], detector.full_well[sci][quiet])
    # within Poisson noise (a few sigma of the counts) of the crossing
    sigma = np.sqrt(level[quiet] / detector.gain[sci][quiet])
    assert np.all(m(k) >= level[quiet] - 5 * sigma) and np.all(m(k - 1) < level[quiet] + 5 * sigma)
