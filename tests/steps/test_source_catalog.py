"""source_catalog as a step: the catalog and segmentation map it writes agree with each other
and with the field's truth; non-imaging and fully saturated exposures are skipped."""

import numpy as np
from astropy.table import Table
from support.sky_field import calibrate_sky

from calpipe import datamodels as dm
from calpipe.steps.source_catalog import SourceCatalogStep


def test_catalog_and_segmentation_products_agree(field, distortion_file, tmp_path):
    model = calibrate_sky(field.models[0].copy(), distortion_file, save_results=True, output_dir=str(tmp_path))
    info = model.meta.source_catalog
    assert model.meta.cal_step.source_catalog == "COMPLETE"
    assert info.n_sources == len(model.source_catalog) > 100
    written = Table.read(tmp_path / info.catalog_file)
    np.testing.assert_allclose(written["ra"], model.source_catalog["ra"])
    with dm.open(tmp_path / info.segmentation_file) as segm:
        assert isinstance(segm, dm.SegmentationModel)
        labels = np.unique(segm.data[segm.data > 0])
        assert labels.tolist() == list(range(1, len(model.source_catalog) + 1))
    # Every detected source sits within a pixel of a true star of the field.
    truth = field.truths[0]
    xt, yt = np.asarray(truth["x"]), np.asarray(truth["y"])
    xs, ys = model.source_catalog["x_centroid_win"], model.source_catalog["y_centroid_win"]
    nearest = np.min(np.hypot(xs[:, None] - xt[None, :], ys[:, None] - yt[None, :]), axis=1)
    assert np.median(nearest) < 0.1


def test_non_imaging_and_saturated_exposures_are_skipped(field):
    model = field.models[0].copy()
    model.meta.exposure.type = "WFI_SPECTRAL"
    assert SourceCatalogStep.call(model).meta.cal_step.source_catalog == "SKIPPED"
    model = field.models[0].copy()
    model.dq[...] |= dm.dqflags.SATURATED
    result = SourceCatalogStep.call(model)
    assert result.meta.cal_step.source_catalog == "SKIPPED" and result.meta.get("source_catalog") is None
