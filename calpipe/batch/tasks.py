"""What runs on a worker: one member's calibration, one association's fit, one member's alignment.

Each builds the pipeline from the same parameters the client resolved, runs the pipeline's
own steps (``ExposurePipeline.calibrate`` and its ``tweakreg`` step) and writes every
product through a temporary name renamed into place, so a worker that dies leaves no
partial product. A member's calibrated image goes first to the staging folder, with what
tweakreg needs of it (its WCS and selected sources, a few kB: the alignment entry, computed
as soon as the member is calibrated). An association's fit reads only the entries and
stores each member's result (its corrected WCS and fit record) in the staging folder; then
each member's alignment, a task of its own, reads its staged image and its result and
writes the final ``_cal.asdf`` (and the ``_wcs.asdf`` and updated ``_cat.ecsv`` of aligned
exposures) into the output folder. A rerun of a fit or of an alignment always starts from
the staged, unaligned files.
"""

import gc
import hashlib
import importlib
import os
from contextlib import contextmanager
from pathlib import Path


from calpipe import datamodels
from calpipe.atomic import atomic_path
from calpipe.errors import CalpipeError
from calpipe.memory import return_freed_memory
from calpipe.resources import ResourceMonitor

# Test hooks (environment variables read on the worker; never set them in production):
# a member whose root is named in KILL_HOOK kills its worker process in its first attempt;
# a member named in NEED_HOOK ("root:MB,root:MB") behaves as if it needed MB of memory: it
# raises MemoryError while its reservation is smaller.
KILL_HOOK = "CALPIPE_BATCH_TEST_KILL"
NEED_HOOK = "CALPIPE_BATCH_TEST_NEED_MB"


def prepare_worker(threads=None, client_pid=None):
    """At the start of every task: set the kernels' threads for this worker.

    Workers that are threads of the client's own process (``client_pid``) are left as they
    are; they share the client's garbage collector too (see :func:`frozen_heap`).
    """
    if os.getpid() == client_pid:
        return False
    if threads:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    return True


# A worker's frozen heap is collected in full again once it has grown by this factor since the
# last full collection (see frozen_heap).
FULL_COLLECTION_GROWTH = 1.25
_frozen_after_full = [0]


@contextmanager
def frozen_heap(own_process):
    """Run a task with the worker's long-lived objects frozen out of the garbage collector.

    stpipe runs a full collection before every step. In a long-lived worker the heap holds
    every library the steps imported (some lazily, in the first task) and the worker's own
    state, and each of those collections scanned all of it: 10 collections took 15 of a
    23 s member task (512x512, loaded machine). Here each task first collects what is not
    frozen (what earlier tasks left behind), then freezes the survivors, so that the task's
    own collections scan only what the task makes. The heap stays frozen between tasks: a
    full collection of it took 0.16 s (286,000 objects after two 1024x1024 members). Frozen
    objects are still freed when their last reference goes; the cycles among them are
    collected by a full collection, which a task makes when the frozen heap has grown by
    ``FULL_COLLECTION_GROWTH`` since the last one.
    """
    if not own_process:
        yield
        return
    frozen = gc.get_freeze_count()
    full = frozen == 0 or frozen > FULL_COLLECTION_GROWTH * _frozen_after_full[0]
    if full:
        gc.unfreeze()
    gc.collect()
    return_freed_memory()  # a task's peak starts from what the worker holds
    gc.freeze()
    if full:
        _frozen_after_full[0] = gc.get_freeze_count()
    yield


