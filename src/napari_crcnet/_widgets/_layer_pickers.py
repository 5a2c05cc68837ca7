"""Choosing layers: a combo box of the viewer's image layers, and which layers are kernels or results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.layers import Image
from qtpy.QtWidgets import QComboBox, QWidget

from ._layers import METADATA_KEY


class LayerCombo(QComboBox):
    """A combo box of the viewer's image layers that follows additions, removals and renames.

    ``prefer(layer) -> bool | float`` scores the layers picked by default when nothing is selected yet
    (e.g. a layer called "... kernel" for the kernel picker; highest score first, < 0: never by default).
    """

    def __init__(
        self,
        viewer: Any,
        prefer: Callable[[Image], bool | float] | None = None,
        exclude: Callable[[Image], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._prefer = prefer
        self._exclude = exclude
        self._layers: list[Image] = []
        self.picked = False  # the user chose a layer in the list: defaults no longer move it
        self.activated.connect(self._on_activated)
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
        """The layer picked when the current one is gone: the best ``prefer`` score above 0, else the
        active layer, else the top one; layers that ``prefer`` scores below 0 are never picked by default
        (-1, nothing, when only those are left)."""
        if not layers:
            return -1
        allowed = list(range(len(layers)))
        if self._prefer is not None:
            scores = [float(self._prefer(layer)) for layer in layers]
            if max(scores) > 0:
                return scores.index(max(scores))
            allowed = [i for i, score in enumerate(scores) if score >= 0]
        active = self._viewer.layers.selection.active
        if active in layers and layers.index(active) in allowed:
            return layers.index(active)
        return allowed[0] if allowed else -1

    def _on_activated(self, *args: Any) -> None:
        self.picked = True

    def pick_default_if_unpicked(self, *args: Any) -> None:
        """:meth:`pick_default`, unless the user chose a layer in the list."""
        if not self.picked:
            self.pick_default()

    def pick_default(self) -> None:
        """Select the default layer again (after what ``prefer`` scores changed)."""
        self.refresh()
        index = self._default_index(self._layers)
        if index != self.currentIndex():
            self.setCurrentIndex(index)

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
        self.picked = True


def looks_like_kernel(layer: Image) -> bool:
    """A layer that holds a kernel: marked so by the sample data, or named "...kernel"/"...psf"."""
    if layer.metadata.get(METADATA_KEY, {}).get("kernel"):
        return True
    name = layer.name.lower()
    return "kernel" in name or "psf" in name


def is_plugin_output(layer: Image) -> bool:
    """Layers this plugin added (results, residue stacks)."""
    return "source" in layer.metadata.get(METADATA_KEY, {})


# ------------------------------------------------------------------------------------ image <-> kernel links
def recorded_kernel(layer: Image) -> str | None:
    """The kernel an image layer records it was blurred with (the samples' ``kernel_spec``), or None."""
    if looks_like_kernel(layer):
        return None
    spec = layer.metadata.get(METADATA_KEY, {}).get("kernel_spec")
    return str(spec) if spec else None


def kernel_layer_spec(layer: Image) -> str | None:
    """What a kernel layer records it is (the samples' ``spec``, e.g. ``"gaussian:2.5"``), or None."""
    meta = layer.metadata.get(METADATA_KEY, {})
    return str(meta["spec"]) if meta.get("kernel") and meta.get("spec") else None


def kernel_matches(image: Image | None, kernel: Image | None) -> bool | None:
    """True when ``kernel`` is the kernel ``image`` records, False when both record different ones, None
    when either records nothing (a user's own layers: nothing to check)."""
    if image is None or kernel is None:
        return None
    wanted, given = recorded_kernel(image), kernel_layer_spec(kernel)
    if wanted is None or given is None:
        return None
    return wanted == given


def owner_images(kernel: Image, viewer: Any) -> list[Image]:
    """The image layers of ``viewer`` that record ``kernel`` as their blur."""
    return [
        layer for layer in viewer.layers
        if isinstance(layer, Image) and layer is not kernel and kernel_matches(layer, kernel) is True
    ]
