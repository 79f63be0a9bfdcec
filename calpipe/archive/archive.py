"""A versioned product archive over a folder tree, with its file-lookup database.

Layout::

    <archive>/archive.db                       the SQLite database (unless a URL is given)
    <archive>/<program>/<root>/v01/<root>_cal.asdf, <root>_uncal.asdf, <root>_preview.png ...
    <archive>/<program>/<root>/v02/...
    <archive>/<program>/<root>/default -> v01  (the released version)
    <archive>/<program>/<root>/last    -> v02  (the newest version)

A version is the set of files of one root added together. Adding files whose content
(SHA-256) equals that of the same file types in a stored version of the root changes
nothing; other content becomes the next version, which is not the default until
:meth:`Archive.release` makes it so (the first version of a root is its default).
One :meth:`Archive.add` is one database transaction; the files are staged in a hidden
folder first and renamed into place inside it, and a failure undoes every rename, so the
archive is left as it was.
"""

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asdf
import sqlalchemy as sa
from astropy.time import Time, TimeDelta

from calpipe import __version__

from .checksums import file_checksum
from .db import ArchiveDB, ArchiveError, datasets, dumps, first_line, now, provenance, resolve_url, roots
from .schema import FILE_TYPES, file_name, split_name

PREVIEW_TYPES = ("preview", "thumb")
# The product whose metadata describes a root best, and whose image is previewed, first.
PRIMARY_ORDER = ("cal", "rate", "wcs", "segm", "ramp", "uncal")
PREVIEW_SOURCES = ("cal", "rate", "uncal")


@dataclass
class Incoming:
    """The files of one root in one :meth:`Archive.add`, read and checked."""

    root: str
    files: dict  # file type -> source Path
    checksums: dict = field(default_factory=dict)
    metas: dict = field(default_factory=dict)  # file type -> meta mapping (ASDF products)


@dataclass
class AddResult:
    """What one :meth:`Archive.add` did: ``added`` and ``unchanged`` are ``(root, version)``
    pairs; ``errors`` one line per root that was not added."""

    added: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    errors: list = field(default_factory=list)


def read_meta(path):
    """The ``meta`` mapping of an ASDF product, read from its YAML tree without its arrays
    (tagged objects such as the gwcs stay unconverted)."""
    try:
        tree = asdf.util.load_yaml(os.fspath(path), tagged=True)
    except Exception as err:  # asdf and yaml raise many kinds for a damaged file
        raise ArchiveError(f"{path}: not a readable ASDF file ({_one_line(err)})") from None
    meta = tree.get("meta") if isinstance(tree, dict) else None
    if not isinstance(meta, dict) or "model_type" not in meta:
        raise ArchiveError(f"{path}: no meta.model_type, expected a calpipe product")
    return meta


def version_dir(version):
    return f"v{version:02d}"


def program_name(program):
    """A program as the archive's folders and queries spell it: five digits when numeric."""
    text = str(program).strip()
    return f"{int(text):05d}" if text.isdigit() else text


