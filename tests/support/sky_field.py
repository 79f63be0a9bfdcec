"""Synthetic sky images: Gaussian stars placed through a known WCS, plus noise."""

import copy

import numpy as np

from calpipe import datamodels as dm
from calpipe.kernels import wcs as kw
from calpipe.simulate import sky

START_TIME = "2027-06-01T00:00:00.000"
EPOCH = sky.epoch_of(START_TIME)
PSF_SIGMA = 1.0  # pixels
SKY_RATE = 0.5  # DN/s per pixel
READ_VAR = 0.01  # (DN/s)^2 per pixel
GAIN_TIME = 100.0  # electrons per DN/s: Poisson variance = rate / GAIN_TIME
CONVERSION = 0.35  # MJy/sr per DN/s
PIXEL_AREA = 2.84e-13  # sr (0.11 arcsec pixels)


def render(shape, x, y, flux, rng):
    """Count-rate image, its error and variances for stars at science pixels (x, y)."""
    truth = sky.render_stars(shape, x, y, flux, PSF_SIGMA) + SKY_RATE
    var_poisson = truth / GAIN_TIME
    err = np.sqrt(var_poisson + READ_VAR)
    data = truth + rng.normal(0.0, 1.0, shape) * err
    return data.astype(np.float32), err.astype(np.float32), var_poisson.astype(np.float32)


def image_model(data, err, var_poisson, wcsinfo, photometry=True, exposure=1):
    meta = {
        "telescope": "ROMAN",
        "instrument": {"name": "WFI", "detector": "WFI01", "optical_element": "F158"},
        "exposure": {"type": "WFI_IMAGE", "start_time": START_TIME, "nresultants": 3,
                     "read_pattern": [[1], [2, 3], [4]], "frame_time": 3.04},
        "observation": {"program": 1, "observation": 1, "visit": 1, "exposure": exposure},
    }
    meta["filename"] = f"field{exposure}_cal.asdf"
    meta["wcsinfo"] = copy.deepcopy(wcsinfo)
    if photometry:
        meta["photometry"] = {"conversion_megajanskys": CONVERSION, "pixelarea_steradians": PIXEL_AREA}
    shape = data.shape
    return dm.ImageModel(
        meta=meta, data=data, err=err, var_poisson=var_poisson,
        var_rnoise=np.full(shape, READ_VAR, np.float32), dq=np.zeros(shape, np.uint32),
    )


class Field:
    """A star field seen through one or more (possibly mis-pointed) exposures."""

    def __init__(self, distortion, nstars, shape=(512, 512), seed=1, pointing_error=True,
                 nexposures=1, ra=53.1, dec=-27.8, roll=20.0, flux_range=(30.0, 3.0e4)):
        rng = np.random.default_rng(seed)
        self.shape = shape
        self.distortion = distortion
        base = sky.make_wcsinfo(ra, dec, roll=roll, va_scale=1.00007)
        self.true_wcsinfos = sky.dithered_wcsinfos(base, distortion, nexposures, step_pixels=(40.5, 30.25))
        # Stars over a cap a little larger than the detector so dithers stay covered.
        center_wcs = kw.build_wcs(distortion, base, shape)
        cra, cdec = kw.pixel_to_sky(center_wcs, (shape[1] - 1) / 2, (shape[0] - 1) / 2)
        radius = 0.75 * max(shape) * sky.PIXEL_SCALE / 3600.0 + 0.004 * nexposures
        self.stars = sky.make_star_catalog(float(cra), float(cdec), radius, nstars, rng,
                                           flux_range=flux_range, pm_sigma=8.0)
        self.refcat = sky.reference_catalog(self.stars, rng)
        self.models, self.errors, self.truths = [], [], []
        for k, true in enumerate(self.true_wcsinfos):
            if pointing_error:
                _, perturbed, error = sky.inject_pointing_error(true, rng)
            else:
                perturbed, error = dict(true), {"dra_arcsec": 0.0, "ddec_arcsec": 0.0, "droll_deg": 0.0}
            x, y, sra, sdec = sky.star_pixels(self.stars, true, distortion, shape, EPOCH)
            data, err, var_p = render(shape, x, y, np.asarray(self.stars["flux"]), rng)
            self.models.append(image_model(data, err, var_p, perturbed, exposure=k + 1))
            self.errors.append(error)
            self.truths.append({"x": x, "y": y, "ra": sra, "dec": sdec,
                                "flux": np.asarray(self.stars["flux"]),
                                "wcs": kw.build_wcs(distortion, true, shape)})


def refcat_file(field, path, fmt="ascii.ecsv"):
    """The field's reference catalog written to ``path`` in ``fmt``; returns the path as a string."""
    table = field.refcat.copy()
    if fmt == "fits":
        table.meta.clear()  # FITS keywords are 8 characters; the description is not needed
    table.write(path, format=fmt, overwrite=True)
    return str(path)


def calibrate_sky(model, distortion_file, **catalog):
    """``model`` through assign_wcs (with ``distortion_file``) and source_catalog."""
    from calpipe.steps.assign_wcs import AssignWcsStep
    from calpipe.steps.source_catalog import SourceCatalogStep

    model = AssignWcsStep.call(model, override_distortion=distortion_file)
    return SourceCatalogStep.call(model, **catalog)
