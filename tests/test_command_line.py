"""calpipe as users call it: strun with aliases, parameter files, overrides; the calpipe command."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.tiny_data import write_tiny_exposure

from calpipe import cli
from calpipe import datamodels as dm
from calpipe.step import CalStep

CONFIG = Path(__file__).parents[1] / "config"
ROOT = "cp00001001001_0001_wfi01"
STRUN = str(Path(sys.executable).with_name("strun"))


def strun(*args, cwd, refs):
    env = {**os.environ, "CALPIPE_REFS": str(refs)}
    return subprocess.run([STRUN, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True)


def test_strun_alias_with_dashed_options_and_skip(tiny, tmp_path):
    uncal, refs = tiny
    done = strun("exposure_pipeline", uncal, "--output-dir", "out", "--steps.flat_field.skip=true",
                 "--steps.ramp_fit.save_results=true", cwd=tmp_path, refs=refs)
    assert done.returncode == 0, done.stderr[-2000:]
    with dm.open(tmp_path / "out" / f"{ROOT}_cal.asdf") as cal:
        assert cal.meta.cal_step.flat_field == "SKIPPED"
        assert cal.meta.cal_step.photom == "COMPLETE"
        assert "var_flat" not in cal
    with dm.open(tmp_path / "out" / f"{ROOT}_rate.asdf") as rate:
        assert isinstance(rate, dm.ImageModel) and "dark_current" not in rate.meta.cal_step


def test_strun_with_the_pipeline_parameter_file(tiny, tmp_path):
    uncal, refs = tiny
    done = strun(CONFIG / "exposure_pipeline.asdf", uncal, "--output-dir", "out",
                 "--steps.ramp_fit.algorithm=optimal", cwd=tmp_path, refs=refs)
    assert done.returncode == 0, done.stderr[-2000:]
    with dm.open(tmp_path / "out" / f"{ROOT}_cal.asdf") as cal:
        assert cal.meta.ramp_fit.algorithm == "optimal"
        status = cal.meta.cal_step.to_dict()
        # The tiny exposure has no pointing: nothing to build a WCS from or to align; its
        # store has no dark-decay table and its detector is not WFI18.
        assert status.pop("assign_wcs") == status.pop("tweakreg") == "SKIPPED"
        assert status.pop("dark_decay") == status.pop("wfi18_transient") == "SKIPPED"
        assert set(status.values()) == {"COMPLETE"} and len(status) == 10  # 9 steps and the pipeline


def test_parameter_files_hold_the_current_defaults(tmp_path):
    """config/ is what ``python -m calpipe.integration config`` writes today."""
    import asdf

    from calpipe.integration import STEPS, write_parameter_files

    write_parameter_files(tmp_path)
    for _, alias, _ in STEPS:
        with asdf.open(CONFIG / f"{alias}.asdf") as shipped, asdf.open(tmp_path / f"{alias}.asdf") as fresh:
            for key in ("class", "name", "parameters", "steps"):
                assert shipped.tree.get(key) == fresh.tree.get(key), f"config/{alias}.asdf: {key} is out of date"


def test_every_step_parameter_file_runs_in_a_chain(tiny, tmp_path):
    """Each config/<step>.asdf runs its step on the previous step's product, as strun would."""
    uncal, _ = tiny
    out = tmp_path / "chain"
    current = str(uncal)
    chain = ["dq_init", "saturation", "refpix", "linearity", "ramp_fit", "dark_current", "flat_field", "photom"]
    for name in chain:
        CalStep.from_cmdline([str(CONFIG / f"{name}.asdf"), current, "--output_dir", str(out)])
        suffix = "rate" if name == "ramp_fit" else name
        current = str(out / f"{ROOT}_{suffix}.asdf")
        with dm.open(current) as product:
            assert product.meta.cal_step[name] == "COMPLETE"
    with dm.open(current) as final:
        assert final.data.shape == (56, 56) and final.meta.photometry.conversion_megajanskys == 0.5


@pytest.mark.parametrize("problem", ["missing reference", "corrupt input", "wrong dtype", "missing metadata"])
def test_bad_input_gives_one_line_and_no_output(tiny, tmp_path, problem):
    uncal, refs = tiny
    if problem == "missing reference":
        (refs / "tiny_flat.asdf").unlink()
        os.remove(refs / "index.json")
        from calpipe.references import RefStore

        RefStore(refs).add(sorted(p for p in refs.glob("tiny_*.asdf")))
        expected = "no flat reference"
    elif problem == "corrupt input":
        blob = Path(uncal).read_bytes()
        Path(uncal).write_bytes(blob[: len(blob) // 2])
        expected = "_uncal.asdf: "
    else:
        import asdf

        with asdf.open(uncal, lazy_load=False) as af:
            tree = {"meta": af.tree["meta"], "data": np.array(af.tree["data"])}
        if problem == "wrong dtype":
            tree["data"] = tree["data"].astype(np.float64)
            expected = "invalid at data"
        else:
            del tree["meta"]["exposure"]["read_pattern"]
            expected = "'read_pattern' is a required property"
        asdf.AsdfFile(tree).write_to(uncal)
    done = strun("exposure_pipeline", uncal, "--output-dir", "out", cwd=tmp_path, refs=refs)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_a_failed_run_leaves_no_output_folder_it_made(tiny, tmp_path):
    _, refs = tiny
    (tmp_path / "kept").mkdir()
    for folder in ("out", "kept"):
        done = strun("exposure_pipeline", tmp_path / "missing_uncal.asdf", "--output-dir", folder, cwd=tmp_path,
                     refs=refs)
        assert done.returncode == 2 and "no such file" in done.stderr
    assert not (tmp_path / "out").exists() and (tmp_path / "kept").is_dir()


def test_refs_commands(tiny, capsys):
    uncal, refs = tiny
    assert cli.main(["refs", "--store", str(refs), "list"]) == 0
    listing = capsys.readouterr().out
    assert "saturation" in listing and "tiny_flat.asdf" in listing
    assert cli.main(["refs", "--store", str(refs), "best", str(uncal), "--reftype", "dark"]) == 0
    assert capsys.readouterr().out.split() == ["dark", str(refs / "tiny_dark.asdf")]
    assert cli.main(["refs", "--store", str(refs / "nowhere"), "list"]) == 2
    assert "has no index.json" in capsys.readouterr().err


def test_refs_add_copies_and_indexes(tiny, tmp_path, capsys):
    _, refs = tiny
    new_store = tmp_path / "new_store"
    assert cli.main(["refs", "--store", str(new_store), "add", str(refs / "tiny_gain.asdf")]) == 0
    assert (new_store / "tiny_gain.asdf").exists() and (new_store / "index.json").exists()
    assert cli.main(["refs", "--store", str(new_store), "add", str(tmp_path / "absent.asdf")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--read-pattern", "7x"], "neither one of uneven6"),
    (["--read-pattern", "3", "--nresultants", "4"], "disagrees with --read-pattern"),
    (["--multi-hit-fraction", "1.5"], "multi-hit fraction must be within 0..1"),
    (["--cosmic-ray-fraction", "-0.1"], "cosmic-ray fraction must be >= 0"),
])
def test_simulate_refuses_bad_cosmic_ray_and_pattern_options(tmp_path, capsys, options, message):
    assert cli.main(["simulate", "--out", str(tmp_path / "sim"), "--size", "64", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "sim").exists()


def test_simulate_refuses_an_empty_dither(tmp_path, capsys):
    assert cli.main(["simulate", "--out", str(tmp_path / "sim"), "--size", "64", "--nexposures", "0"]) == 2
    assert "nexposures must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "sim").exists()
