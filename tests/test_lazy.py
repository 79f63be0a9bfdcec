import subprocess
import sys

import pytest

import calpipe.pipelines
import calpipe.steps


def test_a_calibration_run_imports_no_training_database():
    code = ("import sys; from calpipe.pipelines import ExposurePipeline; "
            "print(sorted(m for m in ('sqlalchemy', 'calpipe.steps.ingest', 'calpipe.training.db') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_listed_class_resolves_and_unknown_names_fail():
    for package in (calpipe.steps, calpipe.pipelines):
        assert dir(package) == package.__all__
        for name in package.__all__:
            assert getattr(package, name).__name__ == name
        with pytest.raises(AttributeError, match="no attribute 'Nope'"):
            package.Nope
