"""The Roman mission's file formats, both directions: the one place in calpipe that knows them.

Reading (``open_roman``):

- a Level-1 exposure (``ScienceRawModel``, any schema version the installed
  ``roman_datamodels`` reads) becomes a :class:`~calpipe.datamodels.RawModel` after what the
  Roman pipeline's dq_init does first: the on-board reference read (``reference_read``, in
  older versions ``reset_read``) is added back, ``meta.instrument.data_encoding_offset`` is
  subtracted, ``resultantdq`` becomes the initial group DQ, and the guide window is flagged in
  the initial pixel DQ (GW_AFFECTED_DATA on the columns read with it, DO_NOT_USE as well
  inside it; the sentinel -999999 means no window). ``read_pattern`` and ``frame_time`` must
  agree with the data. Counts that fall outside 0..65535 after this arithmetic are clipped and
  flagged (AD_FLOOR | DO_NOT_USE below, SATURATED above). The full Roman metadata rides along
  in ``meta.roman``; ``amp33`` is kept.
- a reference file (mask, saturation, linearity, dark, gain, readnoise, flat, photom,
  distortion, darkdecaysignal, integralnonlinearity) becomes calpipe's reference model of
  that type. Conventions that differ are converted here: the dark is its ``dark_slope``
  (DN/s); the distortion takes science-array pixels in the Roman files and full-detector
  pixels (border included) in calpipe; the Roman linearity polynomial and integral
  non-linearity table apply to raw counts with the bias level in, which their models record
  as ``meta.input_counts = "raw"``; the dark decay table, one file for every detector, serves
  any detector (``ANY``). Read noise is per read in both.

Writing: ``write_image`` (a calibrated image as a Roman Level-2 ``ImageModel``),
``write_segmentation`` (its segmentation map as a ``SegmentationMapModel``),
``write_raw`` and ``write_reference`` (used by ``calpipe simulate --format roman``).
"""

import contextlib
import os
import warnings

import numpy as np

from calpipe import dqflags
from calpipe.atomic import atomic_path
from calpipe.detector import BORDER

from .core import DataModelError, _one_line

EXTRA_HINT = 'install calpipe\'s Roman support with: pip install "calpipe[roman]"'
SENTINEL = -999999
# calpipe step alias -> Roman ``meta.cal_step`` key
CAL_STEP_NAMES = {
    "dq_init": "dq_init", "saturation": "saturation", "refpix": "refpix", "dark_decay": "dark_decay",
    "wfi18_transient": "wfi18_transient", "linearity": "linearity",
    "ramp_fit": "ramp_fit", "dark_current": "dark", "assign_wcs": "assign_wcs", "flat_field": "flat_field",
    "photom": "photom", "source_catalog": "source_catalog", "tweakreg": "tweakreg",
}
# Reference types whose choice depends on the optical element (the others name one in their
# metadata, but it does not restrict their use)
SELECTED_BY_ELEMENT = ("flat", "distortion", "epsf", "apcorr", "abvegaoffset")
# Roman reference model class -> calpipe reftype
REFERENCE_CLASSES = {
    "MaskRefModel": "mask", "SaturationRefModel": "saturation", "LinearityRefModel": "linearity",
    "DarkRefModel": "dark", "GainRefModel": "gain", "ReadnoiseRefModel": "readnoise",
    "FlatRefModel": "flat", "WfiImgPhotomRefModel": "photom", "DistortionRefModel": "distortion",
    "DarkdecaysignalRefModel": "darkdecaysignal", "IntegralnonlinearityRefModel": "integralnonlinearity",
}
# Reference types that tabulate every detector in one file: indexed and read as serving any
# detector (the step takes the exposure's row of the table)
ALL_DETECTOR_TABLES = ("darkdecaysignal",)
ANY_DETECTOR = "ANY"


def is_roman_tree(tree):
    """Whether an ASDF tree is a Roman file (its root key is ``roman``)."""
    return isinstance(tree, dict) and "roman" in tree and "meta" not in tree


def _rdm(path=None):
    try:
        import roman_datamodels.datamodels as rdm
    except ImportError:
        where = f"{path}: " if path else ""
        raise DataModelError(f"{where}a Roman file (tree root 'roman'); {EXTRA_HINT}") from None
    return rdm


