"""tweakreg: align exposures' WCSs to one another and to a local reference catalog (tweakwcs)."""

import logging
import os

import numpy as np
from astropy.table import Table
from astropy.time import Time

from calpipe import datamodels, dqflags
from calpipe.datamodels import WcsModel, side_product_meta
from calpipe.kernels import alignment
from calpipe.kernels.wcs import s_region
from calpipe.resources import ResourceMonitor
from calpipe.step import CalStep

from ._common import is_imaging

log = logging.getLogger(__name__)

REFCAT_FORMATS = {".ecsv": "ascii.ecsv", ".parquet": "parquet", ".fits": "fits", ".fit": "fits",
                  ".csv": "ascii.csv"}


def read_reference_catalog(path):
    """A reference catalog file as a Table (ECSV, parquet, FITS or CSV, by extension)."""
    ext = os.path.splitext(path)[1].lower()
    fmt = REFCAT_FORMATS.get(ext)
    if fmt is None:
        raise ValueError(f"{path}: unknown reference catalog format {ext!r} (use .ecsv, .parquet or .fits)")
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such reference catalog")
    return Table.read(path, format=fmt)


def _name(model):
    return model.meta.get("filename") or "exposure"


class TweakRegStep(CalStep):
    """Relative alignment of an association's exposures, then absolute alignment to ``abs_refcat``.

    Never contacts a catalog service: the reference catalog is a local file. Each exposure gets
    ``meta.cal_step.tweakreg`` COMPLETE (aligned), FAILED (too few sources or matches: WCS left
    untouched) or SKIPPED (nothing to align against, not imaging, no WCS or catalog), the fit
    in ``meta.wcs_fit_results``, and catalog sky positions from the aligned WCS.
    """

    class_alias = "tweakreg"
    spec = """
    abs_refcat = string(default='')       # Reference catalog file (ECSV, parquet, FITS); empty: relative only
    abs_ref_epoch = float(default=2016.0) # Epoch of the reference positions when the file does not say
    fitgeom = option('shift', 'rshift', 'rscale', 'general', default='rshift')  # Relative fit
    abs_fitgeom = option('shift', 'rshift', 'rscale', 'general', default='rshift')  # Absolute fit
    searchrad = float(default=2.0)        # Relative matching search radius (arcsec)
    abs_searchrad = float(default=2.0)    # Absolute matching search radius (arcsec)
    tolerance = float(default=0.5)        # Relative matching tolerance after the first offset (arcsec)
    abs_tolerance = float(default=0.5)    # Absolute matching tolerance (arcsec)
    separation = float(default=0.5)       # Sources closer than this (arcsec) are not used
    use2dhist = boolean(default=True)     # First offset from a 2-D histogram of separations
    nclip = integer(default=3, min=0)     # Sigma-clipping iterations of the fit
    sigma = float(default=3.0)            # Clipping limit in fit rms
    min_matches = integer(default=15, min=3)  # Fewer sources or matches: FAILED
    min_snr = float(default=10.0)         # Sources fainter than this S/N are not used
    max_sources = integer(default=2000)   # Use at most the brightest this many sources
    exclude_flags = integer(default=31)   # Catalog flag bits that exclude a source
    """

    def process(self, input):
        if isinstance(input, (list, tuple)):
            models = [datamodels.open(m) for m in input]
            self._align_models(models)
            return models
        data = datamodels.open(input)
        if hasattr(data, "borrow"):
            return self._align_library(data)
        self._align_models([data])
        return data

    # -- inputs ---------------------------------------------------------------------------------
    def _align_library(self, library):
        entries = []
        with library:
            for index, model in enumerate(library):
                entries.append(self.entry(model))
                library.shelve(model, index, modify=False)
        results = self._align(entries)
        with library:
            for index, model in enumerate(library):
                self._apply(model, results[index])
                library.shelve(model, index, modify=True)
        return library

    def fit(self, entries):
        """The alignment of exposures from their entries (what :meth:`entry` returned for each).

        Returns one result per entry, for :meth:`apply_fit`, and what the fit cost. Together
        the two are the step run on the exposures' models, with no image in memory here.
        """
        with ResourceMonitor() as monitor:
            results = self._align(entries)
        return results, monitor.record()

    def apply_fit(self, model, result, usage):
        """Align one exposure's ``model`` by its ``result`` of :meth:`fit` (``usage``: what the
        fit cost, recorded in the model)."""
        self._apply(model, result)
        model.meta.resources.tweakreg = usage
        model.meta.cal_logs = [*(model.meta.get("cal_logs") or []), f"tweakreg: {usage['wall_seconds']:.2f} s, "
                               f"peak RSS {usage['peak_rss_mb']:.0f} MB"]

    def _align_models(self, models):
        entries = [self.entry(m) for m in models]
        results = self._align(entries)
        for model, result in zip(models, results):
            self._apply(model, result)

    def entry(self, model):
        """What alignment needs of one exposure, or why it cannot take part: its name, WCS,
        ``wcsinfo``, selected sources and epoch (a few kB; ``skip`` says why not)."""
        entry = {"name": _name(model), "skip": None, "saturated": False}
        if not is_imaging(model):
            entry["skip"] = f"exposure type {model.meta.exposure.type} is not imaging"
        elif np.all(np.asarray(model.dq) & dqflags.SATURATED):
            entry["skip"], entry["saturated"] = "fully saturated exposure", True
        elif model.meta.get("wcs") is None:
            entry["skip"] = "no WCS (assign_wcs not run)"
        elif "source_catalog" not in model:
            entry["skip"] = "no source catalog (source_catalog not run)"
        if entry["skip"]:
            return entry
        table = model.source_catalog
        entry.update(
            wcs=model.meta.wcs,
            wcsinfo=model.meta.wcsinfo.to_dict(),
            catalog=alignment.select_sources(table, self.exclude_flags, self.min_snr, self.max_sources),
            nsources=len(table),
            epoch=float(Time(model.meta.exposure.start_time, scale="utc").jyear),
        )
        return entry

    # -- alignment ------------------------------------------------------------------------------
    def _align(self, entries):
        if any(e["saturated"] for e in entries):
            log.warning("A member of the association is fully saturated: tweakreg skipped for all")
            return [{"status": "SKIPPED", "reason": "association holds a fully saturated exposure"}
                    for _ in entries]
        results = [None] * len(entries)
        active = []
        for i, e in enumerate(entries):
            if e["skip"]:
                results[i] = {"status": "SKIPPED", "reason": e["skip"]}
                log.info("%s: tweakreg skipped (%s)", e["name"], e["skip"])
            else:
                active.append(i)
        if not active:
            return results

        refcat, refcat_reason = None, None
        if self.abs_refcat and self.abs_refcat.strip().upper() not in ("", "NONE", "N/A"):
            try:
                refcat = read_reference_catalog(self.abs_refcat)
                if not any(k in {c.lower() for c in refcat.colnames} for k in ("ref_epoch", "epoch")):
                    refcat.meta.setdefault("ref_epoch", self.abs_ref_epoch)
            except (ValueError, OSError) as err:
                refcat_reason = str(err)
                log.error("Reference catalog unusable: %s", err)
        else:
            log.info("No reference catalog configured (abs_refcat): relative alignment only")
        if refcat_reason:
            for i in active:
                results[i] = {"status": "FAILED", "reason": f"reference catalog: {refcat_reason}"}
            return results

        epoch = float(np.mean([entries[i]["epoch"] for i in active]))
        fits = alignment.align(
            [{"wcs": entries[i]["wcs"], "wcsinfo": entries[i]["wcsinfo"], "catalog": entries[i]["catalog"],
              "name": entries[i]["name"]} for i in active],
            refcat,
            epoch=epoch,
            fitgeom=self.fitgeom,
            abs_fitgeom=self.abs_fitgeom,
            searchrad=self.searchrad,
            separation=self.separation,
            tolerance=self.tolerance,
            use2dhist=self.use2dhist,
            abs_searchrad=self.abs_searchrad,
            abs_tolerance=self.abs_tolerance,
            nclip=self.nclip,
            sigma=self.sigma,
            min_matches=self.min_matches,
        )
        for i, fit in zip(active, fits):
            fit["epoch"] = epoch
            fit["refcat"] = os.path.basename(self.abs_refcat) if refcat is not None else None
            results[i] = fit
        return results

    def _apply(self, model, result):
        status = {"SUCCESS": "COMPLETE", "FAILED": "FAILED", "SKIPPED": "SKIPPED"}[result["status"]]
        record = {"status": status, "reason": result.get("reason", "")}
        for key in ("relative", "absolute"):
            if result.get(key) is not None:
                record[key] = result[key]
        if result.get("refcat"):
            record["refcat"] = result["refcat"]
            record["refcat_epoch"] = result["epoch"]
            record["refcat_note"] = result.get("refcat_note", "")
        if status == "COMPLETE":
            original, corrected = model.meta.wcs, result["wcs"]
            ny, nx = model.data.shape
            dra, ddec, rot = alignment.wcs_offset(original, corrected, (nx - 1) / 2, (ny - 1) / 2)
            record["correction"] = {"dra_arcsec": dra, "ddec_arcsec": ddec, "rotation_arcsec": rot}
            model.meta.wcs = corrected
            model.meta.wcsinfo.s_region = s_region(corrected, model.data.shape)
            table = model.source_catalog
            if len(table):
                ra, dec = alignment.sky_positions(corrected, table["x_centroid_win"], table["y_centroid_win"])
                table["ra"][:] = ra
                table["dec"][:] = dec
            log.info(
                "%s aligned: moved %.1f, %.1f mas, rotated %.2f arcsec%s",
                _name(model), dra * 1e3, ddec * 1e3, rot,
                "" if record.get("absolute") else " (relative alignment only)",
            )
        elif status == "FAILED":
            log.warning("%s: tweakreg FAILED, WCS left as it was: %s", _name(model), record["reason"])
        model.meta.wcs_fit_results = record
        self.record(model, status)
        if status == "COMPLETE":
            product = WcsModel(meta=side_product_meta(model, "WcsModel"), wcs=model.meta.wcs)
            product.meta.wcs_fit_results = record
            self.add_side_product(model, "wcs", product)
            self.add_side_product(model, "cat", model.source_catalog)  # sky positions updated


__all__ = ["TweakRegStep", "read_reference_catalog"]
