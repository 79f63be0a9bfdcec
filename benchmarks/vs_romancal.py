"""calpipe and the Roman pipeline (romancal) side by side on one Roman Level-1 exposure.

Needs romancal beside calpipe, in an environment of its own (romancal pins an older asdf):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -e ".[roman,bench]"
    .venv-bench/bin/python benchmarks/vs_romancal.py --size 512

The exposure and its reference files are made with ``roman_datamodels`` by
``tests/support/roman_ramp.py`` (a ramp simulated read by read, with a known truth; not
calpipe's simulator). Both pipelines get the same files: calpipe through ``calpipe refs
import`` and ``--ref-store``, romancal through ``--steps.<step>.override_<reftype>=<path>``
for every reference it reads. romancal runs offline: CRDS_SERVER_URL points nowhere and
CRDS_PATH at an empty folder, so any attempt to reach the reference server fails loudly.

Each pipeline runs from its own installation (``--calpipe-python``: the Python of
calpipe's; by default the one running this script) in a process of its own under
``strun``, writing its products into a new folder; a logging handler in that process times
every step and reads its peak resident memory (VmHWM, reset at each step's start). The rate image each pipeline's ramp
fit makes is saved by that handler's process for the comparison below; the seconds that
takes are not counted in the whole process's time.
Printed: per step and in total, wall time and peak memory of each pipeline and their ratios
(romancal / calpipe); the agreement of the rate and calibrated images over pixels both call
good (median and 99th percentile of |calpipe - romancal| / err, err being romancal's); the
agreement of their DQ flags; and each pipeline's accuracy against the truth.

Where romancal is installed beside calpipe, stpipe imports romancal's list of steps (and with
it roman_datamodels' schemas, with PyYAML's pure-Python parser) in calpipe's process too, to
resolve the name ``exposure_pipeline``: 0.3-0.5 s that a user of ``calpipe[roman]`` does not
pay. ``--calpipe-python`` runs calpipe from its own environment, as users install it; each
pipeline's products are then read by its own environment's roman_datamodels (a newer
roman_datamodels writes tags an older one cannot read).

calpipe's refpix takes the detector's amplifier channels as Roman's: 128 columns each
(``--steps.refpix.nchannels`` = size / 128; 32 at 4096).

Steps that both skip: source_catalog and tweakreg (the comparison is of the images), and
romancal's dark_decay (the simulated detector has no dark decay; a zero
DARKDECAYSIGNAL table cannot be written with the maker of roman_datamodels 1.1).
romancal's refpix needs 32 channels of 128 columns: below 4096x4096 it is skipped (the
simulated detector has no correlated read noise; its bias is constant in time, so the slopes
do not depend on it); at 4096 it runs with zero Fourier weights, the right ones for that
detector.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import roman_ramp  # noqa: E402

# romancal step alias -> the reference types it reads (override parameter names)
ROMANCAL_REFS = {
    "dq_init": ["mask"], "saturation": ["saturation"], "refpix": ["refpix"],
    "linearity": ["linearity", "inverselinearity", "integralnonlinearity"], "dark_current": ["dark"],
    "rampfit": ["readnoise", "gain"], "assign_wcs": ["distortion"], "flatfield": ["flat"], "photom": ["photom"],
}
# the same step under both names: (label, calpipe alias, romancal alias)
STEPS = [("dq_init", "dq_init", "dq_init"), ("saturation", "saturation", "saturation"),
         ("refpix", "refpix", "refpix"), ("linearity", "linearity", "linearity"),
         ("ramp_fit", "ramp_fit", "rampfit"), ("dark_current", "dark_current", "dark_current"),
         ("assign_wcs", "assign_wcs", "assign_wcs"), ("flat_field", "flat_field", "flatfield"),
         ("photom", "photom", "photom")]

# stpipe's name of the pipeline itself among the timed steps
PIPELINE = "ExposurePipeline"

# Runs strun in this process, timing each step from stpipe's "Step X running" / "Step X done"
# log records, with the peak RSS of each step (VmHWM reset when it starts).
RUNNER = r"""
import json, logging, re, sys, time
from stpipe import crds_client
from stpipe._cli.strun import main

# Offline: no CRDS context to record in the products' metadata (reference lookups, not
# patched, still fail against the dead server)
crds_client.get_context_used = lambda observatory: "N/A (offline)"

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) * 1024

def reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

