"""Tell a command-line user when Numba compiles kernels (a cold on-disk cache), and start
the longest compile early.

Numba announces every compilation it cannot load from its cache with a ``numba:compile``
event; a listener on that event costs nothing while the cache is warm. The first such event
in a process prints one line, so a first run's compiling is not mistaken for a hang. It
also starts what :func:`compile_ahead` asked for: a background process that compiles a
kernel needed later (the ramp fit, the longest), into the same on-disk cache, while this
process compiles and runs the steps before it; :func:`wait_ahead` then waits for it, and
the kernel loads from the cache.
"""

import subprocess
import sys

MESSAGE = "compiling kernels (first run only)"


def install(stream=None):
    """Print ``MESSAGE`` to ``sys.<stream>`` (``"stdout"``; default ``"stderr"``) when Numba
    first compiles in this process.

    The stream is looked up when the line is printed, so a stream replaced since (by a test's
    capture, say) is not written to after it closed. Idempotent (a later call without
    ``stream`` keeps the earlier one); returns the listener.
    """
    from numba.core import event

    if _state["listener"] is None:

        class _Notice(event.Listener):
            def on_start(self, ev):
                if not _state["told"]:
                    _state["told"] = True
                    _start_ahead()
                    try:
                        print(f"{MESSAGE} ...", file=getattr(sys, _state["stream"] or "stderr"), flush=True)
                    except (ValueError, OSError):
                        pass  # a closed stream: the notice is a courtesy, the compile goes on

            def on_end(self, ev):
                pass

        _state["listener"] = _Notice()
        event.register("numba:compile", _state["listener"])
    if stream is not None:
        _state["stream"] = stream
    return _state["listener"]



def compile_ahead(module, *args):
    """Once this process first compiles (its cache is cold), run ``python -m module *args``
    in the background: a module whose main compiles a kernel into the on-disk cache. At
    most one such process per process: a later call does nothing."""
    if _state["ahead"] is None:  # () once one was started
        _state["ahead"] = (module, *args)
        if _state["told"]:
            _start_ahead()


def wait_ahead():
    """Wait for the background compile, if one is running (its kernel is then cached)."""
    process, _state["process"] = _state["process"], None
    if process is not None:
        process.wait()


def _start_ahead():
    if not _state["ahead"]:
        return
    try:
        _state["process"] = subprocess.Popen([sys.executable, "-m", *_state["ahead"]],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        pass  # compiled here when needed instead
    _state["ahead"] = ()


_state = {"listener": None, "told": False, "stream": None, "ahead": None, "process": None}
