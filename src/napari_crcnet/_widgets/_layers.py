"""Layers <-> arrays: the array a widget works on, cut out of an image layer, and result layers placed
like their input (scale, translate, metadata, colormap and contrast copied; the input never touched)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from napari.layers import Image

from .._arrays import integer_scale

#: Key under which the plugin records what produced a layer, inside the layer's (copied) metadata.
METADATA_KEY = "napari_crcnet"


@dataclass
class LayerInput:
    """The array a widget works on, cut out of an image layer, and where it sits in the world.

    ``data`` has the layer's axes (length-1 leading axes when only the current step is taken);
    ``channel_axis`` is -1 for RGB layers; ``spatial_shape`` the trailing ``kernel_ndim`` axes;
    ``scale``/``translate`` place ``data`` exactly where the original pixels were; ``step`` names the
    taken step (e.g. ``"t=3"``) or is empty.
    """

    layer: Image
    data: np.ndarray
    channel_axis: int | None
    spatial_shape: tuple[int, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    step: str = ""


def layer_input(layer: Image, viewer: Any, kernel_ndim: int = 2, current_step: bool = False) -> LayerInput:
    """Cut the array to process out of ``layer``: the layer's own array or a slice of it (no copy; the
    core functions copy before they compute and never write to their input). A lazy layer (dask, zarr)
    is read only where cut: "current step" reads one step; a dask cut stays lazy, so the worker thread
    reads it and the viewer stays responsive.

    Leading axes (time, or z when the kernel is 2D) are kept whole, or, with ``current_step``, cut to
    the viewer's current position with length 1, so the result lands on the same slice.
    Raises ``ValueError`` when the layer cannot be deblurred with a ``kernel_ndim``-D kernel.
    """
    if layer.multiscale:
        raise ValueError(f"layer {layer.name!r} is multiscale; deblur one resolution level saved as an image")
    channel_axis = -1 if layer.rgb else None
    data = layer.data  # maybe lazy (dask, zarr): cut first, read after, so one step reads one step
    plain_shape = data.shape[:-1] if layer.rgb else data.shape
    if len(plain_shape) < kernel_ndim:
        kind = "volume (Z, Y, X)" if kernel_ndim == 3 else "image (Y, X)"
        raise ValueError(
            f"a {kernel_ndim}D kernel needs a {kind}; layer {layer.name!r} has shape {data.shape}"
            + (" (RGB)" if layer.rgb else "")
        )
    n_leading = len(plain_shape) - kernel_ndim
    scale = tuple(float(s) for s in layer.scale)
    translate = [float(t) for t in layer.translate]
    step = ""
    if current_step and n_leading:
        position = layer.world_to_data(viewer.dims.point)
        index = []
        labels = _axis_labels(layer)
        for axis in range(n_leading):
            i = int(np.clip(np.round(position[axis]), 0, data.shape[axis] - 1))
            index.append(slice(i, i + 1))
            translate[axis] += i * scale[axis]
        data = data[tuple(index)]
        step = ", ".join(f"{_step_name(labels[a], a)}={index[a].start}" for a in range(n_leading))
    return LayerInput(
        layer=layer,
        data=data if _is_dask(data) else np.asarray(data),  # dask: read in the worker, not the GUI thread
        channel_axis=channel_axis,
        spatial_shape=tuple(plain_shape[n_leading:]),
        scale=scale,
        translate=tuple(translate),
        step=step,
    )


def crop_around(source: LayerInput, size: int, centre: tuple[float, float] | None = None) -> LayerInput:
    """At most ``size x size`` pixels of ``source``'s Y and X axes around ``centre`` (data coordinates;
    default the middle), shifted inside the image and placed where they were (translate moved)."""
    data = source.data
    n_plain = data.ndim - (source.channel_axis is not None)  # axes with a scale (all but RGB's last)
    index: list[slice] = [slice(None)] * data.ndim
    translate = list(source.translate)
    for i, axis in enumerate((n_plain - 2, n_plain - 1)):
        length = data.shape[axis]
        middle = length / 2 if centre is None or not np.isfinite(centre[i]) else float(centre[i])
        start = int(np.clip(round(middle - size / 2), 0, max(length - size, 0)))
        index[axis] = slice(start, start + size)
        translate[axis] += start * source.scale[axis]
    crop = data[tuple(index)]
    return replace(source, data=crop, spatial_shape=tuple(crop.shape[n_plain - 2 : n_plain]),
                   translate=tuple(translate))


def _is_dask(data: Any) -> bool:
    """True for a dask array (NumPy functions read it; reading is left to the worker thread)."""
    from dask import is_dask_collection

    return is_dask_collection(data)


def _axis_labels(layer: Image) -> list[str]:
    """The layer's axis labels (napari's defaults are "-3", "-2", "-1")."""
    labels = [str(label) for label in (getattr(layer, "axis_labels", ()) or ())]
    return labels if len(labels) == layer.ndim else [str(i - layer.ndim) for i in range(layer.ndim)]


def _step_name(label: str, axis: int) -> str:
    """How an axis is named in a layer name: its label, or "axis 0" for napari's default "-3"."""
    return f"axis {axis}" if label.lstrip("-").isdigit() else label


