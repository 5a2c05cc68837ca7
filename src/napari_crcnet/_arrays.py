"""Array plumbing shared by every core function: dtype scaling, channel/batch layout, torch device.

NumPy is the interface and torch computes. Every public function takes an array whose spatial axes are
last (``..., Y, X`` or ``..., Z, Y, X``), an optional explicit ``channel_axis`` (napari RGB layers are
channel-last) and any number of leading batch axes (time, views). This module turns such an array into a
float tensor of shape ``(B, C, *spatial)`` and back, so the maths is written once for that layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: importing napari_crcnet must stay cheap
    import torch


def resolve_device(device: Any = "auto") -> torch.device:
    """Return a ``torch.device``; ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises ``ValueError`` when a CUDA/MPS device is asked for but not available.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU; use device='cpu'")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' asked for, but it is not available; use device='cpu'")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error


def integer_scale(dtype: np.dtype) -> float | None:
    """Divisor that maps an integer dtype onto [0, 1] (255 for uint8, 65535 for uint16); None for floats."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 1.0
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return None


def as_float_image(image: Any, dtype: Any = np.float32, *, copy: bool = True, check_finite: bool = True) -> np.ndarray:
    """Return ``image`` as a floating array; integers are scaled to [0, 1] by their dtype's maximum.

    uint8 is divided by 255, uint16 by 65535, other integers by their ``iinfo.max``; booleans become 0/1.
    Float input keeps its values. The input is never modified: the result is a new array, except with
    ``copy=False`` where input already of ``dtype`` is returned as is (for callers that only read it).

    Raises ``ValueError`` for empty, complex or object input, and for non-finite values unless
    ``check_finite=False`` (for callers that check more cheaply later, e.g. on a Fourier transform).
    """
    array = np.asarray(image)
    if array.size == 0:
        raise ValueError("the image is empty")
    if np.iscomplexobj(array) or array.dtype == object or array.dtype.kind not in "biuf":
        raise ValueError(f"the image must be real numbers, not {array.dtype}")
    scale = integer_scale(array.dtype)
    out = array.astype(dtype, copy=copy)  # integers always convert, so only float input is ever shared
    if scale is not None and scale != 1.0:
        out /= dtype(scale) if isinstance(dtype, type) else np.dtype(dtype).type(scale)
    # min and max propagate NaN: two cheap passes
    elif check_finite and not (np.isfinite(out.min()) and np.isfinite(out.max())):
        raise ValueError("the image contains NaN or infinite values")
    return out


@dataclass(frozen=True)
class Layout:
    """How an input array maps onto the ``(B, C, *spatial)`` batch that the maths works on.

    ``shape`` is the input shape, ``channel_axis`` its (non-negative) colour axis or None, ``spatial_ndim``
    the number of trailing spatial axes (2 for images, 3 for volumes). Leading axes become the batch B.
    """

    shape: tuple[int, ...]
    channel_axis: int | None
    spatial_ndim: int

    @classmethod
    def of(cls, shape: tuple[int, ...], channel_axis: int | None = None, spatial_ndim: int = 2) -> Layout:
        """Describe ``shape``; raises ValueError when it has too few axes or a bad ``channel_axis``."""
        shape = tuple(int(s) for s in shape)
        if spatial_ndim not in (2, 3):
            raise ValueError(f"spatial_ndim must be 2 or 3, not {spatial_ndim}")
        if channel_axis is not None:
            if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, (int, np.integer)):
                raise ValueError(f"channel_axis must be an integer axis or None, not {channel_axis!r}")
            if not -len(shape) <= channel_axis < len(shape):
                raise ValueError(f"channel_axis={channel_axis} is out of range for an array of shape {shape}")
            channel_axis = channel_axis % len(shape)
        n_non_channel = len(shape) - (channel_axis is not None)
        if n_non_channel < spatial_ndim:
            raise ValueError(
                f"an array of shape {shape} (channel_axis={channel_axis}) has fewer than "
                f"{spatial_ndim} spatial axes"
            )
        last = len(shape) - 1
        if channel_axis is not None and len(shape) - spatial_ndim <= channel_axis < last:
            raise ValueError(f"channel_axis={channel_axis} falls between the spatial axes of shape {shape}")
        return cls(shape, channel_axis, spatial_ndim)

    @property
    def _moved(self) -> tuple[int, ...]:
        """Input shape with the channel axis moved just before the spatial axes (length 1 if absent)."""
        shape = list(self.shape)
        channels = shape.pop(self.channel_axis) if self.channel_axis is not None else 1
        split = len(shape) - self.spatial_ndim
        return (*shape[:split], channels, *shape[split:])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The trailing spatial shape, e.g. ``(Y, X)``."""
        return self._moved[-self.spatial_ndim :]

    @property
    def channels(self) -> int:
        """Number of colour channels (1 without a channel axis)."""
        return self._moved[-self.spatial_ndim - 1]

    @property
    def batch_size(self) -> int:
        """Product of the leading (non-channel, non-spatial) axes."""
        return int(np.prod(self._moved[: -self.spatial_ndim - 1], dtype=np.int64))

    def to_batch(self, array: np.ndarray) -> np.ndarray:
        """Reshape an array of ``self.shape`` to ``(B, C, *spatial)`` (a view when possible)."""
        if self.channel_axis is not None:
            array = np.moveaxis(array, self.channel_axis, -self.spatial_ndim - 1)
        return array.reshape((self.batch_size, self.channels, *self.spatial_shape))

    def from_batch(self, batch: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_batch`: back to ``self.shape`` (spatial size must be unchanged)."""
        array = np.asarray(batch).reshape(self._moved)
        if self.channel_axis is None:
            return array.reshape(self.shape)
        return np.moveaxis(array, -self.spatial_ndim - 1, self.channel_axis)


def prepare(
    image: Any,
    channel_axis: int | None = None,
    spatial_ndim: int = 2,
    dtype: Any = np.float32,
    *,
    copy: bool = True,
    check_finite: bool = True,
) -> tuple[np.ndarray, Layout]:
    """Scale ``image`` to float (see :func:`as_float_image`) and return ``(batch, layout)``.

    ``batch`` has shape ``(B, C, *spatial)``. It is a fresh array, so callers may work in place on it,
    unless ``copy=False``: then it may be a view of ``image`` and must only be read.
    """
    image = np.asarray(image)
    layout = Layout.of(image.shape, channel_axis, spatial_ndim)
    array = as_float_image(image, dtype, copy=copy, check_finite=check_finite)
    return layout.to_batch(array), layout


def to_tensor(array: np.ndarray, device: Any = "cpu") -> torch.Tensor:
    """NumPy -> torch on ``device`` without an extra copy on the CPU."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(resolve_device(device))


def to_numpy(tensor: torch.Tensor, dtype: Any = np.float32) -> np.ndarray:
    """torch -> NumPy of ``dtype`` (moved to the CPU, detached)."""
    return tensor.detach().cpu().numpy().astype(dtype, copy=False)
