"""source_catalog: detect and measure the sources of a calibrated image (sep, photutils)."""

import logging
import os

import numpy as np

from calpipe import datamodels, dqflags
from calpipe.datamodels import SegmentationModel, side_product_meta
from calpipe.kernels.catalog import source_catalog
from calpipe.step import CalStep

from ._common import is_imaging

log = logging.getLogger(__name__)

MASKED = dqflags.DO_NOT_USE


class SourceCatalogStep(CalStep):
    """Background mesh, Gaussian-convolved detection, segmentation and per-source measurements.

    The catalog (an astropy Table) is kept in the image's ``source_catalog`` entry and, when
    results are saved, written as ``<root>_cat.ecsv`` with the segmentation map as
    ``<root>_segm.asdf`` (a Roman ``SegmentationMapModel`` when the image is written in the
    Roman formats, see ``output_format``).
    """

    class_alias = "source_catalog"
    spec = """
    bkg_box_size = integer(default=64, min=4)   # Background mesh box (pixels)
    bkg_filter_size = integer(default=3, min=1) # Median filter over mesh boxes
    kernel_fwhm = float(default=2.0)            # FWHM (pixels) of the Gaussian detection kernel
    snr_threshold = float(default=3.0)          # Detection threshold in background rms
    npixels = integer(default=5, min=1)         # Minimum connected pixels of a source
    deblend = boolean(default=False)            # Split blended sources
    deblend_nlevels = integer(default=32)       # Deblending thresholds
    deblend_contrast = float(default=0.001)     # Minimum flux fraction of a deblended source
    aperture_radii = float_list(default=list(3.0, 6.0))  # Circular aperture radii (pixels)
    kron_scale = float(default=2.5)             # Kron aperture in Kron radii
    kron_min_radius = float(default=1.4)        # Smallest Kron radius (pixels)
    """

    def process(self, input):
        model = datamodels.open(input)
        if not is_imaging(model):
            log.info("Exposure type %s is not imaging: source catalog skipped", model.meta.exposure.type)
            self.record(model, "SKIPPED")
            return model
        dq = np.asarray(model.dq)
        if np.all(dq & dqflags.SATURATED):
            log.warning("Every pixel is saturated: source catalog skipped")
            self.record(model, "SKIPPED")
            return model
        wcs = model.meta.get("wcs")
        if wcs is None:
            log.warning("No WCS (assign_wcs not run): catalog sky positions are NaN")
        photometry = model.meta.get("photometry") or {}
        conversion = photometry.get("conversion_megajanskys")
        area = photometry.get("pixelarea_steradians")
        if conversion is None or area is None:
            log.info("No photometric conversion: fluxes in DN/s only")
        table, segm = source_catalog(
            model.data,
            model.err,
            mask=(dq & MASKED) > 0,
            saturated=(dq & dqflags.SATURATED) > 0,
            wcs=wcs,
            bkg_box_size=self.bkg_box_size,
            bkg_filter_size=self.bkg_filter_size,
            kernel_fwhm=self.kernel_fwhm,
            snr_threshold=self.snr_threshold,
            npixels=self.npixels,
            deblend=self.deblend,
            deblend_nlevels=self.deblend_nlevels,
            deblend_contrast=self.deblend_contrast,
            aperture_radii=tuple(self.aperture_radii or ()),
            kron_params=(self.kron_scale, self.kron_min_radius),
            conversion_megajanskys=conversion,
            pixelarea_steradians=area,
        )
        table.meta["filename"] = model.meta.get("filename")
        table.meta["flux_unit"] = "DN/s"
        table.meta["pixel_convention"] = "0-based science pixels, centres at integers"
        model.source_catalog = table
        info = {"n_sources": len(table), "snr_threshold": self.snr_threshold, "npixels": self.npixels,
                "deblend": self.deblend}
        log.info("%d sources detected", len(table))
        info["catalog_file"] = os.path.basename(self.add_side_product(model, "cat", table))
        if self.roman_products(model):  # a Roman SegmentationMapModel
            from calpipe.datamodels import roman

            meta = model.meta.to_dict()
            segm_path = self.add_side_product(model, "segm", segm,
                                              lambda labels, path: roman.write_segmentation(labels, meta, path))
        else:
            segm_model = SegmentationModel(meta=side_product_meta(model, "SegmentationModel"), data=segm)
            segm_path = self.add_side_product(model, "segm", segm_model)
        info["segmentation_file"] = os.path.basename(segm_path)
        model.meta.source_catalog = info
        return model
