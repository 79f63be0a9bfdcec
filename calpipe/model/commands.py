"""``calpipe model ...``: train, inspect, export and apply the resource model."""

import json
import sys
import time

from calpipe.associations.asn import AsnError
from calpipe.associations.pool import PoolError
from calpipe.training.db import DatabaseError
from calpipe.training.export import FAMILIES

from .features import TARGETS
from .store import ModelError, export_file, get, latest, list_models, open_database, read_file, save

URL_HELP = "database URL or SQLite file (default: $CALPIPE_DATABASE_URL, else ./calpipe-training.db)"
UNITS = {"peak_memory_mb": "MB", "wall_seconds": "s"}


def register(subparsers):
    """Add the ``model`` command and its subcommands to an argparse ``subparsers``."""
    model = subparsers.add_parser("model", help="the resource model (peak memory, wall time)")
    sub = model.add_subparsers(dest="model_command", required=True)
    p = sub.add_parser("train", help="cross-validate and store a model per product family")
    p.add_argument("--db", default=None, help=URL_HELP)
    p.add_argument("--family", choices=[*FAMILIES, "all"], default="all")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="fold shuffling and fitting seed (default: %(default)s)")
    p.set_defaults(func=train_command)
    p = sub.add_parser("predict", help="predicted peak memory and wall time per product")
    p.add_argument("asn", nargs="*", help="association files")
    p.add_argument("--pool", help="a folder of exposures or a pool table, instead of association files")
    p.add_argument("--db", default=None, help=URL_HELP)
    p.add_argument("--model", help="a model file from 'calpipe model export' (instead of the database)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=predict_command)
    p = sub.add_parser("status", help="stored models, their metrics and training data")
    p.add_argument("--db", default=None, help=URL_HELP)
    p.set_defaults(func=status_command)
    p = sub.add_parser("export", help="write a stored model to a file")
    p.add_argument("model", help="FAMILY (its newest model) or FAMILY/vN")
    p.add_argument("--out", "-o", required=True, help="model file to write")
    p.add_argument("--db", default=None, help=URL_HELP)
    p.set_defaults(func=export_command)
    return model


def _fail(command, exc):
    print(f"calpipe model {command}: error: {exc}", file=sys.stderr)
    return 2


def _print_metrics(record):
    """Held-out metrics of a record's model and baseline, per target."""
    for target in TARGETS:
        print(f" {target}")
        for label in ("model", "baseline"):
            m = record["metrics"][target][label]
            print(f"  {label:<9} RMSE {m['rmse']:9.1f} {UNITS[target]:<2}  MdAPE {m['mdape']:6.1%}  "
                  f"under-predicted {m['under_rate']:5.1%}  over-allocation {m['over_allocation']:6.1%}")


def train_command(args):
    from .train import TrainingError, train_family

    if args.folds < 2:
        return _fail("train", f"--folds {args.folds}: at least 2 folds are needed")
    families = FAMILIES if args.family == "all" else (args.family,)
    stored, skipped = [], []
    try:
        with open_database(args.db) as database:
            for family in families:
                t0 = time.perf_counter()
                try:
                    record = train_family(database, family, folds=args.folds, seed=args.seed)
                except TrainingError as exc:
                    skipped.append(str(exc))
                    continue
                ident = save(database, record)
                stored.append(ident)
                print(f"{ident}: {record['n_rows']} products, {args.folds}-fold cross-validation "
                      f"({time.perf_counter() - t0:.1f} s); held-out:")
                _print_metrics(record)
    except (DatabaseError, ModelError) as exc:
        return _fail("train", exc)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not stored:
        return _fail("train", "no family has enough training data")
    return 0


def predict_command(args):
    from .predict import predict_products, products_of_asn, products_of_pool

    t0 = time.perf_counter()
    if bool(args.asn) == bool(args.pool):
        return _fail("predict", "give association files or --pool DIR (one of the two)")
    try:
        products = []
        if args.pool:
            products = products_of_pool(args.pool)
        for path in args.asn:
            products.extend(products_of_asn(path))
        if args.model:
            model = read_file(args.model)
            models = {model.family: model}
        else:
            with open_database(args.db) as database:
                models = {family: latest(database, family) for family in {p[1] for p in products}}
        predictions = predict_products(products, models)
    except (AsnError, PoolError, DatabaseError, ModelError) as exc:
        return _fail("predict", exc)
    elapsed = time.perf_counter() - t0
    if args.format == "json":
        print(json.dumps({"predictions": [p.as_dict() for p in predictions], "seconds": round(elapsed, 3)}, indent=1))
    else:
        print(f"{'product':<40} {'model':<10} {'memory MB':>10} {'upper':>8} {'wall s':>8} {'upper':>8}")
        for p in predictions:
            if p.model is None:
                print(f"{p.product:<40} {'-':<10} no model for family {p.family}")
                continue
            print(f"{p.product:<40} {p.model:<10} {p.peak_memory_mb:10.0f} {p.peak_memory_mb_upper:8.0f} "
                  f"{p.wall_seconds:8.1f} {p.wall_seconds_upper:8.1f}")
            for note in p.outside:
                print(f"  outside the training range: {note}")
        print(f"{len(predictions)} product(s) in {elapsed:.2f} s")
    return 0


def status_command(args):
    try:
        with open_database(args.db) as database:
            entries = list_models(database)
            shown = database.shown
    except DatabaseError as exc:
        return _fail("status", exc)
    print(f"database {shown}")
    if not entries:
        print("no models; train with 'calpipe model train'")
        return 0
    for e in entries:
        if "error" in e:
            print(f"{e['id']:<10} {e['created']}  REFUSED: {e['error']}")
            continue
        r = e["model"].record
        print(f"{e['id']:<10} {e['created']}  {r['n_rows']} products (rows {r['rows_digest']}), "
              f"features v{r['feature_version']}, encodings v{r['encoding_version']}, "
              f"{r['folds']}-fold CV, checksum {e['model'].checksum[:12]}")
        _print_metrics(r)
    return 1 if any("error" in e for e in entries) else 0


def export_command(args):
    try:
        with open_database(args.db) as database:
            model = get(database, args.model)
        path = export_file(model, args.out)
    except (DatabaseError, ModelError, OSError) as exc:
        return _fail("export", exc)
    print(f"{model.id} -> {path}")
    return 0