steps, started, peak = {}, {}, [0]
t0 = time.perf_counter()
class Timer(logging.Handler):
    def emit(self, record):
        m = re.match(r"Step (\S+) (running|done)", record.getMessage())
        if not m:
            return
        name, what = m.groups()
        now = time.perf_counter()
        if what == "running":
            peak[0] = max(peak[0], hwm())
            reset()
            started[name] = now
        elif name in started:
            h = hwm()
            peak[0] = max(peak[0], h)
            steps[name] = {"wall_s": now - started.pop(name), "peak_bytes": h}
logging.getLogger().addHandler(Timer())
logging.getLogger().setLevel(logging.INFO)

# the rate image: kept from the ramp-fit step's result (after its "done", outside its timing;
# the seconds spent saving it are taken off the whole process's too)
captured = [0.0]
def capture(step_class, path):
    run = step_class.run
    def run_and_keep(self, *args, **kwargs):
        result = run(self, *args, **kwargs)
        model = result[0] if isinstance(result, (list, tuple)) else result
        t = time.perf_counter()
        np.savez(path, data=np.asarray(model.data), err=np.asarray(model.err), dq=np.asarray(model.dq))
        captured[0] += time.perf_counter() - t
        return result
    step_class.run = run_and_keep

import importlib
import numpy as np
out, rate = sys.argv[1], sys.argv[2]
module, name = sys.argv[3].split(":")
capture(getattr(importlib.import_module(module), name), rate)
sys.argv = ["strun"] + sys.argv[4:]
try:
    status = main()
except SystemExit as e:
    status = e.code
total = time.perf_counter() - t0 - captured[0]
json.dump({"status": status or 0, "wall_s": total, "peak_bytes": max(peak[0], hwm()), "steps": steps},
          open(out, "w"))
"""


def run_pipeline(python, ramp_fit_class, args, work, env, log, products):
    """Run ``args`` under strun from ``python`` with the timing handler; ``products``: the
    output folder, made anew (a first calibration, for both pipelines alike)."""
    shutil.rmtree(products, ignore_errors=True)
    result = work / f"{log}.json"
    with open(work / f"{log}.log", "w") as out:
        done = subprocess.run([python, "-c", RUNNER, str(result), str(work / f"{log}_rate.npz"), ramp_fit_class,
                               *map(str, args)], cwd=work, env=env,
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not result.exists():
        sys.exit(f"vs_romancal: error: {log} failed (exit {done.returncode}), see {work / (log + '.log')}")
    timing = json.loads(result.read_text())
    if timing["status"]:
        sys.exit(f"vs_romancal: error: {log} failed (status {timing['status']}), see {work / (log + '.log')}")
    return timing


def offline_env(work):
    env = dict(os.environ)
    env.pop("CALPIPE_REFS", None)
    (work / "crds-empty").mkdir(exist_ok=True)
    env.update({"CRDS_SERVER_URL": "https://crds.invalid", "CRDS_PATH": str(work / "crds-empty"),
                "CRDS_OBSERVATORY": "roman", "CRDS_MODE": "local"})
    return env


def romancal_args(paths):
    args = []
    for step, reftypes in ROMANCAL_REFS.items():
        for reftype in reftypes:
            ref = paths["refs"].get(reftype, "N/A")
            args.append(f"--steps.{step}.override_{reftype}={ref}")
    args += ["--steps.dark_decay.skip=true", "--steps.source_catalog.skip=true", "--steps.tweakreg.skip=true"]
    if "refpix" not in paths["refs"]:
        args.append("--steps.refpix.skip=true")
    return args


def agreement(cp, rc):
    """Median and 99th percentile of |cp - rc| / rc.err over pixels both call good; DQ agreement."""
    from calpipe import dqflags

    bad = dqflags.DO_NOT_USE | dqflags.SATURATED
    cdq, rdq = np.asarray(cp.dq), np.asarray(rc.dq)
    err = np.asarray(rc.err, np.float64)
    good = ((cdq & bad) == 0) & ((rdq & bad) == 0) & (err > 0) & np.isfinite(err)
    diff = np.abs(np.asarray(cp.data, np.float64) - np.asarray(rc.data, np.float64))[good] / err[good]
    flags = {name: float(np.mean((cdq & bit > 0) == (rdq & bit > 0)))
             for name, bit in (("DO_NOT_USE", dqflags.DO_NOT_USE), ("SATURATED", dqflags.SATURATED),
                               ("JUMP_DET", dqflags.JUMP_DET))}
    return {"good_pixels": int(good.sum()), "median": float(np.median(diff)),
            "p99": float(np.percentile(diff, 99)), "dq_agree": flags}


# Reads a Level-2 product in the environment that wrote it: saves its data, err and dq for the
# agreement, prints its accuracy against the truth as JSON.
READER = r"""
import json, sys
import asdf
import numpy as np
sys.path.insert(0, sys.argv[1])
from tests.support import roman_ramp
from calpipe.truth import compare
with asdf.open(sys.argv[3]) as truth, roman_ramp.open_quietly(sys.argv[2]) as cal:
    np.savez(sys.argv[4], data=np.asarray(cal.data), err=np.asarray(cal.err), dq=np.asarray(cal.dq))
    print(json.dumps(compare(cal, truth.tree)))
