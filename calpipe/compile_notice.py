"""Tell a command-line user when Numba compiles kernels (a cold on-disk cache).

Numba announces every compilation it cannot load from its cache with a ``numba:compile``
event; a listener on that event costs nothing while the cache is warm. The first such event
in a process prints one line, so a first run's minute of compiling is not mistaken for a hang.
"""

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


_state = {"listener": None, "told": False, "stream": None}
