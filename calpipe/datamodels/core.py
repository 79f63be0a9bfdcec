"""ASDF-backed data models.

A model is a thin wrapper around an ASDF tree: ``model.meta`` gives attribute access to the
``meta`` mapping and every other top-level entry (``data``, ``dq``, ...) is an attribute too.
Each class names its schema; files are validated when opened and when saved.
"""

import hashlib
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asdf
import numpy as np
from asdf import generic_io
from asdf.exceptions import ValidationError

from calpipe.atomic import atomic_path, write_together
from calpipe.errors import CalpipeError

from ._asdf_extensions import load_asdf_extensions

SCHEMA_BASE = "asdf://calpipe.org/schemas/"


class DataModelError(CalpipeError, ValueError):
    """A file or tree that is not a valid calpipe model; the message is one line for the user."""


class Node:
    """Attribute access to a nested mapping; assigning to a missing branch creates it."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping):
        object.__setattr__(self, "_mapping", mapping)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            value = self._mapping[name]
        except KeyError:
            # Missing branches read as empty nodes that attach themselves on first write,
            # so `model.meta.cal_step.saturation = "COMPLETE"` works on a fresh model.
            return _Pending(self._mapping, name)
        return Node(value) if isinstance(value, dict) else value

    def __setattr__(self, name, value):
        self._mapping[name] = value.to_dict() if isinstance(value, Node) else value

    def __delattr__(self, name):
        self._mapping.pop(name, None)

    def __getitem__(self, name):
        return self.__getattr__(name)

    def __setitem__(self, name, value):
        self.__setattr__(name, value)

    def __contains__(self, name):
        return name in self._mapping

    def __iter__(self):
        return iter(self._mapping)

    def __bool__(self):
        return bool(self._mapping)

    def __eq__(self, other):
        other = other.to_dict() if isinstance(other, Node) else other
        return self._mapping == other

    def __repr__(self):
        return f"Node({self._mapping!r})"

    def get(self, name, default=None):
        value = self._mapping.get(name, default)
        return Node(value) if isinstance(value, dict) else value

    def items(self):
        return self._mapping.items()

    def to_dict(self):
        return self._mapping


class _Pending(Node):
    """An absent branch: empty when read, created in its parent when written to."""

    __slots__ = ("_parent", "_name")

    def __init__(self, parent, name):
        super().__init__({})
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_name", name)

    def __setattr__(self, name, value):
        self._parent.setdefault(self._name, self._mapping)
        super().__setattr__(name, value)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Pending(self._mapping, name) if name not in self._mapping else super().__getattr__(name)

    def __bool__(self):
        return False


class DataModel:
    """Base of every calpipe model. Subclasses set ``schema`` (the schema name without version)."""

    schema = None
    schema_version = "1.0.0"
    crds_observatory = "roman"  # stpipe recognises models by this attribute; CRDS is never asked

    def __init__(self, init=None, *, checksums=True, **entries):
        """``checksums=False`` skips the block checksums of a file already verified unchanged
        (a reference file whose store entry still matches it)."""
        object.__setattr__(self, "_asdf", None)
        object.__setattr__(self, "_path", None)
        object.__setattr__(self, "_side_products", {})
        object.__setattr__(self, "_converted", False)
        if init is None:
            tree = {}
        elif isinstance(init, DataModel):
            tree = dict(init._tree)
        elif isinstance(init, dict):
            tree = init
        elif isinstance(init, (str, Path)):
            af = _open_asdf(init, self.schema_uri(), checksums)
            object.__setattr__(self, "_asdf", af)
            object.__setattr__(self, "_path", str(init))
            tree = af.tree
        else:
            raise TypeError(f"cannot make a {type(self).__name__} from {type(init).__name__}")
        object.__setattr__(self, "_tree", tree)
        for name, value in entries.items():
            tree[name] = value
        meta = tree.setdefault("meta", {})
        meta.setdefault("model_type", type(self).__name__)
        if self._path is not None:
            meta["filename"] = os.path.basename(self._path)
            self._check(self._path)

    # -- tree access ---------------------------------------------------------------------
    @classmethod
    def schema_uri(cls):
        return f"{SCHEMA_BASE}{cls.schema}-{cls.schema_version}" if cls.schema else None

    @property
    def meta(self):
        return Node(self._tree["meta"])

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            value = self._tree[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no {name!r}") from None
        if hasattr(value, "_make_array"):
            # A lazily loaded ASDF array: map it once and keep the plain ndarray view.
            value = self._tree[name] = np.asarray(value)
        return Node(value) if isinstance(value, dict) else value

    def __setattr__(self, name, value):
        if name.startswith("_") or isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
        else:
            self._tree[name] = value.to_dict() if isinstance(value, Node) else value

    def __contains__(self, name):
        return name in self._tree

    @property
    def tree(self):
        return self._tree

    # -- validation ----------------------------------------------------------------------
    def validate(self, source=None):
        """Check the tree against the schema and the model's own rules; raise DataModelError."""
        uri = self.schema_uri()
        if uri:
            try:
                asdf.AsdfFile(self._tree, custom_schema=uri).validate()
            except ValidationError as err:
                raise DataModelError(_describe(err, source or self._name())) from None
        self._check(source)

    def _check(self, source=None):
        """Cross-array rules a schema cannot state (matching shapes and the like)."""
        problems = list(self.problems())
        if problems:
            raise DataModelError(f"{source or self._name()}: {problems[0]}")

    def problems(self):
        """Yield one sentence per violated cross-array rule."""
        return iter(())

    def _name(self):
        return self._path or self._tree.get("meta", {}).get("filename") or type(self).__name__

    # -- stpipe's duck-typed model interface -------------------------------------------------
    def get_crds_parameters(self):
        """Flat {'meta.a.b': value} of the scalar metadata (used for logs and selection)."""
        flat = {}

        def walk(prefix, node):
            for key, value in node.items():
                if isinstance(value, dict):
                    walk(f"{prefix}{key}.", value)
                elif isinstance(value, (str, int, float, bool)):
                    flat[f"{prefix}{key}"] = value

        walk("meta.", self._tree.get("meta", {}))
        return flat

    def save(self, path, dir_path=None, *args, **kwargs):
        """Validate, then write this model and its side products together.

        Each file goes to a temporary name beside its target; only once all are written are
        they renamed into place, this model's own file last. The model is validated as asdf
        serializes it (one pass), and nothing is renamed into place if it is invalid.
        """
        if callable(path):
            path = path(self.meta.get("filename") or type(self).__name__.lower())
        path = os.fspath(path)
        if dir_path:
            path = os.path.join(dir_path, os.path.basename(path))
        self._tree["meta"]["filename"] = os.path.basename(path)
        writers = [*self._side_products.items(), (path, lambda tmp: self.write_to(tmp, name=path))]
        try:
            write_together(writers)
        except ValidationError as err:
            raise DataModelError(_describe(err, path)) from None
        return path

    def write_to(self, path, name=None):
        """Write the tree as ASDF to ``path`` (no renaming), checked against the schema as it
        is serialized and then against the cross-array rules; errors name ``name`` or ``path``."""
        write_asdf(asdf.AsdfFile(self._tree, custom_schema=self.schema_uri()), path)
        self._check(name or path)

    def add_side_product(self, path, write):
        """Have ``write(tmp)`` produce ``path`` in the same write as this model's :meth:`save`.

        A later call for the same path replaces the earlier one; nothing is written unless
        this model is saved.
        """
        self._side_products[os.fspath(path)] = write

    @property
    def file_backed(self):
        """True while the model's arrays are read from its open file."""
        return self._asdf is not None

    @property
    def side_products(self):
        """Paths of the files that :meth:`save` will write beside this model."""
        return list(self._side_products)

    def load_arrays(self):
        """Read every array into writable memory and let go of the file (for in-place steps)."""
        materialized = _materialize(self._tree, writable=True)
        self.close()
        object.__setattr__(self, "_tree", materialized)
        return self

    def copy(self):
        """An independent in-memory copy (arrays included)."""
        import copy

        return type(self)(copy.deepcopy(_materialize(self._tree)))

    def mark_converted(self):
        """Mark this in-memory model as converted from a file of another format (a Roman
        file): :meth:`close` lets go of its arrays, as it does of a file-backed model's."""
        object.__setattr__(self, "_converted", True)
        return self

    def close(self):
        """Close the file; a file-backed (or converted) model keeps its metadata but lets go of
        its arrays."""
        if self._asdf is not None:
            self._asdf.close()
            object.__setattr__(self, "_asdf", None)
        elif not self._converted:
            return
        object.__setattr__(self, "_converted", False)
        object.__setattr__(self, "_tree", {"meta": self._tree.get("meta", {})})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self._name()}>"

    @property
    def shape(self):
        data = self._tree.get("data")
        return None if data is None else data.shape


