"""Image quality metrics as the paper reports them: PSNR and SSIM (on the Y channel of YCbCr for RGB).

Both take a reference (sharp) and an estimate of the same shape; integer arrays are scaled to [0, 1]
(uint8 / 255, uint16 / 65535) like every core function, so ``data_range`` is 1 by default. ``crop``
trims that many pixels from each border of the two spatial axes (deblurring papers skip the borders).
Leading axes (time, z) are averaged over: SSIM is computed per 2D plane.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import as_float_image

__all__ = ["psnr", "rgb_to_y", "ssim"]

# ITU-R BT.601 luma as MATLAB's rgb2ycbcr for double data in [0, 1]: Y in [16/255, 235/255].
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_Y_OFFSET = 16.0 / 255.0


def rgb_to_y(image: Any, channel_axis: int = -1) -> np.ndarray:
    """Luma ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` of RGB data in [0, 1] (MATLAB ``rgb2ycbcr``).

    Integers are scaled to [0, 1] first. The channel axis (3 entries) is removed; float64 out.
    """
    array = as_float_image(image, np.float64)
    if array.shape[channel_axis] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels on axis {channel_axis}, got shape {array.shape}")
    rgb = np.moveaxis(array, channel_axis, -1)
    return rgb @ _Y_WEIGHTS + _Y_OFFSET


def _pair(reference: Any, estimate: Any, channel_axis: int | None, crop: int) -> tuple[np.ndarray, ...]:
    ref = as_float_image(reference, np.float64)
    est = as_float_image(estimate, np.float64)
    if ref.shape != est.shape:
        raise ValueError(f"reference and estimate shapes differ: {ref.shape} vs {est.shape}")
    if channel_axis is not None:
        ref = np.moveaxis(ref, channel_axis, -1)
        est = np.moveaxis(est, channel_axis, -1)
    spatial = slice(-3, -1) if channel_axis is not None else slice(-2, None)
    if ref.ndim < (3 if channel_axis is not None else 2):
        raise ValueError(f"need at least two spatial axes, got shape {reference.shape!r}")
    crop = int(crop)
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if crop:
        h, w = ref.shape[spatial]
        if 2 * crop >= min(h, w):
            raise ValueError(f"crop={crop} removes the whole {h}x{w} image")
        index = [slice(None)] * ref.ndim
        first = ref.ndim - (3 if channel_axis is not None else 2)
        index[first] = slice(crop, h - crop)
        index[first + 1] = slice(crop, w - crop)
        ref, est = ref[tuple(index)], est[tuple(index)]
    return ref, est


def psnr(
    reference: Any, estimate: Any, data_range: float = 1.0, channel_axis: int | None = None, crop: int = 0
) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB, over all pixels and channels.

    Uses :func:`skimage.metrics.peak_signal_noise_ratio` on the (scaled, cropped) arrays. ``channel_axis``
    only tells ``crop`` which axes are spatial; PSNR of RGB data is over the three channels.
    """
    from skimage.metrics import peak_signal_noise_ratio

    ref, est = _pair(reference, estimate, channel_axis, crop)
    if np.array_equal(ref, est):
        return float("inf")  # MSE = 0 (skimage would warn about the division)
    return float(peak_signal_noise_ratio(ref, est, data_range=float(data_range)))


def ssim(reference: Any, estimate: Any, channel_axis: int | None = None, crop: int = 0) -> float:
    """Structural similarity (Wang et al. 2004) with the reference implementation's settings.

    Gaussian window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``, population covariances, data range 1
    (:func:`skimage.metrics.structural_similarity` with ``gaussian_weights=True,
    use_sample_covariance=False``). RGB (``channel_axis`` with 3 channels) is measured on the luma
    ``Y`` of :func:`rgb_to_y`, as the paper; other channel counts are averaged per channel. Leading axes
    are averaged per 2D plane.
    """
    from skimage.metrics import structural_similarity

    ref, est = _pair(reference, estimate, channel_axis, crop)
    if channel_axis is not None:
        if ref.shape[-1] == 3:
            ref, est = rgb_to_y(ref), rgb_to_y(est)
        else:  # move channels in front of the planes: each is a separate plane
            ref, est = np.moveaxis(ref, -1, 0), np.moveaxis(est, -1, 0)
    planes_ref = ref.reshape((-1, *ref.shape[-2:]))
    planes_est = est.reshape((-1, *est.shape[-2:]))
    scores = [
        structural_similarity(
            r, e, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        for r, e in zip(planes_ref, planes_est)
    ]
    return float(np.mean(scores))
