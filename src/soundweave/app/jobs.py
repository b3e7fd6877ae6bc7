"""Progress, cancellation and error reporting shared by every long-running event.

`Jobs.start(request, progress)` gives a `Job` whose `callback(desc)` is what the pipelines call after each
sampler step: it updates the Gradio progress bar with `(step, total)` and raises `JobCancelled` once the
session pressed Stop. Gradio's `cancels=` only stops a job between steps of a generator (a plain function
already running keeps its worker thread), so the Stop button also sets the session's flag, which ends the
sampling loop at its next step and frees the worker.

`handler` wraps every event function: a `SoundweaveError` becomes `gr.Error` with the project's message;
anything unexpected is logged with its traceback on the server and reported in one line - the browser
never sees a traceback and the spinner never hangs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable

import gradio as gr

from ..errors import SoundweaveError

log = logging.getLogger("soundweave.app")


class JobCancelled(SoundweaveError):
    """The user pressed Stop."""


class Job:
    """One running request: progress reporting and the cancel flag."""

    def __init__(self, flag: threading.Event, progress=None):
        self.flag = flag
        self.progress = progress

    def check(self) -> None:
        if self.flag.is_set():
            raise JobCancelled("stopped: the job was cancelled with the Stop button")

    def status(self, desc: str) -> None:
        """A message with no step count (loading, decoding)."""
        self.check()
        if self.progress is not None:
            self.progress(0.0, desc=desc)

    def callback(self, desc: str, index: int = 0, count: int = 1) -> Callable[[int, int], None]:
        """`callback(step, total)` for item `index` of `count` (variants run one after another): the bar shows
        the steps of all items together."""

        def report(step: int, total: int) -> None:
            self.check()
            if self.progress is not None:
                label = desc if count == 1 else f"{desc} ({index + 1}/{count})"
                self.progress((index * total + step, count * total), desc=label, unit="steps")

        return report


class Jobs:
    """The cancel flag of each session's running job per tab (a session: a browser page, or one
    gradio_client.Client)."""

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.busy = 0  # event functions running now (a stopped job leaves this count when its loop ends)

    @contextlib.contextmanager
    def track(self):
        with self._lock:
            self.busy += 1
        try:
            yield
        finally:
            with self._lock:
                self.busy -= 1

    @staticmethod
    def _key(request, scope: str) -> tuple[str, str]:
        return str(getattr(request, "session_hash", None) or "local"), scope

    def start(self, request=None, progress=None, scope: str = "") -> Job:
        """A new job of this session in `scope` (a tab): its Stop button stops this job only."""
        flag = threading.Event()
        with self._lock:
            self._flags[self._key(request, scope)] = flag
        return Job(flag, progress)

    def stop(self, request=None, scope: str = "") -> None:
        with self._lock:
            flag = self._flags.get(self._key(request, scope))
        if flag is not None:
            flag.set()


def handler(fn):
    """Report errors of an event function as one-line `gr.Error`s (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        jobs = getattr(getattr(args[0], "ctx", None), "jobs", None) if args else None
        try:
            with jobs.track() if jobs is not None else contextlib.nullcontext():
                return fn(*args, **kwargs)
        except gr.Error:
            raise
        except JobCancelled as exc:
            raise gr.Error(str(exc), title="Stopped") from None
        except SoundweaveError as exc:
            raise gr.Error(str(exc)) from None
        except MemoryError:
            raise gr.Error("out of memory: try fewer variants, fewer seconds or a smaller model") from None
        except Exception as exc:
            log.exception("unexpected error in %s", getattr(fn, "__qualname__", fn))
            message = str(exc).splitlines()[0][:300] if str(exc) else ""
            raise gr.Error(f"unexpected {type(exc).__name__}: {message} (the server log has the details)") from None

    return wrapper


__all__ = ["Job", "JobCancelled", "Jobs", "handler"]
