"""CalStep.run: the garbage collector's frozen heap around a run."""

import gc
import os
import subprocess
import sys

import pytest

from calpipe.step import CalStep


class Probe(CalStep):
    """Records, while it runs, how many objects the collector has frozen."""

    class_alias = "probe"
    seen = []

    def process(self, input):
        Probe.seen.append(gc.get_freeze_count())
        return input


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    Probe.seen.clear()
    yield
    gc.unfreeze()


def test_a_python_caller_s_objects_are_frozen_during_the_run_only(unfrozen):
    # stpipe collects garbage before each step; frozen, the caller's objects are not scanned
    Probe().run(None)
    assert Probe.seen[0] > 10_000
    assert gc.get_freeze_count() == 0


def test_a_caller_s_own_frozen_heap_stays_frozen(unfrozen):
    gc.freeze()  # as a batch worker keeps its heap between tasks
    before = gc.get_freeze_count()
    Probe().run(None)
    assert gc.get_freeze_count() >= before


def test_a_strun_run_leaves_the_heap_frozen_for_the_process_s_end():
    # The process ends with the run: its shutdown's collections then skip the frozen heap.
    run = ("import gc, sys; sys.path.insert(0, sys.argv[1]); from test_step import Probe; "
           "Probe.from_cmdline(['test_step.Probe', 'input']); print(gc.get_freeze_count())")
    done = subprocess.run([sys.executable, "-c", run, os.path.dirname(__file__)], capture_output=True, text=True,
                          check=True)
    assert int(done.stdout.split()[-1]) > 10_000
