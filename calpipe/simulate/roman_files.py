"""The simulated exposure and its reference set written as Roman mission files.

The physics is :func:`calpipe.simulate.simulate`'s; this module only converts its files at
the edge, through :mod:`calpipe.datamodels.roman`. Two conventions change on the way:

- the exposure is encoded as on board: the detector's bias pedestal (one value per channel)
  stands in for the reference read and is subtracted, and ``DATA_ENCODING_OFFSET`` is added;
- the linearity polynomial is rewritten for raw counts with that pedestal in, as the
  mission's linearity references are made (``P(r) = c(r - pedestal) + pedestal``).
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np

from .exposure import make_detector
from .write import SimResult, simulate

DATA_ENCODING_OFFSET = 2048


def simulate_roman(out_dir, *, progress=None, detector_seed=0, **options):
    """Run :func:`simulate` and write its exposure and references as Roman files.

    Writes ``<root>_uncal.asdf`` (a Roman ``ScienceRawModel``), ``<root>_truth.asdf`` and the
    reference catalog as :func:`simulate` does, and ``refs/`` with Roman reference files,
    indexed in place as a calpipe store. Returns a :class:`SimResult`.
    """
    from calpipe import datamodels
    from calpipe.datamodels import roman
    from calpipe.references import RefStore

    progress = progress or (lambda message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = out_dir / "refs"
    refs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".calpipe-sim-", dir=out_dir) as tmp:
        result = simulate(tmp, progress=progress, detector_seed=detector_seed, **options)
        size = options.get("size", 4096)
        detector = make_detector(size, seed=detector_seed)
        pedestal = detector.pedestal[detector.channel_of_column()]
        reference_read = np.broadcast_to(np.rint(pedestal).astype(np.uint16), (size, size))

        uncal = out_dir / result.uncal.name
        with datamodels.open(result.uncal) as raw:
            roman.write_raw(uncal, raw, reference_read=reference_read, data_encoding_offset=DATA_ENCODING_OFFSET)
        progress(f"wrote {uncal.name} (Roman Level 1)")

        ref_files = {}
        for reftype, path in result.ref_files.items():
            target = refs / f"roman_{path.name}"
            with datamodels.open(path) as ref:
                ref.load_arrays()
                if reftype == "linearity":
                    ref.coeffs = roman.linearity_for_raw_counts(ref.coeffs, pedestal[None, :])
                roman.write_reference(target, reftype, ref, options.get("optical_element", "F158"))
            ref_files[reftype] = target
            progress(f"wrote refs/{target.name} (Roman {reftype})")
        truth = out_dir / result.truth.name
        shutil.move(result.truth, truth)
        refcat = out_dir / result.refcat.name
        shutil.move(result.refcat, refcat)
    RefStore(refs).import_tree(refs)
    progress(f"indexed {len(ref_files)} references in {refs}")
    return SimResult(uncal=uncal, truth=truth, refs=refs, root=result.root, ref_files=ref_files, refcat=refcat)
