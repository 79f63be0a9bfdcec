"""Ingest: scrubbed exposures and measured costs into the training database.

Inputs are normalised exposure records (Level-1 metadata) and :class:`Cost` records (what a
finished product cost). They come from calpipe's own files (:func:`calpipe_costs`) or from
the daily CSV reports of JWST operations (:func:`read_report`).

One call of :func:`ingest` is one transaction:

1. new or changed exposures are stored;
2. every product of the programs they touch is regrouped from *all* stored exposures of
   those programs and its features recomputed (so members that arrive on different days
   make one product); only products whose members or features changed are written. A
   target seen for the first time gets the next free number of its program (provisional);
3. categorical values get codes (new values get new, recorded codes);
4. costs of mosaics and other association candidates, and of per-source spectra, are set
   aside in their own table;
5. every other cost, and every cost still waiting, is matched with a product by its
   observation parameters and target (see below); a matched product is a training row; a
   cost for a product already trained with different values updates it as a reprocessing;
   identical values change nothing; a cost with no product yet, and a product with no cost
   yet, wait in ``pending`` until a later run brings the other half.

Matching
--------
Level-1 headers and the exposure rows of operations reports carry no target number; only
product names do. A cost named ``jw01234-o003_t004_nirspec_g395h-f290lp`` is matched on its
*match key* (the name without ``t004``: program, observation, instrument and the optical
path, which includes exp_type-specific parts, band/channel and subarray) and then on its
target:

* if target 4 of the program is confirmed, the product of that target;
* otherwise the one product with that key whose target is not yet confirmed (narrowed by
  the report row's TARGNAME, TARG_RA/TARG_DEC within the naming tolerance, and EXP_TYPE
  when the row has them). Its target then takes number 4 for good (a provisional holder of
  4 moves to the next free number) and its products are renamed accordingly.

A calpipe cost (from ``_cal.asdf`` files) names its members, and is matched to the product
with that key and exactly those members. Once a target is confirmed its number never
changes, so trained product names are stable; a target added later gets the next free
number and renames nothing. A cost that fits no product, or several, waits.

An error anywhere rolls back everything, the run record included.
"""

import hashlib
import json
import logging
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa

from calpipe.associations import naming
from calpipe.associations.pool import digest, group_products, normalise, numbered_exposures
from calpipe.errors import CalpipeError

from . import db as D
from .scrub import categorical_values, product_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cost:
    """What making one product cost. Any target may be unknown (None).

    ``targname``, ``targ_ra``, ``targ_dec`` and ``exp_type`` (from a report row that has them)
    narrow the match; ``members_digest`` (calpipe's own costs) names the members exactly.
    """

    product: str
    peak_memory_mb: float | None = None
    wall_seconds: float | None = None
    image_size_kb: float | None = None
    source: str = ""
    targname: str | None = None
    targ_ra: float | None = None
    targ_dec: float | None = None
    exp_type: str | None = None
    members_digest: str | None = None

    def digest(self):
        values = (self.peak_memory_mb, self.wall_seconds, self.image_size_kb)
        text = "|".join("" if v is None else repr(round(float(v), 6)) for v in values)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def values(self):
        """The training-row columns this cost sets."""
        return {"peak_memory_mb": self.peak_memory_mb, "wall_seconds": self.wall_seconds,
                "image_size_kb": self.image_size_kb, "cost_source": self.source, "cost_digest": self.digest()}


@dataclass
class IngestSummary:
    run_id: int
    n_exposures: int = 0  # new or changed exposures stored
    n_costs: int = 0
    n_products: int = 0  # products created or changed
    n_trained: int = 0  # new training rows
    n_reprocessed: int = 0
    n_pending: int = 0  # pending rows after the run
    n_set_aside: int = 0  # set-aside costs created or changed


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


def set_aside_reason(name):
    """Why a cost is set aside rather than matched (``mosaic``, ``candidate``, ``source``), or None."""
    parsed = naming.parse_product_name(name)
    if parsed is None:
        return None
    if parsed["candidate"][0] == "c":
        return "mosaic"
    if parsed["candidate"][0] != "o":
        return "candidate"
    return "source" if parsed["source"] else None


