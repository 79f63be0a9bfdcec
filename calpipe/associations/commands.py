"""``calpipe asn ...``: build association files from a pool of Level-1 exposures."""

import sys
from pathlib import Path

from .pool import load_pool, write_associations


def register(subparsers):
    """Add the ``asn`` command and its subcommands to an argparse ``subparsers``."""
    asn = subparsers.add_parser("asn", help="association files")
    sub = asn.add_subparsers(dest="asn_command", required=True)
    p = sub.add_parser(
        "from-pool",
        help="group Level-1 exposures into products and write one association per product",
        description="POOL is a pool table (CSV or |-separated, with FILENAME and header keyword "
        "columns), a folder of *_uncal.asdf / *_uncal.fits exposures, or exposure files.",
    )
    p.add_argument("pool", nargs="+", help="pool table, exposure folder or exposure files")
    p.add_argument("--out", "-o", default=".", help="folder for the association files (default: .)")
    p.set_defaults(func=from_pool)
    return asn


def from_pool(args):
    if len(args.pool) == 1:
        exposures = load_pool(args.pool[0])
        pool_name = Path(args.pool[0]).resolve().name
    else:
        exposures = load_pool(args.pool)
        pool_name = "files"
    paths = write_associations(exposures, args.out, pool_name)
    for path in paths:
        print(path)
    print(f"{len(paths)} association(s) from {len(exposures)} exposure(s)", file=sys.stderr)
    return 0
