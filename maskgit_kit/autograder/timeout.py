"""A time limit on every check, so an endless loop in student code fails that check instead of hanging the run.

pytest-timeout (in requirements.txt) does the work when installed: each check gets a ``timeout`` marker. Without
it, a SIGALRM timer (POSIX main thread) raises ``CheckTimeout``, a ``BaseException`` so that a student's
``except Exception`` cannot swallow it.
"""
from __future__ import annotations

import signal
import threading

import pytest


class CheckTimeout(BaseException):
    pass


def add_markers(config, items, seconds: float) -> None:
    if config.pluginmanager.hasplugin("timeout"):
        for item in items:
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(seconds))


class AlarmTimeout:
    """Fallback plugin, registered only when pytest-timeout is missing."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        with self._alarm():
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        with self._alarm():
            yield

    def _alarm(self):
        seconds = self.seconds
        usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()

        class _Alarm:
            def __enter__(self):
                if usable and seconds > 0:
                    def on_alarm(signum, frame):
                        raise CheckTimeout(f"Timeout >{seconds:g}s")
                    self.previous = signal.signal(signal.SIGALRM, on_alarm)
                    signal.setitimer(signal.ITIMER_REAL, seconds)

            def __exit__(self, *exc):
                if usable and seconds > 0:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, self.previous)
                return False

        return _Alarm()


def install(config, seconds: float) -> None:
    if not config.pluginmanager.hasplugin("timeout"):
        config.pluginmanager.register(AlarmTimeout(seconds), "grader-alarm-timeout")
