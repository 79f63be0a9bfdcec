import os
import subprocess
import sys
import textwrap

import pytest

from calpipe import precompile
from calpipe.errors import CalpipeError
from calpipe.simulate import simulate


def test_jobs_are_shared_longest_first_to_the_least_loaded_process():
    groups = precompile.plan(list(precompile.JOBS), 2)
    assert sorted(name for group in groups for name in group) == sorted(precompile.JOBS)
    loads = [sum(precompile.JOBS[name][0] for name in group) for group in groups]
    # The two ramp fits, the longest by far, go to different processes.
    assert {groups[0][0], groups[1][0]} == {"likely", "optimal"}
    assert abs(loads[0] - loads[1]) <= max(cost for cost, _ in precompile.JOBS.values())


def test_no_more_processes_than_jobs_and_names_checked():
    assert precompile.plan(["catalog", "catalog"], 8) == [["catalog"]]
    assert precompile.plan(["likely", "refpix"], 1) == [["likely", "refpix"]]
    with pytest.raises(ValueError, match="no kernels named bogus"):
        precompile.plan(["likely", "bogus"], 2)


def test_a_job_that_fails_is_one_error_naming_it(monkeypatch):
    monkeypatch.setattr(precompile, "__name__", "calpipe.no_such_module")
    with pytest.raises(CalpipeError, match=r"compiling kernels failed \(saturation: .*No module named"):
        precompile.precompile([["saturation"]])


def test_command_line_errors_are_one_line():
    for args in (["compile", "bogus"], ["compile", "--processes", "0"]):
        done = subprocess.run([sys.executable, "-m", "calpipe.cli", *args], capture_output=True, text=True)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("calpipe compile: error:")


@pytest.mark.slow
def test_a_pipeline_run_after_compiling_ahead_compiles_nothing(tmp_path):
    """On an empty cache, ``calpipe compile`` leaves nothing for either ramp fit's pipeline
    run to compile: its jobs compile the very specialisations the steps use."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-m", "calpipe.cli", "compile"], check=True, env=env, capture_output=True)
    run = textwrap.dedent("""
        import sys
        from numba.core import event
        from calpipe import compile_notice
        from calpipe.pipelines import ExposurePipeline
        compiled = []
        class Listener(event.Listener):
            def on_start(self, ev):
                compiled.append(ev.data["dispatcher"].py_func.__qualname__)
            def on_end(self, ev):
                pass
        event.register("numba:compile", Listener())
        compile_notice.compile_ahead = lambda *args: None
        for algorithm in ("likely", "optimal"):
            ExposurePipeline.from_cmdline(["exposure_pipeline", *sys.argv[1:],
                                           f"--steps.ramp_fit.algorithm={algorithm}"])
        print(sorted(set(compiled)))
    """)
    sim = simulate(tmp_path / "sim", size=256, nresultants=6, seed=3)
    done = subprocess.run([sys.executable, "-c", run, str(sim.uncal), "--output-dir", str(tmp_path / "out"),
                           "--ref-store", str(sim.refs), f"--steps.tweakreg.abs_refcat={sim.refcat}"],
                          check=True, env=env, capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
