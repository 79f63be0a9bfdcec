"""Atomic writes: a file appears whole under its name, or not at all.

Part of calpipe's bottom layer. Each file is written to a unique temporary name in its
destination folder (``.<name>.<pid>.<random>.part``), then renamed into place; a failure
removes the temporary files, and the next write of the same name removes those left by a
process that no longer runs (a kill -9). Files get the permissions the user's umask gives,
not the temporary file's private ones.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _remove_orphans(path):
    """Temporary files of ``path`` left by processes that are gone."""
    for stale in path.parent.glob(f".{path.name}.*.part"):
        pid = stale.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            stale.unlink(missing_ok=True)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temporary_name(path):
    """A new, empty temporary file beside ``path``, with the umask's permissions."""
    path = Path(path)
    _remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _umask_mode())
    return Path(tmp)


def write_together(writers):
    """Write several files so that none is renamed into place before all are written.

    ``writers`` is a list of ``(path, write)``: ``write(tmp_path)`` fills a temporary file.
    The files are renamed in the order given (put the main product last), returning their
    paths as strings.
    """
    temporaries = []
    try:
        for path, write in writers:
            tmp = temporary_name(path)
            temporaries.append((tmp, Path(path)))
            write(tmp)
        for tmp, path in temporaries:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temporaries:
            tmp.unlink(missing_ok=True)
    return [str(path) for _, path in temporaries]


@contextmanager
def atomic_path(path):
    """``with atomic_path(p) as tmp: write tmp`` — ``p`` appears once the block succeeds."""
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