def write_tree(path, tree):
    """Write an ASDF tree atomically: a crash never leaves a half-written file at ``path``."""
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        write_asdf(asdf.AsdfFile(tree), tmp)
    return path


# An ASDF block (ASDF Standard 1.x, "Blocks"): magic, a big-endian uint16 header size, then
# the header: flags, compression, allocated, used and data sizes, and the MD5 of the used data.
BLOCK_MAGIC = b"\xd3BLK"
BLOCK_HEADER = struct.Struct(">I4sQQQ16s")
CHECKSUM_OFFSET = len(BLOCK_MAGIC) + 2 + BLOCK_HEADER.size - 16  # from the block's start
STREAMED = 1
_HASH_CHUNK = 8 * 2**20


def write_asdf(af, path):
    """Write ``af`` to ``path`` with every block's checksum, the blocks hashed in parallel.

    asdf hashes the blocks one after the other as it writes them; here it writes them with
    zero checksums while other threads hash each array from memory as it is handed to the
    file, and the MD5s are then put into the headers. A block written some other way (a
    compressed one) is hashed from the written bytes. The file is byte for byte the one
    ``af.write_to(path)`` writes.
    """
    load_asdf_extensions()
    with ThreadPoolExecutor(_hash_threads()) as pool, open(path, "wb") as f:
        hashing = _HashingFile(f, pool)
        af.write_to(hashing, write_checksums=False)
        f.flush()
        fill_block_checksums(path, known=hashing.digests)


