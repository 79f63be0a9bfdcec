"""IngestStep: scrubbed products and their measured cost into the training database."""

import logging

from calpipe.step import CalStep
from calpipe.training.db import TrainingDB
from calpipe.training.ingest import calpipe_costs, ingest, read_report

log = logging.getLogger(__name__)


class IngestStep(CalStep):
    """Store the scrubbed exposures, match products with the cost of their calibrated files.

    Costs come from the ``meta.resources`` of the ``_cal.asdf`` files the exposure pipeline
    wrote (in ``cal_dir``, default next to the members) and from any JWST operations
    ``reports`` given. Products without a cost yet wait in the pending table.
    """

    class_alias = "ingest"
    spec = """
    database = string(default=None)   # Database URL or SQLite file (default: $CALPIPE_DATABASE_URL, else ./calpipe-training.db)
    cal_dir = string(default=None)    # Folder of the calibrated products (default: next to the members)
    reports = force_list(default=None)  # JWST operations CSV report(s) to ingest as well: one file or several
    """

    def process(self, scrubbed):
        paths = scrubbed.get("paths", {})
        products = [(p["name"], [(paths.get(m, m), kind) for m, kind in p["members"]]) for p in scrubbed["products"]]
        costs = calpipe_costs(products, scrubbed["base_dir"], self.cal_dir, source=scrubbed["asn_path"])
        exposures = list(scrubbed["exposures"])
        for report in self.reports or []:
            report_exps, report_costs = read_report(report)
            exposures += report_exps
            costs += report_costs
        with TrainingDB(self.database) as database:
            summary = ingest(database, exposures, costs, source=scrubbed["asn_path"])
            log.info(
                "ingest run %d into %s: %d exposure(s) stored, %d product(s) changed, %d trained, "
                "%d reprocessed, %d pending",
                summary.run_id, database.shown, summary.n_exposures, summary.n_products,
                summary.n_trained, summary.n_reprocessed, summary.n_pending,
            )
        return summary
