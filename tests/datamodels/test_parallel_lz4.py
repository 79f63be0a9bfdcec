"""calpipe.datamodels._parallel_lz4: asdf's lz4 blocks decompressed on threads."""

import struct

import asdf
import numpy as np
import pytest

pytest.importorskip("lz4")

from calpipe.datamodels._parallel_lz4 import _frames, reading  # noqa: E402


def _stream(payloads):
    return b"".join(struct.pack("!I", len(p)) + p for p in payloads)


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5, 7, 11, 64])
def test_frames_survive_any_cut(cut):
    payloads = [b"abcdef", b"", b"x" * 40, b"0123456789", b"yz"]
    stream = _stream(payloads)
    blocks = [stream[i:i + cut] for i in range(0, len(stream), cut)]
    assert [bytes(chunk) for chunk in _frames(blocks)] == payloads


def test_truncated_stream_is_an_error():
    stream = _stream([b"abcdef", b"ghijkl"])[:-2]
    with pytest.raises(ValueError, match="truncated"):
        list(_frames([stream]))


def _write(path, tree):
    asdf.AsdfFile(tree).write_to(path, all_array_compression="lz4")


@pytest.mark.parametrize("io_block", [4096, 2**20 + 3, 16 * 2**20])
def test_reads_what_asdf_writes(tmp_path, io_block):
    # Arrays of several 4 MiB chunks, one chunk, a partial chunk and none; noise (incompressible)
    # and zeros (compressible); read with reads that cut the chunks anywhere.
    rng = np.random.default_rng(3)
    tree = {
        "noise": rng.normal(1000, 30, (1500, 1100)).astype(np.float32),  # 6.6 MB: two chunks
        "zeros": np.zeros((2048, 2048), np.uint32),  # 16 MiB: four chunks, exactly
        "small": np.arange(1001, dtype=np.int16),
        "empty": np.zeros((0, 3), np.float64),
    }
    path = tmp_path / "lz4.asdf"
    _write(path, tree)
    with reading() as config:
        config.io_block_size = io_block
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            got = {key: np.array(af.tree[key]) for key in tree}
    for key, array in tree.items():
        assert got[key].dtype == array.dtype and np.array_equal(got[key], array)


def test_damaged_chunk_is_an_error(tmp_path):
    path = tmp_path / "lz4.asdf"
    _write(path, {"noise": np.random.default_rng(4).normal(0, 1, 2**21)})  # 16 MiB: four chunks
    raw = bytearray(path.read_bytes())
    start = raw.index(b"\xd3BLK") + 6 + struct.unpack(">H", raw[raw.index(b"\xd3BLK") + 4:][:2])[0]
    raw[start + 4:start + 8] = struct.pack("<I", 123)  # the first chunk's stored length
    path.write_bytes(bytes(raw))
    with reading(), pytest.raises(ValueError, match="damaged lz4 chunk|lz4 chunk holds|longer"):
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            np.array(af.tree["noise"])


def test_written_files_name_no_extension_of_calpipe(tmp_path):
    # Products are written outside reading(): asdf's own compressor, no extra extension.
    path = tmp_path / "out.asdf"
    _write(path, {"a": np.ones(10)})
    with asdf.open(path) as af:
        used = [e.get("extension_uri", "") for e in af.tree.get("history", {}).get("extensions", [])]
    assert not any("calpipe" in uri for uri in used)
