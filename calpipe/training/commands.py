"""``calpipe db ...``: export and inspect the training database."""

from .db import TrainingDB


def register(subparsers):
    """Add the ``db`` command and its subcommands to an argparse ``subparsers``."""
    db = subparsers.add_parser("db", help="the training database")
    sub = db.add_subparsers(dest="db_command", required=True)
    url_help = "database URL or SQLite file (default: $CALPIPE_DATABASE_URL, else ./calpipe-training.db)"
    p = sub.add_parser("export", help="write the training CSV files")
    p.add_argument("--out", "-o", required=True, help="folder for the CSV files")
    p.add_argument("--db", default=None, help=url_help)
    p.set_defaults(func=export_command)
    p = sub.add_parser("status", help="row counts and recent ingest runs")
    p.add_argument("--db", default=None, help=url_help)
    p.add_argument("--runs", type=int, default=5, help="how many recent runs to show")
    p.set_defaults(func=status_command)
    return db


def _open(args):
    return TrainingDB(args.db, create=False)


def export_command(args):
    from .export import export

    with _open(args) as database:
        counts = export(database, args.out)
    for name, n in counts.items():
        print(f"{name:16s} {n:8d} rows")
    return 0


def status_command(args):
    with _open(args) as database:
        counts = database.counts()
        recent = database.recent_runs(args.runs)
        print(f"database   {database.shown}")
        print(f"encodings  version {database.get_meta('encoding_version')}, {counts['encodings']} values")
    for key in ("exposures", "products", "training", "pending_product", "pending_cost", "ingest_runs"):
        print(f"{key:16s} {counts[key]:8d}")
    if recent:
        print("recent runs:")
        for r in recent:
            print(f"  #{r['id']} {r['started']} exposures+{r['n_exposures']} products~{r['n_products']} "
                  f"trained+{r['n_trained']} reprocessed {r['n_reprocessed']} pending {r['n_pending']}  {r['source']}")
    return 0
