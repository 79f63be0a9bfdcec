"""Ingest: scrubbed exposures and measured costs into the training database.

Inputs are normalised exposure records (Level-1 metadata) and :class:`Cost` records (what a
finished product cost). They come from calpipe's own files (:func:`calpipe_costs`) or from
the daily CSV reports of JWST operations (:func:`read_report`).

One call of :func:`ingest` is one transaction:

1. new or changed exposures are stored;
2. every product of the programs they touch is regrouped from *all* stored exposures of
   those programs and its features recomputed (so members that arrive on different days
   make one product); only products whose members or features changed are written;
3. categorical values get codes (new values get new, recorded codes);
4. each cost is matched with its product by name: a product with a cost is a training row;
   a cost for a product already trained with different values updates it as a
   reprocessing; identical values change nothing; a cost with no product yet, and a product
   with no cost yet, wait in ``pending`` until a later run brings the other half.

An error anywhere rolls back everything, the run record included.
"""

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa

from calpipe.associations.pool import group_products, normalise
from calpipe.errors import CalpipeError

from . import db as D
from .scrub import categorical_values, product_features


@dataclass(frozen=True)
class Cost:
    """What making one product cost. Any target may be unknown (None)."""

    product: str
    peak_memory_mb: float | None = None
    wall_seconds: float | None = None
    image_size_kb: float | None = None
    source: str = ""

    def digest(self):
        values = (self.peak_memory_mb, self.wall_seconds, self.image_size_kb)
        text = "|".join("" if v is None else repr(round(float(v), 6)) for v in values)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class IngestSummary:
    run_id: int
    n_exposures: int = 0  # new or changed exposures stored
    n_costs: int = 0
    n_products: int = 0  # products created or changed
    n_trained: int = 0  # new training rows
    n_reprocessed: int = 0
    n_pending: int = 0  # pending rows after the run


class IngestError(CalpipeError, ValueError):
    """An ingest input that cannot be used; the message is one line."""


def _chunks(items, n=500):
    items = list(items)
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _select_in(conn, columns, column, values):
    out = []
    for chunk in _chunks(values):
        out.extend(conn.execute(sa.select(*columns).where(column.in_(chunk))).all())
    return out


def ingest(database, exposures=(), costs=(), source=""):
    """Ingest exposures and costs into ``database`` (a :class:`TrainingDB`) in one transaction."""
    from calpipe import __version__

    exps = {}
    for e in exposures:
        if not e.get("expname"):
            raise IngestError("an exposure record has no name (expname)")
        exps[e["expname"]] = e
    cost_by_name = {c.product: c for c in costs}
    dialect = database.dialect
    with database.transaction() as conn:
        enc_version = int(database.get_meta("encoding_version", conn))
        run_id = conn.execute(
            D.runs.insert().values(started=D.now(), source=str(source)[:2000], code_version=__version__,
                                   encoding_version=enc_version)
        ).inserted_primary_key[0]
        summary = IngestSummary(run_id=run_id, n_costs=len(cost_by_name))
        changed_programs = _store_exposures(conn, dialect, exps, run_id, summary)
        changed_products = _regroup(conn, dialect, changed_programs, run_id, summary)
        enc_version = _encode(conn, dialect, changed_products, enc_version)
        # Costs given now, plus costs waiting for products that now exist.
        waiting = _pending_costs(conn, [n for n in changed_products if n not in cost_by_name])
        for name, payload in waiting.items():
            cost_by_name[name] = Cost(**json.loads(payload))
        _match(conn, dialect, cost_by_name, run_id, summary)
        _pend_products(conn, dialect, changed_products, run_id)
        summary.n_pending = conn.execute(sa.select(sa.func.count()).select_from(D.pending)).scalar()
        conn.execute(D.runs.update().where(D.runs.c.id == run_id).values(
            finished=D.now(), encoding_version=enc_version,
            **{k: v for k, v in asdict(summary).items() if k != "run_id"},
        ))
        conn.execute(D.meta_table.update().where(D.meta_table.c.key == "encoding_version")
                     .values(value=str(enc_version)))
    return summary


def _pending_costs(conn, names):
    """{name: payload} of the costs waiting for a product, among ``names``."""
    out = {}
    for chunk in _chunks(names):
        out.update(conn.execute(sa.select(D.pending.c.name, D.pending.c.payload).where(
            (D.pending.c.kind == "cost") & D.pending.c.name.in_(chunk))).all())
    return out


