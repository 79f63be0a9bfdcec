"""calpipe's Step and Pipeline bases on stpipe.

They bind stpipe to calpipe's data models and local reference store (CRDS is never
contacted), and record for every step its status (``meta.cal_step``), the reference files it
used (``meta.ref_file``) and what it cost (``meta.resources`` and a ``meta.cal_logs`` line).
"""

import contextlib
import functools
import gc
import logging
import os
from datetime import datetime, timezone
from importlib import metadata

from stpipe import Pipeline, Step

from calpipe import __version__, _stpipe_hooks, compile_notice, datamodels, memory
from calpipe.archive.checksums import file_checksum
from calpipe.datamodels import DataModel, DataModelError
from calpipe.datamodels.models import roman_output
from calpipe.references import find_store
from calpipe.references.store import WILDCARDS
from calpipe.resources import ResourceMonitor

log = logging.getLogger("calpipe")
_stpipe_hooks.install()

# Suffixes calpipe writes (products, and every step's alias), stripped from an input name
# before a new one is added; tests/test_integration.py keeps the list equal to the steps'.
PRODUCT_SUFFIXES = {"uncal", "ramp", "rate", "cal", "cat", "segm", "wcs"}
KNOWN_SUFFIXES = PRODUCT_SUFFIXES | {
    "dq_init", "saturation", "refpix", "dark_decay", "wfi18_transient", "linearity", "ramp_fit", "dark_current",
    "flat_field", "photom", "assign_wcs", "source_catalog", "tweakreg",
    "exposure_pipeline", "scrub", "ingest", "training_ingest",
}
SUFFIXES_LONGEST_FIRST = sorted(KNOWN_SUFFIXES, key=len, reverse=True)


