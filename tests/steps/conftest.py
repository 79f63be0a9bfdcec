"""Fixtures of the sky steps' tests: a distortion reference file and a 600-star field."""

import socket

import pytest
from support.sky_field import Field

from calpipe import datamodels as dm
from calpipe.simulate import sky


@pytest.fixture(scope="module")
def distortion_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("refs") / "wfi01_distortion.asdf"
    return dm.DistortionRefModel(sky.distortion_reference_tree()).save(path)


@pytest.fixture(scope="module")
def field(distortion):
    return Field(distortion, 600, seed=3)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection raises."""
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
