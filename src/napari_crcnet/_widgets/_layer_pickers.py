"""Choosing layers: a combo box of the viewer's image layers, and which layers are kernels or results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.layers import Image
from qtpy.QtWidgets import QComboBox, QWidget

from ._layers import METADATA_KEY


class LayerCombo(QComboBox):
    """A combo box of the viewer's image layers that follows additions, removals and renames.

    ``prefer(layer) -> bool`` marks the layers picked by default when nothing is selected yet (e.g. a
    layer called "... kernel" for the kernel picker).
    """

    def __init__(
        self,
        viewer: Any,
        prefer: Callable[[Image], bool] | None = None,
        exclude: Callable[[Image], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._prefer = prefer
        self._exclude = exclude
        self._layers: list[Image] = []
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.moved.connect(self.refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def _on_inserted(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def candidates(self) -> list[Image]:
        """Image layers offered, top of the layer list first."""
        layers = [layer for layer in self._viewer.layers if isinstance(layer, Image)]
        if self._exclude is not None:
            layers = [layer for layer in layers if not self._exclude(layer)]
        return layers[::-1]

    def refresh(self, event: Any = None) -> None:
        """Rebuild the list, keeping the current layer when it is still there."""
        try:
            current = self.value
            layers = self.candidates()
            self.blockSignals(True)
            self.clear()
            self._layers = layers
            for layer in layers:
                self.addItem(layer.name)
            if current in layers:
                index = layers.index(current)
            else:
                index = self._default_index(layers)
            self.setCurrentIndex(index)
            self.blockSignals(False)
            if current is not self.value:
                self.currentIndexChanged.emit(self.currentIndex())
        except RuntimeError:  # the Qt side of the widget was deleted; stop following the viewer
            self._disconnect()

    def _default_index(self, layers: list[Image]) -> int:
        if not layers:
            return -1
        if self._prefer is not None:
            for i, layer in enumerate(layers):
                if self._prefer(layer):
                    return i
        active = self._viewer.layers.selection.active
        return layers.index(active) if active in layers else 0

    def _disconnect(self) -> None:
        for emitter in (
            self._viewer.layers.events.inserted,
            self._viewer.layers.events.removed,
            self._viewer.layers.events.moved,
        ):
            emitter.disconnect(self._on_inserted)
            emitter.disconnect(self.refresh)

    @property
    def value(self) -> Image | None:
        """The chosen layer, or None."""
        index = self.currentIndex()
        return self._layers[index] if 0 <= index < len(self._layers) else None

    @value.setter
    def value(self, layer: Image) -> None:
        self.refresh()
        self.setCurrentIndex(self._layers.index(layer))


def looks_like_kernel(layer: Image) -> bool:
    """A layer that holds a kernel: marked so by the sample data, or named "...kernel"/"...psf"."""
    if layer.metadata.get(METADATA_KEY, {}).get("kernel"):
        return True
    name = layer.name.lower()
    return "kernel" in name or "psf" in name


def is_plugin_output(layer: Image) -> bool:
    """Layers this plugin added (results, residue stacks)."""
    return "source" in layer.metadata.get(METADATA_KEY, {})
