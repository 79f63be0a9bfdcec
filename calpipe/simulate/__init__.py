"""Synthetic exposures, a matching reference set, and the truth to test calibration against."""

from .exposure import (
    BORDER,
    FRAME_TIME,
    NCHANNELS,
    Detector,
    Exposure,
    check_read_pattern,
    default_read_pattern,
    linearity_coefficients,
    make_detector,
    make_scene,
    mean_read_times,
    nonlinear,
    render_sources,
    simulate_exposure,
)
from .write import DitheredSet, SimResult, SkyField, exposure_root, make_field, simulate, simulate_dithered, write_references

__all__ = [
    "BORDER",
    "FRAME_TIME",
    "NCHANNELS",
    "Detector",
    "DitheredSet",
    "Exposure",
    "SimResult",
    "SkyField",
    "check_read_pattern",
    "default_read_pattern",
    "exposure_root",
    "linearity_coefficients",
    "make_detector",
    "make_field",
    "make_scene",
    "mean_read_times",
    "nonlinear",
    "render_sources",
    "simulate",
    "simulate_dithered",
    "simulate_exposure",
    "write_references",
]
