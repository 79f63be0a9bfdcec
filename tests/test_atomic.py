"""calpipe.atomic: whole files or none, the umask's permissions, orphans of dead processes cleaned."""

import os
import subprocess
import sys

import pytest

from calpipe.atomic import atomic_path, temporary_name, write_together


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "product.asdf"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_write_together_renames_nothing_until_every_file_is_written(tmp_path):
    def fail(tmp):
        raise OSError("no space left on device")

    first, second = tmp_path / "a_cat.ecsv", tmp_path / "a_cal.asdf"
    with pytest.raises(OSError):
        write_together([(first, lambda tmp: tmp.write_text("catalog")), (second, fail)])
    assert not first.exists() and not second.exists() and _leftovers(tmp_path) == []
    assert write_together([(first, lambda t: t.write_text("1")), (second, lambda t: t.write_text("2"))]) == [
        str(first), str(second)]
    assert first.read_text() == "1" and second.read_text() == "2"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_permissions_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "x.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode


def test_orphans_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "x.asdf"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".x.asdf.{int(dead.stdout)}.abc.part"
    alive = tmp_path / f".x.asdf.{os.getppid()}.def.part"  # a running process: still writing
    orphan.write_text("partial")
    alive.write_text("partial")
    tmp = temporary_name(target)
    assert not orphan.exists() and alive.exists()
    assert tmp.name.startswith(f".x.asdf.{os.getpid()}.") and tmp.parent == tmp_path
