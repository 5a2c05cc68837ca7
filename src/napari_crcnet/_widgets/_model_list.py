"""The trained-model lists of the widgets: one signal that says the set of models changed, and the filler
of a model combo box (shipped models and the user models folder)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psygnal import Signal as PsygnalSignal
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox


class _ModelEvents:
    """Tells every open deblur widget that the set of trained models changed (a model was saved)."""

    changed = PsygnalSignal()


model_events = _ModelEvents()


def refill_model_combo(
    combo: QComboBox,
    listener: Callable[..., Any],
    label: Callable[[dict], str],
    tooltip: Callable[[dict], str] | None = None,
    first: tuple[str, Any] | None = None,
    last: tuple[str, Any] | None = None,
    preferred: str | None = None,
) -> bool:
    """Fill ``combo`` with every model of :func:`~napari_crcnet.models.store.list_models` (item data: its
    path, text: ``label(card)``), between the optional ``first`` and ``last`` ``(text, data)`` items, and
    keep the selection. A combo filled for the first time selects the model named ``preferred`` when there
    is one, else its first item. Returns False, and disconnects ``listener`` from ``model_events``, when
    the combo's widget was closed."""
    from ..models import store

    try:
        filled, current, current_text = combo.count() > 0, combo.currentData(), combo.currentText()
    except RuntimeError:  # the widget was closed; stop listening
        model_events.changed.disconnect(listener)
        return False
    combo.blockSignals(True)
    combo.clear()
    if first is not None:
        combo.addItem(*first)
    preferred_index = -1
    for card in store.list_models():
        if card["name"] == preferred and preferred_index < 0:  # the user folder's copy comes first
            preferred_index = combo.count()
        combo.addItem(label(card), card["path"])
        if tooltip is not None:
            combo.setItemData(combo.count() - 1, tooltip(card), Qt.ItemDataRole.ToolTipRole)
    if last is not None:
        combo.addItem(*last)
    if not filled:
        index = preferred_index
    elif current is not None:
        index = combo.findData(current)
    else:  # an item without data, such as "scratch" or "file..."
        index = combo.findText(current_text)
    combo.setCurrentIndex(max(index, 0))
    combo.blockSignals(False)
    return True
