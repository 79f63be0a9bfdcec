"""Exposure pools: read Level-1 metadata, normalise it, group exposures into products.

A *pool* is a list of normalised exposure records. It can be built from files (calpipe's
``*_uncal.asdf`` exposures and JWST ``*_uncal.fits`` files) or read from a table (CSV, or the
``|``-separated pools of the JWST pipeline) whose columns are the header keywords below plus
``FILENAME``.
"""

import csv
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from calpipe.errors import CalpipeError

from . import naming
from .asn import AsnError, make_asn, write_asn

# Every normalised field and its type; a missing value becomes the type's default.
FIELD_TYPES = {
    "expname": str, "observatory": str,
    "program": int, "observtn": int, "visit": int, "exposure": int, "targetid": int,
    "nexposur": int, "numdthpt": int, "nresultants": int,
    "bkgdtarg": bool, "is_imprt": bool, "tsovisit": bool, "crowdfld": bool,
    "visitype": str, "targname": str, "instrume": str, "detector": str, "filter": str,
    "pupil": str, "grating": str, "fxd_slit": str, "exp_type": str, "channel": str,
    "band": str, "subarray": str, "start_time": str,
    "targ_ra": float, "targ_dec": float, "gs_ra": float, "gs_dec": float, "gs_mag": float,
    "ra_ref": float, "dec_ref": float, "crval1": float, "crval2": float, "frame_time": float,
    "image_size_kb": float,
}
DEFAULTS = {str: "NONE", int: 0, float: math.nan, bool: False}
_MISSING_TEXT = {"", "NONE", "N/A", "NULL", "NAN", "--", "UNKNOWN"}

JWST_PRIMARY = (
    "PROGRAM", "OBSERVTN", "NEXPOSUR", "BKGDTARG", "IS_IMPRT", "VISITYPE", "TSOVISIT",
    "TARGNAME", "TARG_RA", "TARG_DEC", "INSTRUME", "DETECTOR", "FILTER", "PUPIL", "GRATING",
    "FXD_SLIT", "EXP_TYPE", "CHANNEL", "BAND", "SUBARRAY", "NUMDTHPT", "GS_RA", "GS_DEC",
    "GS_MAG", "CROWDFLD", "VISIT", "EXPOSURE", "DATE-OBS", "TIME-OBS",
)
JWST_SCI = ("RA_REF", "DEC_REF", "CRVAL1", "CRVAL2")


class PoolError(CalpipeError, ValueError):
    """A pool or exposure that cannot be read; the message is one line."""


def _to_bool(value):
    if isinstance(value, str):
        return value.strip().upper() in ("T", "TRUE", "Y", "YES", "1")
    return bool(value)


def _convert(value, kind):
    if value is None:
        return DEFAULTS[kind]
    if isinstance(value, str) and value.strip().upper() in _MISSING_TEXT and kind is not bool:
        return DEFAULTS[kind]
    try:
        if kind is str:
            return str(value).strip().upper()
        if kind is bool:
            return _to_bool(value)
        if kind is int:
            return int(float(value))
        number = float(value)
        return number if math.isfinite(number) else math.nan
    except (TypeError, ValueError):
        return DEFAULTS[kind]


def normalise(raw):
    """A normalised exposure record from a mapping of keywords (any case; missing allowed)."""
    lower = {str(k).lower().replace("-", "_"): v for k, v in raw.items()}
    rec = {name: _convert(lower.get(name), kind) for name, kind in FIELD_TYPES.items()}
    rec["expname"] = str(lower.get("expname") or lower.get("filename") or "").strip()
    rec["observatory"] = "calpipe" if str(lower.get("observatory", "")).lower() == "calpipe" else "jwst"
    if rec["start_time"] == "NONE" and lower.get("date_obs"):
        rec["start_time"] = f"{lower['date_obs']}T{lower.get('time_obs') or '00:00:00'}".upper()
    # The reference pointing falls back to the WCS reference value, then to the target.
    for ref, alt, targ in (("ra_ref", "crval1", "targ_ra"), ("dec_ref", "crval2", "targ_dec")):
        if math.isnan(rec[ref]):
            rec[ref] = rec[alt] if not math.isnan(rec[alt]) else rec[targ]
    return rec


