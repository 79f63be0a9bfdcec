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
    "image_size_kb": float, "npixels": int,
}
DEFAULTS = {str: "NONE", int: 0, float: math.nan, bool: False}
_MISSING_TEXT = {"", "NONE", "N/A", "NULL", "NAN", "--", "UNKNOWN"}

JWST_PRIMARY = (
    "PROGRAM", "OBSERVTN", "NEXPOSUR", "BKGDTARG", "IS_IMPRT", "VISITYPE", "TSOVISIT",
    "TARGNAME", "TARG_RA", "TARG_DEC", "INSTRUME", "DETECTOR", "FILTER", "PUPIL", "GRATING",
    "FXD_SLIT", "EXP_TYPE", "CHANNEL", "BAND", "SUBARRAY", "NUMDTHPT", "GS_RA", "GS_DEC",
    "GS_MAG", "CROWDFLD", "VISIT", "EXPOSURE", "DATE-OBS", "TIME-OBS", "NGROUPS", "SUBSIZE1", "SUBSIZE2",
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
    # JWST names the resultants groups, and gives the readout's size as the subarray's.
    if rec["nresultants"] == 0:
        rec["nresultants"] = _convert(lower.get("ngroups"), int)
    if rec["npixels"] == 0:
        rec["npixels"] = _convert(lower.get("subsize1"), int) * _convert(lower.get("subsize2"), int)
    if rec["start_time"] == "NONE" and lower.get("date_obs"):
        rec["start_time"] = f"{lower['date_obs']}T{lower.get('time_obs') or '00:00:00'}".upper()
    # The reference pointing falls back to the WCS reference value, then to the target.
    for ref, alt, targ in (("ra_ref", "crval1", "targ_ra"), ("dec_ref", "crval2", "targ_dec")):
        if math.isnan(rec[ref]):
            rec[ref] = rec[alt] if not math.isnan(rec[alt]) else rec[targ]
    return rec


def _asdf_tree_text(path, limit=1 << 22):
    """The YAML tree of an ASDF file as text, or None when it is not found in ``limit`` bytes."""
    with open(path, "rb") as f:
        head = f.read(limit)
    if not head.startswith(b"#ASDF"):
        return None
    end = head.find(b"\n...")
    return head[:end + 1].decode("utf-8") if end > 0 else None


def _plain_yaml(text):
    """A YAML document with every tag ignored (each node read as its plain kind), or None."""
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        pass

    def untagged(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("", untagged)
    try:
        tree = yaml.load(text, Loader=Loader)  # noqa: S506 (a safe loader; tags become plain nodes)
    except yaml.YAMLError:
        return None
    return tree if isinstance(tree, dict) else None


def _asdf_meta(path):
    """``(meta, data shape)`` of an ASDF exposure.

    The YAML tree is read directly (asdf itself would first load every installed
    extension, over a second of CPU, for metadata that is plain YAML); a file whose tree
    cannot be read that way is opened with asdf.
    """
    tree = None
    try:
        text = _asdf_tree_text(path)
        tree = _plain_yaml(text) if text else None
    except (OSError, UnicodeDecodeError):
        pass
    if tree is not None:
        data = tree.get("data")
        shape = data.get("shape", ()) if isinstance(data, dict) else ()
        return _plain(tree.get("meta") or {}), tuple(shape)
    import asdf

    try:
        with asdf.open(path, lazy_load=True, memmap=False) as af:
            meta = _plain(af.tree.get("meta") or {})
            return meta, tuple(getattr(af.tree.get("data"), "shape", ()))  # from the tree, not the array
    except Exception as exc:  # asdf raises many kinds for a bad file
        raise PoolError(f"{path}: cannot read ASDF metadata ({type(exc).__name__}: {exc})") from None


def read_calpipe_exposure(path):
    """Normalised record of a calpipe ASDF exposure (only ``meta`` and the data shape are read)."""
    meta, shape = _asdf_meta(path)
    if not isinstance(meta, dict):
        raise PoolError(f"{path}: ASDF metadata 'meta' is not a mapping")
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
        "npixels": int(shape[-1]) * int(shape[-2]) if len(shape) >= 2 else None,
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
            if not (raw.get("SUBSIZE1") and raw.get("SUBSIZE2")) and sci:
                raw["SUBSIZE1"], raw["SUBSIZE2"] = sci.get("NAXIS1"), sci.get("NAXIS2")
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


def load_pool(source, errors=None, locations=None):
    """A pool from a table file, a folder of exposures, or a list of exposure files.

    With a list ``errors``, an exposure file that cannot be read is left out and its one-line
    message appended there (otherwise :class:`PoolError` is raised). With a dict
    ``locations``, the path of each exposure is recorded there by name: a table's FILENAME is
    taken relative to the table's folder.
    """
    locations = {} if locations is None else locations
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
        if source.is_dir():
            files = sorted(p for p in source.iterdir() if p.name.endswith(("_uncal.asdf", "_uncal.fits")))
            return _read_files(files, errors, locations)
        if source.suffix.lower() in (".asdf", ".fits"):
            return _read_files([source], errors, locations)
        records = read_pool_table(source)
        locations.update((r["expname"], source.parent / r["expname"]) for r in records)
        return records
    return _read_files(source, errors, locations)


def _read_files(paths, errors, locations):
    records = []
    for path in paths:
        try:
            rec = read_exposure(path)
        except PoolError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
            continue
        locations[rec["expname"]] = Path(path)
        records.append(rec)
    return records


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
    rule: str = ""  # the Level-3 rule that makes it (naming.rules_of)
    target: str = ""  # its target's label (naming.target_labels)

    @property
    def product_id(self):
        return digest(m[0] for m in self.members)

    @property
    def asn_type(self):
        return naming.ASN_TYPE[self.category]

    @property
    def match_key(self):
        """The name without its target part: what a cost is matched on before the target."""
        return naming.parse_product_name(self.name)["match_key"]


def numbered_exposures(exposures):
    """The exposures whose targets need a number: those that are science of some product."""
    return [e for e in exposures if not naming.naming_problem(e)
            and any(naming.member_exptype(e, rule) == "science" for rule in naming.rules_of(e))]


def group_products(exposures, labels=None, numbers=None):
    """Group normalised exposures into the Level-3 products they make, sorted by name.

    Science exposures are grouped by observatory, program, observation, target, instrument,
    rule and optical path; background and imprint exposures join every science product of the
    same program, instrument, rule and optical path (under an imaging rule a background
    target is science of its own product). Exposures that make no product (calibration,
    acquisition, background with no science) or cannot be named
    (:func:`naming.naming_problem`) are left out.

    ``labels`` (``{expname: label}``) and ``numbers`` (``{(observatory, program, label): n}``)
    give the targets; by default they are worked out from the exposures alone
    (:func:`naming.target_labels`, :func:`naming.target_numbers`). The result depends only on
    the set of exposures, not on their order.
    """
    rules = {e["expname"]: naming.rules_of(e) for e in exposures}
    exposures = sorted((e for e in exposures if rules[e["expname"]] and not naming.naming_problem(e)),
                       key=lambda e: e["expname"])
    if labels is None:
        labels = naming.target_labels(exposures)
    science, extras, numbered = {}, [], set()
    for e in exposures:
        for rule in rules[e["expname"]]:
            for elem in naming.optical_paths(e, rule):
                path_key = (e["observatory"], e["program"], e["instrume"], rule, elem)
                if naming.member_exptype(e, rule) != "science":
                    extras.append((path_key, e))
                    continue
                key = (path_key, e["observtn"], labels[e["expname"]])
                science.setdefault(key, []).append(e)
                numbered.add((e["observatory"], e["program"], labels[e["expname"]]))
    if numbers is None:
        # Only exposures that are science of a product number the targets.
        numbers = naming.target_numbers(numbered)
    products, by_path = {}, {}
    for (path_key, _, label), group in science.items():
        observatory, program, _, rule, elem = path_key
        name = naming.product_name(group[0], rule, elem, numbers[(observatory, program, label)])
        prod = products.setdefault(name, Product(name, naming.category_of(group[0], rule), rule=rule, target=label))
        prod.exposures.extend(group)
        by_path.setdefault(path_key, set()).add(name)
    for path_key, e in extras:
        for name in sorted(by_path.get(path_key, ())):
            products[name].exposures.append(e)
    result = []
    for name in sorted(products):
        prod = products[name]
        prod.exposures.sort(key=lambda x: x["expname"])
        prod.members = [(x["expname"], naming.member_exptype(x, prod.rule)) for x in prod.exposures]
        result.append(prod)
    return result


def associations_from_pool(exposures, pool_name="none", locations=None, out_dir="."):
    """One association dict per product: ``[(asn_id, asn), ...]`` sorted by product name.

    Members are written by name, or, for the exposures in ``locations`` (``{expname: path}``),
    as paths relative to ``out_dir``, the folder the association will be written to.
    """
    locations = locations or {}
    out_dir = Path(out_dir).resolve()
    out = []
    for prod in group_products(exposures):
        first = prod.exposures[0]
        prefix = "cp" if first["observatory"] == "calpipe" else "jw"
        asn_id = f"{prefix}{first['program']:05d}-a{digest([prod.name])[:8]}"
        target = prod.name.split("_")[1]
        members = [{"expname": _member_path(n, locations, out_dir), "exptype": t} for n, t in prod.members]
        asn = make_asn(
            [{"name": prod.name, "members": members}],
            asn_id=asn_id, program=first["program"], target=target,
            asn_type=prod.asn_type, asn_rule=f"calpipe_{prod.category}", pool=pool_name,
        )
        out.append((asn_id, asn))
    return out


def _member_path(expname, locations, out_dir):
    if expname not in locations:
        return expname
    return Path(os.path.relpath(Path(locations[expname]).resolve(), out_dir)).as_posix()


def write_associations(exposures, out_dir, pool_name="none", locations=None):
    """Write ``{asn_id}_asn.json`` per product into ``out_dir``; return the paths written.

    See :func:`associations_from_pool` for ``locations``.
    """
    out_dir = Path(out_dir)
    paths = []
    for asn_id, asn in associations_from_pool(exposures, pool_name, locations, out_dir):
        paths.append(write_asn(asn, out_dir / f"{asn_id}_asn.json"))
    return paths


__all__ = [
    "AsnError", "FIELD_TYPES", "PoolError", "Product", "associations_from_pool", "digest",
    "group_products", "load_pool", "numbered_exposures", "normalise", "read_calpipe_exposure", "read_exposure",
    "read_jwst_exposure", "read_pool_table", "write_associations",
]