def ingest(database, exposures=(), costs=(), source=""):
    """Ingest exposures and costs into ``database`` (a :class:`TrainingDB`) in one transaction."""
    from calpipe import __version__

    exps = {}
    for e in exposures:
        if not e.get("expname"):
            raise IngestError("an exposure record has no name (expname)")
        exps[e["expname"]] = e
    cost_by_name = {c.product: c for c in costs}
    aside = {n: c for n, c in cost_by_name.items() if set_aside_reason(n)}
    cost_by_name = {n: c for n, c in cost_by_name.items() if n not in aside}
    dialect = database.dialect
    with database.transaction() as conn:
        enc_version = int(database.get_meta("encoding_version", conn))
        run_id = conn.execute(
            D.runs.insert().values(started=D.now(), source=str(source)[:2000], code_version=__version__,
                                   encoding_version=enc_version)
        ).inserted_primary_key[0]
        summary = IngestSummary(run_id=run_id, n_costs=len(cost_by_name) + len(aside))
        changed_programs = _store_exposures(conn, dialect, exps, run_id, summary)
        changed_products = _regroup(conn, dialect, changed_programs, run_id, summary)
        enc_version = _encode(conn, dialect, changed_products, enc_version)
        _set_aside(conn, dialect, aside, run_id, summary)
        renamed = _match(conn, dialect, cost_by_name, run_id, summary)
        _pend_products(conn, dialect, [renamed.get(n, n) for n in changed_products], run_id)
        summary.n_pending = conn.execute(sa.select(sa.func.count()).select_from(D.pending)).scalar()
        conn.execute(D.runs.update().where(D.runs.c.id == run_id).values(
            finished=D.now(), encoding_version=enc_version,
            **{k: v for k, v in asdict(summary).items() if k not in ("run_id", "n_set_aside")},
        ))
        conn.execute(D.meta_table.update().where(D.meta_table.c.key == "encoding_version")
                     .values(value=str(enc_version)))
    return summary


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


# -- targets --------------------------------------------------------------------------------

class Targets:
    """The targets of one program: ``label -> [number, confirmed]``, kept in step with the table."""

    def __init__(self, conn, observatory, program, run_id):
        self.conn, self.observatory, self.program, self.run_id = conn, observatory, program, run_id
        rows = conn.execute(sa.select(D.targets.c.label, D.targets.c.number, D.targets.c.confirmed).where(
            (D.targets.c.observatory == observatory) & (D.targets.c.program == program))).all()
        self.by_label = {label: [number, bool(confirmed)] for label, number, confirmed in rows}

    def _where(self, label):
        return ((D.targets.c.observatory == self.observatory) & (D.targets.c.program == self.program)
                & (D.targets.c.label == label))

    def holder(self, number):
        return next((lab for lab, (n, _) in self.by_label.items() if n == number), None)

    def next_free(self):
        return max([n for n, _ in self.by_label.values()] + [0]) + 1

    def add(self, label):
        """Give a new label a number: a pool's TARGETID (confirmed), else the next free one."""
        if label in self.by_label:
            return
        number, confirmed = self.next_free(), False
        if label.startswith("id:"):
            wanted = int(label[3:])
            holder = self.holder(wanted)
            if holder is None or not self.by_label[holder][1]:
                if holder is not None:
                    self.renumber(holder, self.next_free())
                number, confirmed = wanted, True
        self.conn.execute(D.targets.insert().values(
            observatory=self.observatory, program=self.program, label=label, number=number,
            confirmed=int(confirmed), source="pool TARGETID" if confirmed else "next free", run_id=self.run_id))
        self.by_label[label] = [number, confirmed]

    def confirm(self, label, number, source):
        """Fix ``label``'s number for good (a provisional holder of it moves); returns renames."""
        renamed = {}
        holder = self.holder(number)
        if holder is not None and holder != label:
            renamed.update(self.renumber(holder, self.next_free()))
        renamed.update(self.renumber(label, number))
        self.by_label[label][1] = True
        self.conn.execute(D.targets.update().where(self._where(label)).values(
            confirmed=1, source=source[:2000], run_id=self.run_id))
        return renamed

    def renumber(self, label, number):
        """Give a provisional target another number and rename its products; returns the renames."""
        if self.by_label[label][0] == number:
            return {}
        self.conn.execute(D.targets.update().where(self._where(label)).values(number=number, run_id=self.run_id))
        self.by_label[label][0] = number
        names = self.conn.execute(sa.select(D.products.c.name).where(
            (D.products.c.observatory == self.observatory) & (D.products.c.program == self.program)
            & (D.products.c.target == label))).scalars().all()
        renamed = {}
        for old in names:
            parsed = naming.parse_product_name(old)
            if parsed is None or parsed["target"] is None:
                continue  # source-based names carry no target number
            new = naming.with_target(old, number)
            self.conn.execute(D.products.update().where(D.products.c.name == old).values(name=new))
            self.conn.execute(D.pending.update().where(
                (D.pending.c.kind == "product") & (D.pending.c.name == old)).values(name=new))
            renamed[old] = new
        return renamed