def read_calpipe_exposure(path):
    """Normalised record of a calpipe ASDF exposure (only ``meta`` is read)."""
    import asdf

    try:
        with asdf.open(path, lazy_load=True, memmap=False) as af:
            meta = af.tree.get("meta") or {}
            meta = _plain(meta)
    except Exception as exc:  # asdf raises many kinds for a bad file
        raise PoolError(f"{path}: cannot read ASDF metadata ({type(exc).__name__}: {exc})") from None
    sect = lambda name: meta.get(name) if isinstance(meta.get(name), dict) else {}  # noqa: E731
    inst, expo, obs = sect("instrument"), sect("exposure"), sect("observation")
    wcs, targ = sect("wcsinfo"), sect("target")
    raw = {
        "expname": Path(path).name, "observatory": "calpipe",
        "program": obs.get("program"), "observtn": obs.get("observation"), "visit": obs.get("visit"),
        "exposure": obs.get("exposure"),
        "instrume": inst.get("name"), "detector": inst.get("detector"),
        "filter": inst.get("optical_element"),
        "exp_type": expo.get("type"), "start_time": expo.get("start_time"),
        "nresultants": expo.get("nresultants"), "frame_time": expo.get("frame_time"),
        "targname": targ.get("name"), "targ_ra": targ.get("ra"), "targ_dec": targ.get("dec"),
        "ra_ref": wcs.get("ra_ref"), "dec_ref": wcs.get("dec_ref"),
        "image_size_kb": os.path.getsize(path) / 1024,
    }
    return normalise(raw)


def _plain(node):
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node if isinstance(node, (str, int, float, bool, type(None))) else str(node)


def read_jwst_exposure(path):
    """Normalised record from a JWST ``_uncal.fits`` primary and SCI headers."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=True) as hdul:
            primary = hdul[0].header
            sci = hdul["SCI"].header if "SCI" in hdul else {}
            raw = {k: primary.get(k) for k in JWST_PRIMARY}
            raw.update({k: sci.get(k) for k in JWST_SCI})
    except (OSError, ValueError) as exc:
        raise PoolError(f"{path}: cannot read FITS headers ({exc})") from None
    raw["expname"] = Path(path).name
    raw["image_size_kb"] = os.path.getsize(path) / 1024
    return normalise(raw)


def read_exposure(path):
    """Normalised record of one Level-1 exposure file, by its extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".asdf":
        return read_calpipe_exposure(path)
    if suffix in (".fits", ".fit"):
        return read_jwst_exposure(path)
    raise PoolError(f"{path}: not an exposure file (expected .asdf or .fits)")


