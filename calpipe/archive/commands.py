"""``calpipe archive ...`` and ``calpipe quicklook ...``."""

import csv
import json
import os
import sys
from pathlib import Path

from calpipe.errors import CalpipeError, describe_os_error

FORMATS = ("table", "csv", "json")
FIND_COLUMNS = ["root", "type", "version", "default", "last", "path", "program", "detector", "filter",
                "exp_type", "start_time", "size", "checksum"]
ARCHIVE_ENV = "CALPIPE_ARCHIVE"


def register(subparsers):
    """Add the ``archive`` and ``quicklook`` commands to an argparse ``subparsers``."""
    archive = subparsers.add_parser("archive", help="the versioned product archive")
    archive.add_argument("--archive", "-a", default=os.environ.get(ARCHIVE_ENV),
                         help=f"archive folder (default: ${ARCHIVE_ENV})")
    archive.add_argument("--db", default=None,
                         help="database URL or SQLite file (default: $CALPIPE_ARCHIVE_DATABASE_URL, "
                              "else <archive>/archive.db)")
    sub = archive.add_subparsers(dest="archive_command", required=True, metavar="ACTION")

    p = sub.add_parser("add", help="archive products (files or folders); identical content is a no-op")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--link", action="store_true", help="hard-link the files instead of copying them")
    p.add_argument("--no-previews", dest="previews", action="store_false",
                   help="do not render the preview and thumbnail of new versions")
    p.set_defaults(func=add_command)

    p = sub.add_parser("versions", help="the versions of a root")
    p.add_argument("root")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=versions_command)

    p = sub.add_parser("release", help="make a version the default of its root")
    p.add_argument("root")
    p.add_argument("version", type=number)
    p.set_defaults(func=release_command)

    p = sub.add_parser("find", help="archived files by metadata")
    _find_filters(p)
    p.add_argument("--type", dest="file_type", help="file type (uncal, rate, cal, cat, segm, wcs, preview, thumb)")
    p.add_argument("--version", default="default", help="default, last, all or a number (default: default)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=find_command)

    p = sub.add_parser("get", help="the path of one archived file")
    p.add_argument("root")
    p.add_argument("--type", dest="file_type", default="cal", help="file type (default: cal)")
    p.add_argument("--version", default="default", help="default, last or a number (default: default)")
    p.set_defaults(func=get_command)

    p = sub.add_parser("stale", help="default products to reprocess: newer best references or an older calpipe")
    p.add_argument("--ref-store", required=True, help="the reference store to compare with")
    p.add_argument("--format", choices=(*FORMATS, "list"), default="table",
                   help="table, csv, json, or list (the archived uncal paths, one a line)")
    p.add_argument("--asn-dir", help="also write one association file per stale product here, "
                                     "for `calpipe batch run DIR` or `strun exposure_pipeline`")
    p.set_defaults(func=stale_command)

    p = sub.add_parser("report", help="write a static HTML site of the archive")
    p.add_argument("folder", metavar="DIR", help="the archive folder")
    p.add_argument("--out", required=True, help="folder for the site")
    p.set_defaults(func=report_command)

    quick = subparsers.add_parser("quicklook", help="preview and thumbnail PNGs of rate, cal or raw exposures")
    quick.add_argument("files", nargs="+", metavar="FILE")
    quick.add_argument("--out", default=None, help="folder for the PNGs (default: beside each file)")
    quick.add_argument("--catalog", default=None,
                       help="source catalog to overlay (default: <root>_cat.ecsv beside the file, if any)")
    quick.add_argument("--limits", choices=("percentile", "zscale"), default="percentile")
    quick.set_defaults(func=quicklook_command)
    return archive


def _find_filters(p):
    p.add_argument("--program", help="program number")
    p.add_argument("--detector", help="detector (WFI01, ...)")
    p.add_argument("--filter", dest="optical_element", help="optical element (F158, ...)")
    p.add_argument("--exp-type", dest="exp_type", help="exposure type (WFI_IMAGE, ...)")
    p.add_argument("--start", help="exposures starting at or after this time (ISO)")
    p.add_argument("--stop", help="exposures starting at or before this time (ISO)")


def number(text):
    if not text.lstrip("v").isdigit():
        raise ValueError(f"version {text!r}: expected a number")
    return int(text.lstrip("v"))


def _open(args, create=False):
    from .archive import Archive

    if not args.archive:
        raise CalpipeError(f"no archive folder: pass --archive DIR or set {ARCHIVE_ENV}")
    return Archive(args.archive, args.db, create=create)


# -- commands ---------------------------------------------------------------------------------
def add_command(args):
    with _open(args, create=True) as archive:
        result = archive.add(args.paths, link=args.link, previews=args.previews)
    for root, version in result.added:
        print(f"added     {root} v{version:02d}")
    for root, version in result.unchanged:
        print(f"unchanged {root} v{version:02d} (same content)")
    for line in result.errors:
        print(f"{args.command}: error: {line}", file=sys.stderr)
    return 1 if result.errors else 0


def versions_command(args):
    with _open(args) as archive:
        rows = archive.versions(args.root)
    for row in rows:
        row["types"] = " ".join(row["types"])
    _print_rows(rows, ["version", "default", "last", "created", "calpipe_version", "types"], args.format)
    return 0


def release_command(args):
    with _open(args) as archive:
        archive.release(args.root, args.version)
    print(f"{args.root}: v{args.version:02d} is the default")
    return 0


def find_command(args):
    with _open(args) as archive:
        table = archive.find(program=args.program, detector=args.detector,
                             optical_element=args.optical_element, exp_type=args.exp_type,
                             start=args.start, stop=args.stop, file_type=args.file_type,
                             version=args.version)
    rows = [{name: _plain(row[name]) for name in FIND_COLUMNS} for row in table]
    _print_rows(rows, FIND_COLUMNS, args.format)
    return 0


def get_command(args):
    with _open(args) as archive:
        print(archive.get(args.root, args.file_type, args.version))
    return 0


def stale_command(args):
    from .archive import write_stale_associations

    with _open(args) as archive:
        rows = archive.stale(args.ref_store)
    missing = [r for r in rows if r["uncal"] is None]
    for row in missing:
        print(f"{args.command}: error: {row['root']} v{row['version']:02d}: no uncal archived, "
              "cannot be queued for reprocessing", file=sys.stderr)
    if args.asn_dir:
        for path in write_stale_associations(rows, args.asn_dir):
            print(f"wrote {path}", file=sys.stderr)
    if args.format == "list":
        for row in rows:
            if row["uncal"]:
                print(row["uncal"])
    else:
        for row in rows:
            row["reasons"] = "; ".join(row["reasons"])
        _print_rows(rows, ["root", "version", "program", "uncal", "reasons"], args.format)
    return 1 if missing else 0


def report_command(args):
    from .archive import Archive
    from .report import write_report

    with Archive(args.folder, args.db, create=False) as archive:
        index = write_report(archive, args.out)
    print(index)
    return 0


def quicklook_command(args):
    from .quicklook import quicklook
    from .schema import file_name, split_name

    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            catalog = args.catalog
            parsed = split_name(path.name)
            if catalog is None and parsed:
                beside = path.with_name(file_name(parsed[0], "cat"))
                catalog = beside if beside.exists() else None
            made = quicklook(path, args.out or path.parent, catalog=catalog, limits=args.limits)
            print(f"{made['preview']}\n{made['thumb']}")
        except OSError as err:
            print(f"{args.command}: error: {describe_os_error(err)}", file=sys.stderr)
            failed += 1
        except (CalpipeError, ValueError) as err:
            print(f"{args.command}: error: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


# -- output -----------------------------------------------------------------------------------
def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return value


def _print_rows(rows, columns, fmt):
    if fmt == "json":
        json.dump([{c: row.get(c) for c in columns} for row in rows], sys.stdout, indent=1)
        print()
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        text = [[("-" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in text]) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
        for r in text:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
