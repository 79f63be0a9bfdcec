"""calpipe's data models: ASDF files with a schema per kind, opened with :func:`open`."""

import os
import warnings
from collections.abc import Mapping

import asdf

from calpipe import dqflags

from . import roman
from ._asdf_extensions import load_asdf_extensions
from .core import DataModel, DataModelError, Node, write_tree
from .products import side_product_meta
from .models import (
    MODELS,
    REFERENCE_MODELS,
    DarkDecaySignalRefModel,
    DarkRefModel,
    DistortionRefModel,
    FlatRefModel,
    GainRefModel,
    IntegralNonlinearityRefModel,
    ImageModel,
    LinearityRefModel,
    MaskRefModel,
    PhotomRefModel,
    RampModel,
    RawModel,
    ReadnoiseRefModel,
    SaturationRefModel,
    SegmentationModel,
    WcsModel,
)

__all__ = [
    "MODELS",
    "REFERENCE_MODELS",
    "ROMAN",
    "DataModel",
    "DataModelError",
    "DarkDecaySignalRefModel",
    "DarkRefModel",
    "DistortionRefModel",
    "FlatRefModel",
    "GainRefModel",
    "IntegralNonlinearityRefModel",
    "ImageModel",
    "LinearityRefModel",
    "MaskRefModel",
    "Node",
    "PhotomRefModel",
    "RampModel",
    "RawModel",
    "ReadnoiseRefModel",
    "SaturationRefModel",
    "SegmentationModel",
    "WcsModel",
    "dqflags",
    "model_type_of",
    "open",
    "side_product_meta",
    "write_tree",
]


ROMAN = "roman"  # what model_type_of says of a Roman mission file


def model_type_of(path):
    """The ``meta.model_type`` recorded in an ASDF file, without reading its arrays
    (:data:`ROMAN` for a file of the Roman mission's own formats)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataModelError(f"{path}: no such file")
    load_asdf_extensions()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a Roman file's tags are unknown without roman_datamodels
            # A lazy tree converts only what is read: not the WCS a calibrated image carries.
            with asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True) as af:
                if roman.is_roman_tree(af.tree):
                    return ROMAN
                meta = af.tree.get("meta")
                model_type = meta.get("model_type") if isinstance(meta, Mapping) else None
    except Exception as err:
        first = str(err).strip().splitlines()
        raise DataModelError(
            f"{path}: not a readable ASDF file ({first[0] if first else type(err).__name__})"
        ) from None
    if model_type is None:
        raise DataModelError(f"{path}: invalid at meta.model_type: missing (not a calpipe file?)")
    if model_type not in MODELS:
        raise DataModelError(
            f"{path}: invalid at meta.model_type: unknown model type {model_type!r}"
        )
    return model_type


def open(init, checksums=True, **kwargs):  # noqa: A001 - the conventional name for a datamodels opener
    """Open a file (or pass through a model) as the model class its metadata names.

    ``checksums=False`` skips verifying the array blocks (for a file verified before and
    unchanged since).

    An association file (``.json``) opens as a :class:`calpipe.datamodels.association.ModelLibrary`.
    """
    if isinstance(init, DataModel):
        return init
    if hasattr(init, "crds_observatory") and hasattr(init, "borrow"):
        return init  # already a library
    path = os.fspath(init)
    if path.endswith(".json"):
        from .association import ModelLibrary

        return ModelLibrary(path, **kwargs)
    model_type = model_type_of(path)
    if model_type == ROMAN:
        return roman.open_roman(path)
    return MODELS[model_type](path, checksums=checksums)
