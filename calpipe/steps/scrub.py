"""ScrubStep: an association's Level-1 members -> named products with their features."""

import logging

from pathlib import Path

from calpipe.associations.asn import load_asn, member_paths
from calpipe.associations.naming import naming_problem
from calpipe.associations.pool import group_products, read_exposure
from calpipe.step import CalStep
from calpipe.training.scrub import product_features

log = logging.getLogger(__name__)


class Scrubbed(dict):
    """The scrub result: a dict that logs as a one-line summary."""

    def __repr__(self):
        return (f"<scrubbed {self.get('asn_path')}: {len(self.get('exposures', []))} exposure(s), "
                f"{len(self.get('products', []))} product(s)>")


class ScrubStep(CalStep):
    """Read each member's metadata, group members into products, name them, compute features.

    Input: an association file (or a result of this step). Output: a dict with ``asn_path``,
    ``base_dir`` (the folder member paths are relative to), ``paths`` (each member's file by
    exposure name), ``exposures`` (normalised records) and ``products`` (``name``,
    ``category``, ``members``, ``features``). Members that cannot be named are logged and
    left out of the products.
    """

    class_alias = "scrub"
    spec = """
    """

    def process(self, input):
        if isinstance(input, dict) and "exposures" in input:
            return input
        asn_path = Path(input)
        asn = load_asn(asn_path)
        base = asn_path.resolve().parent
        paths, records = {}, {}
        for path in dict.fromkeys(p for product in member_paths(asn, asn_path) for p in product):
            rec = read_exposure(path)
            paths.setdefault(rec["expname"], path)
            records.setdefault(rec["expname"], rec)
        exposures = list(records.values())
        for e in exposures:
            if problem := naming_problem(e):
                log.warning("%s: cannot name its product (%s); left out", e["expname"], problem)
        products = []
        for prod in group_products(exposures):
            products.append({
                "name": prod.name, "category": prod.category, "members": prod.members,
                "features": product_features(prod.exposures),
            })
            log.info("%s: %d member(s), %s", prod.name, len(prod.members), prod.category)
        return Scrubbed(asn_path=str(asn_path), base_dir=str(base), paths={k: str(v) for k, v in paths.items()},
                        exposures=exposures, products=products)
