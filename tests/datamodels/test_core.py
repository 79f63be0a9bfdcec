import os

import asdf
import numpy as np
import pytest

from calpipe import datamodels as dm
from calpipe.datamodels.core import _blocks, fill_block_checksums, write_asdf


def tree_with_blocks():
    rng = np.random.default_rng(3)
    return {
        "meta": {"model_type": "x", "note": "blocks follow the tree: é"},
        "big": rng.random((300, 400), dtype=np.float32),
        "ints": rng.integers(0, 2**31, (50, 70)).astype(np.uint32),
        "nested": [np.zeros(0, np.float64), np.arange(7, dtype=np.int16)],
        "view": rng.random((60, 80))[::2, 1:],  # not contiguous: asdf writes its own copy
    }


@pytest.mark.parametrize("threads", [1, 3])
def test_checksums_filled_in_give_the_bytes_asdf_writes(tmp_path, threads):
    tree = tree_with_blocks()
    asdf.AsdfFile(tree).write_to(tmp_path / "asdf.asdf")
    asdf.AsdfFile(tree).write_to(tmp_path / "ours.asdf", write_checksums=False)
    fill_block_checksums(tmp_path / "ours.asdf", threads=threads)
    assert (tmp_path / "ours.asdf").read_bytes() == (tmp_path / "asdf.asdf").read_bytes()


def test_write_asdf_writes_the_bytes_asdf_writes(tmp_path):
    tree = tree_with_blocks()
    asdf.AsdfFile(tree).write_to(tmp_path / "asdf.asdf")
    write_asdf(asdf.AsdfFile(tree), tmp_path / "ours.asdf")
    assert (tmp_path / "ours.asdf").read_bytes() == (tmp_path / "asdf.asdf").read_bytes()


def test_checksums_written_in_parallel_catch_a_flipped_byte(tmp_path, raw_model):
    path = raw_model.save(tmp_path / "x_uncal.asdf")
    with dm.open(path) as model:
        np.testing.assert_array_equal(model.data, raw_model.data)
    with open(path, "rb") as f:
        _, data_start, _ = _blocks(f.fileno(), os.path.getsize(path))[0]
    raw = bytearray((tmp_path / "x_uncal.asdf").read_bytes())
    raw[data_start] ^= 1
    (tmp_path / "x_uncal.asdf").write_bytes(bytes(raw))
    with pytest.raises(dm.DataModelError, match="damaged array data"):
        dm.open(path)


def test_a_file_without_blocks_is_left_as_written(tmp_path):
    asdf.AsdfFile({"meta": {"a": 1}}).write_to(tmp_path / "a.asdf")
    before = (tmp_path / "a.asdf").read_bytes()
    fill_block_checksums(tmp_path / "a.asdf")
    assert (tmp_path / "a.asdf").read_bytes() == before


def test_write_asdf_hashes_compressed_blocks_from_the_file(tmp_path):
    tree = tree_with_blocks()
    expected, ours = asdf.AsdfFile(tree), asdf.AsdfFile(tree)
    for af in (expected, ours):
        af.set_array_compression(tree["big"], "zlib")
    expected.write_to(tmp_path / "asdf.asdf")
    write_asdf(ours, tmp_path / "ours.asdf")
    assert (tmp_path / "ours.asdf").read_bytes() == (tmp_path / "asdf.asdf").read_bytes()
