"""Notifications the widgets show (napari toasts, never a traceback dialog), in the GUI's words.

Every message of a widget starts with its name ("Deblur: ", "Train: "); the core's messages name Python
parameters (``force=True``, ``noise=``), which :func:`gui_words` turns into the controls that set them.
"""

from __future__ import annotations

from napari.utils import notifications

#: Core wording -> the widget control that does it (longest first: applied in this order).
_GUI_WORDS = (
    ("use force=True to apply it anyway", 'tick "apply to another kernel anyway (force)" to apply it anyway'),
    ("use force=True", 'tick "apply to another kernel anyway (force)"'),
    ("force=True", '"apply to another kernel anyway (force)"'),
    ("(pass noise= to override the estimate)", '(set "noise" to override the estimate)'),
    ("pass noise=", 'set "noise"'),
)


def gui_words(message: str) -> str:
    """``message`` with the core's parameter names replaced by the widget controls that set them."""
    for core, gui in _GUI_WORDS:
        message = message.replace(core, gui)
    return message


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification (no traceback dialog)."""
    notifications.show_error(gui_words(message))


def notify_info(message: str) -> None:
    """Show ``message`` as a napari info notification."""
    notifications.show_info(gui_words(message))


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification."""
    notifications.show_warning(gui_words(message))


def describe_error(error: BaseException) -> str:
    """The text a user sees for ``error``: the message of expected errors, the type name for the rest."""
    if isinstance(error, (ValueError, FileNotFoundError, OSError)):
        return gui_words(str(error))
    return f"{type(error).__name__}: {error}"


class Notifier:
    """The notifications of one widget, each starting with ``"<title>: "``."""

    def __init__(self, title: str) -> None:
        self.title = title

    def _text(self, message: str) -> str:
        prefix = f"{self.title}: "
        return message if message.startswith(prefix) else prefix + message

    def error(self, message: str) -> None:
        notify_error(self._text(message))

    def info(self, message: str) -> None:
        notify_info(self._text(message))

    def warning(self, message: str) -> None:
        notify_warning(self._text(message))

    def failed(self, error: BaseException) -> None:
        """An error raised while checking the inputs: its message (expected errors) or its type and message."""
        self.error(describe_error(error))
