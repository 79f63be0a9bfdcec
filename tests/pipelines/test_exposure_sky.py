"""The simulator's sky through ExposurePipeline: astrometry and photometry against the truth."""

import json
import os
import socket
import subprocess
import sys

import asdf
import numpy as np
import pytest
from astropy.table import Table

from calpipe import datamodels as dm
from calpipe.kernels.alignment import sky_positions
from calpipe.kernels.wcs import build_wcs
from calpipe.pipelines import ExposurePipeline
from calpipe.simulate import simulate
from calpipe.training import db as D
from calpipe.truth import compare_catalog, wcs_agreement


def _refuse(*args, **kwargs):
    raise OSError("network access attempted")


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """A 1024x1024 exposure with the simulator's pointing error, aligned to its reference catalog,
    with every socket connection refused: the whole pipeline runs offline."""
    work = tmp_path_factory.mktemp("sky")
    sim = simulate(work, size=1024, nresultants=6, seed=3)
    with pytest.MonkeyPatch.context() as patch:
        for owner, name in [(socket.socket, "connect"), (socket.socket, "connect_ex"),
                            (socket, "create_connection"), (socket, "getaddrinfo")]:
            patch.setattr(owner, name, _refuse)
        cal = ExposurePipeline.call(str(sim.uncal), output_dir=str(work / "out"), ref_store=str(sim.refs),
                                    save_results=True, steps={"tweakreg": {"abs_refcat": str(sim.refcat)}})
    with asdf.open(sim.truth, lazy_load=False) as af:
        truth = {"meta": af.tree["meta"], "sources": af.tree["sources"].copy()}
    return sim, cal, truth


def test_alignment_recovers_the_true_pointing(aligned):
    sim, cal, truth = aligned
    assert cal.meta.cal_step.tweakreg == "COMPLETE"
    with dm.open(cal.meta.ref_file.distortion) as ref:
        original = build_wcs(ref.coordinate_distortion_transform, cal.meta.wcsinfo.to_dict(), cal.data.shape)
    before = sky_positions(original, cal.source_catalog["x_centroid_win"], cal.source_catalog["y_centroid_win"])
    stats = compare_catalog(cal, truth, before=before)
    assert stats["matched"] > 80
    assert stats["median_sep_before_mas"] > 400
    assert stats["median_sep_mas"] < 10
    assert stats["shift_residual_mas"] < 5
    assert stats["roll_residual_arcsec"] < 2
    assert cal.meta.wcs_fit_results.absolute["nmatches"] >= 50


def test_catalog_completeness_and_fluxes(aligned):
    sim, cal, truth = aligned
    stats = compare_catalog(cal, truth)
    assert stats["snr20_stars"] > 30 and stats["completeness_snr20"] >= 0.95
    assert stats["isolated_stars"] > 20 and abs(stats["median_flux_ratio"] - 1) < 0.02
    # The catalog a user opens holds the aligned positions.
    written = Table.read(sim.uncal.parent / "out" / f"{sim.root}_cat.ecsv")
    np.testing.assert_allclose(written["ra"], cal.source_catalog["ra"])
    assert {"kron_flux_njy", "kron_abmag", "aper_r6_flux", "flags"} <= set(written.colnames)
    with dm.open(sim.uncal.parent / "out" / f"{sim.root}_wcs.asdf") as product:
        np.testing.assert_allclose(product.wcs(100.0, 200.0), cal.meta.wcs(100.0, 200.0))


def _run(*args, cwd):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_dithered_set_calibrated_aligned_and_ingested_from_the_command_line(tmp_path):
    """calpipe simulate --nexposures 3, strun exposure_pipeline on its association, then
    strun training_ingest: relative alignment holds and the training targets are the run's cost."""
    bin_dir = os.path.dirname(sys.executable)
    _run(os.path.join(bin_dir, "calpipe"), "simulate", "--out", "sim", "--size", "512", "--nexposures", "3",
         "--seed", "5", cwd=tmp_path)
    (asn,) = (tmp_path / "sim").glob("*_asn.json")
    members = [m["expname"] for m in json.loads(asn.read_text())["products"][0]["members"]]
    assert len(members) == 3
    _run(os.path.join(bin_dir, "strun"), "exposure_pipeline", str(asn), "--output-dir", "out",
         "--ref-store", "sim/refs", cwd=tmp_path)
    cals, sources = [], []
    for name in members:
        root = name.removesuffix("_uncal.asdf")
        cals.append(dm.open(tmp_path / "out" / f"{root}_cal.asdf"))
        with asdf.open(tmp_path / "sim" / f"{root}_truth.asdf", lazy_load=False) as af:
            sources.append(af.tree["sources"].copy())
        assert (tmp_path / "out" / f"{root}_wcs.asdf").exists()
    assert [c.meta.cal_step.tweakreg for c in cals] == ["COMPLETE"] * 3
    assert all("absolute" not in c.meta.wcs_fit_results for c in cals)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        rms, nstars = wcs_agreement(cals[a], sources[a], cals[b], sources[b])
        assert nstars > 20 and rms < 0.05

    url = f"sqlite:///{tmp_path / 'training.db'}"
    _run(os.path.join(bin_dir, "strun"), "training_ingest", str(asn), "--steps.ingest.cal_dir=out",
         f"--steps.ingest.database={url}", cwd=tmp_path)
    cost = cals[0].meta.resources.exposure_pipeline
    with D.TrainingDB(url) as db, db.engine.connect() as conn:
        rows = conn.execute(D.sa.select(D.training.c.peak_memory_mb, D.training.c.wall_seconds)).all()
    assert [tuple(r) for r in rows] == [(pytest.approx(cost["peak_rss_mb"]), pytest.approx(cost["wall_seconds"]))]
    for c in cals:
        c.close()
