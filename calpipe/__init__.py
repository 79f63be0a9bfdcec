"""calpipe: stepwise calibration pipelines for up-the-ramp infrared detectors."""

__version__ = "0.1.0"