class Archive:
    """An archive folder and its database.

    Parameters
    ----------
    folder : path
        The archive's folder (created if absent).
    database : str, optional
        A database URL (PostgreSQL for a team) or SQLite file; default
        ``$CALPIPE_ARCHIVE_DATABASE_URL``, else ``<folder>/archive.db``.
    schema_dir : path, optional
        The datamodel schemas the metadata tables are generated from (default: calpipe's).
    create : bool
        Create the folder and database when absent; a query passes False.
    """

    def __init__(self, folder, database=None, *, schema_dir=None, create=True):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            if not create:
                raise ArchiveError(f"{self.folder}: no such archive folder")
            self.folder.mkdir(parents=True)
        self._ref_checksums = {}
        self.db = ArchiveDB(resolve_url(self.folder, database), schema_dir=schema_dir,
                            read_meta=self._read_stored_meta, create=create)

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_stored_meta(self, relative):
        try:
            return read_meta(self.folder / relative)
        except ArchiveError:
            return None

    # -- add ------------------------------------------------------------------------------
    def add(self, paths, *, link=False, previews=True):
        """Archive the products in ``paths`` (files or folders of them); see :class:`AddResult`.

        ``link`` hard-links the files instead of copying them; ``previews`` renders the
        ``preview`` and ``thumb`` of each new version (from its cal, else rate, else uncal).
        """
        result = AddResult()
        self._ref_checksums = {}  # reference files are shared by many products: hash each once
        groups = self._group(paths, result.errors)
        incoming = []
        for root, files in groups.items():
            try:
                incoming.append(self._read(root, files))
            except (ArchiveError, OSError, ValueError) as err:
                result.errors.append(str(err))
        with self.db.engine.connect() as conn:
            known = {item.root: self._stored_versions(conn, item.root) for item in incoming}
        fresh = []
        for item in incoming:
            match = _matching_version(known[item.root], item.checksums)
            if match is not None:
                result.unchanged.append((item.root, match))
            else:
                fresh.append(item)
        staging = self.folder / f".staging-{uuid.uuid4().hex}"
        try:
            staged = {}
            for item in fresh:
                try:
                    staged[item.root] = self._stage(item, staging, known[item.root], link, previews)
                except (ArchiveError, OSError, ValueError) as err:
                    result.errors.append(str(err))
            if staged:
                self._commit([i for i in fresh if i.root in staged], staged, result)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return result

    def _group(self, paths, errors):
        groups, conflicted = {}, set()
        for path in map(Path, paths):
            if path.is_dir():
                files = sorted(p for p in path.rglob("*") if p.is_file() and split_name(p.name))
            else:
                files = [path]
            for file in files:
                parsed = split_name(file.name)
                if parsed is None:
                    errors.append(f"{file}: not a product name, expected <root>_<type>.<ext> "
                                  f"with type one of {', '.join(FILE_TYPES)}")
                    continue
                if not file.is_file():
                    errors.append(f"{file}: no such file")
                    continue
                root, file_type = parsed
                group = groups.setdefault(root, {})
                if file_type in group and group[file_type].resolve() != file.resolve():
                    errors.append(f"{file}: a second {file_type} for {root} in one add (first: {group[file_type]}), "
                                  "expected one file per type and root")
                    conflicted.add(root)
                group[file_type] = file
        return {root: files for root, files in groups.items() if root not in conflicted}

    def _read(self, root, files):
        item = Incoming(root, dict(files))
        for file_type, path in files.items():
            if FILE_TYPES[file_type] is not None:
                item.metas[file_type] = read_meta(path)
            else:
                _check_signature(path, file_type)
            item.checksums[file_type] = file_checksum(path)
        if not item.metas and not self._root_id(root):
            raise ArchiveError(f"{root}: no ASDF product among {', '.join(map(str, files.values()))}; "
                               "the first add of a root needs one for its metadata")
        if item.metas:
            record = root_record(root, item.metas)
            if not record["program"]:
                raise ArchiveError(f"{files[_primary(item.metas)]}: missing meta.observation.program")
        return item

    def _root_id(self, root, conn=None):
        stmt = sa.select(roots.c.id).where(roots.c.root == root)
        if conn is not None:
            return conn.execute(stmt).scalar()
        with self.db.engine.connect() as c:
            return c.execute(stmt).scalar()

    def _stored_versions(self, conn, root):
        """``{version: {file type: (checksum, relative path)}}`` of a root."""
        rows = conn.execute(
            sa.select(datasets.c.version, datasets.c.file_type, datasets.c.checksum, datasets.c.path)
            .join_from(datasets, roots, datasets.c.root_id == roots.c.id).where(roots.c.root == root)
        )
        versions = {}
        for version, file_type, checksum, path in rows:
            versions.setdefault(version, {})[file_type] = (checksum, path)
        return versions

    def _stage(self, item, staging, stored, link, previews):
        """Copy (or link) the files of a new version into ``staging/<root>``; render previews."""
        folder = staging / item.root
        folder.mkdir(parents=True)
        by_checksum = {c: p for files in stored.values() for c, p in files.values()}
        for file_type, source in item.files.items():
            target = folder / file_name(item.root, file_type)
            stored_copy = by_checksum.get(item.checksums[file_type])
            if stored_copy is not None:
                _link_or_copy(self.folder / stored_copy, target, link=True)
            else:
                _link_or_copy(source, target, link)
        if previews and not any(t in item.files for t in PREVIEW_TYPES):
            source = next((t for t in PREVIEW_SOURCES if t in item.files), None)
            if source is not None:
                from .quicklook import quicklook

                catalog = folder / file_name(item.root, "cat") if "cat" in item.files else None
                made = quicklook(folder / file_name(item.root, source), folder, catalog=catalog)
                for file_type, path in made.items():
                    item.checksums[file_type] = file_checksum(path)
        return folder

    def _commit(self, items, staged, result):
        undo = []
        try:
            with self.db.transaction() as conn:
                for item in items:
                    version = self._insert_version(conn, item, staged[item.root], undo)
                    if version is None:
                        result.unchanged.append((item.root, _matching_version(
                            self._stored_versions(conn, item.root), item.checksums)))
                    else:
                        result.added.append((item.root, version))
        except BaseException as err:
            for action in reversed(undo):
                action()
            if isinstance(err, sa.exc.SQLAlchemyError):
                raise ArchiveError(f"{self.db.shown}: nothing was added, the database refused "
                                   f"({first_line(err)})") from None
            raise

    def _insert_version(self, conn, item, staged_folder, undo):
        stored = self._stored_versions(conn, item.root)
        if _matching_version(stored, item.checksums) is not None:
            return None  # another writer archived the same content meanwhile
        stamp = now()
        root_id = self._root_id(item.root, conn)
        record = root_record(item.root, item.metas) if item.metas else {}
        if root_id is None:
            root_id = conn.execute(
                roots.insert().values(root=item.root, first_ingest=stamp, last_ingest=stamp, **record)
            ).inserted_primary_key[0]
        else:
            known = {k: v for k, v in record.items() if v is not None and k != "program"}
            conn.execute(roots.update().where(roots.c.id == root_id).values(last_ingest=stamp, **known))
        program = conn.execute(sa.select(roots.c.program).where(roots.c.id == root_id)).scalar()
        version = max(stored, default=0) + 1
        is_default = not stored
        root_folder = self.folder / program / item.root
        relative_folder = f"{program}/{item.root}/{version_dir(version)}"
        target = self.folder / relative_folder
        if target.exists():
            raise ArchiveError(f"{target}: exists but the database has no version {version} of {item.root}")
        for made in reversed([p for p in (root_folder.parent, root_folder) if not p.exists()]):
            undo.append(lambda made=made: shutil.rmtree(made, ignore_errors=True))
        root_folder.mkdir(parents=True, exist_ok=True)
        os.rename(staged_folder, target)
        undo.append(lambda: shutil.rmtree(target, ignore_errors=True))
        conn.execute(datasets.update().where(datasets.c.root_id == root_id).values(is_last=False))
        rows = []
        for path in sorted(target.iterdir()):
            file_type = split_name(path.name)[1]
            rows.append(dict(
                root_id=root_id, file_type=file_type, version=version, path=f"{relative_folder}/{path.name}",
                size=path.stat().st_size, checksum=item.checksums[file_type], created=stamp,
                is_default=is_default, is_last=True,
            ))
        ids = [conn.execute(datasets.insert().values(**row)).inserted_primary_key[0] for row in rows]
        for row, dataset_id in zip(rows, ids):
            meta = item.metas.get(row["file_type"])
            table = self.db.meta_tables.get(row["file_type"])
            if meta is not None and table is not None:
                columns = self.db.columns[row["file_type"]]
                values = {c.name: c.value_in(meta) for c in columns if c.name in table.c}
                conn.execute(table.insert().values(dataset_id=dataset_id, **values))
        conn.execute(provenance.insert().values(
            root_id=root_id, version=version, created=stamp, **self._provenance(item)))
        _point(root_folder, "last", version_dir(version), undo)
        if is_default:
            _point(root_folder, "default", version_dir(version), undo)
        return version

    def _provenance(self, item):
        meta = item.metas.get(_primary(item.metas), {}) if item.metas else {}
        made = _mapping(meta.get("provenance"))
        refs = {}
        for reftype, path in sorted(_mapping(meta.get("ref_file")).items()):
            path = str(path)
            refs[reftype] = {"name": os.path.basename(path), "checksum": self._ref_checksum(path)}
        return dict(
            calpipe_version=made.get("calpipe_version"),
            dependencies=dumps(_mapping(made.get("dependencies"))),
            parameters=dumps(_mapping(made.get("parameters"))),
            ref_files=dumps(refs),
            inputs=dumps(_mapping(made.get("inputs"))),
            cal_step=dumps(_mapping(meta.get("cal_step"))),
            resources=dumps(_mapping(meta.get("resources"))),
        )

    def _ref_checksum(self, path):
        if not os.path.isfile(path):
            return None
        stat = os.stat(path)
        key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._ref_checksums:
            self._ref_checksums[key] = file_checksum(path)
        return self._ref_checksums[key]

    # -- versions -------------------------------------------------------------------------
    def versions(self, root):
        """One dict per version of ``root``: version, default, last, created, file types,
        calpipe version."""
        with self.db.engine.connect() as conn:
            root_id = self._require_root(conn, root)
            rows = conn.execute(
                sa.select(datasets.c.version, datasets.c.file_type, datasets.c.is_default,
                          datasets.c.is_last, datasets.c.created)
                .where(datasets.c.root_id == root_id).order_by(datasets.c.version, datasets.c.file_type)
            ).all()
            made = dict(conn.execute(
                sa.select(provenance.c.version, provenance.c.calpipe_version).where(provenance.c.root_id == root_id)
            ).all())
        out = {}
        for version, file_type, is_default, is_last, created in rows:
            entry = out.setdefault(version, dict(version=version, default=bool(is_default), last=bool(is_last),
                                                 created=created, types=[], calpipe_version=made.get(version)))
            entry["types"].append(file_type)
        return list(out.values())

    def release(self, root, version):
        """Make ``version`` the default of ``root`` (database flag and ``default`` link)."""
        version = int(version)
        undo = []
        try:
            with self.db.transaction() as conn:
                root_id = self._require_root(conn, root)
                present = conn.execute(sa.select(sa.func.count()).select_from(datasets).where(
                    datasets.c.root_id == root_id, datasets.c.version == version)).scalar()
                if not present:
                    known = sorted(v["version"] for v in self.versions(root))
                    raise ArchiveError(f"{root}: no version {version} (versions: {', '.join(map(str, known))})")
                conn.execute(datasets.update().where(datasets.c.root_id == root_id)
                             .values(is_default=datasets.c.version == version))
                program = conn.execute(sa.select(roots.c.program).where(roots.c.id == root_id)).scalar()
                _point(self.folder / program / root, "default", version_dir(version), undo)
        except BaseException:
            for action in reversed(undo):
                action()
            raise

    def _require_root(self, conn, root):
        root_id = self._root_id(root, conn)
        if root_id is None:
            raise ArchiveError(f"{root}: not in the archive {self.folder}")
        return root_id

    # -- queries --------------------------------------------------------------------------
    def find(self, *, program=None, detector=None, optical_element=None, exp_type=None, start=None,
             stop=None, file_type=None, version="default", root=None):
        """The archived files matching every filter given, as an astropy Table.

        Columns: root, type, version (int), default (bool), last (bool), path (under the
        archive folder), program, detector, filter, exp_type, start_time, size, checksum.
        ``start``/``stop`` bound the exposure start time (inclusive; any astropy Time
        string); ``version`` is ``default``, ``last``, ``all`` or a number.
        """
        from astropy.table import Table

        query = (
            sa.select(roots.c.root, datasets.c.file_type, datasets.c.version, datasets.c.is_default,
                      datasets.c.is_last, datasets.c.path, roots.c.program, roots.c.detector,
                      roots.c.optical_element, roots.c.exp_type, roots.c.start_time, datasets.c.size,
                      datasets.c.checksum)
            .join_from(roots, datasets, datasets.c.root_id == roots.c.id)
        )
        filters = {roots.c.program: program and program_name(program), roots.c.detector: detector,
                   roots.c.optical_element: optical_element, roots.c.exp_type: exp_type, roots.c.root: root,
                   datasets.c.file_type: file_type}
        for column, value in filters.items():
            if value is not None:
                query = query.where(column == (value if column in (roots.c.root, datasets.c.file_type,
                                                                   roots.c.program) else value.upper()))
        if start is not None:
            query = query.where(roots.c.start_time >= iso_time(start, "start"))
        if stop is not None:
            query = query.where(roots.c.start_time <= iso_time(stop, "stop"))
        query = query.where(version_clause(version))
        query = query.order_by(roots.c.start_time, roots.c.root, datasets.c.file_type, datasets.c.version)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).all()
        names = ["root", "type", "version", "default", "last", "path", "program", "detector", "filter",
                 "exp_type", "start_time", "size", "checksum"]
        dtypes = [str, str, int, bool, bool, str, str, str, str, str, str, int, str]
        columns = list(zip(*rows)) if rows else [[] for _ in names]
        table = Table([list(c) for c in columns], names=names, dtype=dtypes)
        table["path"] = [os.path.join(self.folder, p) for p in table["path"]]
        return table

    def get(self, root, file_type="cal", version="default"):
        """The path of one archived file; an :class:`ArchiveError` says what exists instead."""
        found = self.find(root=root, file_type=file_type, version=version)
        if len(found) == 0:
            with self.db.engine.connect() as conn:
                self._require_root(conn, root)
            held = sorted({(int(r["version"]), str(r["type"])) for r in self.find(root=root, version="all")})
            listed = ", ".join(f"v{v} {t}" for v, t in held)
            raise ArchiveError(f"{root}: no {file_type} file of version {version} (archived: {listed})")
        return Path(found["path"][0])

    def provenance(self, root, version):
        """The provenance row of one version, JSON fields decoded."""
        import json

        with self.db.engine.connect() as conn:
            root_id = self._require_root(conn, root)
            row = conn.execute(sa.select(provenance).where(provenance.c.root_id == root_id,
                                                           provenance.c.version == int(version))).mappings().first()
        if row is None:
            raise ArchiveError(f"{root}: no version {version}")
        out = dict(row)
        for key in ("dependencies", "parameters", "ref_files", "inputs", "cal_step", "resources"):
            out[key] = json.loads(out[key])
        return out

    def root_rows(self):
        """Every root's master-table row (dicts), by start time."""
        with self.db.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(roots).order_by(roots.c.start_time, roots.c.root)).mappings()]

    def metadata(self, root, file_type, version="default"):
        """The metadata-table row of one archived file (a dict without ``dataset_id``)."""
        table = self.db.meta_tables.get(file_type)
        if table is None:
            return {}
        query = (sa.select(table).join_from(table, datasets, datasets.c.id == table.c.dataset_id)
                 .join_from(datasets, roots, roots.c.id == datasets.c.root_id)
                 .where(roots.c.root == root, datasets.c.file_type == file_type, version_clause(version)))
        with self.db.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return {k: v for k, v in dict(row or {}).items() if k != "dataset_id"}

    # -- reprocessing ---------------------------------------------------------------------
    def stale(self, ref_store):
        """Default versions to reprocess, with the reasons: a reference file that is no longer
        the store's best for the exposure under the selection rule it was chosen by (or whose
        content in the store differs from what was used), or a calpipe older than this one. Returns dicts: root, version, uncal (path or None), reasons."""
        import json

        from packaging.version import Version

        from calpipe.references.store import MissingReferenceError, RefStore

        store = RefStore(ref_store) if not isinstance(ref_store, RefStore) else ref_store
        self._ref_checksums = {}
        query = (
            sa.select(roots, provenance.c.version, provenance.c.ref_files, provenance.c.parameters,
                      provenance.c.calpipe_version)
            .join_from(roots, provenance, provenance.c.root_id == roots.c.id)
            .join_from(provenance, datasets, sa.and_(datasets.c.root_id == roots.c.id,
                                                     datasets.c.version == provenance.c.version))
            .where(datasets.c.is_default.is_(True)).distinct().order_by(roots.c.start_time, roots.c.root)
        )
        with self.db.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        out = []
        for row in rows:
            refs = json.loads(row["ref_files"])
            select = json.loads(row["parameters"]).get("ref_select") or "before"
            exposure = {"instrument": {"name": row["instrument"], "detector": row["detector"],
                                       "optical_element": row["optical_element"]},
                        "exposure": {"start_time": row["start_time"]}}
            reasons = []
            for reftype, used in sorted(refs.items()):
                if used["name"] in ("", "N/A"):
                    continue
                try:
                    best = store.best(reftype, exposure, select)
                except MissingReferenceError:
                    reasons.append(f"{reftype}: {used['name']} is no longer in the store")
                    continue
                if os.path.basename(best) != used["name"]:
                    reasons.append(f"{reftype}: {used['name']} -> {os.path.basename(best)}")
                elif used["checksum"] and self._ref_checksum(best) != used["checksum"]:
                    reasons.append(f"{reftype}: {used['name']} has changed content in the store")
            made_with = row["calpipe_version"]
            if made_with and Version(made_with) < Version(__version__):
                reasons.append(f"calpipe {made_with} -> {__version__}")
            if reasons:
                uncal = self.find(root=row["root"], file_type="uncal", version=row["version"])
                out.append(dict(root=row["root"], version=row["version"], program=row["program"],
                                uncal=str(uncal["path"][0]) if len(uncal) else None, reasons=reasons))
        return out