class CalStep(Step):
    """Base of every calpipe step."""

    spec = """
    output_ext = string(default='.asdf')    # Extension of output files
    ref_store = string(default=None)        # Reference store folder (default: $CALPIPE_REFS)
    ref_select = option('before', 'after', 'nearest', default='before')  # Reference chosen by date
    output_format = option('auto', 'calpipe', 'roman', default=None)  # Image products: auto = Roman for a Roman input
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "process" in cls.__dict__:
            cls.process = _recorded(cls.process)

    def run(self, *args):
        outermost = self.parent is None
        command_line = outermost and _stpipe_hooks.is_command_line_run(self)
        made_dir = None  # the output folder, when this run makes it (stpipe does, first thing)
        if command_line:
            compile_notice.install()
            output_dir = self.output_dir and os.path.expandvars(os.path.expanduser(self.output_dir))
            if output_dir and not os.path.exists(output_dir):
                made_dir = output_dir
        # A caller that keeps a frozen heap of its own (a batch worker) keeps it after the run,
        # and so does a strun process, which ends with the run: the collections of Python's
        # shutdown then skip the heap (0.65 s after a full-detector run, against 0.08 s).
        unfreeze = outermost and not command_line and gc.get_freeze_count() == 0
        if outermost:
            # stpipe collects garbage before every step: with the objects that exist when the
            # run starts (the libraries', a Python caller's) frozen out of the collector, each
            # collection scans only what the run itself made.
            gc.freeze()
        else:
            # ... and before each step of a pipeline, what the run made since the last step
            # (the file formats' schemas and extensions, loaded with the first file) is
            # collected once and frozen too.
            gc.collect()
            gc.freeze()
        try:
            # a strun process ends with the run: the system takes the heap back then
            with memory.without_huge_page_advice(), memory.arrays_from_the_heap(give_back=not command_line):
                return super().run(*args)
        except Exception as err:
            # A user's mistake in a strun run: one line and exit status 2, no traceback.
            # (SystemExit passes stpipe's handler, which would print the error again.)
            if command_line:
                status = _stpipe_hooks.report(self.class_alias, err)
                if status is not None:
                    if made_dir is not None:
                        with contextlib.suppress(OSError):
                            os.rmdir(made_dir)  # only if still empty: a user's mistake leaves nothing
                    raise SystemExit(status) from None
            raise
        finally:
            if unfreeze:
                gc.unfreeze()

    # -- models ------------------------------------------------------------------------
    @classmethod
    def _datamodels_open(cls, init, **kwargs):
        return datamodels.open(init, **kwargs)

    @staticmethod
    def get_stpipe_loggers():
        return ("stpipe", "calpipe", "py.warnings")

    def default_suffix(self):
        """A product is named after the step's alias: ``x_saturation.asdf``, not ``x_saturationstep``."""
        return self.class_alias or super().default_suffix()

    @staticmethod
    def remove_suffix(name):
        """Strip every known calpipe suffix from the end of a file's base name."""
        stripped = True
        while stripped:
            stripped = False
            for suffix in SUFFIXES_LONGEST_FIRST:
                if name.lower().endswith("_" + suffix):
                    name, stripped = name[: -len(suffix) - 1], True
                    break
        return name, "_"

    def open_for_update(self, input):
        """The input as a model whose arrays this step may change in place.

        A model still reading its file (whether opened here or passed in) has its arrays read
        into writable memory first: mapped file pages are read-only.
        """
        model = datamodels.open(input)
        return model.load_arrays() if model.file_backed else model

    # -- references (never CRDS) --------------------------------------------------------
    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        return cls._empty_config()

    @classmethod
    def _get_config_from_parameters(cls, crds_parameters, crds_observatory):
        return cls._empty_config()

    def reference_store(self):
        return find_store(self.search_attr("ref_store"))

    def get_reference_file(self, input_model, reference_file_type):
        """Path of the reference file: an ``override_<reftype>`` wins, else the store's best."""
        override = self.get_ref_override(reference_file_type)
        if override not in (None, ""):
            if isinstance(override, DataModel):
                self._reference_files_used.append((reference_file_type, repr(override)))
                return override
            if override.strip() == "N/A":
                self._reference_files_used.append((reference_file_type, "N/A"))
                return "N/A"
            self._reference_files_used.append((reference_file_type, override))
            return override
        select = self.search_attr("ref_select") or "before"
        path = self.reference_store().best(reference_file_type, input_model.meta.to_dict(), select)
        self._reference_files_used.append((reference_file_type, path))
        return path

    def open_reference(self, input_model, reftype):
        """The reference model of ``reftype`` for ``input_model``, checked to be of that type."""
        found = self.get_reference_file(input_model, reftype)
        if isinstance(found, DataModel):
            model = found
        else:
            from_store = self.get_ref_override(reftype) in (None, "")
            model = datamodels.open(found, checksums=not (from_store and self.reference_store().unchanged(found)))
        expected = datamodels.REFERENCE_MODELS[reftype]
        if not isinstance(model, expected):
            raise DataModelError(
                f"{found}: expected a {reftype} reference ({expected.__name__}), got {type(model).__name__}"
            )
        wanted = str(input_model.meta.instrument.get("detector") or "").upper()
        detector = str(model.meta.instrument.get("detector") or "").upper()
        if wanted and detector not in (wanted, *WILDCARDS):
            raise DataModelError(
                f"{model.meta.get('filename') or found}: a {reftype} reference for detector {detector}, "
                f"expected one for the exposure's detector {wanted}"
            )
        return model

    def finalize_result(self, result, reference_files_used):
        if isinstance(result, DataModel):
            result._output_format = self.search_attr("output_format") or "auto"
            for reftype, path in reference_files_used:
                setattr(result.meta.ref_file, reftype, str(path))

    def add_side_product(self, model, suffix, product, writer=None):
        """Save ``product`` as ``<root>_<suffix>`` whenever ``model`` is saved, in the same write.

        ``product`` is a data model (written as ASDF) or a table (written as ECSV), or anything
        that ``writer(product, path)`` writes as ASDF. Returns the path it will have.
        """
        base = model.meta.get("filename") or type(model).__name__.lower()
        if writer is not None:
            path = self.make_output_path(basepath=base, suffix=suffix, ext="asdf")

            def write(tmp):
                writer(product, tmp)
        elif isinstance(product, DataModel):
            path = self.make_output_path(basepath=base, suffix=suffix, ext="asdf")
            write = product.write_to
        else:
            path = self.make_output_path(basepath=base, suffix=suffix, ext="ecsv")

            def write(tmp):
                product.write(tmp, format="ascii.ecsv", overwrite=True)

        model.add_side_product(path, write)
        return path

    def roman_products(self, model):
        """Whether ``model``'s products are written in the Roman formats (see ``output_format``)."""
        return roman_output(model.tree["meta"], self.search_attr("output_format"))

    def record(self, model, status):
        """Set ``meta.cal_step.<alias>`` (COMPLETE, SKIPPED, FAILED)."""
        setattr(model.meta.cal_step, self.class_alias, status)