class _HashingFile(generic_io.RealFile):
    """asdf's file for writing, which hands each array it writes to ``pool`` to be hashed:
    ``digests`` maps the array's offset in the file to (its size, the future MD5)."""

    def __init__(self, fd, pool):
        super().__init__(fd, "w")
        self._pool = pool
        self.digests = {}

    def write_array(self, arr):
        self.digests[self.tell()] = (arr.nbytes, self._pool.submit(_md5_of_array, arr))
        super().write_array(arr)


def _md5_of_array(arr):
    return hashlib.md5(arr.data, usedforsecurity=False).digest()  # releases the GIL


def _hash_threads():
    return min(os.cpu_count() or 1, 4)


def fill_block_checksums(path, threads=None, known=None):
    """Put the MD5 of each block's used data into its header, ``threads`` blocks at a time.
    ``known``: {data offset: (size, future MD5)} of blocks already being hashed."""
    known = known or {}
    with open(path, "r+b") as f:
        fd = f.fileno()
        blocks = _blocks(fd, os.fstat(fd).st_size)
        if not blocks:
            return
        digests = {start: known[data][1] for start, data, used in blocks
                   if data in known and known[data][0] == used}
        rest = sorted((block for block in blocks if block[0] not in digests), key=lambda block: -block[2])
        with ThreadPoolExecutor(threads or min(max(len(rest), 1), _hash_threads())) as pool:
            for start, data, used in rest:  # largest first
                digests[start] = pool.submit(_md5_of_range, fd, data, used)
            for start, digest in digests.items():
                os.pwrite(fd, digest.result(), start + CHECKSUM_OFFSET)


