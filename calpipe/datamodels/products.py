"""Models of the products written beside a calibrated image, and of the distortion reference.

- :class:`DistortionRefModel` (reftype ``distortion``): the polynomial model taking
  full-detector pixels to V2/V3 arcsec (``coordinate_distortion_transform``).
- :class:`SegmentationModel` (``<root>_segm.asdf``): the source catalog's segmentation map.
- :class:`WcsModel` (``<root>_wcs.asdf``): the aligned gwcs with ``meta.wcsinfo`` and
  ``meta.wcs_fit_results``.

The source catalog itself is an astropy Table, written as ``<root>_cat.ecsv`` and kept in
the calibrated image's ``source_catalog`` entry.
"""

import numpy as np

from .core import DataModel


class DistortionRefModel(DataModel):
    """Distortion reference: ``coordinate_distortion_transform`` (x, y) pixels -> (V2, V3) arcsec."""

    schema, reftype = "distortion_ref", "distortion"

    def problems(self):
        transform = self.tree.get("coordinate_distortion_transform")
        if transform is not None:
            if (transform.n_inputs, transform.n_outputs) != (2, 2):
                yield (
                    "coordinate_distortion_transform must take 2 inputs to 2 outputs, "
                    f"has {transform.n_inputs} -> {transform.n_outputs}"
                )
            else:
                try:
                    transform.inverse
                except NotImplementedError:
                    yield "coordinate_distortion_transform has no inverse (V2/V3 -> pixels)"


class SegmentationModel(DataModel):
    """Segmentation map (int32, science-array shape): 0 is background, else a catalog label."""

    schema = "segmentation"

    def problems(self):
        data = self.tree.get("data")
        if data is not None and np.asarray(data).size and np.asarray(data).min() < 0:
            yield "data holds negative labels"


class WcsModel(DataModel):
    """The WCS of an exposure (gwcs), with its pointing and alignment record."""

    schema = "wcs_product"



def side_product_meta(model, model_type):
    """An exposure's identifying metadata for a product written beside it (no WCS object, no logs)."""
    meta = model.meta.to_dict()
    keep = ("telescope", "instrument", "exposure", "observation", "wcsinfo", "photometry", "filename")
    out = {k: meta[k] for k in keep if k in meta}
    out["model_type"] = model_type
    return out