# -- helpers ----------------------------------------------------------------------------------
def root_record(root, metas):
    """The master-table fields of a root from its products' ``meta`` mappings."""
    meta = metas[_primary(metas)]
    observation = _mapping(meta.get("observation"))
    instrument = _mapping(meta.get("instrument"))
    exposure = _mapping(meta.get("exposure"))
    start = end = None
    if exposure.get("start_time"):
        start_time = Time(str(exposure["start_time"]), scale="utc")
        start = start_time.isot
        duration = exposure.get("exposure_time")
        if duration is not None:
            end = (start_time + TimeDelta(float(duration), format="sec")).isot
    program = observation.get("program")
    return dict(
        program=program_name(program) if program not in (None, "") else None,
        observation=_int_or_none(observation.get("observation")),
        visit=_int_or_none(observation.get("visit")),
        exposure=_int_or_none(observation.get("exposure")),
        instrument=_upper(instrument.get("name")),
        detector=_upper(instrument.get("detector")),
        optical_element=_upper(instrument.get("optical_element")),
        exp_type=_upper(exposure.get("type")),
        start_time=start,
        end_time=end,
        s_region=next((_mapping(m.get("wcsinfo")).get("s_region") for m in _by_priority(metas)
                       if _mapping(m.get("wcsinfo")).get("s_region")), None),
    )