def _store_exposures(conn, dialect, exps, run_id, summary):
    if not exps:
        return set()
    texts = {name: D.dumps(e) for name, e in exps.items()}
    known = dict(_select_in(conn, [D.exposures.c.expname, D.exposures.c.metadata], D.exposures.c.expname, texts))
    rows = []
    for name, e in exps.items():
        if known.get(name) == texts[name]:
            continue
        rows.append({
            "expname": name, "observatory": e["observatory"], "program": e["program"],
            "instrument": e["instrume"], "detector": e["detector"], "exp_type": e["exp_type"],
            "start_time": e["start_time"], "metadata": texts[name], "run_id": run_id,
        })
    D.upsert_many(conn, dialect, D.exposures, ["expname"], rows,
                  update=["observatory", "program", "instrument", "detector", "exp_type", "start_time", "metadata", "run_id"])
    summary.n_exposures = len(rows)
    return {(r["observatory"], r["program"]) for r in rows}


def _regroup(conn, dialect, programs, run_id, summary):
    """Regroup and re-feature every product of ``programs``; return {name: features} changed."""
    changed = {}
    for observatory, program in sorted(programs):
        stored = conn.execute(sa.select(D.exposures.c.metadata).where(
            (D.exposures.c.observatory == observatory) & (D.exposures.c.program == program)
        )).scalars()
        prods = group_products([json.loads(t) for t in stored])
        existing = dict((n, (m, f)) for n, m, f in _select_in(
            conn, [D.products.c.name, D.products.c.members_digest, D.products.c.features],
            D.products.c.name, [p.name for p in prods]))
        rows, stamp = [], D.now()
        for p in prods:
            feats = product_features(p.exposures)
            feats_text = D.dumps(feats)
            if existing.get(p.name) == (p.product_id, feats_text):
                continue
            starts = [e["start_time"] for e in p.exposures if e["start_time"] != "NONE"]
            rows.append({
                "name": p.name, "observatory": observatory, "program": program, "category": p.category,
                "members_digest": p.product_id, "members": D.dumps(p.members), "features": feats_text,
                "date_obs": min(starts) if starts else "NONE", "created": stamp, "updated": stamp,
                "run_id": run_id,
            })
            changed[p.name] = feats
        D.upsert_many(conn, dialect, D.products, ["name"], rows,
                      update=["category", "members_digest", "members", "features", "date_obs", "updated", "run_id"])
    summary.n_products = len(changed)
    return changed


def _encode(conn, dialect, changed_products, enc_version):
    values = {}
    for feats in changed_products.values():
        for k, v in categorical_values(feats).items():
            values.setdefault(k, set()).add(v)
    if not values:
        return enc_version
    _, added = D.assign_codes(conn, dialect, values, enc_version + 1)
    return enc_version + 1 if added else enc_version


def _match(conn, dialect, cost_by_name, run_id, summary):
    if not cost_by_name:
        return
    names = list(cost_by_name)
    have_product = {r[0] for r in _select_in(conn, [D.products.c.name], D.products.c.name, names)}
    trained = {n: (d, k) for n, d, k in _select_in(
        conn, [D.training.c.product, D.training.c.cost_digest, D.training.c.n_reprocessed],
        D.training.c.product, names)}
    waiting = _pending_costs(conn, names)
    stamp = D.now()
    new_rows, waiting_rows, done = [], [], []
    for name in sorted(names):
        cost = cost_by_name[name]
        payload = D.dumps(asdict(cost))
        values = {"peak_memory_mb": cost.peak_memory_mb, "wall_seconds": cost.wall_seconds,
                  "image_size_kb": cost.image_size_kb, "cost_source": cost.source, "cost_digest": cost.digest()}
        if name not in have_product:
            if waiting.get(name) != payload:
                waiting_rows.append({"kind": "cost", "name": name, "payload": payload,
                                     "first_run_id": run_id, "last_run_id": run_id})
            continue
        done.append(name)
        if name not in trained:
            new_rows.append({"product": name, **values, "n_reprocessed": 0, "trained": stamp,
                             "updated": stamp, "run_id": run_id})
        elif trained[name][0] != values["cost_digest"]:
            conn.execute(D.training.update().where(D.training.c.product == name).values(
                **values, n_reprocessed=trained[name][1] + 1, updated=stamp, run_id=run_id))
            summary.n_reprocessed += 1
    D.upsert_many(conn, dialect, D.training, ["product"], new_rows, update=())
    summary.n_trained = len(new_rows)
    D.upsert_many(conn, dialect, D.pending, ["kind", "name"], waiting_rows, update=["payload", "last_run_id"])
    for chunk in _chunks(done):
        conn.execute(D.pending.delete().where(D.pending.c.name.in_(chunk)))


