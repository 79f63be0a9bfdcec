"""asdf's lz4 blocks decompressed on every thread.

The Roman mission's files store each array as one asdf block compressed with lz4, in chunks
of 4 MiB, each framed by its compressed length (big-endian) and stored by python-lz4 with
its decompressed length (little-endian) in front. asdf decompresses the chunks one after
another in Python. Here the chunks of a block are handed to the threads as soon as the
file's bytes hold them whole, each written straight to its place in the array (its offset is
the sum of the earlier chunks' stored lengths); python-lz4 releases the GIL while it
decompresses. At most one chunk more than there are threads is in hand at a time, so the
compressed bytes are never all held at once.

The decompressor is offered to asdf as the compressor of the ``lz4`` label by an extension
active only inside :func:`reading`, in the thread that enters it (asdf prefers an
extension's compressor to its own). calpipe only reads there: its Roman products are
written outside by asdf's own compressor, so that no product names this extension.
``tests/datamodels/test_parallel_lz4.py`` checks that it reads what asdf writes, however the
file's reads cut the chunks.
"""

import struct
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import asdf
import numpy as np
from asdf.exceptions import AsdfWarning
from asdf.extension import Compressor, Extension

LABEL = b"lz4"


def _frames(blocks):
    """The chunks of a framed lz4 stream read as ``blocks`` (bytes-likes cut anywhere): each
    chunk's bytes without its length frame, as a view of the block that holds it whole, or a
    copy where it spans blocks."""
    partial = bytearray()  # the start of a chunk (frame included) that the next block completes
    for block in blocks:
        view = memoryview(block).cast("B")
        pos = 0
        if partial:
            if len(partial) < 4:
                take = min(4 - len(partial), len(view))
                partial += view[:take]
                pos = take
            if len(partial) >= 4:
                end = 4 + struct.unpack("!I", partial[:4])[0]
                take = min(end - len(partial), len(view) - pos)
                partial += view[pos:pos + take]
                pos += take
                if len(partial) == end:
                    yield memoryview(partial)[4:]
                    partial = bytearray()
        while pos < len(view) and not partial:
            if len(view) - pos < 4:
                partial += view[pos:]
                break
            end = pos + 4 + struct.unpack("!I", view[pos:pos + 4])[0]
            if end > len(view):
                partial += view[pos:]
                break
            yield view[pos + 4:end]
            pos = end
    if partial:
        raise ValueError("lz4 data ends inside a chunk (truncated block)")


class ParallelLz4(Compressor):
    """Decompresses asdf's lz4 blocks on ``threads`` threads. It does not compress (calpipe
    writes outside :func:`reading`): ``compress`` is the protocol's, which raises."""

    label = LABEL

    def __init__(self, threads):
        import lz4.block

        self._lz4 = lz4.block
        self.threads = threads

    def decompress(self, data, out, **kwargs):
        out = np.frombuffer(out, np.uint8)

        def unpack(chunk, start, size):
            try:
                values = self._lz4.decompress(chunk, **kwargs)
            except self._lz4.LZ4BlockError as err:
                raise ValueError(f"a damaged lz4 chunk ({err})") from None
            if len(values) != size:
                raise ValueError(f"an lz4 chunk holds {len(values)} bytes, its header says {size}")
            out[start:start + size] = np.frombuffer(values, np.uint8)

        written = 0
        waiting = deque()
        with ThreadPoolExecutor(self.threads) as pool:
            try:
                for chunk in _frames(data):
                    if len(chunk) < 4:
                        raise ValueError("an lz4 chunk too short to hold its length")
                    size = int.from_bytes(chunk[:4], "little")
                    if written + size > len(out):
                        raise ValueError("lz4 data longer than the array it decompresses to")
                    waiting.append(pool.submit(unpack, chunk, written, size))
                    written += size
                    while len(waiting) > self.threads:
                        waiting.popleft().result()
                while waiting:
                    waiting.popleft().result()
            finally:
                for future in waiting:
                    future.cancel()
        return written


class _ParallelLz4Extension(Extension):
    extension_uri = "asdf://calpipe.org/calpipe/extensions/parallel-lz4-1.0.0"

    def __init__(self, threads):
        self._compressors = [ParallelLz4(threads)]

    @property
    def compressors(self):
        return self._compressors


@contextmanager
def reading():
    """asdf decompresses lz4 blocks on every thread inside this block (this thread's asdf
    configuration only)."""
    from calpipe.kernels.threads import thread_count

    # A context copies the extensions asdf has loaded; loaded for it alone, they would be
    # loaded again from the entry points on every file (about 60 ms)
    asdf.get_config().extensions  # noqa: B018
    with asdf.config_context() as config, warnings.catch_warnings():
        # asdf warns of every extension that takes over one of its own compressors
        warnings.filterwarnings("ignore", message=f'Found more than one compressor for "{LABEL.decode()}"',
                                category=AsdfWarning)
        config.add_extension(_extension(thread_count(64)))
        yield config


@lru_cache(maxsize=4)
def _extension(threads):
    # one object per thread count: asdf caches what it builds from an equal list of extensions
    return _ParallelLz4Extension(threads)