@contextlib.contextmanager
def _quiet():
    """Silence the schema-version and tag warnings of roman_datamodels and asdf (none a user can act on)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# Bytes asdf reads at a time. The Roman files' arrays are lz4-compressed in chunks of 4 MiB;
# asdf's own default (one file-system block) reassembles each chunk from some thousand reads in
# Python, which took longer than decompressing it (docs/roman.md, "Speed and memory").
READ_BLOCK_BYTES = 16 * 2**20


@contextlib.contextmanager
def _reading():
    """asdf set up for reading Roman files: large reads, the lz4 chunks decompressed on every
    thread (:mod:`calpipe.datamodels._parallel_lz4`). Arrays are read when first used: use
    them inside."""
    from ._parallel_lz4 import reading

    with reading() as config:
        config.io_block_size = READ_BLOCK_BYTES
        yield


def _read(path):
    rdm = _rdm(path)
    try:
        with _quiet():
            return rdm.open(path)
    except Exception as err:
        raise DataModelError(f"{path}: not a readable Roman file ({_one_line(err)})") from None


# ----------------------------------------------------------------------------- reading
def open_roman(path):
    """Open a Roman Level-1 exposure or reference file as the calpipe model it corresponds to."""
    path = os.fspath(path)
    with _reading():
        model = _read(path)
        kind = type(model).__name__
        try:
            if kind == "ScienceRawModel":
                return _raw_from_roman(model, path)
            if kind in REFERENCE_CLASSES:
                return _reference_from_roman(model, REFERENCE_CLASSES[kind], path)
        except (ValueError, OSError, EOFError) as err:  # the arrays are read here
            raise DataModelError(f"{path}: damaged or truncated array data ({_one_line(err)})") from None
        finally:
            model.close()
    readable = ", ".join(["ScienceRawModel", *REFERENCE_CLASSES])
    raise DataModelError(f"{path}: a Roman {kind}, not one calpipe reads (expected one of {readable})")


def reference_meta(path):
    """A Roman reference file's metadata as calpipe indexes it (``None`` if it is not one).

    Reads no arrays. Every Roman reference type is indexed; those calpipe converts are in
    :data:`REFERENCE_CLASSES`.
    """
    with _reading(), _read(path) as model:
        meta = _plain(model.meta)
        kind = type(model).__name__
    if "reftype" not in meta:
        return None
    instrument = meta.get("instrument", {})
    if not _valid(meta.get("useafter")) or not instrument.get("detector"):
        raise DataModelError(f"{path}: invalid at roman.meta: a reference file needs useafter and instrument.detector")
    entry = {
        "reftype": str(meta["reftype"]).lower(),
        "model_type": kind,
        "instrument": {"name": str(instrument.get("name", "WFI")), "detector": str(instrument["detector"])},
        "useafter": _isot(meta["useafter"]),
        "description": str(meta.get("description", "")),
    }
    if entry["reftype"] in ALL_DETECTOR_TABLES:
        entry["instrument"]["detector"] = ANY_DETECTOR
    if instrument.get("optical_element") and entry["reftype"] in SELECTED_BY_ELEMENT:
        entry["instrument"]["optical_element"] = str(instrument["optical_element"])
    return entry


def _plain(value):
    """Roman metadata as plain dicts, lists and scalars (astropy Time kept)."""
    if hasattr(value, "items") and not hasattr(value, "shape"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "LNode":
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        return str(value)
    return value


def _valid(value):
    return value is not None and not (isinstance(value, (int, float)) and (value == SENTINEL or not np.isfinite(value)))


def _isot(value):
    from astropy.time import Time

    return Time(value).isot


def _get(model, name):
    try:
        return getattr(model, name)
    except (AttributeError, KeyError):
        return None


def _array(model, name, path, dtype, ndim, required=True):
    value = _get(model, name)
    if value is None:
        if required:
            raise DataModelError(f"{path}: invalid at roman.{name}: missing (a Roman file needs it)")
        return None
    array = np.asarray(value)
    if array.dtype != np.dtype(dtype) or array.ndim != ndim:
        raise DataModelError(
            f"{path}: invalid at roman.{name}: {array.dtype} with {array.ndim} dimensions, "
            f"expected {np.dtype(dtype)} with {ndim}"
        )
    return array


def _check_pattern(meta, nres, path):
    exposure = meta.get("exposure", {})
    pattern = exposure.get("read_pattern")
    try:
        pattern = [[int(k) for k in reads] for reads in pattern]
    except (TypeError, ValueError):
        pattern = None
    flat = [k for reads in pattern or [] for k in reads]
    if not pattern or any(not r for r in pattern) or flat[0] < 1 or any(b <= a for a, b in zip(flat, flat[1:])):
        raise DataModelError(
            f"{path}: invalid at roman.meta.exposure.read_pattern: {exposure.get('read_pattern')!r}, "
            "expected lists of increasing read numbers >= 1, one list per resultant"
        )
    if len(pattern) != nres:
        raise DataModelError(
            f"{path}: invalid at roman.meta.exposure.read_pattern: lists {len(pattern)} resultants "
            f"but data holds {nres}"
        )
    declared = exposure.get("nresultants")
    if _valid(declared) and declared != nres:
        raise DataModelError(
            f"{path}: invalid at roman.meta.exposure.nresultants: {declared}, but data holds {nres} resultants"
        )
    frame_time = exposure.get("frame_time")
    if not _valid(frame_time) or not frame_time > 0:
        raise DataModelError(
            f"{path}: invalid at roman.meta.exposure.frame_time: {frame_time!r}, expected seconds per read > 0"
        )
    return pattern, float(frame_time)


def guide_window_dq(meta, shape):
    """Initial pixel DQ of the guide window (full-detector pixels; all zero when there is none)."""
    dq = np.zeros(shape, np.uint32)
    window = meta.get("guide_star", {})
    corners = [window.get(f"window_{k}") for k in ("xstart", "xstop", "ystart", "ystop")]
    if not all(_valid(c) for c in corners):
        return dq
    x0, x1, y0, y1 = (int(c) for c in corners)
    ny, nx = shape
    if not (0 <= x0 < nx and 0 <= y0 < ny):
        return dq
    dq[:, x0:x1] |= np.uint32(dqflags.GW_AFFECTED_DATA)
    dq[y0:y1, x0:x1] |= np.uint32(dqflags.GW_AFFECTED_DATA | dqflags.DO_NOT_USE)
    return dq


def _raw_from_roman(model, path):
    from .models import RawModel

    meta = _plain(model.meta)
    data = _array(model, "data", path, np.uint16, 3)
    nres, ny, nx = data.shape
    amp33 = _array(model, "amp33", path, np.uint16, 3)
    if amp33.shape[:2] != (nres, ny):
        raise DataModelError(f"{path}: invalid at roman.amp33: shape {amp33.shape}, expected ({nres}, {ny}, ...)")
    if ny != nx or nx < 64 or nx % 32:
        raise DataModelError(
            f"{path}: invalid at roman.data: frame {ny}x{nx}, calpipe needs a full square frame "
            "(a multiple of 32 pixels, at least 64) with its 4-pixel reference border"
        )
    pattern, frame_time = _check_pattern(meta, nres, path)
    resultantdq = _array(model, "resultantdq", path, np.uint8, 3, required=False)
    if resultantdq is not None and resultantdq.shape != data.shape:
        raise DataModelError(f"{path}: invalid at roman.resultantdq: shape {resultantdq.shape}, expected {data.shape}")
    names = [n for n in ("reference_read", "reset_read") if _get(model, n) is not None]
    reference = _array(model, names[0], path, np.uint16, 2) if names else None
    if reference is not None and reference.shape != (ny, nx):
        raise DataModelError(f"{path}: invalid at roman.{names[0]}: shape {reference.shape}, expected {(ny, nx)}")
    offset = meta.get("instrument", {}).get("data_encoding_offset")
    offset = int(offset) if _valid(offset) else 0

    counts, groupdq = _decode(_owned(data), None if resultantdq is None else _owned(resultantdq), reference, offset)
    amp33 = amp33.astype(np.int32)
    reference_amp33 = _get(model, "reference_amp33")
    if reference_amp33 is None:
        reference_amp33 = _get(model, "reset_amp33")
    if reference_amp33 is not None and np.shape(reference_amp33) == amp33.shape[1:]:
        amp33 += np.asarray(reference_amp33)
    amp33 = np.clip(amp33 - offset, 0, 65535).astype(np.uint16)

    instrument = meta.get("instrument", {})
    exposure = meta.get("exposure", {})
    calpipe_meta = {
        "telescope": meta.get("telescope", "ROMAN"),
        "instrument": {"name": str(instrument.get("name", "WFI")), "detector": str(instrument.get("detector")),
                       "optical_element": str(instrument.get("optical_element"))},
        "exposure": {"type": str(exposure.get("type")), "start_time": _isot(exposure.get("start_time")),
                     "nresultants": nres, "read_pattern": pattern, "frame_time": frame_time,
                     "exposure_time": frame_time * pattern[-1][-1]},
        "observation": {k: v for k, v in meta.get("observation", {}).items() if _valid(v)},
        "roman": meta,
    }
    wcsinfo = meta.get("wcsinfo", {})
    keys = ("ra_ref", "dec_ref", "v2_ref", "v3_ref", "roll_ref")
    if all(_valid(wcsinfo.get(k)) for k in keys):
        calpipe_meta["wcsinfo"] = {k: float(wcsinfo[k]) for k in keys}
        scale = meta.get("velocity_aberration", {}).get("scale_factor")
        if _valid(scale) and scale > 0:
            calpipe_meta["wcsinfo"]["va_scale"] = float(scale)
    arrays = {} if groupdq is None else {"groupdq": groupdq}  # none: dq_init starts from zeros
    raw = RawModel(meta=calpipe_meta, data=counts, pixeldq=guide_window_dq(meta, (ny, nx)), amp33=amp33,
                   **arrays)
    raw.meta.filename = os.path.basename(path)
    raw.validate(path)
    return raw.mark_converted()


def _owned(array):
    """``array`` itself when it is writable and contiguous (what roman_datamodels reads from a
    file into memory, compressed or not: it maps no file), else a copy."""
    array = np.asarray(array)
    if array.flags.c_contiguous and array.flags.writeable:
        return array
    return np.array(array)


def _decode(data, groupdq, reference, offset):
    """The counts as read and their group DQ: in place in ``data`` (uint16), ``reference`` (a
    frame, or None) added back and the encoding ``offset`` removed; counts outside 0..65535
    clipped and flagged in ``groupdq`` (made when there is none and a count needs a flag)."""
    if reference is None and offset == 0:
        return data, groupdq
    plane = np.empty(data.shape[1:], np.int32)
    for i in range(data.shape[0]):
        if reference is None:
            np.copyto(plane, data[i])
        else:
            np.add(data[i], reference, out=plane, dtype=np.int32)
        plane -= offset
        low, high = plane.min() < 0, plane.max() > 65535
        if (low or high) and groupdq is None:
            groupdq = np.zeros(data.shape, np.uint8)
        if low:
            groupdq[i][plane < 0] |= np.uint8(dqflags.AD_FLOOR | dqflags.DO_NOT_USE)
        if high:
            groupdq[i][plane > 65535] |= np.uint8(dqflags.SATURATED)
        np.clip(plane, 0, 65535, out=plane)
        np.copyto(data[i], plane, casting="unsafe")
    return data, groupdq


def _reference_from_roman(model, reftype, path):
    from astropy.modeling import models

    from .models import REFERENCE_MODELS

    meta = _plain(model.meta)
    instrument = meta.get("instrument", {})
    ref_meta = {
        "reftype": reftype,
        "instrument": {"name": str(instrument.get("name", "WFI")).upper(),
                       "detector": str(instrument.get("detector", "")).upper()},
        "useafter": _isot(meta.get("useafter")),
        "description": str(meta.get("description", "")),
        "author": str(meta.get("author", "")),
        "pedigree": str(meta.get("pedigree", "")),
        "origin": "roman",
    }
    if instrument.get("optical_element"):
        ref_meta["instrument"]["optical_element"] = str(instrument["optical_element"]).upper()
    arrays = {}

    def take(name, dtype, ndim, as_name=None, required=True):
        array = _array(model, name, path, dtype, ndim, required)
        if array is not None:
            arrays[as_name or name] = _owned(array)

    if reftype == "mask":
        take("dq", np.uint32, 2)
    elif reftype in ("saturation", "flat"):
        take("data", np.float32, 2)
        take("dq", np.uint32, 2)
        if reftype == "flat":
            take("err", np.float32, 2, required=False)
            if "err" not in arrays:
                arrays["err"] = np.zeros(arrays["data"].shape, np.float32)
    elif reftype == "linearity":
        take("coeffs", np.float32, 3)
        take("dq", np.uint32, 2)
        ref_meta["input_counts"] = "raw"
    elif reftype == "dark":
        take("dark_slope", np.float32, 2, as_name="data")
        take("dq", np.uint32, 2)
    elif reftype in ("gain", "readnoise"):
        take("data", np.float32, 2)
    elif reftype == "darkdecaysignal":
        ref_meta["instrument"]["detector"] = ANY_DETECTOR
        arrays["decay_table"] = {
            str(name).upper(): {key: (None if row.get(key) is None else float(row[key]))
                                for key in ("amplitude", "time_constant")}
            for name, row in _plain(model.decay_table).items()
        }
    elif reftype == "integralnonlinearity":
        arrays["value"], arrays["correction"] = _inl_arrays(model, path)
        ref_meta["input_counts"] = "raw"
    elif reftype == "photom":
        arrays["phot_table"] = {
            str(k).upper(): {name: (None if v is None else float(getattr(v, "value", v)))
                             for name, v in _plain(row).items() if name in ("photmjsr", "uncertainty", "pixelareasr")}
            for k, row in _plain(model.phot_table).items() if row is not None
        }
    elif reftype == "distortion":
        transform = model.coordinate_distortion_transform
        # Roman: science-array pixels; calpipe: full-detector pixels (border included)
        arrays["coordinate_distortion_transform"] = (
            models.Shift(-BORDER) & models.Shift(-BORDER)) | transform
    model_class = REFERENCE_MODELS[reftype]
    ref = model_class(meta=ref_meta, **arrays)
    ref.meta.filename = os.path.basename(path)
    ref.validate(path)
    return ref.mark_converted()


def _inl_arrays(model, path):
    """The counts and the per-channel corrections (channel 1 first) of a Roman integral
    non-linearity file; a channel without a correction gets zeros."""
    value = _array(model, "value", path, np.uint16, 1)
    table = _plain(model.inl_table)
    numbers = sorted(int(name.rsplit("_", 1)[1]) for name in table)
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise DataModelError(
            f"{path}: invalid at roman.inl_table: channels {numbers}, expected science_channel_01 "
            "onwards without gaps")
    correction = np.zeros((len(numbers), value.size), np.float64)
    for n in numbers:
        row = table[f"science_channel_{n:02d}"].get("correction")
        if row is not None:
            row = np.asarray(row, np.float64)
            if row.shape != value.shape:
                raise DataModelError(
                    f"{path}: invalid at roman.inl_table.science_channel_{n:02d}.correction: shape "
                    f"{row.shape}, expected {value.shape} (one per entry of value)")
            correction[n - 1] = row
    return np.array(value), correction


# ----------------------------------------------------------------------------- writing
def _atomic_save(roman_model, path):
    with atomic_path(path) as tmp, _quiet():
        roman_model.to_asdf(tmp)
    return os.fspath(path)


def _overlay(target, source):
    """Copy the values of ``source`` onto the keys ``target`` (a Roman node) already has."""
    for key, value in source.items():
        if key not in target:
            continue
        current = target[key]
        if hasattr(current, "items") and isinstance(value, dict):
            _overlay(current, value)
        elif value is not None:
            target[key] = value


def _cal_step_keys():
    """The Level-2 ``meta.cal_step`` keys of the installed roman_datamodels."""
    try:
        from roman_datamodels import stnode
    except ImportError:  # roman_datamodels >= 1.2 keeps it private
        from roman_datamodels import _stnode as stnode
    # newer image schemas also require steps the cal_step maker does not list yet
    return sorted(set(stnode.L2CalStep.create_minimal()) | {"dark_decay", "wfi18_transient"})


def _float16(array, rows_at_once=256):
    """Values for a reduced-precision Roman array: finite ones clipped to the float16 range
    (NaN and infinities kept), converted a block of rows at a time on every thread."""
    from calpipe.kernels.threads import on_row_blocks

    array = np.asarray(array, np.float32)
    limit = np.float32(np.finfo(np.float16).max)
    out = np.empty(array.shape, np.float16)

    def convert(rows):
        with np.errstate(over="ignore"):
            out[rows] = array[rows]
        overflowed = np.isinf(out[rows])  # rare: only then are the finite ones among them found
        if overflowed.any():
            source = array[rows][overflowed]
            out[rows][overflowed] = np.where(np.isinf(source), source, np.copysign(limit, source))

    on_row_blocks(convert, array.shape[0], rows_at_once)
    return out


def _product_meta(target, meta, path):
    """Fill the metadata ``target`` of a Roman Level-2 product from calpipe's image ``meta``:
    the Level-1 metadata of a Roman input (else what calpipe's metadata says), the software,
    the reference files used and the photometry, where the product's schema has them."""
    from astropy.time import Time

    from calpipe import __version__

    roman_meta = dict(meta.get("roman") or _roman_meta(meta))
    for key in ("filename", "model_type", "cal_step", "ref_file", "photometry", "wcs", "cal_logs"):
        roman_meta.pop(key, None)
    _overlay(target, roman_meta)
    target.filename = os.path.basename(path)
    target.file_date = Time.now()
    target.calibration_software_name = "calpipe"
    target.calibration_software_version = __version__
    if "ref_file" in target:
        for reftype, used in meta.get("ref_file", {}).items():
            if reftype in target.ref_file:
                target.ref_file[reftype] = os.path.basename(str(used))
    if "photometry" in target:
        photometry = meta.get("photometry", {})
        target.photometry = {
            "conversion_megajanskys": photometry.get("conversion_megajanskys"),
            "conversion_megajanskys_uncertainty": photometry.get("conversion_megajanskys_uncertainty"),
            "pixel_area": photometry.get("pixelarea_steradians"),
        }


# roman_datamodels' limit: arrays of at most this many elements are written in the tree
INLINE_ELEMENTS = 512
LZ4_SAMPLE_BYTES = 2**20


def _blank(model_class):
    """A product of roman_datamodels' ``model_class`` with every required metadata key, made by
    its maker, and the maker's arrays: tiny ones, each to be replaced by the writer (full-size
    ones would be made and thrown away); :func:`_validated_write` refuses a product that
    still holds one."""
    with _quiet():
        product = model_class.create_fake_data(shape=(2, 2))
    return product, [value for _, value in _arrays(product)]


def _arrays(product):
    """(name, array) of every array in a roman_datamodels product."""
    return [(name, value) for name, value in product.items() if isinstance(value, np.ndarray)]


def _validated_write(product, path, what, blanks=()):
    """Write ``product`` to ``path`` (a temporary name: the writers of calpipe's models rename
    it into place); asdf validates it against its schema before it writes a block, and nothing
    is left at ``path`` when it does not validate. ``blanks``: the arrays of :func:`_blank`,
    none of which may be left in it.

    As roman_datamodels writes it (the same tree, small arrays inline), except that an array
    is lz4-compressed only where lz4 makes it smaller (:func:`_lz4_pays`): the science arrays
    of a calibrated image are noise, which lz4 stores 0.4 % larger than they are, at the cost
    of compressing them and of copying what it makes. The blocks are hashed in parallel
    (:func:`calpipe.datamodels.core.write_asdf`).
    """
    import asdf
    from asdf.exceptions import ValidationError

    from .core import write_asdf

    arrays = _arrays(product)
    left = [name for name, value in arrays if any(value is blank for blank in blanks)]
    if left:
        raise DataModelError(f"{path}: calpipe does not fill the arrays {', '.join(left)} of the Roman "
                             f"{what} of roman_datamodels {_rdm_version()}")
    af = asdf.AsdfFile()
    af["roman"] = _node(product)
    for _, value in arrays:
        if value.size > INLINE_ELEMENTS and _lz4_pays(value):
            af.set_array_compression(value, "lz4")
    try:
        with _quiet(), asdf.config_context() as config:
            config.array_inline_threshold = INLINE_ELEMENTS
            write_asdf(af, path)
    except ValidationError as err:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        raise DataModelError(f"{path}: the Roman {what} does not validate ({_one_line(err)})") from None
    return path


def _lz4_pays(array, samples=4):
    """Whether lz4 stores ``array`` at least a tenth smaller, judged on ``samples`` slices of
    1 MiB spread over it (the whole array when it is smaller than they are)."""
    import lz4.block

    data = memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    if len(data) <= samples * LZ4_SAMPLE_BYTES:
        slices = [data]
    else:
        last = len(data) - LZ4_SAMPLE_BYTES
        slices = [data[k * last // (samples - 1):][:LZ4_SAMPLE_BYTES] for k in range(samples)]
    stored = sum(len(lz4.block.compress(piece)) for piece in slices)
    return stored < 0.9 * sum(len(piece) for piece in slices)


def _rdm_version():
    from importlib.metadata import version

    return version("roman_datamodels")


def _node(product):
    """The tree of a roman_datamodels model, which its ``to_asdf`` writes under ``roman``: a
    private attribute (no public one gives it); ``tests/datamodels/test_roman.py`` fails when
    a new roman_datamodels moves it."""
    return product._instance


def write_image(model, path):
    """Write a calpipe ImageModel as a Roman Level-2 image that ``roman_datamodels`` validates."""
    rdm = _rdm()
    path = os.fspath(path)
    tree = model.tree
    meta = tree["meta"]
    ny, nx = tree["data"].shape
    nres = int(meta["exposure"]["nresultants"])
    image, blanks = _blank(rdm.ImageModel)
    _product_meta(image.meta, meta, path)
    done = meta.get("cal_step", {})
    image.meta.cal_step = {
        key: next((done[a] for a, r in CAL_STEP_NAMES.items() if r == key and a in done), "INCOMPLETE")
        for key in _cal_step_keys()
    }
    image.meta.wcs = meta.get("wcs")
    if meta.get("cal_logs"):
        image.meta.cal_logs = list(meta["cal_logs"])

    zeros = np.zeros((ny, nx), np.float16)
    image.data = np.asarray(tree["data"], np.float32)
    image.dq = np.asarray(tree["dq"], np.uint32)
    image.dq2 = np.zeros((ny, nx), np.uint32)
    image.err = _float16(tree["err"])
    image.var_poisson = _float16(tree["var_poisson"])
    image.var_rnoise = _float16(tree["var_rnoise"])
    image.var_flat = _float16(tree["var_flat"]) if "var_flat" in tree else zeros
    image.chisq = zeros
    image.dumo = zeros
    full = ny + 2 * BORDER
    amp33 = tree.get("amp33")
    image.amp33 = np.asarray(amp33, np.uint16) if amp33 is not None else np.zeros((nres, full, 128), np.uint16)
    border = tree.get("reference_border") or {}
    shapes = {"left": (nres, full, BORDER), "right": (nres, full, BORDER),
              "top": (nres, BORDER, full), "bottom": (nres, BORDER, full)}
    for side, shape in shapes.items():
        values = border.get(side)
        image[f"border_ref_pix_{side}"] = (np.asarray(values, np.float32) if values is not None
                                           else np.zeros(shape, np.float32))
        dq = border.get(f"dq_{side}")
        image[f"dq_border_ref_pix_{side}"] = (np.asarray(dq, np.uint32) if dq is not None
                                              else np.zeros(shape[1:], np.uint32))
    return _validated_write(image, path, "Level-2 image", blanks)


def write_segmentation(data, meta, path):
    """Write a segmentation map (labels, science array) as a Roman ``SegmentationMapModel``;
    ``meta`` is the calibrated image's metadata (calpipe's)."""
    rdm = _rdm()
    path = os.fspath(path)
    data = np.asarray(data)
    segm, blanks = _blank(rdm.SegmentationMapModel)
    _product_meta(segm.meta, meta, path)
    segm.data = data.astype(np.uint32)
    return _validated_write(segm, path, "segmentation map", blanks)



def _roman_meta(meta):
    """The Roman metadata that calpipe's exposure metadata ``meta`` holds."""
    from astropy.time import Time, TimeDelta

    exposure = meta["exposure"]
    start = Time(exposure["start_time"])
    duration = exposure.get("exposure_time") or exposure["frame_time"] * exposure["read_pattern"][-1][-1]
    roman_meta = {
        "exposure": {"type": exposure["type"], "start_time": start, "end_time": start + TimeDelta(duration, format="sec"),
                     "nresultants": len(exposure["read_pattern"]), "frame_time": float(exposure["frame_time"]),
                     "exposure_time": float(duration),
                     "read_pattern": [[int(k) for k in reads] for reads in exposure["read_pattern"]]},
        "instrument": {"detector": meta["instrument"]["detector"],
                       "optical_element": meta["instrument"]["optical_element"]},
        "observation": {k: v for k, v in meta.get("observation", {}).items() if isinstance(v, int)},
    }
    wcsinfo = meta.get("wcsinfo") or {}
    if all(k in wcsinfo for k in ("ra_ref", "dec_ref", "v2_ref", "v3_ref", "roll_ref")):
        roman_meta["wcsinfo"] = {k: float(wcsinfo[k]) for k in ("ra_ref", "dec_ref", "v2_ref", "v3_ref", "roll_ref")}
        roman_meta["velocity_aberration"] = {"scale_factor": float(wcsinfo.get("va_scale", 1.0))}
    return roman_meta


def write_raw(path, raw, *, reference_read=None, data_encoding_offset=0):
    """Write a calpipe RawModel as a Roman Level-1 exposure (``ScienceRawModel``).

    As on board: ``reference_read`` (uint16, one frame), when given, is subtracted from every
    resultant and ``data_encoding_offset`` added, so that reading the file back (which undoes
    both) returns ``raw.data``. Metadata the calpipe model lacks keeps the maker's defaults.
    """
    rdm = _rdm()
    meta = raw.meta.to_dict()
    data = raw.data
    nres, ny, nx = data.shape
    roman_meta = _roman_meta(meta)
    with _quiet():
        out = rdm.ScienceRawModel.create_fake_data(shape=(nres, ny, nx))
    _overlay(out.meta, roman_meta)
    out.meta.filename = os.path.basename(path)
    out.meta.instrument.data_encoding_offset = int(data_encoding_offset)
    encoded = np.empty(data.shape, np.uint16)
    for i in range(nres):
        plane = data[i].astype(np.int32) + int(data_encoding_offset)
        if reference_read is not None:
            plane -= reference_read
        if plane.min() < 0 or plane.max() > 65535:
            raise ValueError("data_encoding_offset and reference_read take the counts outside 0..65535")
        encoded[i] = plane
    out.data = encoded
    amp33 = raw.tree.get("amp33")
    out.amp33 = np.asarray(amp33, np.uint16) if amp33 is not None else np.zeros((nres, ny, 128), np.uint16)
    if reference_read is not None:
        out.reference_read = np.asarray(reference_read, np.uint16)
        out.reference_amp33 = np.zeros((ny, 128), np.uint16)
    if "groupdq" in raw:
        out.resultantdq = np.asarray(raw.groupdq, np.uint8)
    with _quiet():
        out.validate()
    return _atomic_save(out, path)


def linearity_for_raw_counts(coeffs, bias):
    """Rewrite a polynomial for bias-removed counts as one for raw counts, as Roman's are.

    ``coeffs`` (ncoeff, ny, nx), lowest power first, map bias-removed measured counts ``m`` to
    linear counts; ``bias`` (DN, broadcastable to (ny, nx)) is the level the raw counts sit on.
    The result ``P`` maps raw counts ``r`` to linear counts with the bias kept:
    ``P(r) = c(r - bias) + bias``. NaN coefficients stay NaN; all-zero ones stay zero.
    """
    from math import comb

    coeffs = np.asarray(coeffs, np.float64)
    bias = np.broadcast_to(np.asarray(bias, np.float64), coeffs.shape[1:])
    ncoeff = coeffs.shape[0]
    out = np.zeros_like(coeffs)
    for k in range(ncoeff):
        for j in range(k + 1):
            out[j] += coeffs[k] * comb(k, j) * (-bias) ** (k - j)
    usable = np.any(coeffs != 0, axis=0)
    out[0] += np.where(usable, bias, 0.0)
    return out.astype(np.float32)


def write_reference(path, reftype, ref, optical_element="F158"):
    """Write a calpipe reference model ``ref`` as the Roman reference file of ``reftype``.

    The inverse of what :func:`open_roman` does: the distortion is shifted to science-array
    pixels. A linearity must already apply to raw counts (see :func:`linearity_for_raw_counts`).
    Roman files name one optical element: ``optical_element`` where the calpipe file names
    none or a wildcard.
    """
    from astropy.modeling import models
    from astropy.time import Time

    rdm = _rdm()
    name = next(k for k, v in REFERENCE_CLASSES.items() if v == reftype)
    tree = ref.tree
    with _quiet():
        out = getattr(rdm, name).create_fake_data()
    meta = tree["meta"]
    instrument = dict(meta["instrument"])
    if "optical_element" in out.meta.instrument and str(instrument.get("optical_element") or "ANY").upper() in (
            "", "ANY", "N/A", "ALL"):
        instrument["optical_element"] = optical_element
    if instrument.get("detector") == ANY_DETECTOR:  # a Roman file names one detector all the same
        instrument["detector"] = sorted(tree["decay_table"])[0]
    _overlay(out.meta, {"instrument": instrument, "description": meta.get("description", ""),
                        "author": meta.get("author", ""), "pedigree": meta.get("pedigree", "DUMMY"),
                        "useafter": Time(meta["useafter"])})
    if reftype == "dark":
        out.dark_slope = np.asarray(tree["data"], np.float32)
        out.dark_slope_error = np.zeros_like(out.dark_slope)
        out.dq = np.asarray(tree["dq"], np.uint32)
    elif reftype == "photom":
        # the Roman table also wants the band's collecting and effective areas: calpipe has
        # none, so a flat unit response stands in
        out.phot_table = {
            k: {"photmjsr": float(v["photmjsr"]), "uncertainty": float(v["uncertainty"]),
                "pixelareasr": float(v["pixelareasr"]), "collecting_area": 4.0,
                "wavelength": np.array([1.0, 2.0], np.float32), "effective_area": np.ones(2, np.float32)}
            for k, v in tree["phot_table"].items()
        }
    elif reftype == "darkdecaysignal":
        out.decay_table = {name: {"amplitude": row["amplitude"], "time_constant": row["time_constant"]}
                           for name, row in tree["decay_table"].items()}
    elif reftype == "integralnonlinearity":
        correction = np.asarray(tree["correction"], np.float64)
        nchannels = correction.shape[0]
        number = int(str(instrument["detector"])[3:])
        out.meta.n_channels = nchannels
        out.meta.n_pixels_per_channel = 128  # columns per channel on a Roman detector
        out.value = np.asarray(tree["value"]).astype(np.uint16)
        # the detector frame numbers its channels from the other side where it is mirrored in x
        out.inl_table = {
            f"science_channel_{j + 1:02d}": {
                "instrument_channel": nchannels - 1 - j if number % 3 == 0 else j,
                "correction": correction[j].copy()}
            for j in range(nchannels)
        }
    elif reftype == "flat":  # Roman flats cover the science array only
        out.data, out.err, out.dq = (np.asarray(tree[k], out[k].dtype)[BORDER:-BORDER, BORDER:-BORDER]
                                     for k in ("data", "err", "dq"))
    elif reftype == "distortion":
        out.coordinate_distortion_transform = (
            models.Shift(BORDER) & models.Shift(BORDER)) | tree["coordinate_distortion_transform"]
    else:
        for key in ("data", "dq", "err", "coeffs"):
            if key in tree and key in out:
                out[key] = np.asarray(tree[key], np.asarray(out[key]).dtype)
    with _quiet():
        out.validate()
    return _atomic_save(out, path)