def pipeline_class(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_pipeline(class_path, pars, out_dir):
    """The pipeline with the resolved parameters, saving its products into ``out_dir``."""
    pars = dict(pars, output_dir=str(out_dir), save_results=True, output_use_model=True)
    pipeline = pipeline_class(class_path)(**pars)
    for name in pipeline.step_defs:
        getattr(pipeline, name).output_use_model = True
    return pipeline


def root_of(path):
    from calpipe.step import CalStep

    return CalStep.remove_suffix(Path(path).stem)[0]


def staged_path(staging_dir, uncal):
    return Path(staging_dir) / f"{root_of(uncal)}_cal.asdf"


def entry_path(staging_dir, uncal):
    return Path(staging_dir) / f"{root_of(uncal)}_align.asdf"


def fit_path(staging_dir, group_key, uncal):
    """Where an association product's fit stores one member's result (a member may belong to
    several products: the name carries a tag of the product's key)."""
    tag = hashlib.sha256(group_key.encode()).hexdigest()[:8]
    return Path(staging_dir) / f"{root_of(uncal)}_{tag}_fit.asdf"


def write_staged(path, tree):
    """Store a small tree (an alignment entry or a fit result) as ASDF, atomically."""
    import asdf

    with atomic_path(path) as tmp:
        asdf.AsdfFile(dict(tree)).write_to(tmp)
    return str(path)


def read_staged(path):
    import asdf

    with asdf.open(path, lazy_load=False, memmap=False) as af:
        return {k: v for k, v in af.tree.items() if k not in ("asdf_library", "history")}


def _test_hooks(root, attempt, reservation_mb):
    if root and os.environ.get(KILL_HOOK) == root and attempt == 1:
        os.kill(os.getpid(), 9)
    needs = dict(item.split(":") for item in os.environ.get(NEED_HOOK, "").split(",") if ":" in item)
    if root in needs and reservation_mb is not None and float(needs[root]) > reservation_mb:
        raise MemoryError(f"needs {float(needs[root]):.0f} MB, reserved {reservation_mb:.0f} MB")


def calibrate_member(uncal, class_path, pars, out_dir, staging_dir, *, attempt=1, reservation_mb=None,
                     threads=None, client_pid=None):
    """Calibrate one exposure up to, not including, tweakreg.

    Writes the exposure's source catalog and segmentation map into ``out_dir`` and, in the
    same write, its unaligned calibrated image into ``staging_dir``. Returns the staged path, the products,
    the wall time and the peak resident memory of the worker during the task; or
    ``{"failed": line}`` for bad input, ``{"memory": line}`` when memory ran out.
    """
    own_process = prepare_worker(threads, client_pid)
    Path(staging_dir).mkdir(parents=True, exist_ok=True)
    try:
        with frozen_heap(own_process), ResourceMonitor() as monitor:
            _test_hooks(root_of(uncal), attempt, reservation_mb)
            pipeline = build_pipeline(class_path, pars, out_dir)
            raw = datamodels.open(uncal)
            image = pipeline.calibrate(raw, close_raw=True)
            entry = write_staged(entry_path(staging_dir, uncal), pipeline.tweakreg.entry(image))
        usage = monitor.record()
        # The member's own run stands where strun puts the association run's record.
        pipeline.record(image, "COMPLETE")
        image.meta.resources.exposure_pipeline = usage
        image.meta.cal_logs = [*(image.meta.get("cal_logs") or []),
                               f"exposure_pipeline: {usage['wall_seconds']:.2f} s, peak RSS {usage['peak_rss_mb']:.0f} MB"]
        products = [entry, *image.side_products]  # the catalog and segmentation map, written with the image
        staged = image.save(staged_path(staging_dir, uncal))
    except (CalpipeError, OSError, MemoryError) as err:
        return _failure(err)
    return {"staged": str(staged), "products": products, "wall_s": usage["wall_seconds"],
            "peak_mb": usage["peak_rss_mb"]}


def _failure(err):
    """Bad input or a refusing machine: one line for the summary, no traceback in the logs."""
    if isinstance(err, MemoryError):
        return {"memory": f"MemoryError: {err}"}
    return {"failed": str(err) if isinstance(err, CalpipeError) else f"{type(err).__name__}: {err}"}


def fit_association(entries, fits, class_path, pars, out_dir, *, name=None, attempt=1, reservation_mb=None,
                    threads=None, client_pid=None):
    """Tweakreg's fit over the alignment entries of one association product's members.

    ``entries`` are the entry files written by :func:`calibrate_member`; the fit holds only
    their WCSs and selected sources, and writes each member's result, with what the fit
    cost, to the matching path of ``fits``. ``name`` (the product's) is for the test hooks;
    ``attempt`` and ``reservation_mb`` as for :func:`calibrate_member`.
    """
    own_process = prepare_worker(threads, client_pid)
    try:
        with frozen_heap(own_process), ResourceMonitor() as monitor:
            _test_hooks(name, attempt, reservation_mb)
            pipeline = build_pipeline(class_path, pars, out_dir)
            results, usage = pipeline.tweakreg.fit([read_staged(p) for p in entries])
            products = [write_staged(path, {"result": result, "usage": usage}) for path, result in zip(fits, results)]
    except (CalpipeError, OSError, MemoryError) as err:
        return _failure(err)
    usage = monitor.record()
    return {"products": products, "wall_s": usage["wall_seconds"], "peak_mb": usage["peak_rss_mb"]}


def apply_alignment(staged, fit, class_path, pars, out_dir, *, name=None, attempt=1, reservation_mb=None,
                    threads=None, client_pid=None):
    """Align one staged member by its stored fit result and write its final products.

    ``staged`` and ``fit``: the member's unaligned image and its result of
    :func:`fit_association`. Writes the ``_cal.asdf`` (and, when aligned, the
    ``_wcs.asdf`` and the catalog with updated sky positions) into ``out_dir``; holds one
    image. ``name`` is for the test hooks; ``attempt`` and ``reservation_mb`` as for
    :func:`calibrate_member`.
    """
    own_process = prepare_worker(threads, client_pid)
    try:
        with frozen_heap(own_process), ResourceMonitor() as monitor:
            _test_hooks(name, attempt, reservation_mb)
            pipeline = build_pipeline(class_path, pars, out_dir)
            stored = read_staged(fit)
            with datamodels.open(staged) as model:
                pipeline.tweakreg.apply_fit(model, stored["result"], stored["usage"])
                side = model.side_products  # the aligned WCS and catalog, when tweakreg succeeded
                products = [str(pipeline.save_model(model)), *side]
    except (CalpipeError, OSError, MemoryError) as err:
        return _failure(err)
    usage = monitor.record()
    return {"products": products, "wall_s": usage["wall_seconds"], "peak_mb": usage["peak_rss_mb"]}