class CalPipeline(Pipeline, CalStep):
    """Base of every calpipe pipeline."""

    spec = """
    output_ext = string(default='.asdf')    # Extension of output files
    ref_store = string(default=None)        # Reference store folder (default: $CALPIPE_REFS)
    ref_select = option('before', 'after', 'nearest', default='before')  # Reference chosen by date
    output_format = option('auto', 'calpipe', 'roman', default=None)  # Image products: auto = Roman for a Roman input
    """

    @classmethod
    def _get_config_from_parameters(cls, crds_parameters, crds_observatory):
        return cls._empty_config()

    def _precache_references(self, input_file):
        """References are local: nothing to fetch ahead."""

    def record_provenance(self, model, input_path=None, input_checksum=None):
        """Record in ``meta.provenance`` what made the product: the calpipe and dependency
        versions, every step's parameters, and the checksum of the input file
        (``input_checksum`` when already computed, else read here)."""
        if input_path is not None and input_checksum is None:
            input_checksum = file_checksum(input_path)
        model.meta.provenance = {
            "calpipe_version": __version__,
            "dependencies": {name: _version_of(name) for name in PROVENANCE_DEPENDENCIES},
            "parameters": _plain(self.get_pars()),
            "inputs": {} if input_path is None else {os.path.basename(input_path): input_checksum},
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        }


PROVENANCE_DEPENDENCIES = ("stpipe", "asdf", "astropy", "numpy", "numba", "gwcs", "photutils", "tweakwcs", "scipy")


def _version_of(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def _plain(value):
    """Parameters as plain YAML-able values (tuples become lists, the rest strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


def _recorded(process):
    """Wrap a step's ``process`` to record its status and its cost on the result."""

    @functools.wraps(process)
    def wrapper(self, *args, **kwargs):
        with ResourceMonitor() as monitor:
            result = process(self, *args, **kwargs)
        for model in _models_in(result):
            if self.class_alias not in model.meta.cal_step:
                self.record(model, "COMPLETE")
            usage = monitor.record()
            setattr(model.meta.resources, self.class_alias, usage)
            logs = model.meta.get("cal_logs") or []
            logs.append(
                f"{self.class_alias}: {usage['wall_seconds']:.2f} s, "
                f"peak RSS {usage['peak_rss_mb']:.0f} MB"
            )
            model.meta.cal_logs = logs
        log.info(
            "%s took %.2f s, peak RSS %.0f MB",
            self.class_alias, monitor.wall_seconds, monitor.peak_rss / 2**20,
        )
        return result

    return wrapper


def _models_in(result):
    if isinstance(result, DataModel):
        return [result]
    if isinstance(result, (list, tuple)):
        return [m for m in result if isinstance(m, DataModel)]
    if hasattr(result, "models_in_memory"):
        return result.models_in_memory()
    return []


__all__ = ["CalPipeline", "CalStep"]
