"""Shared fixtures: small hand-built exposures and reference stores."""

import numpy as np
import pytest
from support.tiny_data import exposure_meta, write_tiny_exposure, write_tiny_store

from calpipe import datamodels as dm
from calpipe.simulate import sky


@pytest.fixture
def raw_model():
    data = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    return dm.RawModel(meta=exposure_meta(), data=data)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny noiseless exposure and its store (CALPIPE_REFS set); returns (uncal path, store)."""
    store = write_tiny_store(tmp_path / "refs")
    monkeypatch.setenv("CALPIPE_REFS", str(store))
    return write_tiny_exposure(tmp_path / "cp00001001001_0001_wfi01_uncal.asdf"), store


@pytest.fixture(scope="session")
def distortion():
    """The simulator's distortion model of a WFI detector."""
    return sky.distortion_model()