"""


def read_product(python, path, truth, arrays):
    """Accuracy against the truth of the Level-2 product at ``path``, read by ``python``'s
    roman_datamodels; its data, err and dq saved in ``arrays`` (.npz)."""
    done = subprocess.run([python, "-c", READER, str(ROOT), str(path), str(truth), str(arrays)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"vs_romancal: error: reading {path} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_input(folder, size, seed):
    """The simulated exposure, its truth and its references in ``folder``: made, or reused when
    ``folder`` holds the ones of the same size and seed written by this roman_datamodels."""
    import roman_datamodels

    made = folder / "made.json"
    wanted = {"size": size, "seed": seed, "roman_datamodels": roman_datamodels.__version__}
    if made.exists():
        record = json.loads(made.read_text())
        if record["input"] == wanted:
            return record["paths"], None
    t = time.perf_counter()
    paths = roman_ramp.write_exposure(folder, size=size, seed=seed, refpix=size == 4096)
    made.write_text(json.dumps({"input": wanted, "paths": paths}))
    return paths, time.perf_counter() - t


def run_calpipe(python, work, env, paths, size, log):
    """calpipe's exposure pipeline (catalog and alignment skipped) on the exposure of ``paths``,
    its references indexed in a store of its own."""
    store = work / f"{log}_store"
    subprocess.run([Path(python).parent / "calpipe", "refs", "--store", store, "import",
                    Path(paths["uncal"]).parent / "refs"], check=True, env=env, stdout=subprocess.DEVNULL)
    return run_pipeline(python, "calpipe.steps.ramp_fit:RampFitStep",
                        ["exposure_pipeline", paths["uncal"], "--ref-store", store, "--output-dir", work / log,
                         f"--steps.refpix.nchannels={size // 128}",
                         "--steps.source_catalog.skip=true", "--steps.tweakreg.skip=true"], work, env, log,
                        work / log)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512,
                        help="detector side in pixels, border included, a multiple of 128 (default 512)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path,
                        help="working folder, kept; an input made there before (same size, seed and "
                             "roman_datamodels) is reused (default: a temporary one, removed)")
    parser.add_argument("--calpipe-python", type=Path,
                        help="the Python of calpipe's own installation, to run calpipe from it (default: "
                             "this one, with romancal beside it)")
    parser.add_argument("--calpipe-only", action="store_true",
                        help="run calpipe alone (romancal need not be installed): its figures per step")
    options = parser.parse_args(argv)
    if options.size < 128 or options.size % 128 or options.size > 4096:
        parser.error(f"--size {options.size}: expected a multiple of 128 from 128 to 4096")
    if options.calpipe_python and not (options.calpipe_python.is_file()
                                       and os.access(options.calpipe_python, os.X_OK)):
        parser.error(f"--calpipe-python {options.calpipe_python}: not an executable file")
    if options.calpipe_python and not (options.calpipe_python.parent / "calpipe").is_file():
        parser.error(f"--calpipe-python {options.calpipe_python}: no calpipe installed beside it")
    romancal = None
    if not options.calpipe_only:
        try:
            import romancal
        except ImportError:
            print(f"vs_romancal: error: romancal is not installed in {sys.prefix}, expected the bench extra "
                  '(pip install -e ".[roman,bench]" in a separate virtualenv), or --calpipe-only',
                  file=sys.stderr)
            sys.exit(2)

    tmp = None
    if options.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="vs_romancal_")
        options.work = Path(tmp.name)
    work = options.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    paths, seconds = make_input(work / "input", options.size, options.seed)
    made = "reused" if seconds is None else f"made in {seconds:.1f} s"
    print(f"input: {options.size}x{options.size}, 6 resultants, {made}"
          + ("" if romancal is None else f" (romancal {romancal.__version__})"))
    env = offline_env(work)
    python = str(options.calpipe_python.absolute() if options.calpipe_python else sys.executable)
    if options.calpipe_python:
        print(f"calpipe runs from {python}")
    # calpipe's kernels compile on a process's first use and are cached on disk (the cold start
    # is benchmarks/kernel_compile.py's figure): a small exposure first, untimed, fills the cache
    warm, _ = make_input(work / "warm_up_input", 128, options.seed)
    print(f"warm-up (fills calpipe's kernel cache): {run_calpipe(python, work, env, warm, 128, 'warm_up')['wall_s']:.1f} s")
    uncal = paths["uncal"]
    cp = run_calpipe(python, work, env, paths, options.size, "cp")
    mb = 2**20
    if romancal is None:
        print(f"\n{'step':<16}{'calpipe s':>11}{'calpipe MB':>12}")
        for label, step in [*((label, cp["steps"].get(c)) for label, c, _ in STEPS), ("whole process", cp)]:
            print(f"{label:<16}" + ("    skipped" if step is None else
                                    f"{step['wall_s']:>11.2f}{step['peak_bytes'] / mb:>12.0f}"))
        print(f"  steps add up to {sum(s['wall_s'] for name, s in cp['steps'].items() if name != PIPELINE):.2f} s")
        stats = read_product(python, work / "cp" / Path(uncal).name.replace("_uncal", "_cal"), paths["truth"],
                             work / "cp_cal.npz")
        print(f"\naccuracy against the truth, (cal - truth) / err: median {stats['median_pull']:+.3f}, robust std "
              f"{stats['robust_std_pull']:.3f} over {stats['clean_pixels']} clean science pixels")
        if tmp is not None:
            tmp.cleanup()
        return
    rc = run_pipeline(sys.executable, "romancal.ramp_fitting.ramp_fit_step:RampFitStep",
                      ["roman_elp", uncal, "--disable-crds-steppars", f"--output_dir={work / 'rc'}",
                       *romancal_args(paths)], work, env, "romancal", work / "rc")

    print(f"\n{'step':<14}{'calpipe s':>11}{'romancal s':>12}{'ratio':>8}{'calpipe MB':>12}{'romancal MB':>13}{'ratio':>8}")
    rows = [(label, cp["steps"].get(c), rc["steps"].get(r)) for label, c, r in STEPS]
    rows.append(("whole process", cp, rc))
    for label, a, b in rows:
        if a is None or b is None:
            ta = "skipped" if a is None else f"{a['wall_s']:.2f}"
            tb = "skipped" if b is None else f"{b['wall_s']:.2f}"
            print(f"{label:<14}{ta:>11}{tb:>12}")
            continue
        print(f"{label:<14}{a['wall_s']:>11.2f}{b['wall_s']:>12.2f}{b['wall_s'] / max(a['wall_s'], 1e-3):>8.1f}"
              f"{a['peak_bytes'] / mb:>12.0f}{b['peak_bytes'] / mb:>13.0f}{b['peak_bytes'] / a['peak_bytes']:>8.2f}")

    name = Path(uncal).name.replace("_uncal.asdf", "")
    accuracy = {label: read_product(py, work / folder / f"{name}_cal.asdf", paths["truth"], work / f"{label}_cal.npz")
                for label, py, folder in (("calpipe", python, "cp"), ("romancal", sys.executable, "rc"))}
    products = {"rate": (work / "cp_rate.npz", work / "romancal_rate.npz"),
                "cal": (work / "calpipe_cal.npz", work / "romancal_cal.npz")}
    print("\nagreement over pixels both call good, |calpipe - romancal| / err (romancal's err):")
    for kind, (a, b) in products.items():
        with np.load(a) as za, np.load(b) as zb:
            stats = agreement(SimpleNamespace(**za), SimpleNamespace(**zb))
        print(f"  {kind:<5} median {stats['median']:.3f}, 99th percentile {stats['p99']:.3f} over "
              f"{stats['good_pixels']} pixels; DQ agrees on "
              + ", ".join(f"{k} {v:.4f}" for k, v in stats["dq_agree"].items()))

    print("\naccuracy against the truth over clean science pixels, (cal - truth) / err:")
    for label, stats in accuracy.items():
        print(f"  {label:<9} median {stats['median_pull']:+.3f}, robust std {stats['robust_std_pull']:.3f} over "
              f"{stats['clean_pixels']} pixels; saturated flagged {stats['saturated_flagged']:.3f}, "
              f"cosmic-ray hits flagged {stats['jumps_flagged']:.3f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
