"""calpipe's data models: ASDF files with a schema per kind, opened with :func:`open`."""

import os

import asdf

from calpipe import dqflags
from .core import DataModel, DataModelError, Node, write_tree
from .products import side_product_meta
from .models import (
    MODELS,
    REFERENCE_MODELS,
    DarkRefModel,
    DistortionRefModel,
    FlatRefModel,
    GainRefModel,
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
    "DataModel",
    "DataModelError",
    "DarkRefModel",
    "DistortionRefModel",
    "FlatRefModel",
    "GainRefModel",
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


def model_type_of(path):
    """The ``meta.model_type`` recorded in an ASDF file, without reading its arrays."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataModelError(f"{path}: no such file")
    try:
        with asdf.open(path, lazy_load=True, memmap=False) as af:
            meta = af.tree.get("meta")
            model_type = meta.get("model_type") if isinstance(meta, dict) else None
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


def open(init, **kwargs):  # noqa: A001 - the conventional name for a datamodels opener
    """Open a file (or pass through a model) as the model class its metadata names.

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
    return MODELS[model_type_of(path)](path)
