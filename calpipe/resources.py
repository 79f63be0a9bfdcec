"""Measuring what a piece of work costs: wall time and peak resident memory."""

import os
import resource
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE")


def current_rss():
    """Resident set size of this process in bytes."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:  # not Linux: the lifetime high-water mark is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ResourceMonitor:
    """Context manager that samples RSS in a thread and records wall time and peak RSS.

    Sampling (every ``interval`` s) rather than the process high-water mark lets nested
    monitors each report their own peak.
    """

    def __init__(self, interval=0.02):
        self.interval = interval
        self.wall_seconds = 0.0
        self.peak_rss = self.start_rss = current_rss()
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_rss = max(self.peak_rss, current_rss())

    def __enter__(self):
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, current_rss())
        self.wall_seconds = time.perf_counter() - self._t0

    def record(self):
        return {
            "wall_seconds": round(self.wall_seconds, 4),
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "start_rss_mb": round(self.start_rss / 2**20, 1),
        }