def _regroup(conn, dialect, programs, run_id, summary):
    """Regroup and re-feature every product of ``programs``; return {name: features} changed."""
    changed = {}
    for observatory, program in sorted(programs):
        stored = [json.loads(t) for t in conn.execute(sa.select(D.exposures.c.metadata).where(
            (D.exposures.c.observatory == observatory) & (D.exposures.c.program == program)
        )).scalars()]
        targets = Targets(conn, observatory, program, run_id)
        labels = naming.target_labels(stored, known=targets.by_label)
        for label in sorted({labels[e["expname"]] for e in numbered_exposures(stored)}):
            targets.add(label)
        numbers = {(observatory, program, lab): n for lab, (n, _) in targets.by_label.items()}
        prods = group_products(stored, labels, numbers)
        existing = {n: (m, f, k, t) for n, m, f, k, t in _select_in(
            conn, [D.products.c.name, D.products.c.members_digest, D.products.c.features,
                   D.products.c.match_key, D.products.c.target],
            D.products.c.name, [p.name for p in prods])}
        rows, stamp = [], D.now()
        for p in prods:
            feats = product_features(p.exposures)
            feats_text = D.dumps(feats)
            if existing.get(p.name) == (p.product_id, feats_text, p.match_key, p.target):
                continue
            starts = [e["start_time"] for e in p.exposures if e["start_time"] != "NONE"]
            rows.append({
                "name": p.name, "observatory": observatory, "program": program, "category": p.category,
                "members_digest": p.product_id, "members": D.dumps(p.members), "features": feats_text,
                "date_obs": min(starts) if starts else "NONE", "created": stamp, "updated": stamp,
                "run_id": run_id, "match_key": p.match_key, "target": p.target,
            })
            changed[p.name] = feats
        D.upsert_many(conn, dialect, D.products, ["name"], rows,
                      update=["category", "members_digest", "members", "features", "date_obs", "updated",
                              "run_id", "match_key", "target"])
        _drop_stale(conn, observatory, program, {p.name for p in prods})
    summary.n_products = len(changed)
    return changed


def _drop_stale(conn, observatory, program, current):
    """Forget the untrained products of a program its exposures no longer make.

    (An exposure stored again with other metadata, or a product named by an older calpipe.)
    Trained products stay: they are what was measured.
    """
    stored = conn.execute(sa.select(D.products.c.name).where(
        (D.products.c.observatory == observatory) & (D.products.c.program == program))).scalars().all()
    gone = [n for n in stored if n not in current]
    trained = {r[0] for r in _select_in(conn, [D.training.c.product], D.training.c.product, gone)}
    for chunk in _chunks(n for n in gone if n not in trained):
        conn.execute(D.products.delete().where(D.products.c.name.in_(chunk)))
        conn.execute(D.pending.delete().where((D.pending.c.kind == "product") & D.pending.c.name.in_(chunk)))


