"""What verifying ASDF block checksums costs when calpipe opens a raw exposure.

Writes a raw-sized cube (default 6 x 4096 x 4096 uint16, 200 MB), then opens it as calpipe
does (lazy, memory-mapped) with and without checksum validation, touching the array, and
prints the median of several runs of each and the difference.

    python benchmarks/checksums.py [--size 4096] [--nresultants 6] [--repeat 3]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import asdf
import numpy as np


def open_and_touch(path, validate):
    start = time.perf_counter()
    with asdf.open(path, lazy_load=True, memmap=True, validate_checksums=validate) as af:
        np.asarray(af["data"])[:, ::64, ::64].sum()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--nresultants", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    cube = rng.integers(0, 60000, (args.nresultants, args.size, args.size), dtype=np.uint16)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "raw.asdf"
        asdf.AsdfFile({"data": cube}).write_to(path)
        mb = path.stat().st_size / 2**20
        plain = statistics.median(open_and_touch(path, False) for _ in range(args.repeat))
        checked = statistics.median(open_and_touch(path, True) for _ in range(args.repeat))
    print(f"{mb:.0f} MB raw cube: open {plain:.3f} s, with checksums {checked:.3f} s, "
          f"verification costs {checked - plain:.3f} s ({(checked - plain) / mb * 1e3:.2f} ms/MB)")


if __name__ == "__main__":
    main()
