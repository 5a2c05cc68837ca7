"""Notifications the widgets show (napari toasts, never a traceback dialog) and the text of an error."""

from __future__ import annotations

from napari.utils import notifications


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification (no traceback dialog)."""
    notifications.show_error(message)


def notify_info(message: str) -> None:
    """Show ``message`` as a napari info notification."""
    notifications.show_info(message)


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification."""
    notifications.show_warning(message)


def describe_error(error: BaseException) -> str:
    """The text a user sees for ``error``: the message of expected errors, the type name for the rest."""
    if isinstance(error, (ValueError, FileNotFoundError, OSError)):
        return str(error)
    return f"{type(error).__name__}: {error}"
