"""Residue stacks (IRD residues and partial sums, CRCNet unit outputs): their display.

Which n to compute is read by :func:`napari_crcnet.deconv.parse_indices`, the same rule as the CLI's
``--residues``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def robust_limits(data: np.ndarray, percentile: float = 0.5) -> tuple[float, float]:
    """Contrast limits that ignore the extreme ``percentile`` % on each side (for residue stacks)."""
    sample = np.asarray(data, dtype=np.float32).ravel()
    if sample.size > 2_000_000:  # percentiles of a regular subsample are plenty for display
        sample = sample[:: sample.size // 1_000_000]
    low, high = np.percentile(sample, [percentile, 100 - percentile])
    if not high > low:
        high = low + 1e-6
    return float(low), float(high)


def slice_limits(stack: np.ndarray) -> list[tuple[float, float]]:
    """Robust contrast limits of each entry of ``stack`` (its first axis): residues shrink by orders of
    magnitude from n = 0 on, so one range for the whole stack shows every n >= 1 black."""
    return [robust_limits(entry) for entry in stack]


#: ``metadata["napari_crcnet"]["slider"]`` of a stack layer: ``{"label": "n", "values": [0, 1, 2, 5, ...],
#: "limits": [[low, high], ...]}``: what each position of its first axis stands for, and its contrast.
SLIDER_KEY = "slider"


class StackReadout:
    """Shows, for the stacks in view, the value behind the slider ("IRD residues · cell: n = 50") in the
    viewer's text overlay, and gives each entry of a stack its own contrast as the slider moves.

    The slider of a stack counts entries 0, 1, 2, ...; the entries stand for ``n = 0, 1, 2, 5, 10, 50``
    (or units 1..N), which only the layer's metadata knows. The data stay the true values (the status bar
    reads them); only the contrast limits follow the entry shown.
    """

    def __init__(self, viewer: Any, metadata_key: str) -> None:
        self._viewer = viewer
        self._key = metadata_key
        self._text = ""  # what this readout last wrote into the overlay
        viewer.dims.events.current_step.connect(self.update)
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self.update)
        viewer.layers.events.moved.connect(self.update)
        for layer in viewer.layers:
            layer.events.visible.connect(self.update)

    def disconnect(self) -> None:
        viewer = self._viewer
        viewer.dims.events.current_step.disconnect(self.update)
        viewer.layers.events.inserted.disconnect(self._on_inserted)
        viewer.layers.events.removed.disconnect(self.update)
        viewer.layers.events.moved.disconnect(self.update)
        for layer in viewer.layers:
            layer.events.visible.disconnect(self.update)
        self._clear()

    def _on_inserted(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.visible.connect(self.update)
        self.update()

    def slider(self, layer: Any) -> dict | None:
        """The slider record of a stack layer, or None."""
        slider = getattr(layer, "metadata", {}).get(self._key, {}).get(SLIDER_KEY)
        return slider if isinstance(slider, dict) and slider.get("values") else None

    def position(self, layer: Any) -> int:
        """Index, along its first axis, of the entry of ``layer`` the viewer shows."""
        slider = self.slider(layer)
        point = layer.world_to_data(self._viewer.dims.point)
        return int(np.clip(np.round(point[0]), 0, len(slider["values"]) - 1))

    def update(self, event: Any = None) -> None:
        lines = []
        for layer in reversed(list(self._viewer.layers)):  # top of the layer list first
            slider = self.slider(layer)
            if slider is None:
                continue
            index = self.position(layer)
            limits = slider.get("limits")
            if limits and len(limits) == len(slider["values"]):
                low, high = (float(v) for v in limits[index])
                if tuple(layer.contrast_limits) != (low, high):
                    layer.contrast_limits_range = (
                        min(low, *layer.contrast_limits_range), max(high, *layer.contrast_limits_range)
                    )
                    layer.contrast_limits = (low, high)
            if layer.visible:
                lines.append(f"{layer.name}: {slider['label']} = {slider['values'][index]}")
        if lines:
            overlay = self._overlay()
            self._text = "\n".join(lines)
            overlay.text = self._text
            overlay.visible = True
        else:
            self._clear()

    def _overlay(self) -> Any:
        """The viewer's text overlay (``viewer.canvas.overlays.text`` since napari 0.9)."""
        canvas = getattr(self._viewer, "canvas", None)
        overlays = getattr(canvas, "overlays", None)
        text = overlays.get("text") if isinstance(overlays, dict) else getattr(overlays, "text", None)
        return text if text is not None else self._viewer.text_overlay

    def _clear(self) -> None:
        if not self._text:
            return
        overlay = self._overlay()
        if overlay.text == self._text:  # only what this readout wrote
            overlay.text = ""
            overlay.visible = False
        self._text = ""