def _pend_products(conn, dialect, changed_products, run_id):
    names = list(changed_products)
    if not names:
        return
    trained = {r[0] for r in _select_in(conn, [D.training.c.product], D.training.c.product, names)}
    rows = [{"kind": "product", "name": n, "payload": "{}", "first_run_id": run_id, "last_run_id": run_id}
            for n in sorted(names) if n not in trained]
    D.upsert_many(conn, dialect, D.pending, ["kind", "name"], rows, update=())


# -- inputs ---------------------------------------------------------------------------------

def _level(dag_node):
    """Processing level of a report row from its DagNodeName (LEVEL_1, LEVEL_2A, Level3, ...)."""
    text = str(dag_node).upper().replace("_", "").replace(" ", "")
    if text.startswith("LEVEL") and len(text) > 5:
        return text[5]
    return ""


def _float_or_none(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def read_report(path):
    """Exposures (Level-1 rows) and costs (Level-3 rows) from a JWST operations CSV report.

    Columns: ``Dataset`` (exposure or product name), ``DagNodeName`` (the processing stage:
    ``LEVEL_1`` ... ``LEVEL_3``), ``ImageSize`` (kB) and header keyword columns. Level-1 rows
    become exposures (``ImageSize`` kept as the input size); Level-3 rows become costs whose
    target is ``ImageSize``; other stages are ignored.
    """
    import csv

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise IngestError(f"{path}: cannot read report ({exc.strerror or exc})") from None
    if not rows:
        return [], []
    missing = {"Dataset", "DagNodeName", "ImageSize"} - set(rows[0])
    if missing:
        raise IngestError(f"{path}: report lacks column(s) {', '.join(sorted(missing))}")
    exps, costs = [], []
    for row in rows:
        level = _level(row["DagNodeName"])
        if level == "1":
            rec = normalise({**row, "expname": row["Dataset"].strip()})
            rec["image_size_kb"] = _float_or_none(row["ImageSize"]) or math.nan
            exps.append(rec)
        elif level == "3":
            costs.append(Cost(product=row["Dataset"].strip().lower(),
                              image_size_kb=_float_or_none(row["ImageSize"]), source=path.name))
    return exps, costs


def cost_from_resources(resources):
    """(peak MB, wall s) of one exposure from its ``meta.resources``.

    The pipeline's own record wins; without it, the steps' walls add up and the peak is
    the largest step peak.
    """
    if not isinstance(resources, dict) or not resources:
        return None
    whole = resources.get("exposure_pipeline")
    if isinstance(whole, dict) and "peak_rss_mb" in whole:
        return float(whole["peak_rss_mb"]), float(whole["wall_seconds"])
    steps = [r for r in resources.values() if isinstance(r, dict) and "peak_rss_mb" in r]
    if not steps:
        return None
    return max(float(r["peak_rss_mb"]) for r in steps), sum(float(r["wall_seconds"]) for r in steps)


def cal_path(member_path, output_dir=None):
    """Where the exposure pipeline writes a member's calibrated product."""
    member_path = Path(member_path)
    stem = member_path.name
    for suffix in ("_uncal.asdf", ".asdf"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return Path(output_dir or member_path.parent) / f"{stem}_cal.asdf"


def calpipe_costs(products, base_dir, output_dir=None, source=""):
    """Costs of products from the ``_cal.asdf`` files the exposure pipeline wrote.

    ``products``: ``[(name, [(expname, exptype), ...]), ...]`` with member paths relative to
    ``base_dir``; the calibrated files are looked for in ``output_dir`` (default: next to
    each member). A product's peak memory is the largest member peak and its wall time the
    sum over its science members (they run one after another). A product with any science
    member not yet calibrated has no cost yet. When every member carries the same record,
    they were calibrated in one association run and that run's record is the product's cost.
    """
    import asdf

    base = Path(base_dir)
    out = []
    for name, members in products:
        peaks, walls = [], []
        for expname, exptype in members:
            if exptype != "science":
                continue
            path = cal_path(base / expname, output_dir)
            if not path.exists():
                break
            with asdf.open(path, lazy_load=True, memmap=False) as af:
                got = cost_from_resources((af.tree.get("meta") or {}).get("resources"))
            if got is None:
                break
            peaks.append(got[0])
            walls.append(got[1])
        else:
            if not peaks:
                continue
            if len(set(zip(peaks, walls))) == 1:
                # Every member carries the same record: one association run made them all.
                walls = walls[:1]
            out.append(Cost(product=name, peak_memory_mb=max(peaks), wall_seconds=sum(walls),
                            source=str(source)))
    return out


def asn_products(asn):
    """``[(name, [(expname, exptype), ...]), ...]`` of an association dict."""
    return [(p["name"], [(m["expname"], m["exptype"]) for m in p["members"]]) for p in asn["products"]]
