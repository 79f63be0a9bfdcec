"""Quicklook previews and thumbnails of a simulated exposure, checked against its truth."""

import asdf
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from calpipe import datamodels as dm
from calpipe.archive.quicklook import FLAGGED_COLOUR, SKY_GREY, asinh_softening, block_reduce, quicklook
from calpipe.cli import main
from calpipe import dqflags

NEUTRAL = np.round(np.array(to_rgb(FLAGGED_COLOUR)) * 255)


@pytest.fixture(scope="module")
def cal_quicklook(two_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("quicklook")
    cal = two_runs.run1 / f"{two_runs.root}_cal.asdf"
    made = quicklook(cal, out, catalog=two_runs.run1 / f"{two_runs.root}_cat.ecsv")
    with dm.open(cal) as model:
        dq = np.asarray(model.dq).copy()
    with asdf.open(two_runs.truth) as truth:
        stars = truth["sources"].copy()
    return made, dq, stars


def test_thumbnail_shows_the_stars_over_a_mid_grey_sky(cal_quicklook):
    made, dq, stars = cal_quicklook
    rgb = np.round(imread(made["thumb"])[..., :3] * 255)[::-1]  # row 0 = y 0
    assert rgb.shape[:2] == dq.shape and max(rgb.shape) <= 300
    flagged = (dq & dqflags.DO_NOT_USE) > 0
    assert flagged.sum() > 0
    # Every flagged pixel, and no other, is the neutral colour.
    is_neutral = np.all(rgb == NEUTRAL, axis=-1)
    np.testing.assert_array_equal(is_neutral, flagged)
    grey = rgb[..., 0]
    sky = grey[~flagged]
    assert abs(np.median(sky) / 255 - SKY_GREY) < 0.08
    bright = stars[np.argsort(stars["flux"])[::-1][:10]]
    peaks = [grey[int(round(y)), int(round(x))] for x, y in zip(bright["x"], bright["y"])
             if not flagged[int(round(y)), int(round(x))]]
    assert len(peaks) >= 8 and min(peaks) > np.percentile(sky, 99)


def test_preview_has_the_image_at_full_resolution_with_title_and_colour_bar(cal_quicklook, two_runs, tmp_path):
    made, dq, _ = cal_quicklook
    plain = quicklook(two_runs.run1 / f"{two_runs.root}_cal.asdf", tmp_path)  # no catalog
    rgba = imread(plain["preview"])
    height, width = rgba.shape[:2]
    assert width > dq.shape[1] + 100 and height > dq.shape[0] + 60  # room for axes, colour bar, title
    rgb = np.round(rgba[..., :3] * 255)
    neutral = np.all(rgb == NEUTRAL, axis=-1).sum()
    flagged = (dq & dqflags.DO_NOT_USE) > 0
    # Drawn 1:1 with nearest neighbours; the axes' frame may cover the outer two rows.
    assert flagged[2:-2, 2:-2].sum() <= neutral <= flagged.sum()
    orange = [np.all(np.abs(np.round(imread(p)[..., :3] * 255) - [255, 127, 14]) < 40, axis=-1).sum()
              for p in (made["preview"], plain["preview"])]
    assert orange[0] > 50 and orange[1] == 0  # the catalog's circles


def test_raw_exposure_shows_last_minus_first(two_runs, tmp_path):
    made = quicklook(two_runs.uncal, tmp_path)
    grey = np.round(imread(made["thumb"])[..., 0] * 255)[::-1]
    with dm.open(two_runs.uncal) as raw:
        difference = raw.data[-1].astype(float) - raw.data[0].astype(float)
    # The display is monotonic in last - first: rank correlation near 1.
    order = np.argsort(difference.ravel())
    ranks = np.empty(order.size)
    ranks[order] = np.arange(order.size)
    grey_order = np.argsort(grey.ravel(), kind="stable")
    grey_ranks = np.empty(order.size)
    grey_ranks[grey_order] = np.arange(order.size)
    assert np.corrcoef(ranks, grey_ranks)[0, 1] > 0.98


def test_softening_puts_the_level_at_the_grey():
    for x in (0.01, 0.05, 0.3):
        a = asinh_softening(x, 0.45)
        assert np.arcsinh(x / a) / np.arcsinh(1 / a) == pytest.approx(0.45, abs=1e-6)
    assert asinh_softening(0.6, 0.45) == pytest.approx(1e3)  # already above: the nearly linear stretch


def test_block_reduce_averages_good_pixels_only():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    flagged = np.zeros((4, 4), bool)
    flagged[0, 0] = True
    flagged[2:, 2:] = True
    reduced, reduced_flagged = block_reduce(image, flagged, 2)
    np.testing.assert_allclose(reduced[0, 0], (1 + 4 + 5) / 3)
    assert reduced_flagged.tolist() == [[False, False], [False, True]]


def test_command_reports_each_bad_file_and_carries_on(two_runs, tmp_path, capsys):
    bad = tmp_path / "x_cal.asdf"
    bad.write_text("not asdf")
    code = main(["quicklook", str(bad), str(two_runs.run1 / f"{two_runs.root}_rate.asdf"), "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1 and err.startswith(f"calpipe quicklook: error: {bad}")
    assert (tmp_path / f"{two_runs.root}_preview.png").exists() and (tmp_path / f"{two_runs.root}_thumb.png").exists()
    assert not list(tmp_path.glob(".*part"))


def test_zscale_limits_keep_the_sky_at_its_grey(two_runs, tmp_path):
    made = quicklook(two_runs.run1 / f"{two_runs.root}_cal.asdf", tmp_path, limits="zscale")
    grey = np.round(imread(made["thumb"])[..., 0] * 255)
    assert abs(np.median(grey) / 255 - SKY_GREY) < 0.08
