"""Running one job at a time in a worker thread, with a progress bar and a Cancel button.

The job is a generator; Cancel stops it at its next yield or where the core next reports progress.
"""

from __future__ import annotations

import inspect
import sys
import threading
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from .._progress import Cancelled, ProgressCallback, cancellable
from ._notify import describe_error, notify_error, notify_info, notify_warning


class _Bridge(QObject):
    """Carries progress from the worker thread to the GUI thread (queued Qt signal)."""

    progress = Signal(int, int)


Job = Callable[[ProgressCallback], Generator[Any, None, Any]]


class TaskRunner(QWidget):
    """A progress bar and a Cancel button that run one generator job at a time in a worker thread.

    The job is ``job(progress) -> generator``: it yields between steps (``(done, total)`` tuples move the
    bar) and returns its result. ``progress`` is the callback to hand to core functions: it moves the bar
    from the worker thread and raises :class:`~napari_crcnet._progress.Cancelled` once Cancel is pressed,
    so the core stops at its next step. Only a job that returns normally reaches ``on_result``: after a
    cancel or an error nothing is added to the viewer, and errors become a notification.
    """

    started = Signal()
    finished = Signal()

    def __init__(self, cancel_text: str = "Cancel", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)  # no "0%" while idle
        self.cancel_button = QPushButton(cancel_text)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setToolTip("stop the running job at its next step; nothing is added to the viewer")
        self.bar.setToolTip("progress of the running job")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, stretch=1)
        layout.addWidget(self.cancel_button)
        self._bridge = _Bridge()  # no Qt parent: it outlives the widget while a worker may still emit
        self._bridge.progress.connect(self._on_progress)
        self._event = threading.Event()
        self.worker: Any = None
        self._on_value: Callable[[Any], None] | None = None
        self.outcome: str = ""  # "done", "cancelled" or "error" once a job ended (for tests and scripts)
        self.destroyed.connect(lambda *_: self._event.set())  # a closed widget stops its job

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self.worker is not None

    def start(self, job: Job, on_result: Callable[[Any], None], title: str = "",
              on_yielded: Callable[[Any], None] | None = None) -> Any:
        """Run ``job`` in a thread; ``on_result(result)`` is called in the GUI thread when it returns, and
        ``on_yielded(value)`` for each value it yields that is not a ``(done, total)`` tuple (a preview)."""
        if self.running:
            raise RuntimeError("a job is already running")
        self._event = threading.Event()
        self._title = title
        self._on_value = on_yielded
        self.outcome = ""
        progress = cancellable(self._event, self._bridge.progress.emit)
        progress.is_cancelled = self._event.is_set  # type: ignore[attr-defined]  # for interruptible()
        progress.stop_event = self._event  # type: ignore[attr-defined]  # for cores that take a stop_event

        def returned(result: Any) -> None:
            try:
                on_result(result)
            except Exception as error:  # turning arrays into layers failed: tell the user, no dialog
                self.outcome = "error"
                notify_error(self._prefix() + describe_error(error))
            else:
                self.outcome = "done"

        self.bar.setRange(0, 0)  # busy until the first progress report
        self.bar.setTextVisible(True)
        self.cancel_button.setEnabled(True)
        self.worker = create_worker(
            _stop_at_yields,
            job,
            progress,
            self._event,
            _connect={
                "yielded": self._on_yielded,
                "returned": returned,
                "errored": self._on_error,
                "warned": self._on_warning,
                "aborted": self._on_aborted,
                "finished": self._on_finished,
            },
        )
        self.started.emit()
        return self.worker

    def cancel(self) -> None:
        """Ask the job to stop: at its next yield, or where the core next reports progress.

        (Not ``worker.quit()``: a quit worker drops its return value, and a stopped training run still
        returns the model it saved.)
        """
        self._event.set()
        self.cancel_button.setEnabled(False)

    def _prefix(self) -> str:
        return f"{self._title}: " if self._title else ""

    def _on_progress(self, done: int, total: int) -> None:
        if self.worker is None:
            return
        self.bar.setRange(0, max(int(total), 1))
        self.bar.setValue(min(int(done), max(int(total), 1)))

    def _on_yielded(self, value: Any) -> None:
        if isinstance(value, tuple) and len(value) == 2:
            self._on_progress(*value)
        elif self._on_value is not None and self.worker is not None and not self._event.is_set():
            try:
                self._on_value(value)
            except Exception as error:  # showing a preview failed: say so, the job goes on
                notify_error(self._prefix() + describe_error(error))

    def _on_error(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self._on_aborted()
            return
        self.outcome = "error"
        notify_error(self._prefix() + describe_error(error))

    def _on_warning(self, show_warning_args: tuple) -> None:
        # The core's warnings (a model outside its trained noise range, a kernel wider than it saw...)
        # are caught in the worker thread; napari's worker does not relay them, so the runner does. Its
        # catch_warnings is process-wide: warnings raised meanwhile elsewhere (napari, vispy, the GUI
        # thread) land here too: they are printed to stderr as Python would, not shown as ours. (Not
        # warnings.showwarning: while the job runs, that is the worker's relay, which would call us again.)
        if is_our_warning(show_warning_args):
            notify_warning(self._prefix() + str(show_warning_args[0]))
        else:
            sys.stderr.write(warnings.formatwarning(*show_warning_args[:4]))

    def _on_aborted(self) -> None:
        self.outcome = "cancelled"
        notify_info(self._prefix() + "cancelled, nothing was added")

    def _on_finished(self) -> None:
        self.worker = None
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.cancel_button.setEnabled(False)
        self.finished.emit()


_PACKAGE = Path(__file__).resolve().parents[1]  # src/napari_crcnet


def is_our_warning(show_warning_args: tuple) -> bool:
    """True for a warning raised by this plugin's code (its ``filename`` lies in the package): the
    ``(message, category, filename, lineno, ...)`` arguments of :func:`warnings.showwarning`."""
    try:
        return Path(str(show_warning_args[2])).resolve().is_relative_to(_PACKAGE)
    except (IndexError, OSError, ValueError):
        return False


def _stop_at_yields(job: Job, progress: ProgressCallback, event: threading.Event) -> Generator[Any, None, Any]:
    """Run the generator ``job(progress)``, raising ``Cancelled`` at any of its yields once ``event`` is set."""
    steps = job(progress)
    try:
        value = next(steps)
        while True:
            if event.is_set():
                steps.close()
                raise Cancelled("stopped by the user")
            yield value
            value = next(steps)
    except StopIteration as stop:
        return stop.value


def call_with_progress(function: Callable[..., Any], *args: Any, progress: ProgressCallback, **kwargs: Any) -> Any:
    """Call a core function, handing it ``progress`` only when its signature takes one; Cancel stops the
    wait at once (see :func:`interruptible`)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    if "progress" in parameters:
        kwargs["progress"] = progress
    else:
        progress(0, 1)  # at least a cancellation point before the call
    return interruptible(progress, function, *args, **kwargs)


#: How often a job waiting for a core call looks at the Cancel button, in seconds.
POLL_S = 0.05


def interruptible(progress: ProgressCallback, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in a helper thread, the job's thread waiting for it and raising
    :class:`~napari_crcnet._progress.Cancelled` within :data:`POLL_S` of Cancel.

    A core step can run for seconds without a progress report (the noise estimate or one FFT of a large
    RGB image, a residue of a 2048² image); rather than make the user wait for it, the job stops waiting:
    the step finishes in the background and its result is dropped (nothing is added to the viewer). The
    core stops by itself at its next progress report. ``progress`` without ``is_cancelled`` (outside a
    :class:`TaskRunner`): a plain call.
    """
    is_cancelled = getattr(progress, "is_cancelled", None)
    if is_cancelled is None:
        return function(*args, **kwargs)
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # handed to the job's thread
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=target, name="napari-crcnet step", daemon=True).start()
    while not done.wait(POLL_S):
        if is_cancelled():
            raise Cancelled("stopped by the user")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def interruptible_steps(progress: ProgressCallback, steps: Any) -> Generator[Any, None, None]:
    """The items of the iterator ``steps`` (e.g. :func:`napari_crcnet.deconv.iter_ird_residues`), each one
    computed through :func:`interruptible`."""
    iterator = iter(steps)
    sentinel = object()
    while True:
        item = interruptible(progress, next, iterator, sentinel)
        if item is sentinel:
            return
        yield item
