"""calpipe.memory: arrays whose rows' memory is given back to the system."""

import mmap

import numpy as np
import pytest

from calpipe.memory import RELEASES, releasable, release_rows

PAGE = mmap.PAGESIZE
pytestmark = pytest.mark.skipif(not RELEASES, reason="memory is given back on Linux only")


def test_a_releasable_array_is_zeros_and_writable():
    cube = releasable((3, 5, 7), np.float32)
    assert cube.shape == (3, 5, 7) and cube.dtype == np.float32 and cube.flags.c_contiguous
    assert not cube.any()
    cube[...] = 2
    assert cube.sum() == 2 * 3 * 5 * 7


def test_released_rows_read_zeros_in_every_plane_and_the_rest_is_kept():
    width = PAGE // 4  # one page per float32 row
    cube = releasable((3, 20, width), np.float32)
    cube[...] = np.arange(20, dtype=np.float32)[None, :, None] + 1
    assert release_rows(cube, 5, 9) == 3 * 4 * PAGE
    rows = cube[:, :, 0]
    assert (rows[:, 5:9] == 0).all()
    np.testing.assert_array_equal(rows[:, :5], np.broadcast_to(np.arange(1, 6), (3, 5)))
    np.testing.assert_array_equal(rows[:, 9:], np.broadcast_to(np.arange(10, 21), (3, 11)))


def test_a_page_shared_with_a_kept_row_is_kept():
    width = PAGE // 8  # two float32 rows per page
    cube = releasable((1, 8, width), np.float32)
    cube[...] = 1
    # rows 1-4 start and end half-way through a page: only the page of rows 2-3 goes
    assert release_rows(cube, 1, 5) == PAGE
    np.testing.assert_array_equal(cube[0, :, 0], [1, 1, 0, 0, 1, 1, 1, 1])


def test_other_arrays_are_never_touched():
    plain = np.ones((2, 16, PAGE // 4), np.float32)
    assert release_rows(plain, 0, 16) == 0
    assert (plain == 1).all()
    view = releasable((2, 16, PAGE // 4), np.float32)[:, :, 1:]  # not contiguous
    view[...] = 1
    assert release_rows(view, 0, 16) == 0 and (view == 1).all()


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def test_releasing_gives_the_memory_back():
    cube = releasable((2, 1024, 8192), np.float32)  # 64 MiB
    before = _rss_bytes()
    cube[...] = 1
    filled = _rss_bytes()
    assert filled - before > 60 * 2**20
    release_rows(cube, 0, 1024)
    assert filled - _rss_bytes() > 60 * 2**20


def _huge_page_advice():
    from calpipe.memory import _set_madvise_hugepage

    state = _set_madvise_hugepage(False)
    _set_madvise_hugepage(state)
    return state


def test_numpy_still_has_its_huge_page_switch():
    # calpipe's one use of a private numpy function: this fails first when numpy drops it
    from calpipe.memory import _set_madvise_hugepage

    before = _set_madvise_hugepage(True)
    assert _set_madvise_hugepage(before) is True


def test_steps_run_without_huge_page_advice_and_restore_it():
    from calpipe.memory import _set_madvise_hugepage, without_huge_page_advice
    from calpipe.step import CalStep

    seen = []

    class Probe(CalStep):
        class_alias = "probe"

        def process(self, input):
            seen.append(_huge_page_advice())
            return input

    before = _set_madvise_hugepage(True)
    try:
        Probe().run(None)
        assert seen == [False] and _huge_page_advice() is True
        with without_huge_page_advice():
            assert _huge_page_advice() is False
        assert _huge_page_advice() is True
    finally:
        _set_madvise_hugepage(before)


def _faults_to_fill(nbytes):
    """Page faults taken to make and fill a new array of ``nbytes``."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    array = np.empty(nbytes // 4, np.float32)
    array.fill(1)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del array
    return faults


def test_arrays_from_the_heap_reuse_freed_memory_and_give_it_back():
    from calpipe.memory import _glibc, arrays_from_the_heap, without_huge_page_advice

    if _glibc() is None:
        pytest.skip("the heap is glibc's")
    size = 64 * 2**20
    pages = size // PAGE
    with without_huge_page_advice():  # one fault per page, as steps run
        # outside: every new array is a fresh map, faulted in page by page
        assert _faults_to_fill(size) > pages // 2
        assert _faults_to_fill(size) > pages // 2
        with arrays_from_the_heap():
            _faults_to_fill(size)
            with arrays_from_the_heap():  # nested: the outer block decides
                assert _faults_to_fill(size) < pages // 20  # the freed pages, reused
            assert _faults_to_fill(size) < pages // 20
            held = _rss_bytes()
        assert held - _rss_bytes() > size // 2  # handed back after the outermost block
        assert _faults_to_fill(size) > pages // 2


def test_steps_run_with_arrays_from_the_heap():
    from calpipe.memory import _heap_users
    from calpipe.step import CalStep

    seen = []

    class Probe(CalStep):
        class_alias = "probe"

        def process(self, input):
            seen.append(_heap_users[0])
            return input

    Probe().run(None)
    assert seen == [1] and _heap_users[0] == 0