def _encode(conn, dialect, changed_products, enc_version):
    values = {}
    for feats in changed_products.values():
        for k, v in categorical_values(feats).items():
            values.setdefault(k, set()).add(v)
    if not values:
        return enc_version
    _, added = D.assign_codes(conn, dialect, values, enc_version + 1)
    return enc_version + 1 if added else enc_version


# -- costs ----------------------------------------------------------------------------------

def _set_aside(conn, dialect, aside, run_id, summary):
    """Store mosaic, candidate and per-source costs; a repeated one changes nothing."""
    if not aside:
        return
    known = dict(_select_in(conn, [D.set_aside.c.product, D.set_aside.c.cost_digest], D.set_aside.c.product, aside))
    stamp = D.now()
    rows = [{"product": name, "reason": set_aside_reason(name), **cost.values(), "updated": stamp, "run_id": run_id}
            for name, cost in sorted(aside.items()) if known.get(name) != cost.digest()]
    D.upsert_many(conn, dialect, D.set_aside, ["product"], rows,
                  update=["peak_memory_mb", "wall_seconds", "image_size_kb", "cost_source", "cost_digest",
                          "updated", "run_id"])
    summary.n_set_aside = len(rows)


class _Candidates:
    """Stored products by match key, with their targets, for the costs of one run."""

    def __init__(self, conn, run_id, keys):
        self.conn, self.run_id = conn, run_id
        self.by_key, self.targets, self.renamed = {}, {}, {}
        cols = [D.products.c.name, D.products.c.match_key, D.products.c.target, D.products.c.observatory,
                D.products.c.program, D.products.c.members_digest, D.products.c.features]
        for row in _select_in(conn, cols, D.products.c.match_key, sorted(keys)):
            self.by_key.setdefault(row.match_key, []).append(dict(row._mapping))

    def program(self, observatory, program):
        key = (observatory, program)
        if key not in self.targets:
            self.targets[key] = Targets(self.conn, observatory, program, self.run_id)
        return self.targets[key]

    def find(self, cost):
        """The stored product ``cost`` is for (its name after any renaming), else None."""
        parsed = naming.parse_product_name(cost.product)
        if parsed is None:
            return None
        cands = self.by_key.get(parsed["match_key"], [])
        if not cands:
            return None
        targets = self.program(parsed["observatory"], parsed["program"])
        if cost.members_digest:
            chosen = [c for c in cands if c["members_digest"] == cost.members_digest]
            number = targets.by_label.get(chosen[0]["target"], [None])[0] if len(chosen) == 1 else None
        elif parsed["target"] is None:
            return None
        else:
            number = parsed["target"]
            owner = targets.holder(number)
            if owner is not None and targets.by_label[owner][1]:
                chosen = [c for c in cands if c["target"] == owner]
            else:
                chosen = [c for c in cands if not targets.by_label.get(c["target"], [0, True])[1]
                          and _fits(c, cost)]
        if len(chosen) != 1 or number is None:
            return None
        product = chosen[0]
        if not targets.by_label[product["target"]][1]:
            renamed = targets.confirm(product["target"], number, f"{cost.product} ({cost.source})")
            for group in self.by_key.values():
                for c in group:
                    c["name"] = renamed.get(c["name"], c["name"])
            self.renamed.update(renamed)
        return product["name"]


def _fits(candidate, cost):
    """Whether a report row's own target and exposure type (when it has them) fit a product."""
    label = candidate["target"]
    if cost.targname and label.startswith("name:") and label[5:] != cost.targname.strip().upper():
        return False
    if cost.targ_ra is not None and cost.targ_dec is not None and label.startswith("pos:"):
        if not naming.near(naming.label_position(label), (cost.targ_ra, cost.targ_dec)):
            return False
    if cost.exp_type and json.loads(candidate["features"])["exp_type"] != cost.exp_type.strip().upper():
        return False
    return True