def iso_time(text, what):
    """A time a user typed, as the ISO string the database compares against."""
    try:
        return Time(str(text), scale="utc").isot
    except ValueError:
        raise ArchiveError(f"--{what} {text!r}: not a time, expected ISO like 2027-06-01 or 2027-06-01T12:00:00") from None


def version_clause(version):
    """The datasets filter for ``default``, ``last``, ``all`` or a version number."""
    version = str(version)
    if version == "default":
        return datasets.c.is_default.is_(True)
    if version == "last":
        return datasets.c.is_last.is_(True)
    if version == "all":
        return sa.true()
    if version.lstrip("v").isdigit():
        return datasets.c.version == int(version.lstrip("v"))
    raise ArchiveError(f"version {version!r}: expected default, last, all or a number")


def _matching_version(stored, checksums):
    """The stored version holding every incoming product (previews aside) with the same
    content, else None."""
    products = {t: c for t, c in checksums.items() if t not in PREVIEW_TYPES} or checksums
    for version in sorted(stored):
        if all(stored[version].get(t, (None,))[0] == c for t, c in products.items()):
            return version
    return None


def _point(folder, name, target, undo):
    """Point the link ``folder/name`` at ``target`` atomically; record how to put it back."""
    link = folder / name
    previous = os.readlink(link) if link.is_symlink() else None
    tmp = folder / f".{name}.{uuid.uuid4().hex}"
    os.symlink(target, tmp)
    os.replace(tmp, link)

    def restore():
        if previous is None:
            link.unlink(missing_ok=True)
        else:
            back = folder / f".{name}.{uuid.uuid4().hex}"
            os.symlink(previous, back)
            os.replace(back, link)

    undo.append(restore)


