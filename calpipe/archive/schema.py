"""Metadata columns generated from calpipe's datamodel schemas.

Each archived file type that is an ASDF model (``uncal``, ``ramp``, ``rate``, ``cal``,
``segm``, ``wcs``) has a metadata table whose columns are the scalar keywords its schema
declares under ``meta``, flattened with underscores: ``meta.instrument.detector`` becomes
the column ``instrument_detector``. ``$ref`` (also into ``#/definitions``) and ``allOf``
are followed; objects without declared properties, arrays and tagged objects (the gwcs)
have no column. When a schema gains a keyword, :func:`columns_for` gains the column.
"""

from dataclasses import dataclass
from pathlib import Path

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "datamodels" / "schemas"

# Archived file type -> schema name (without version); None: no metadata table.
FILE_TYPES = {
    "uncal": "raw",
    "ramp": "ramp",
    "rate": "image",
    "cal": "image",
    "segm": "segmentation",
    "wcs": "wcs_product",
    "cat": None,
    "preview": None,
    "thumb": None,
}
EXTENSIONS = {"cat": ".ecsv", "preview": ".png", "thumb": ".png"}  # else .asdf
SCALAR_TYPES = ("string", "integer", "number", "boolean")


@dataclass(frozen=True)
class MetaColumn:
    """A metadata column: its name, the JSON-schema type and the path under ``meta``."""

    name: str
    kind: str
    keys: tuple

    def value_in(self, meta):
        """This keyword's value in a ``meta`` mapping, or None where absent or not a scalar."""
        node = meta
        for key in self.keys:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        if isinstance(node, (dict, list)):
            return None
        if self.kind == "integer" and node is not None:
            return int(node)
        if self.kind == "number" and node is not None:
            return float(node)
        if self.kind == "string" and node is not None:
            return str(node)
        return node


def file_name(root, file_type):
    """``<root>_<type><ext>``, the name a product of ``file_type`` has in the archive."""
    return f"{root}_{file_type}{EXTENSIONS.get(file_type, '.asdf')}"


def split_name(name):
    """``(root, file type)`` of a product's file name, or None when it is not one."""
    for file_type in FILE_TYPES:
        suffix = f"_{file_type}{EXTENSIONS.get(file_type, '.asdf')}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], file_type
    return None


class SchemaSet:
    """The YAML schemas of one folder, by name without version (``image``, ``raw``, ...)."""

    def __init__(self, folder=None):
        self.folder = Path(folder or SCHEMA_DIR)
        self.schemas = {}
        for path in sorted(self.folder.glob("*.yaml")):
            with open(path) as f:
                schema = yaml.safe_load(f)
            self.schemas[schema["id"].rsplit("/", 1)[-1]] = schema

    def resolve(self, node):
        """``node`` with a ``$ref`` to a sibling schema (or its ``#/definitions/...``) replaced."""
        while isinstance(node, dict) and "$ref" in node:
            target, _, pointer = node["$ref"].partition("#")
            node = self.schemas[target.rsplit("/", 1)[-1]]
            for part in filter(None, pointer.split("/")):
                node = node[part]
        return node

    def properties(self, node):
        """The declared properties of an object schema, ``allOf`` branches merged in order."""
        node = self.resolve(node)
        merged = {}
        for branch in node.get("allOf", []):
            for key, value in self.properties(branch).items():
                merged[key] = _merge(self, merged.get(key), value)
        for key, value in node.get("properties", {}).items():
            merged[key] = _merge(self, merged.get(key), value)
        return merged

    def columns(self, schema_name):
        """The :class:`MetaColumn` list of a model schema's ``meta``, in schema order."""
        model = self.schemas[f"{schema_name}-1.0.0"]
        meta = model.get("properties", {}).get("meta", {})
        return list(self._flatten(meta, ()))

    def _flatten(self, node, keys):
        for key, value in self.properties(node).items():
            value = self.resolve(value)
            kind = value.get("type")
            if "tag" in value:
                continue
            if kind in SCALAR_TYPES:
                yield MetaColumn("_".join((*keys, key)).lower(), kind, (*keys, key))
            elif kind == "object" or "allOf" in value or "properties" in value:
                yield from self._flatten(value, (*keys, key))


def _merge(schemas, first, second):
    if first is None:
        return second
    first, second = schemas.resolve(first), schemas.resolve(second)
    if "properties" in first or "properties" in second or "allOf" in first or "allOf" in second:
        return {"type": "object", "allOf": [first, second]}
    return second


def columns_for(schema_dir=None):
    """``{file type: [MetaColumn, ...]}`` for every archived file type with a schema."""
    schemas = SchemaSet(schema_dir)
    return {ft: schemas.columns(name) for ft, name in FILE_TYPES.items() if name}
