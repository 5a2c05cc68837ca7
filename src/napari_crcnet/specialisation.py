"""Specialise the shipped CRCNet to one kernel, in minutes, with no data to find.

A per-kernel fit (``training.train`` with ``init``) started from the any-kernel model gains decibels on its
kernel within minutes; this module makes that one call. Training images are ones every installation has:
the photos that ship with scikit-image (for the photo models), or synthetic fluorescence content (for the
fluorescence model); a user may add their own. The model is saved in the user models folder under a name
derived from the kernel's hash (:func:`specialised_path`), so it is found again by :func:`find_specialised`
and :func:`napari_crcnet.crcnet` uses it automatically, with no model named, the next time that kernel is
given.

    >>> import napari_crcnet as nc
    >>> nc.specialise(kernel, noise=0.01, minutes=3)        # saves specialised-<hash>-3ch.safetensors
    >>> nc.crcnet(blurred, kernel=kernel, channel_axis=-1)    # now uses it
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ._progress import ProgressCallback

__all__ = ["PHOTO_IMAGES", "find_specialised", "offline_images", "specialise", "specialised_path"]

#: scikit-image sample photos that ship with the package (no download): varied content, 300-1000 px.
PHOTO_IMAGES = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel", "moon",
                "page", "rocket", "text", "hubble_deep_field", "immunohistochemistry")
#: Photos held out for validation (the rest are trained on).
VALIDATION_IMAGES = ("coffee", "camera")
FLUORESCENCE_MODEL = "any-psf-fluorescence"


def offline_images(fluorescence: bool = False, count: int = 24, seed: int = 0) -> list[np.ndarray]:
    """Training images available with no setup: scikit-image's sample photos (:data:`PHOTO_IMAGES`), or
    ``count`` synthetic 256x256 fluorescence images (:func:`~napari_crcnet.training.content.fluorescence`)."""
    if fluorescence:
        from .training.content import fluorescence as draw

        rng = np.random.default_rng(seed)
        return [draw(256, rng)[0] for _ in range(count)]
    from skimage import data

    return [np.asarray(getattr(data, name)()) for name in PHOTO_IMAGES]


def specialised_path(kernel: Any, channels: int) -> Path:
    """Where the model specialised to ``kernel`` for images of ``channels`` channels lives (user folder)."""
    from .kernels import validate_kernel
    from .models.store import kernel_sha256, user_dir

    return user_dir() / f"specialised-{kernel_sha256(validate_kernel(kernel))[:12]}-{int(channels)}ch.safetensors"


def find_specialised(kernel: Any, channels: int) -> Path | None:
    """The model specialised to ``kernel`` for ``channels``-channel images, if one was made, else None."""
    path = specialised_path(kernel, channels)
    return path if path.exists() else None


def specialise(
    kernel: Any,
    *,
    noise: float = 0.01,
    channels: int = 3,
    minutes: float = 3.0,
    base: Any = None,
    images: Any = None,
    fluorescence: bool = False,
    photons: float | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    stop_event: threading.Event | None = None,
) -> Any:
    """Fine-tune a shipped model to ``kernel`` and ``noise`` for ``minutes`` and save it where it is found.

    Parameters
    ----------
    kernel : array_like or str
        The blur kernel (or a spec such as ``"gaussian:2"``), convolution-oriented.
    noise : float
        Gaussian noise std of the images it is for, in [0, 1] units (e.g. ``nc.estimate_noise(image)``).
    channels : int
        3 for RGB photos, 1 for gray images.
    minutes : float
        Wall-clock training time (the gain grows with it; see ``benchmarks/results/specialise.md``).
    base : str or path, optional
        The model to start from: default the shipped default for ``channels``, or
        :data:`FLUORESCENCE_MODEL` with ``fluorescence``.
    images : folder, files or arrays, optional
        Your clear training images; default :func:`offline_images`. The photos of
        :data:`VALIDATION_IMAGES` are held out for validation.
    fluorescence : bool
        Synthetic fluorescence content (gray) instead of photos, with Poisson noise ``photons``.
    photons : float, optional
        Photon count at intensity 1 for Poisson noise (fluorescence; default 300).
    device, threads, progress, stop_event
        As for :func:`napari_crcnet.training.train` (``progress(done, total)`` with ``total`` the seconds
        allowed, ``done`` the seconds spent; Cancel stops and keeps the model so far).

    Returns
    -------
    napari_crcnet.training.TrainResult
        ``result.model_path`` is :func:`specialised_path`; ``result.metrics["validation"]`` the gain over MMSE.
    """
    from .kernels import kernel_from_spec, validate_kernel
    from .models.store import default_model
    from .training import TrainConfig, train

    if isinstance(kernel, str):
        kernel = kernel_from_spec(kernel)
    kernel = validate_kernel(kernel, ndim=2)
    if not (isinstance(minutes, (int, float)) and 0 < minutes <= 24 * 60):
        raise ValueError(f"minutes must be a number in (0, 1440], not {minutes!r}")
    if fluorescence:
        channels, base = 1, base or FLUORESCENCE_MODEL
        photons = 300.0 if photons is None else photons
    base = base or default_model(channels)
    train_images, val_images = _split(images, fluorescence)
    path = specialised_path(kernel, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(
        kernel=kernel, images=train_images, val_images=val_images, channels=channels, noise=float(noise),
        photons=photons, init=base, iterations=1_000_000, lr=1e-4, warmup=20, decay_every=1_000_000,
        time_limit_s=60.0 * minutes, val_every=0, val_size=128, output=path, device=device, threads=threads,
        name=path.stem, description=f"{base} specialised to one kernel ({kernel.shape[0]}x{kernel.shape[1]}) and noise "
        f"{100 * noise:.2g} % for {minutes:g} min on {'synthetic fluorescence' if fluorescence else 'photos'}",
        card={"specialised": {"base": str(base), "minutes": minutes, "noise": noise}},
    )
    return train(config, progress=_timed(progress, minutes), stop_event=stop_event)


def _split(images: Any, fluorescence: bool) -> tuple[Any, Any]:
    """(training images, validation images): the user's (validation picked by training), or the offline set."""
    if images is not None:
        return images, None
    if fluorescence:
        pictures = offline_images(fluorescence=True)
        return pictures[2:], pictures[:2]
    photos = dict(zip(PHOTO_IMAGES, offline_images()))
    return ([photo for name, photo in photos.items() if name not in VALIDATION_IMAGES],
            [photos[name][:256, :256] for name in VALIDATION_IMAGES])


def _timed(progress: ProgressCallback | None, minutes: float) -> ProgressCallback | None:
    """A step callback that reports seconds spent out of the seconds allowed (the run is time-limited)."""
    if progress is None:
        return None
    import time

    start, total = time.perf_counter(), max(1, round(60 * minutes))

    def report(_done: int, _total: int) -> None:
        progress(min(total, round(time.perf_counter() - start)), total)

    return report
