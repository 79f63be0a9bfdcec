"""A folder of reference files and an ``index.json`` describing them.

A step asks for the best file of a type for an exposure: same instrument and detector, same
optical element where the reference names one, and among those the one chosen by the
exposure's start time and the selection rule (``before``: the newest whose USEAFTER is not
after the exposure; ``after``: the oldest whose USEAFTER is not before it; ``nearest``).
"""

import json
import os
import shutil
from pathlib import Path

from astropy.time import Time

from calpipe.atomic import atomic_path
from calpipe.errors import CalpipeError

INDEX_NAME = "index.json"
SELECT_RULES = ("before", "after", "nearest")
WILDCARDS = {"", "ANY", "N/A", "ALL"}


class MissingReferenceError(CalpipeError, LookupError):
    """No reference file fits; the message names the type, the exposure and the store."""


class NotAReference(MissingReferenceError):
    """A readable file that is not a reference file."""


def describe(source):
    """The index entry of a reference file (calpipe's or the Roman mission's), from its metadata."""
    from calpipe import datamodels
    from calpipe.datamodels import roman

    verified = False
    if datamodels.model_type_of(source) == datamodels.ROMAN:
        meta = roman.reference_meta(source)
        if meta is None:
            raise NotAReference(f"{source}: a Roman file but not a reference file")
    else:
        with datamodels.open(source) as model:  # its block checksums verified on the way
            if getattr(type(model), "reftype", None) is None:
                raise NotAReference(f"{source}: not a reference file ({type(model).__name__})")
            meta = model.meta.to_dict()
        verified = True
    instrument = meta["instrument"]
    return {
        "path": str(source),
        "reftype": meta["reftype"],
        "model_type": meta["model_type"],
        "instrument": instrument["name"].upper(),
        "detector": instrument["detector"].upper(),
        "optical_element": (instrument.get("optical_element") or "").upper(),
        "useafter": Time(meta["useafter"]).isot,
        "description": meta.get("description", ""),
        "verified": verified,
    }