def display_limits(layer: Image) -> tuple[float, float]:
    """The input's contrast limits in the [0, 1] units of the float output (integers were rescaled)."""
    low, high = (float(v) for v in layer.contrast_limits)
    scale = integer_scale((layer.data[0] if layer.multiscale else layer.data).dtype)  # no dask compute
    if scale is not None and scale != 1.0:
        low, high = low / scale, high / scale
    return low, high


def show_result(
    viewer: Any,
    previous: Image | None,
    data: np.ndarray,
    source: LayerInput,
    *,
    name: str,
    info: dict[str, Any],
    stack_label: str | None = None,
    visible: bool = True,
    contrast_limits: tuple[float, float] | None = None,
    rgb: bool | None = None,
) -> Image:
    """Add ``data`` as a layer placed like ``source`` (or update ``previous``, the layer of the last run).

    Copies scale, translate, metadata (plus ``metadata["napari_crcnet"] = info``), axis labels, units,
    colormap, gamma, blending and contrast limits of the input layer. ``stack_label`` means ``data``
    has one extra leading axis (residue index n, unit index) placed at 0 with unit spacing. ``rgb``
    (default: the input's) is False for a gray stack made from an RGB input. The input is never touched.
    """
    like = source.layer
    scale, translate = list(source.scale), list(source.translate)
    labels = _axis_labels(like)
    units = list(like.units) if getattr(like, "units", None) is not None else None
    if stack_label is not None:
        scale, translate, labels = [1.0, *scale], [0.0, *translate], [stack_label, *labels]
        units = None if units is None else [units[0], *units]
    metadata = {**like.metadata, METADATA_KEY: {"source": like.name, **info}}
    limits = contrast_limits if contrast_limits is not None else display_limits(like)
    rgb = bool(like.rgb) if rgb is None else rgb
    attributes: dict[str, Any] = {
        "name": name,
        "scale": scale,
        "translate": translate,
        "metadata": metadata,
        "gamma": like.gamma,
        "blending": like.blending,
        "axis_labels": labels,
    }
    if units is not None:
        attributes["units"] = units
    if not rgb:
        attributes["colormap"] = "gray" if like.rgb else like.colormap

    if previous is not None and previous in viewer.layers:
        if previous.rgb == rgb and np.ndim(previous.data) == data.ndim:
            previous.data = data
            for key, value in attributes.items():
                setattr(previous, key, value)
            previous.contrast_limits_range = (min(limits[0], float(data.min())), max(limits[1], float(data.max())))
            previous.contrast_limits = limits
            return previous  # keeps the visibility the user chose
        index = viewer.layers.index(previous)
        viewer.layers.remove(previous)
        layer = Image(data, rgb=rgb, contrast_limits=limits, visible=visible, **attributes)
        viewer.layers.insert(index, layer)
        return layer
    return viewer.add_image(data, rgb=rgb, contrast_limits=limits, visible=visible, **attributes)