def read_pool_table(path):
    """Normalised records from a CSV or ``|``-separated pool table."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PoolError(f"{path}: cannot read pool ({exc.strerror or exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise PoolError(f"{path}: empty pool")
    delimiter = "|" if lines[0].count("|") > lines[0].count(",") else ","
    rows = list(csv.DictReader(lines, delimiter=delimiter))
    header = {h.strip().upper() for h in rows[0]} if rows else set()
    if "FILENAME" not in header and "EXPNAME" not in header:
        raise PoolError(f"{path}: pool has no FILENAME column")
    return [normalise({k.strip(): v for k, v in row.items() if k}) for row in rows]


def load_pool(source):
    """A pool from a table file, a folder of exposures, or a list of exposure files."""
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
        if source.is_dir():
            files = sorted(p for p in source.iterdir() if p.name.endswith(("_uncal.asdf", "_uncal.fits")))
            return [read_exposure(p) for p in files]
        if source.suffix.lower() in (".asdf", ".fits"):
            return [read_exposure(source)]
        return read_pool_table(source)
    return [read_exposure(p) for p in source]


def digest(names, length=16):
    """A stable id of a set of names: SHA-256 of the sorted, newline-joined names."""
    h = hashlib.sha256("\n".join(sorted(set(names))).encode("utf-8"))
    return h.hexdigest()[:length]


@dataclass
class Product:
    name: str
    category: str  # image, spec or tac
    members: list = field(default_factory=list)  # [(expname, exptype)], sorted
    exposures: list = field(default_factory=list)  # normalised records, same order

    @property
    def product_id(self):
        return digest(m[0] for m in self.members)

    @property
    def asn_type(self):
        return naming.ASN_TYPE[self.category]


def group_products(exposures):
    """Group normalised exposures into the Level-3 products they make, sorted by name.

    Science exposures are grouped by observatory, program, observation, target, instrument
    and optical path; background and imprint exposures join every science product of the
    same program, instrument and optical path. Exposures that make no product (calibration,
    acquisition, background with no science) are left out. The result depends only on the
    set of exposures, not on their order.
    """
    exposures = sorted(exposures, key=lambda e: e["expname"])
    # Only science exposures that make products number the targets.
    numbers = naming.target_numbers(
        e for e in exposures if naming.rule_of(e) and naming.member_exptype(e) == "science"
    )
    science, extras = {}, []
    for e in exposures:
        rule = naming.rule_of(e)
        if rule is None:
            continue
        path_key = (e["observatory"], e["program"], e["instrume"], rule, naming.optical_path(e, rule))
        if naming.member_exptype(e) != "science":
            extras.append((path_key, e))
            continue
        number = numbers[(e["observatory"], e["program"], naming.target_label(e))]
        key = (path_key, e["observtn"], number)
        science.setdefault(key, []).append(e)
    products, by_path = {}, {}
    for (path_key, _, number), group in science.items():
        name = naming.product_name(group, number)
        prod = products.setdefault(name, Product(name, naming.category_of(group[0])))
        prod.exposures.extend(group)
        by_path.setdefault(path_key, set()).add(name)
    for path_key, e in extras:
        for name in sorted(by_path.get(path_key, ())):
            products[name].exposures.append(e)
    result = []
    for name in sorted(products):
        prod = products[name]
        prod.exposures.sort(key=lambda x: x["expname"])
        prod.members = [(x["expname"], naming.member_exptype(x)) for x in prod.exposures]
        result.append(prod)
    return result


def associations_from_pool(exposures, pool_name="none"):
    """One association dict per product: ``[(asn_id, asn), ...]`` sorted by product name."""
    out = []
    for prod in group_products(exposures):
        first = prod.exposures[0]
        prefix = "cp" if first["observatory"] == "calpipe" else "jw"
        asn_id = f"{prefix}{first['program']:05d}-a{prod.product_id[:8]}"
        target = prod.name.split("_")[1]
        asn = make_asn(
            [{"name": prod.name, "members": [{"expname": n, "exptype": t} for n, t in prod.members]}],
            asn_id=asn_id, program=first["program"], target=target,
            asn_type=prod.asn_type, asn_rule=f"calpipe_{prod.category}", pool=pool_name,
        )
        out.append((asn_id, asn))
    return out


def write_associations(exposures, out_dir, pool_name="none"):
    """Write ``{asn_id}_asn.json`` per product into ``out_dir``; return the paths written."""
    out_dir = Path(out_dir)
    paths = []
    for asn_id, asn in associations_from_pool(exposures, pool_name):
        paths.append(write_asn(asn, out_dir / f"{asn_id}_asn.json"))
    return paths


__all__ = [
    "AsnError", "FIELD_TYPES", "PoolError", "Product", "associations_from_pool", "digest",
    "group_products", "load_pool", "normalise", "read_calpipe_exposure", "read_exposure",
    "read_jwst_exposure", "read_pool_table", "write_associations",
]
