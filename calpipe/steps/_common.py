"""Small helpers shared by the step modules."""

from calpipe.errors import InputError
from calpipe.references.store import MissingReferenceError

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


def detector_number(name):
    """The number of a WFI detector name (``WFI07`` -> 7), or None for another name."""
    text = str(name or "").upper()
    return int(text[3:]) if text.startswith("WFI") and text[3:].isdigit() else None


def optional_reference(step, model, reftype):
    """``(reference, None)``, or ``(None, reason)`` when no store or no ``reftype`` in it fits
    the exposure, or ``override_<reftype>`` is N/A."""
    override = step.get_ref_override(reftype)
    if isinstance(override, str) and override.strip() == "N/A":
        return None, f"override_{reftype} is N/A"
    try:
        return step.open_reference(model, reftype), None
    except MissingReferenceError as err:
        return None, str(err)


def skip(step, model, log, reason):
    """Leave ``model`` as it is, marked SKIPPED, with the reason in the log."""
    log.info("%s skipped: %s", step.class_alias, reason)
    step.record(model, "SKIPPED")
    return model