def _link_or_copy(source, target, link):
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system: copy instead
    shutil.copyfile(source, target)


def _check_signature(path, file_type):
    with open(path, "rb") as f:
        head = f.read(8)
    expected = b"\x89PNG\r\n\x1a\n" if file_type in PREVIEW_TYPES else b"# %ECSV"
    if not head.startswith(expected):
        kind = "a PNG image" if file_type in PREVIEW_TYPES else "an ECSV table"
        raise ArchiveError(f"{path}: not {kind}, expected one for file type {file_type}")


def _primary(metas):
    return next(t for t in PRIMARY_ORDER if t in metas)


def _by_priority(metas):
    return [metas[t] for t in PRIMARY_ORDER if t in metas]


def _mapping(value):
    return dict(value) if isinstance(value, dict) else {}


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _upper(value):
    return str(value).upper() if value not in (None, "") else None


def _one_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def write_stale_associations(stale, folder):
    """One association file per stale product with an archived uncal, ``<root>_asn.json`` in
    ``folder``; the member is the archived uncal, by a path relative to the file (as
    association files require). Returns the paths written."""
    from calpipe.associations.asn import make_asn, write_asn

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row in stale:
        if row["uncal"] is None:
            continue
        member = os.path.relpath(Path(row["uncal"]).resolve(), folder.resolve())
        asn = make_asn({row["root"]: [member]}, asn_id=f"reprocess-{row['root']}", program=row["program"],
                       target="reprocess", asn_rule="calpipe_reprocess", pool="archive")
        written.append(write_asn(asn, folder / f"{row['root']}_asn.json"))
    return written
