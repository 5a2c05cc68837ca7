"""Sample data for File > Open Sample > napari-crcnet, generated at call time from images shipped with
scikit-image (nothing is downloaded).

Each sample returns the blurred, noisy image and the kernel (PSF) it was blurred with, so the Deblur widget
can be tried at once: pick the image, kernel source "Layer" (the kernel layer is chosen by default).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Camera-shake kernel of the photo sample: ``random_motion_kernel(21, seed=PHOTO_SEED)``.
PHOTO_SEED = 3  # the kernel of the shipped shake21-rgb model, so CRCNet applies as is
PHOTO_NOISE = 0.01
#: Gaussian PSF (sigma in pixels) and noise of the microscopy sample.
CELL_SIGMA = 2.5
CELL_NOISE = 0.005


def _blur(image: np.ndarray, kernel: np.ndarray, noise: float, channel_axis: int | None) -> np.ndarray:
    from .deconv import blur

    out = blur(image, kernel, noise=noise, seed=0, channel_axis=channel_axis, boundary="reflect", device="cpu")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _kernel_layer(kernel: np.ndarray, name: str, spec: str) -> tuple[np.ndarray, dict[str, Any], str]:
    meta = {"napari_crcnet": {"kernel": True, "spec": spec}}
    return (kernel.astype(np.float32), {"name": name, "colormap": "magma", "metadata": meta, "visible": False},
            "image")


def blurred_photo() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """``skimage.data.astronaut()`` blurred by a 21x21 camera-shake kernel, plus 1 % Gaussian noise.

    Returns two layers: the blurred RGB photo (float32 in [0, 1]) and its kernel
    (``random_motion_kernel(21, seed=PHOTO_SEED)``, sum 1).
    """
    from skimage import data

    from .kernels import random_motion_kernel

    kernel = random_motion_kernel(21, seed=PHOTO_SEED)
    spec = f"shake:21,seed={PHOTO_SEED}"
    blurred = _blur(data.astronaut(), kernel, PHOTO_NOISE, channel_axis=-1)
    meta = {"napari_crcnet": {"sample": "skimage.data.astronaut", "kernel_spec": spec, "noise": PHOTO_NOISE}}
    return [
        (blurred, {"name": "astronaut (blurred)", "rgb": True, "metadata": meta}, "image"),
        _kernel_layer(kernel, "astronaut kernel", spec),
    ]


def blurred_cell() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """``skimage.data.cell()`` (a bright-field microscopy image) blurred by a Gaussian PSF (sigma 2.5 px), plus noise.

    Returns two layers: the blurred gray image (float32 in [0, 1], noise std 0.005) and the PSF.
    """
    from skimage import data

    from .kernels import gaussian_kernel

    kernel = gaussian_kernel(CELL_SIGMA)
    spec = f"gaussian:{CELL_SIGMA:g}"
    blurred = _blur(data.cell(), kernel, CELL_NOISE, channel_axis=None)
    # No "model" preselection: this is a bright-field image (mid-gray background), not fluorescence, and the
    # fluorescence model scored 35.3 dB on it, below the blurred input's 43.3 (any-kernel-gray 47.7,
    # hyper-Laplacian 48.5, Richardson-Lucy at its defaults 52.2), so the widget's gray default is kept.
    meta = {"napari_crcnet": {"sample": "skimage.data.cell", "kernel_spec": spec, "noise": CELL_NOISE}}
    return [
        (blurred, {"name": "cell (blurred)", "colormap": "gray", "metadata": meta}, "image"),
        _kernel_layer(kernel, "cell PSF", spec),
    ]
