"""What runs on a worker: the garbage collector's frozen heap between tasks."""

import gc
import weakref

import pytest

from calpipe.batch import tasks


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self):
        self.me = self


@pytest.fixture
def fresh_heap(monkeypatch):
    gc.unfreeze()
    monkeypatch.setattr(tasks, "_frozen_after_full", [0])
    yield
    gc.unfreeze()


def test_each_task_collects_what_the_last_left_and_keeps_the_heap_frozen(fresh_heap):
    with tasks.frozen_heap(True):
        left = weakref.ref(Node())  # garbage made by a task
        frozen = gc.get_freeze_count()
        assert frozen > 0
    assert gc.get_freeze_count() > frozen // 2  # still frozen between tasks (less what refcounts freed)
    with tasks.frozen_heap(True):
        assert left() is None


def test_cycles_frozen_alive_are_collected_once_the_frozen_heap_has_grown(fresh_heap):
    with tasks.frozen_heap(True):
        kept = Node()
    with tasks.frozen_heap(True):  # frozen while alive
        pass
    dropped = weakref.ref(kept)
    del kept
    with tasks.frozen_heap(True):  # the frozen heap has hardly grown: no full collection
        assert dropped() is not None
    growth = [[] for _ in range(int(gc.get_freeze_count() * tasks.FULL_COLLECTION_GROWTH))]
    with tasks.frozen_heap(True):  # frozen: the heap is now larger by the factor
        pass
    with tasks.frozen_heap(True):
        assert dropped() is None
    del growth