def _blocks(fd, size):
    """(block start, data start, used size) of every block of an open ASDF file."""
    offset = _first_block(fd, size)
    blocks = []
    while offset is not None and offset + len(BLOCK_MAGIC) + 2 + BLOCK_HEADER.size <= size:
        head = os.pread(fd, len(BLOCK_MAGIC) + 2 + BLOCK_HEADER.size, offset)
        if head[:4] != BLOCK_MAGIC:
            break  # the block index, or the end
        (header_size,) = struct.unpack(">H", head[4:6])
        flags, _, allocated, used, _, _ = BLOCK_HEADER.unpack(head[6:])
        if flags & STREAMED:
            raise ValueError("a streamed block has no checksum to fill")
        data = offset + 6 + header_size
        blocks.append((offset, data, used))
        offset = data + allocated
    return blocks


def _first_block(fd, size):
    # The tree is UTF-8 text, in which the block magic (0xd3 and then an ASCII letter) cannot
    # occur: the first match is the first block.
    offset, tail = 0, b""
    while offset < size:
        chunk = os.pread(fd, 2**20, offset)
        found = (tail + chunk).find(BLOCK_MAGIC)
        if found >= 0:
            return offset - len(tail) + found
        tail, offset = chunk[-3:], offset + len(chunk)
    return None


def _md5_of_range(fd, start, length):
    digest = hashlib.md5(usedforsecurity=False)
    buffer = bytearray(min(length, _HASH_CHUNK))
    view = memoryview(buffer)
    while length > 0:
        n = os.preadv(fd, [view[:min(length, len(buffer))]], start)
        if n <= 0:
            raise OSError(f"unexpected end of file at byte {start}")
        digest.update(view[:n])  # releases the GIL: threads hash in parallel
        start, length = start + n, length - n
    return digest.digest()


def _materialize(tree, writable=False):
    """Copy lazily loaded (or read-only mapped) arrays into memory so the tree outlives its file."""
    if isinstance(tree, dict):
        return {k: _materialize(v, writable) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_materialize(v, writable) for v in tree]
    if hasattr(tree, "_make_array") or isinstance(tree, np.ndarray):  # a lazy ASDF array or a mapped one
        if not isinstance(tree, np.ndarray) or (writable and not tree.flags.writeable):
            return np.array(tree)
    elif hasattr(tree, "colnames") and hasattr(tree, "copy"):  # a table read from the file: its own copy
        return tree.copy(copy_data=True)
    return tree


def _open_asdf(path, schema_uri, checksums=True):
    load_asdf_extensions()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataModelError(f"{path}: no such file")
    try:
        # Every block's checksum is checked as it is mapped: flipped bits in an array are
        # refused, not calibrated (benchmarks/checksums.py: a few tenths of a second per 200 MB;
        # a store's reference files are checked once, see RefStore.unchanged). The tree is validated
        # as it is read, before its tagged objects are converted: one pass (validating the
        # opened file would convert them back first).
        with asdf.config_context() as config:
            config.validate_on_read = True
            af = asdf.open(path, lazy_load=True, memmap=True, custom_schema=schema_uri,
                           validate_checksums=checksums)
    except ValidationError as err:
        raise DataModelError(_describe(err, path)) from None
    except Exception as err:  # asdf raises many kinds for a damaged file
        what = "damaged array data" if "checksum" in str(err) else "not a readable ASDF file"
        raise DataModelError(f"{path}: {what} ({_one_line(err)})") from None
    try:
        _touch_arrays(af.tree)
    except Exception as err:
        af.close()
        what = "damaged array data" if "checksum" in str(err) else "damaged or truncated array data"
        raise DataModelError(f"{path}: {what} ({_one_line(err)})") from None
    return af


def _touch_arrays(tree):
    # Mapping each array finds a truncated or corrupted file now rather than halfway
    # through a step.
    if isinstance(tree, dict):
        for value in tree.values():
            _touch_arrays(value)
    elif isinstance(tree, list):
        for value in tree:
            _touch_arrays(value)
    elif hasattr(tree, "_make_array"):
        np.asarray(tree)


def _describe(err, source):
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    message = _one_line(err.message)
    if len(message) > 200:
        message = message[:200] + "..."
    return f"{source}: invalid at {where}: {message}"


def _one_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
