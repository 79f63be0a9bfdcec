"""Association files: read, validate, write and build.

An association is JSON in the layout the JWST and Roman pipelines use::

    {"asn_id": "a3001", "asn_pool": "pool.csv", "asn_type": "image",
     "asn_rule": "calpipe_image", "program": "00001", "target": "t001",
     "code_version": "0.1.0",
     "products": [{"name": "cp00001-o001_t001_wfi_f158",
                   "members": [{"expname": "x_uncal.asdf", "exptype": "science"}]}]}

Member paths stay as written: relative to the association file. ``exptype`` is lower-case
(stpipe indexes exposure types in lower case); it is normalised on read.
"""

import json
import os
import re
from pathlib import Path

from calpipe.atomic import atomic_path
from calpipe.errors import CalpipeError

SCHEMA_PATH = Path(__file__).with_name("asn-1.0.0.json")

_JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


class AsnError(CalpipeError, ValueError):
    """An association that cannot be read or is invalid; the message is one line."""


_schema_cache = None


def asn_schema():
    """The association JSON schema (a dict), read once."""
    global _schema_cache
    if _schema_cache is None:
        _schema_cache = json.loads(SCHEMA_PATH.read_text())
    return _schema_cache


def _is_type(value, name):
    # bool is an int subclass in Python but not a JSON integer.
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES[name])


def schema_errors(instance, schema, where="$"):
    """Yield ``(path, message)`` for each way ``instance`` breaks ``schema``.

    Covers the JSON-schema keywords the association schema uses: type, required,
    properties, items, minItems, minLength, enum, pattern.
    """
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(instance, t) for t in names):
            got = type(instance).__name__
            yield where, f"expected {' or '.join(names)}, got {got}"
            return
    if "enum" in schema and instance not in schema["enum"]:
        yield where, f"expected one of {schema['enum']}, got {instance!r}"
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            yield where, "must not be empty"
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            yield where, f"{instance!r} does not match {schema['pattern']!r}"
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                yield where, f"missing required key {key!r}"
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                yield from schema_errors(instance[key], sub, f"{where}.{key}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            yield where, f"needs at least {schema['minItems']} item(s)"
        if "items" in schema:
            for i, item in enumerate(instance):
                yield from schema_errors(item, schema["items"], f"{where}[{i}]")


def validate_asn(asn, source="association"):
    """Raise :class:`AsnError` naming ``source`` and the first problem, if any."""
    for where, message in schema_errors(asn, asn_schema()):
        raise AsnError(f"{source}: invalid association at {where}: {message}")


def _normalise(asn):
    for product in asn["products"]:
        for member in product["members"]:
            member["exptype"] = member["exptype"].lower()
    return asn


def load_asn(path):
    """Read and validate an association file; return it as a dict.

    Member ``exptype`` values are lower-cased; member paths are returned unchanged.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            asn = json.load(f)
    except FileNotFoundError:
        raise AsnError(f"{path}: association file not found") from None
    except json.JSONDecodeError as exc:
        raise AsnError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AsnError(f"{path}: cannot read association file ({exc})") from None
    validate_asn(asn, path)
    return _normalise(asn)


def write_asn(asn, path):
    """Validate ``asn`` and write it as JSON to ``path`` (via a temporary file and rename)."""
    path = Path(path)
    validate_asn(asn, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(asn, indent=2) + "\n", encoding="utf-8")
    return path


def _member(m):
    if isinstance(m, (str, os.PathLike)):
        return {"expname": os.fspath(m), "exptype": "science"}
    member = dict(m)
    member["expname"] = os.fspath(member["expname"])
    member["exptype"] = str(member.get("exptype", "science")).lower()
    return member


def make_asn(products, *, asn_id, program, target, asn_type="image", asn_rule="calpipe_image", pool="none"):
    """Build a validated association dict.

    ``products``: a sequence of ``{"name": ..., "members": [...]}`` dicts, or a mapping
    from product name to members. A member is a path (taken as ``science``) or a dict
    with ``expname`` and optional ``exptype``. An integer ``program`` is written as the
    five-digit string the pipelines use.
    """
    from calpipe import __version__

    if isinstance(products, dict):
        products = [{"name": name, "members": members} for name, members in products.items()]
    asn = {
        "asn_id": str(asn_id),
        "asn_pool": os.fspath(pool),
        "asn_type": asn_type,
        "asn_rule": asn_rule,
        "program": f"{program:05d}" if isinstance(program, int) else str(program),
        "target": str(target),
        "code_version": __version__,
        "products": [
            {"name": p["name"], "members": [_member(m) for m in p["members"]]} for p in products
        ],
    }
    validate_asn(asn, f"association {asn_id}")
    return asn


def member_paths(asn, asn_path):
    """Absolute member paths of every product, resolved against the association's folder."""
    base = Path(asn_path).resolve().parent
    return [[base / m["expname"] for m in p["members"]] for p in asn["products"]]
