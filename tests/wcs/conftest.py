"""Fixtures of the WCS, catalog and alignment tests (defined in sky_field.py)."""

from sky_field import distortion, field_factory  # noqa: F401