def _match(conn, dialect, cost_by_name, run_id, summary):
    """Match the costs given and the costs waiting; returns the products renamed {old: new}."""
    waiting = dict(conn.execute(sa.select(D.pending.c.name, D.pending.c.payload).where(
        D.pending.c.kind == "cost")).all())
    costs = {n: Cost(**json.loads(p)) for n, p in waiting.items()}
    costs.update(cost_by_name)
    if not costs:
        return {}
    keys = {p["match_key"] for n in costs if (p := naming.parse_product_name(n))}
    candidates = _Candidates(conn, run_id, keys)
    matched = {}
    for name in sorted(costs):
        product = candidates.find(costs[name])
        if product is not None:
            matched[product] = name
    # A product matched twice in one run (two names for one product) keeps the last cost.
    renamed = candidates.renamed
    trained = {n: (d, k) for n, d, k in _select_in(
        conn, [D.training.c.product, D.training.c.cost_digest, D.training.c.n_reprocessed],
        D.training.c.product, list(matched))}
    stamp = D.now()
    new_rows = []
    for product, name in sorted(matched.items()):
        values = costs[name].values()
        if product not in trained:
            new_rows.append({"product": product, **values, "n_reprocessed": 0, "trained": stamp,
                             "updated": stamp, "run_id": run_id})
        elif trained[product][0] != values["cost_digest"]:
            conn.execute(D.training.update().where(D.training.c.product == product).values(
                **values, n_reprocessed=trained[product][1] + 1, updated=stamp, run_id=run_id))
            summary.n_reprocessed += 1
    D.upsert_many(conn, dialect, D.training, ["product"], new_rows, update=())
    summary.n_trained = len(new_rows)
    done = set(matched.values())
    waiting_rows = []
    for name in sorted(set(cost_by_name) - done):
        payload = D.dumps(asdict(cost_by_name[name]))
        if waiting.get(name) != payload:
            waiting_rows.append({"kind": "cost", "name": name, "payload": payload,
                                 "first_run_id": run_id, "last_run_id": run_id})
    D.upsert_many(conn, dialect, D.pending, ["kind", "name"], waiting_rows, update=["payload", "last_run_id"])
    for chunk in _chunks(sorted(done)):
        conn.execute(D.pending.delete().where((D.pending.c.kind == "cost") & D.pending.c.name.in_(chunk)))
    for chunk in _chunks(sorted(matched)):
        conn.execute(D.pending.delete().where((D.pending.c.kind == "product") & D.pending.c.name.in_(chunk)))
    return renamed


def _pend_products(conn, dialect, names, run_id):
    if not names:
        return
    trained = {r[0] for r in _select_in(conn, [D.training.c.product], D.training.c.product, names)}
    rows = [{"kind": "product", "name": n, "payload": "{}", "first_run_id": run_id, "last_run_id": run_id}
            for n in sorted(names) if n not in trained]
    D.upsert_many(conn, dialect, D.pending, ["kind", "name"], rows, update=())


# -- inputs ---------------------------------------------------------------------------------

def stage_level(dag_node):
    """Processing level of a report row from its DagNodeName, or "" when it names none.

    Any ``LEVEL_<n>`` form counts: ``LEVEL_1``, ``CAL_LEVEL_1B``, ``Level 2a``,
    ``ESTIMATE_LEVEL_3_MEMORY``, ``LEVEL3``.
    """
    m = re.search(r"LEVEL[_ ]?(\d)", str(dag_node).upper())
    return m.group(1) if m else ""


PEAK_MEMORY_COLUMN = "PeakMemoryMB"  # optional report columns: the level-3 job's measured cost
WALL_COLUMN = "WallSeconds"


def _positive_or_none(value):
    number = _float_or_none(value)
    return number if number is not None and number > 0 else None


