"""``calpipe db ...``: ingest reports into, export, inspect and upgrade the training database."""

import sys

from .db import TrainingDB
from .ingest import IngestError


def register(subparsers):
    """Add the ``db`` command and its subcommands to an argparse ``subparsers``."""
    db = subparsers.add_parser("db", help="the training database")
    sub = db.add_subparsers(dest="db_command", required=True)
    url_help = "database URL or SQLite file (default: $CALPIPE_DATABASE_URL, else ./calpipe-training.db)"
    p = sub.add_parser("export", help="write the training CSV files")
    p.add_argument("--out", "-o", required=True, help="folder for the CSV files")
    p.add_argument("--db", default=None, help=url_help)
    p.add_argument("--layout", choices=("calpipe", "spacekit"), default="calpipe",
                   help="calpipe's files (default), or spacekit's per-family training files")
    p.set_defaults(func=export_command)
    p = sub.add_parser("ingest-reports", help="ingest JWST operations CSV reports (no association needed)",
                       description="Each report is ingested in its own transaction, in the order given. "
                       "A report that cannot be read is reported in one line and the others are ingested; "
                       "the exit status is then 1.")
    p.add_argument("reports", nargs="+", metavar="REPORT.csv", help="operations report(s)")
    p.add_argument("--db", default=None, help=url_help)
    p.set_defaults(func=ingest_reports_command)
    p = sub.add_parser("migrate", help="upgrade a database written by an older calpipe")
    p.add_argument("--db", default=None, help=url_help)
    p.set_defaults(func=migrate_command)
    p = sub.add_parser("status", help="row counts and recent ingest runs")
    p.add_argument("--db", default=None, help=url_help)
    p.add_argument("--runs", type=int, default=5, help="how many recent runs to show")
    p.set_defaults(func=status_command)
    return db


def _open(args):
    return TrainingDB(args.db, create=False)


def export_command(args):
    from .export import export, export_spacekit

    with _open(args) as database:
        counts = (export_spacekit if args.layout == "spacekit" else export)(database, args.out)
    for name, n in counts.items():
        print(f"{name:16s} {n:8d} rows")
    return 0


def ingest_reports_command(args):
    from .ingest import ingest, parse_report

    failed = 0
    with TrainingDB(args.db) as database:
        for path in args.reports:
            try:
                report = parse_report(path)
            except IngestError as exc:
                print(f"{args.command}: error: {exc}; left out", file=sys.stderr)
                failed += 1
                continue
            if report.unused:
                print(f"{args.command}: warning: {report.note()}", file=sys.stderr)
            s = ingest(database, report.exposures, report.costs, source=str(path))
            print(f"{path}: run {s.run_id}: exposures+{s.n_exposures} products~{s.n_products} "
                  f"trained+{s.n_trained} reprocessed {s.n_reprocessed} set aside~{s.n_set_aside} "
                  f"pending {s.n_pending}")
    return 1 if failed else 0


def migrate_command(args):
    with TrainingDB(args.db, create=False, upgrade=True) as database:
        found = database.migrated_from
        current = database.get_meta("schema_version")
    if found == current:
        print(f"{database.shown}: schema version {current}, nothing to do")
    else:
        print(f"{database.shown}: schema version {found} upgraded to {current}")
    return 0


def status_command(args):
    with _open(args) as database:
        counts = database.counts()
        recent = database.recent_runs(args.runs)
        print(f"database   {database.shown}")
        print(f"encodings  version {database.get_meta('encoding_version')}, {counts['encodings']} values")
    for key in ("exposures", "products", "targets", "training", "set_aside", "pending_product", "pending_cost",
                "ingest_runs"):
        print(f"{key:16s} {counts[key]:8d}")
    if recent:
        print("recent runs:")
        for r in recent:
            print(f"  #{r['id']} {r['started']} exposures+{r['n_exposures']} products~{r['n_products']} "
                  f"trained+{r['n_trained']} reprocessed {r['n_reprocessed']} pending {r['n_pending']}  {r['source']}")
    return 0
