"""Progress reporting and cancellation for long computations (IRD residues, hyper-Laplacian, tiles, training).

Long core functions accept ``progress: ProgressCallback | None``. They call ``progress(done, total)``
between steps; the callback may raise :class:`Cancelled` to stop the work cleanly (the napari widgets'
Cancel button and the training Stop button do exactly that). Nothing partial is returned after a cancel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]


class Cancelled(Exception):
    """Raised (usually by a progress callback) to stop a long computation at the next step."""


def report(progress: ProgressCallback | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback was given."""
    if progress is not None:
        progress(done, total)


def cancellable(event: threading.Event, progress: ProgressCallback | None = None) -> ProgressCallback:
    """A progress callback that raises :class:`Cancelled` once ``event`` is set, forwarding to ``progress``."""

    def callback(done: int, total: int) -> None:
        if event.is_set():
            raise Cancelled("stopped by the user")
        report(progress, done, total)

    return callback
