"""napari-crcnet: non-blind deblurring (MMSE, IRD, hyper-Laplacian, CRCNet) for napari and Python.

Everything a widget does is one function call here, on NumPy arrays (or ``layer.data``)::

    import napari_crcnet as nc
    k = nc.random_motion_kernel(21, seed=3)          # or nc.load_kernel("psf.tif"), nc.gaussian_kernel(2)
    b = nc.blur(x, k, noise=0.01)                    # synthetic test data
    x1 = nc.mmse(b, k)                                # sigma estimated from the noise
    x2 = nc.ird(b, k, n_iter=100)                     # Iterative Residual Deconvolution (closed form)
    res, sums = nc.ird_residues(b, k, None, [0, 1, 2, 5, 10])
    x3 = nc.hyper_laplacian(b, k)
    x4 = nc.crcnet(b, "shake21-rgb", channel_axis=-1) # a shipped model (see nc.list_models())

Names are loaded on first use, so ``import napari_crcnet`` stays fast (torch is imported only when needed).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    # deconvolution
    "blur": "deconv",
    "mmse": "deconv",
    "ird": "deconv",
    "ird_residues": "deconv",
    "iter_ird_residues": "deconv",
    "estimate_noise": "deconv",
    "suggest_sigma": "deconv",
    "hyper_laplacian": "hyperlaplacian",
    "richardson_lucy": "richardsonlucy",
    "specialise": "specialisation",
    # kernels
    "gaussian_kernel": "kernels",
    "disk_kernel": "kernels",
    "motion_kernel": "kernels",
    "random_motion_kernel": "kernels",
    "gaussian_psf_3d": "kernels",
    "widefield_psf_3d": "kernels",
    "kernel_from_spec": "kernels",
    "load_kernel": "kernels",
    "save_kernel": "kernels",
    "validate_kernel": "kernels",
    "from_correlation": "kernels",
    # images
    "read_image": "io",
    "write_image": "io",
    # metrics
    "psnr": "metrics",
    "ssim": "metrics",
    # networks
    "crcnet": "inference",
    "apply_model": "inference",
    "load_model": "models.store",
    "list_models": "models.store",
    "CRCNet": "models.crcnet",
    "CRCNetConfig": "models.crcnet",
    # lazy (dask) arrays
    "deblur_lazy": "lazy",
    # plumbing
    "BlurOperator": "operators",
    "Cancelled": "_progress",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_crcnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"napari_crcnet.{module}"), name)
    globals()[name] = value  # cache: the next lookup is a plain attribute access
    return value


def __dir__() -> list[str]:
    return __all__
