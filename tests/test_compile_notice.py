import subprocess
import sys
import textwrap

from calpipe.compile_notice import MESSAGE

RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from calpipe import compile_notice
    compile_notice.install()
    import twice
    print(twice.twice(21))
""")


def test_told_once_on_a_cold_cache_and_not_on_a_warm_one(tmp_path):
    (tmp_path / "twice.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef twice(x):\n    return 2 * x\n")
    cold = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, check=True)
    warm = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, check=True)
    assert cold.stdout.strip() == warm.stdout.strip() == "42"
    assert cold.stderr.count(MESSAGE) == 1
    assert MESSAGE not in warm.stderr
    assert list((tmp_path / "__pycache__").glob("twice.twice-*.nbi"))


def test_a_closed_stream_never_breaks_a_compile(tmp_path):
    """The stream is looked up when printing: a capture closed since is no reason to fail."""
    (tmp_path / "thrice.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef thrice(x):\n    return 3 * x\n")
    run = textwrap.dedent("""
        import io, sys
        sys.path.insert(0, sys.argv[1])
        from calpipe import compile_notice
        real, sys.stdout = sys.stdout, io.StringIO()  # a capture, as a test's
        compile_notice.install("stdout")
        captured, sys.stdout = sys.stdout, real
        captured.close()
        import thrice
        print(thrice.thrice(14))
    """)
    done = subprocess.run([sys.executable, "-c", run, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [f"{MESSAGE} ...", "42"]
