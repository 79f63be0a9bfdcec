import os
import subprocess
import sys
import textwrap

from calpipe.compile_notice import MESSAGE

# Numba's cache beside each test's module, where the tests look for it.
ENV = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}

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
    cold = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, check=True,
                          env=ENV)
    warm = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, check=True,
                          env=ENV)
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
    done = subprocess.run([sys.executable, "-c", run, str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [f"{MESSAGE} ...", "42"]


def test_a_kernel_asked_ahead_compiles_in_the_background_and_loads_from_the_cache(tmp_path):
    # The first compile of the process starts the background one; after wait_ahead() the
    # kernel loads from the on-disk cache: this process never compiles it.
    (tmp_path / "later.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef later(x):\n    return x + 1\n\n"
        "if __name__ == '__main__':\n    later(1)\n")
    (tmp_path / "first.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef first(x):\n    return x - 1\n")
    run = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from numba.core import event
        from calpipe import compile_notice
        compiled = []
        class Names(event.Listener):
            def on_start(self, ev):
                compiled.append(ev.data["dispatcher"].py_func.__name__)
            def on_end(self, ev):
                pass
        event.register("numba:compile", Names())
        compile_notice.install()
        compile_notice.compile_ahead("later")
        import first
        print(first.first(1))
        compile_notice.wait_ahead()
        import later
        print(later.later(1), compiled)
    """)
    env = dict(ENV, PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", run, str(tmp_path)], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["0", "2 ['first']"]
    assert list((tmp_path / "__pycache__").glob("later.later-*.nbi"))


def test_nothing_starts_on_a_warm_cache(tmp_path):
    (tmp_path / "warm.py").write_text("from numba import njit\n\n@njit(cache=True)\ndef warm(x):\n    return x\n")
    run = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from calpipe import compile_notice
        compile_notice.install()
        compile_notice.compile_ahead("no_such_module_is_started")
        import warm
        warm.warm(1)
        print(compile_notice._state["process"])
    """)
    subprocess.run([sys.executable, "-c", run, str(tmp_path)], check=True, capture_output=True, env=ENV)
    second = subprocess.run([sys.executable, "-c", run, str(tmp_path)], check=True, capture_output=True,
                            text=True, env=ENV)
    assert second.stdout.strip() == "None"


def test_at_most_one_background_compile_per_process(monkeypatch):
    from calpipe import compile_notice

    started = []
    monkeypatch.setattr(compile_notice.subprocess, "Popen", lambda *args, **kwargs: started.append(args))
    monkeypatch.setattr(compile_notice, "_state", dict(compile_notice._state, told=True, ahead=None,
                                                       process=None))
    for _ in range(3):  # three exposures calibrated in one process
        compile_notice.compile_ahead("calpipe.precompile", "likely")
    assert len(started) == 1