def _float_or_none(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class Report:
    """What one operations report holds: exposures, costs, and the rows not used, by reason."""

    path: Path
    exposures: list
    costs: list
    n_rows: int
    unused: Counter

    def note(self):
        """One line about the rows not used, or "" when every row was used."""
        if not self.unused:
            return ""
        n = sum(self.unused.values())
        reasons = ", ".join(f"{k} {reason}" for reason, k in sorted(self.unused.items(), key=lambda x: (-x[1], x[0])))
        return f"{self.path}: {n} of {self.n_rows} rows not used: {reasons}"


def _text_or_none(row, key):
    value = (row.get(key) or "").strip()
    return value or None


def parse_report(path):
    """A :class:`Report` from a JWST operations CSV report.

    Columns: ``Dataset`` (exposure or product name), ``DagNodeName`` (the processing stage),
    ``ImageSize`` (kB) and header keyword columns. The level is the digit of the stage's
    ``LEVEL_<n>`` (see :func:`stage_level`). Level-1 rows become exposures (``ImageSize``
    kept as the input size) unless they cannot be named (no PROGRAM or INSTRUME); level-3
    rows become costs whose target is ``ImageSize``, with the job's measured peak memory
    (:data:`PEAK_MEMORY_COLUMN`, MB) and wall time (:data:`WALL_COLUMN`, s) when the report
    has them (an empty, zero or non-numeric cell is unknown), and the row's TARGNAME,
    TARG_RA, TARG_DEC and EXP_TYPE to narrow the match; a product listed twice keeps its last row.
    Every other row is counted in ``unused`` by reason.
    """
    import csv

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(f"{path}: cannot read report ({getattr(exc, 'strerror', None) or exc})") from None
    if not rows:
        return Report(path, [], [], 0, Counter())
    missing = {"Dataset", "DagNodeName", "ImageSize"} - set(rows[0])
    if missing:
        raise IngestError(f"{path}: report lacks column(s) {', '.join(sorted(missing))}")
    exps, costs, unused = [], {}, Counter()
    for row in rows:
        stage = (row["DagNodeName"] or "").strip()
        level = stage_level(stage)
        name = (row["Dataset"] or "").strip()
        if not name:
            unused["without a Dataset"] += 1
        elif level == "1":
            rec = normalise({**row, "expname": name})
            rec["image_size_kb"] = _float_or_none(row["ImageSize"]) or math.nan
            problem = naming.naming_problem(rec)
            if problem:
                unused[f"level-1 with {problem}"] += 1
                continue
            exps.append(rec)
        elif level == "3":
            product = name.lower()
            if product in costs:
                unused["repeating a product"] += 1
            costs[product] = Cost(
                product=product, image_size_kb=_float_or_none(row["ImageSize"]), source=path.name,
                peak_memory_mb=_positive_or_none(row.get(PEAK_MEMORY_COLUMN)),
                wall_seconds=_positive_or_none(row.get(WALL_COLUMN)),
                targname=_text_or_none(row, "TARGNAME"), targ_ra=_float_or_none(row.get("TARG_RA")),
                targ_dec=_float_or_none(row.get("TARG_DEC")), exp_type=_text_or_none(row, "EXP_TYPE"))
        else:
            unused[f"with stage {stage or '(empty)'}"] += 1
    return Report(path, exps, list(costs.values()), len(rows), unused)


def read_report(path):
    """Exposures and costs of a report (see :func:`parse_report`); logs one line about unused rows."""
    report = parse_report(path)
    if report.unused:
        log.warning("%s", report.note())
    return report.exposures, report.costs


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

    ``products``: ``[(name, [(member path, exptype), ...]), ...]`` with member paths absolute or
    relative to ``base_dir``; the calibrated files are looked for in ``output_dir`` (default: next to
    each member). A product's peak memory is the largest member peak and its wall time the
    sum over its science members (they run one after another). A product with any science
    member not yet calibrated has no cost yet. When every member carries the same record,
    they were calibrated in one association run and that run's record is the product's cost.
    """
    import asdf

    base = Path(base_dir)
    out = []
    for name, members in products:
        members_digest = digest(Path(m).name for m, _ in members)
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
                            source=str(source), members_digest=members_digest))
    return out


def asn_products(asn):
    """``[(name, [(expname, exptype), ...]), ...]`` of an association dict."""
    return [(p["name"], [(m["expname"], m["exptype"]) for m in p["members"]]) for p in asn["products"]]