class RefStore:
    def __init__(self, path):
        self.path = Path(path)

    # -- index ---------------------------------------------------------------------------
    @property
    def index_path(self):
        return self.path / INDEX_NAME

    def entries(self):
        if not self.index_path.exists():
            return []
        try:
            entries = json.loads(self.index_path.read_text())["files"]
        except (ValueError, KeyError, TypeError) as err:
            raise MissingReferenceError(f"{self.index_path}: unreadable store index ({err})") from None
        if not isinstance(entries, list):
            raise MissingReferenceError(f"{self.index_path}: 'files' is not a list of entries")
        for i, entry in enumerate(entries):
            problem = _entry_problem(entry)
            if problem:
                raise MissingReferenceError(f"{self.index_path}: files[{i}] {problem}")
        return entries

    def _write_index(self, entries):
        entries = sorted(entries, key=lambda e: (e["reftype"], e["useafter"], e["path"]))
        with atomic_path(self.index_path) as tmp:
            tmp.write_text(json.dumps({"version": 1, "files": entries}, indent=1) + "\n")

    def add(self, paths):
        """Register reference files, copying in those that live outside the store."""
        self.path.mkdir(parents=True, exist_ok=True)
        entries = {e["path"]: e for e in self.entries()}
        added = []
        for source in map(Path, paths):
            entry = describe(source)
            target = self.path / source.name
            if source.resolve() != target.resolve():
                shutil.copyfile(source, target)
            entry["path"] = target.name
            if entry.pop("verified"):
                entry["checked"] = _stat(target)
            entries[entry["path"]] = entry
            added.append(entry)
        self._write_index(entries.values())
        return added

    def import_tree(self, folder, report=None):
        """Index every reference file under ``folder`` (recursively) where it lies, without copying.

        Files that are not reference files are skipped; ``report(path, message)`` hears of
        each skipped or unreadable file. Returns ``(added entries, number of unreadable files)``.
        """
        report = report or (lambda path, message: None)
        folder = Path(folder)
        if not folder.is_dir():
            raise MissingReferenceError(f"{folder}: no such folder to import reference files from")
        self.path.mkdir(parents=True, exist_ok=True)
        entries = {e["path"]: e for e in self.entries()}
        added, failed = [], 0
        for source in sorted(folder.rglob("*.asdf")):
            if source.name.startswith("."):
                continue
            try:
                entry = describe(source)
            except NotAReference as err:
                report(source, f"skipped: {err}")
                continue
            except CalpipeError as err:
                report(source, f"error: {err}")
                failed += 1
                continue
            resolved = source.resolve()
            inside = resolved.is_relative_to(self.path.resolve())
            entry["path"] = str(resolved.relative_to(self.path.resolve()) if inside else resolved)
            if entry.pop("verified"):
                entry["checked"] = _stat(source)
            entries[entry["path"]] = entry
            added.append(entry)
        self._write_index(entries.values())
        return added, failed

    def unchanged(self, path):
        """Whether ``path`` is a file of this store whose arrays were verified when it was
        indexed and whose size and modification time are still those it had then.

        Reference files are large and read by every run; a store's files are verified once,
        when added or imported (their block checksums), not on every open. A file rewritten
        since (any write changes its modification time) is verified again when opened.
        """
        path = Path(path)
        for entry in self.entries():
            if (self.path / entry["path"]) == path:
                return entry.get("checked") is not None and entry["checked"] == _stat(path)
        return False

    # -- selection -----------------------------------------------------------------------
    def best(self, reftype, exposure_meta, select="before"):
        """Path of the best reference of ``reftype`` for an exposure's ``meta``."""
        if select not in SELECT_RULES:
            raise ValueError(f"select must be one of {', '.join(SELECT_RULES)}, not {select!r}")
        instrument = exposure_meta["instrument"]
        keys = {
            "instrument": instrument["name"].upper(),
            "detector": instrument["detector"].upper(),
            "optical_element": (instrument.get("optical_element") or "").upper(),
        }
        start = Time(exposure_meta["exposure"]["start_time"])
        candidates = [
            e
            for e in self.entries()
            if e["reftype"] == reftype
            and e["instrument"] == keys["instrument"]
            and e["detector"] in (keys["detector"], *WILDCARDS)
            and e["optical_element"] in (keys["optical_element"], *WILDCARDS)
        ]
        chosen = _choose(candidates, start, select)
        if chosen is None:
            where = ", ".join(f"{k}={v}" for k, v in keys.items() if v)
            found = f"{len(candidates)} of that type match the keys but none is {select} it" if candidates else "none matches"
            raise MissingReferenceError(
                f"no {reftype} reference for {where}, start {start.isot} (select={select}) "
                f"in store {self.path}: {found}"
            )
        return str(self.path / chosen["path"])


INDEX_KEYS = ("path", "reftype", "instrument", "detector", "optical_element", "useafter")


def _stat(path):
    """What :meth:`RefStore.unchanged` compares: size and modification time (ns)."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _entry_problem(entry):
    """What is wrong with one index entry, or None."""
    if not isinstance(entry, dict):
        return "is not an object"
    missing = [k for k in INDEX_KEYS if not isinstance(entry.get(k), str)]
    if missing:
        return f"lacks text values for {', '.join(missing)}"
    path = Path(entry["path"])
    # Relative paths stay inside the store; files indexed in place (refs import) are absolute.
    if not path.is_absolute() and (".." in path.parts or not path.parts):
        return f"path {entry['path']!r} is outside the store (expected a path inside the store folder)"
    try:
        Time(entry["useafter"])
    except ValueError:
        return f"useafter {entry['useafter']!r} is not a time"
    return None


def _choose(candidates, start, select):
    dated = [(Time(e["useafter"]), e) for e in candidates]
    if select == "before":
        dated = [d for d in dated if d[0] <= start]
        return max(dated, key=lambda d: d[0].jd, default=(None, None))[1]
    if select == "after":
        dated = [d for d in dated if d[0] >= start]
        return min(dated, key=lambda d: d[0].jd, default=(None, None))[1]
    return min(dated, key=lambda d: abs((d[0] - start).jd), default=(None, None))[1]


def find_store(path=None):
    """The store named by ``path``, else by the ``CALPIPE_REFS`` environment variable."""
    path = path or os.environ.get("CALPIPE_REFS")
    if not path:
        raise MissingReferenceError(
            "no reference store: set CALPIPE_REFS to a store folder or pass --ref-store/ref_store"
        )
    store = RefStore(os.path.expanduser(path))
    if not store.index_path.exists():
        raise MissingReferenceError(f"reference store {store.path} has no {INDEX_NAME} (run `calpipe refs add`)")
    return store
