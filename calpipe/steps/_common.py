"""Small helpers shared by the step modules."""

from calpipe.errors import InputError

# Exposure types that are not direct images: no flat field, catalog or alignment.
NON_IMAGING_PREFIXES = ("WFI_SPECTRAL", "WFI_PRISM", "WFI_GRISM", "WFI_DARK", "WFI_FLAT", "WFI_LOLO")


def is_imaging(model):
    return not str(model.meta.exposure.type).upper().startswith(NON_IMAGING_PREFIXES)


def check_shape(reference, name, expected, what):
    """Refuse a reference array whose shape does not fit the exposure."""
    if tuple(reference.shape) != tuple(expected):
        raise InputError(
            f"{what}: {name} has shape {tuple(reference.shape)}, the exposure needs {tuple(expected)}"
        )
