"""Training data: clear images in memory and on-the-fly blurred/noisy crops (:class:`PairSynthesizer`).

Pairs are made as the paper's degradation model ``b = k * x + n`` says, with no wrap-around artefacts:
a clear crop larger than the training crop by the kernel radius on every side is blurred with the
periodic :class:`~napari_crcnet.operators.BlurOperator` and only the centre is kept. Away from the border
of the large crop the circular convolution equals the linear one, so the kept centre is exactly the
'valid' part of ``k * x``: every blurred pixel sees real image content, as in a photo.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._arrays import as_float_image
from ..operators import BlurOperator

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
#: ITU-R BT.601 luma weights, used to turn RGB training images into gray ones for gray models.
LUMA = np.array([0.299, 0.587, 0.114])


def find_images(source: Any) -> list[Path]:
    """Image files named by ``source``: a folder (its image files, sorted, not recursive), a file, or a
    list of those. Raises FileNotFoundError for a missing path and ValueError when nothing is found."""
    if isinstance(source, (str, os.PathLike)):
        sources: Iterable[Any] = [source]
    else:
        sources = source
    files: list[Path] = []
    for item in sources:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such image file or folder: {path}")
    return files


def _read(path: Path) -> np.ndarray:
    try:
        from ..io import read_image
    except ImportError:  # io.py is optional for training; fall back to the decoders directly
        read_image = None
    if read_image is not None:
        return np.asarray(read_image(path))
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def to_channels(image: np.ndarray, channels: int, name: str = "image") -> np.ndarray:
    """Float32 ``(C, Y, X)`` copy of a ``(Y, X)`` gray or ``(Y, X, 3|4)`` RGB(A) image in [0, 1] units.

    Integer images are scaled by their dtype's maximum. Alpha is dropped. RGB becomes gray for
    ``channels=1`` through the BT.601 luma ``0.299 R + 0.587 G + 0.114 B``; gray is repeated for
    ``channels=3``.
    """
    array = as_float_image(image, np.float32)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3]
        if channels == 1:
            array = (array @ LUMA.astype(np.float32))[None]
        else:
            array = np.moveaxis(array, -1, 0)
    elif array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[None], channels, axis=0)
    if array.ndim != 3 or array.shape[0] != channels:
        raise ValueError(
            f"{name}: expected a 2D gray or (Y, X, 3) RGB image, got shape {np.shape(image)} "
            f"for a {channels}-channel model"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _compact(array: np.ndarray, source_dtype: np.dtype) -> np.ndarray:
    """Store a [0, 1] float image compactly: uint8 when it came from uint8 and is exactly representable,
    else uint16 (steps of 1.5e-5, far below any noise level trained for), else float32 for data outside
    [0, 1] (only a constant image can still be; others were rescaled by :func:`load_images`)."""
    if source_dtype == np.uint8:
        stored = np.round(array * 255).astype(np.uint8)
        if np.array_equal(stored.astype(np.float32) / 255, array):
            return stored
    if array.min() >= 0 and array.max() <= 1:
        return np.round(array * 65535).astype(np.uint16)
    return array


def _expand(stored: np.ndarray) -> np.ndarray:
    if stored.dtype == np.uint8:
        return stored.astype(np.float32) / 255
    if stored.dtype == np.uint16:
        return stored.astype(np.float32) / 65535
    return stored.astype(np.float32)


def load_images(
    source: Any, channels: int, exclude: Sequence[Path] = (), min_size: int = 1
) -> tuple[list[np.ndarray], list[str]]:
    """Load clear images as compact ``(C, Y, X)`` arrays (see :func:`to_channels`). Float images with values
    outside [0, 1] (a microscope's intensities in arbitrary units) are rescaled to [0, 1], minimum to 0 and
    maximum to 1, so noise levels mean the same on every image.

    Parameters
    ----------
    source : folder, file, list of folders/files, or list of arrays
        Arrays are ``(Y, X)`` gray or ``(Y, X, 3)`` RGB (channel last, napari's convention).
    channels : int
        1 (gray model) or 3 (RGB model).
    exclude : sequence of Path
        Files left out (the validation images are never trained on).
    min_size : int
        Images smaller than this along Y or X are skipped.

    Returns
    -------
    images, names
        Stored arrays (uint8/uint16/float32, expand with ``/255`` or ``/65535``) and their names.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), not {channels}")
    excluded = {Path(p).resolve() for p in exclude}
    images: list[np.ndarray] = []
    names: list[str] = []
    items: list[tuple[str, Any]]
    if isinstance(source, np.ndarray) or (
        isinstance(source, (list, tuple)) and source and all(isinstance(s, np.ndarray) for s in source)
    ):
        arrays = [source] if isinstance(source, np.ndarray) else list(source)
        items = [(f"array {i}", a) for i, a in enumerate(arrays)]
    else:
        items = [(f"{p.parent.name}/{p.name}", p) for p in find_images(source) if p.resolve() not in excluded]
    for name, item in items:
        raw = _read(item) if isinstance(item, Path) else np.asarray(item)
        image = to_channels(raw, channels, name)
        if min(image.shape[-2:]) < min_size:
            continue
        low, high = float(image.min()), float(image.max())
        if (low < 0 or high > 1) and high > low:  # float intensities in arbitrary units (a microscope's)
            image = (image - low) / (high - low)
        images.append(_compact(image, raw.dtype))
        names.append(name)
    if not images:
        raise ValueError(f"no usable images (at least {min_size}x{min_size} pixels) in {source!r}")
    return images, names


class PairSynthesizer:
    """On-the-fly (blurred, clear) training pairs from clear images.

    Each call of :meth:`sample` draws ``batch`` random crops (random image, random position, random
    flip/rot90 from the 8 symmetries of the square when ``augment``) of size ``crop + 2 r`` (``r`` the
    kernel radius per axis), blurs them with the periodic :class:`BlurOperator` and keeps the central
    ``crop x crop`` (the 'valid' blur, exact linear convolution), then adds noise::

        b = Poisson(photons * (k * x)) / photons + noise * N(0, 1)

    (the Poisson term only when ``photons`` is given; it models photon counting in microscopy, with
    ``photons`` the expected count at intensity 1). Images are in [0, 1] units, ``noise`` is the standard
    deviation of the Gaussian noise in the same units. Nothing is clipped, as in the linear model.

    Randomness comes from two generators owned by the synthesizer, ``rng`` (NumPy, crops and flips) and
    ``generator`` (torch CPU, noise); :meth:`state_dict` / :meth:`load_state_dict` save and restore them,
    so a resumed training sees exactly the crops it would have seen.

    Parameters
    ----------
    images : source or list of arrays
        See :func:`load_images`; or images already loaded by it (``stored=True``).
    kernel : array_like
        2D convolution kernel (validated, sum 1), odd-sized and centred.
    channels : int
        1 or 3.
    crop : int
        Side of the training crops (pixels).
    noise : float
        Gaussian noise standard deviation (intensity units; 0.01 = 1 % of the range).
    photons : float, optional
        Poisson noise: expected photon count at intensity 1.
    augment : bool
        Random flips and 90 degree rotations.
    seed : int
        Seeds both generators.
    device : str or torch.device
        Where the blurred batch is computed.
    exclude : sequence of Path
        Image files not to train on.
    gray_fraction : float
        RGB only: this fraction of the crops is made gray (BT.601 luma in all three channels); the noise
        is still drawn per channel (see :class:`~napari_crcnet.training.TrainConfig`). With it, the
        validation pairs are each image in colour and in gray. 0 (default) draws nothing extra from the
        generators.
    """

    def __init__(
        self,
        images: Any,
        kernel: Any,
        channels: int = 3,
        crop: int = 64,
        noise: float = 0.01,
        photons: float | None = None,
        augment: bool = True,
        seed: int = 0,
        device: Any = "cpu",
        exclude: Sequence[Path] = (),
        stored: bool = False,
        names: Sequence[str] | None = None,
        gray_fraction: float = 0.0,
    ) -> None:
        kernel = np.asarray(kernel, dtype=np.float64)
        if kernel.ndim != 2:
            raise ValueError(f"training supports 2D kernels only, got a {kernel.ndim}D kernel")
        if int(crop) < 8:
            raise ValueError(f"crop must be at least 8 pixels, not {crop}")
        if noise < 0 or not np.isfinite(noise):
            raise ValueError(f"noise must be a finite standard deviation >= 0, not {noise}")
        if photons is not None and not photons > 0:
            raise ValueError(f"photons must be positive, not {photons}")
        check_gray_fraction(gray_fraction, channels)
        self.gray_fraction = float(gray_fraction)
        self.kernel = kernel
        self.channels = int(channels)
        self.crop = int(crop)
        self.noise = float(noise)
        self.photons = None if photons is None else float(photons)
        self.augment = bool(augment)
        self.radius = tuple(k // 2 for k in kernel.shape)
        self.big = (self.crop + 2 * self.radius[0], self.crop + 2 * self.radius[1])
        if stored:
            self.images = list(images)
            self.names = list(names) if names is not None else [f"image {i}" for i in range(len(self.images))]
        else:
            self.images, self.names = load_images(images, self.channels, exclude, min_size=max(self.big))
        small = [n for n, im in zip(self.names, self.images) if min(im.shape[-2:]) < max(self.big)]
        if small:
            raise ValueError(f"images smaller than crop + kernel ({max(self.big)} px): {small[:3]}")
        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.operator = BlurOperator(kernel, boundary="periodic", device=self.device)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def __len__(self) -> int:
        return len(self.images)

    # -------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """RNG states: ``{"numpy": bit generator state (JSON-able), "torch": uint8 tensor}``."""
        return {"numpy": self.rng.bit_generator.state, "torch": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the RNG states saved by :meth:`state_dict`."""
        self.rng.bit_generator.state = state["numpy"]
        self.generator.set_state(state["torch"])

    # -------------------------------------------------------------------------------------- pairs
    def _random_crop(self, image: np.ndarray | None = None, downscaled: bool = False) -> np.ndarray:
        """A random ``big``-sized training crop of a random image (or of ``image``), rotated/flipped when
        augmenting; ``downscaled``: a window twice as large, averaged over 2x2 blocks (sharper edges, flatter
        areas: :func:`~napari_crcnet.training.content.downscale2`)."""
        from .content import downscale2

        if image is None:
            image = self.images[int(self.rng.integers(len(self.images)))]
        factor = 2 if downscaled else 1
        h, w = self.big[0] * factor, self.big[1] * factor
        y = int(self.rng.integers(image.shape[-2] - h + 1))
        x = int(self.rng.integers(image.shape[-1] - w + 1))
        patch = _expand(image[:, y : y + h, x : x + w])
        if downscaled:
            patch = downscale2(patch)
        h, w = self.big
        if self.augment:
            k = int(self.rng.integers(4))
            flip = bool(self.rng.integers(2))
            if h != w:  # a rotation would change a non-square crop's shape: flips only
                k = 2 * (k // 2)
            patch = np.rot90(patch, k, axes=(-2, -1))
            if flip:
                patch = patch[..., ::-1]
        if self.gray_fraction > 0 and self.rng.random() < self.gray_fraction:
            patch = _gray(patch)
        return np.ascontiguousarray(patch)

    def _with_gray(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Validation images: as given, then (with ``gray_fraction``) each again in gray."""
        return arrays + [_gray(_expand(a)) for a in arrays] if self.gray_fraction > 0 else arrays

    def degrade(self, big: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Blur (valid part) and add noise to clear crops ``big`` (``(B, C, Y + 2 ry, X + 2 rx)``).

        Returns ``(blurred, clear)``, both ``(B, C, Y, X)`` on ``self.device``; ``clear`` is the centre of
        ``big``. ``generator`` (default: the synthesizer's own) draws the noise.
        """
        generator = self.generator if generator is None else generator
        ry, rx = self.radius
        big = big.to(self.device, torch.float32)
        centre = (Ellipsis, slice(ry, big.shape[-2] - ry), slice(rx, big.shape[-1] - rx))
        blurred = self.operator.forward(big)[centre]
        clear = big[centre]
        if self.photons is not None:
            counts = torch.poisson(blurred.clamp(min=0).cpu() * self.photons, generator=generator)
            blurred = counts.to(self.device) / self.photons
        if self.noise > 0:
            noise = torch.randn(blurred.shape, generator=generator, dtype=torch.float32)
            blurred = blurred + self.noise * noise.to(self.device)
        return blurred.contiguous(), clear.contiguous()

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of ``(blurred, clear)`` pairs, each ``(batch, C, crop, crop)`` float32."""
        crops = np.stack([self._random_crop() for _ in range(int(batch))])
        return self.degrade(torch.from_numpy(crops))

    def validation_pairs(
        self, images: Any, size: int = 128, seed: int = 0, stored: bool = False, exclude: Sequence[Path] = ()
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed held-out pairs: the centre ``size x size`` (or less for small images) of each image,
        blurred and noised like the training pairs with a generator seeded by ``seed`` (the same pairs on
        every call and after a resume). Each pair is ``(1, C, y, x)`` tensors."""
        if stored:
            arrays = list(images)
        else:
            arrays, _ = load_images(images, self.channels, exclude, min_size=max(self.big) - self.crop + 8)
        arrays = self._with_gray(arrays)
        generator = torch.Generator().manual_seed(int(seed))
        ry, rx = self.radius
        pairs = []
        for stored_image in arrays:
            image = _expand(stored_image)
            h = min(size, image.shape[-2] - 2 * ry)
            w = min(size, image.shape[-1] - 2 * rx)
            y0 = (image.shape[-2] - h) // 2 - ry
            x0 = (image.shape[-1] - w) // 2 - rx
            big = torch.from_numpy(np.ascontiguousarray(image[None, :, y0 : y0 + h + 2 * ry, x0 : x0 + w + 2 * rx]))
            pairs.append(self.degrade(big, generator))
        return pairs


def _gray(image: np.ndarray) -> np.ndarray:
    """An RGB ``(3, Y, X)`` array as gray: its BT.601 luma in all three channels."""
    luma = np.tensordot(LUMA.astype(image.dtype), image, axes=(0, 0))
    return np.repeat(luma[None], 3, axis=0)


def check_gray_fraction(gray_fraction: float, channels: int) -> None:
    """Raise ValueError unless ``gray_fraction`` is in [0, 1], and 0 for a gray (1-channel) model."""
    if not 0 <= gray_fraction <= 1 or (gray_fraction > 0 and int(channels) != 3):
        raise ValueError(f"gray_fraction must be in [0, 1], for RGB (channels=3) only; not {gray_fraction!r}")


def check_family_options(max_kernel: Any, noise_range: Any) -> None:
    """Raise ValueError unless ``max_kernel`` is an odd integer >= 9 and ``noise_range`` is ``(low, high)``
    with ``0 < low <= high`` (the options of an any-kernel training run)."""
    low, high = (float(v) for v in noise_range)
    if not (0 < low <= high and np.isfinite(high)):
        raise ValueError(f"noise_range must be (low, high) with 0 < low <= high, not {noise_range!r}")
    if isinstance(max_kernel, bool) or int(max_kernel) != max_kernel or max_kernel < 9 or max_kernel % 2 == 0:
        raise ValueError(f"max_kernel must be an odd integer >= 9, not {max_kernel!r}")


class FamilySynthesizer(PairSynthesizer):
    """Training pairs for a model that serves many kernels and noise levels (the "any kernel" CRCNet).

    Like :class:`PairSynthesizer`, but every crop gets its own degradation: a kernel drawn by
    :func:`napari_crcnet.kernels.random_kernel_spec` (at most ``max_kernel`` pixels wide) and a Gaussian
    noise std drawn log-uniformly from ``noise_range``. The clear crops are ``crop + 2 (max_kernel // 2)``
    wide so that the 'valid' blur of every kernel is exact. :meth:`sample_degraded` returns the kernels
    and noise levels with the pairs, for the network's kernel-aware inputs.

    Parameters
    ----------
    images, channels, crop, augment, seed, device, exclude, stored, names, gray_fraction
        As for :class:`PairSynthesizer`.
    max_kernel : int
        Largest kernel side (odd, >= 9).
    noise_range : (float, float)
        Smallest and largest noise std (intensity units), ``0 < low <= high``.
    """

    def __init__(
        self,
        images: Any,
        channels: int = 3,
        crop: int = 64,
        max_kernel: int = 31,
        noise_range: tuple[float, float] = (0.005, 0.05),
        augment: bool = True,
        seed: int = 0,
        device: Any = "cpu",
        exclude: Sequence[Path] = (),
        stored: bool = False,
        names: Sequence[str] | None = None,
        gray_fraction: float = 0.0,
    ) -> None:
        check_family_options(max_kernel, noise_range)
        low, high = float(noise_range[0]), float(noise_range[1])
        box = np.full((int(max_kernel),) * 2, 1.0 / max_kernel**2)  # only sets the crop margin
        super().__init__(images, box, channels, crop, noise=high, augment=augment, seed=seed, device=device,
                         exclude=exclude, stored=stored, names=names, gray_fraction=gray_fraction)
        self.max_kernel = int(max_kernel)
        self.noise_range = (low, high)

    def draw_degradation(self, rng: np.random.Generator | None = None) -> tuple[str, float]:
        """A random kernel spec and noise std (from ``rng``, default the synthesizer's NumPy generator)."""
        from ..kernels import random_kernel_spec

        rng = self.rng if rng is None else rng
        spec = random_kernel_spec(rng, self.max_kernel)
        low, high = self.noise_range
        return spec, float(np.exp(rng.uniform(np.log(low), np.log(high))))

    def degrade_with(
        self, big: torch.Tensor, kernel: np.ndarray, noise: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """'Valid' blur of clear crops ``big`` by ``kernel`` plus Gaussian noise of std ``noise``."""
        generator = self.generator if generator is None else generator
        r = self.max_kernel // 2
        big = big.to(self.device, torch.float32)
        centre = (Ellipsis, slice(r, big.shape[-2] - r), slice(r, big.shape[-1] - r))
        blurred = BlurOperator(kernel, boundary="periodic", device=self.device).forward(big)[centre]
        blurred = blurred + noise * torch.randn(blurred.shape, generator=generator).to(self.device)
        return blurred.contiguous(), big[centre].contiguous()

    def sample_degraded(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray], torch.Tensor]:
        """``(blurred, clear, kernels, noise)``: a batch of pairs, each with its own kernel and noise std."""
        from ..kernels import kernel_from_spec

        blurred, clear, kernels, levels = [], [], [], []
        for _ in range(int(batch)):
            spec, noise = self.draw_degradation()
            kernel = kernel_from_spec(spec)
            b, x = self.degrade_with(torch.from_numpy(self._random_crop())[None], kernel, noise)
            blurred.append(b)
            clear.append(x)
            kernels.append(kernel)
            levels.append(noise)
        return torch.cat(blurred), torch.cat(clear), kernels, torch.tensor(levels, dtype=torch.float32)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(blurred, clear)`` only (see :meth:`sample_degraded`)."""
        blurred, clear, _, _ = self.sample_degraded(batch)
        return blurred, clear

    def validation_pairs(
        self, images: Any, size: int = 128, seed: int = 0, stored: bool = False, exclude: Sequence[Path] = ()
    ) -> list[tuple[torch.Tensor, torch.Tensor, list[np.ndarray], torch.Tensor]]:
        """Fixed held-out ``(blurred, clear, [kernel], noise)`` tuples: the centre ``size x size`` (or less)
        of each image with a degradation drawn from generators seeded by ``seed`` (the same every call)."""
        from ..kernels import kernel_from_spec

        rng = np.random.default_rng(int(seed))
        generator = torch.Generator().manual_seed(int(seed))
        pairs = []
        for big in self._validation_crops(images, size, stored, exclude):
            spec, noise = self.draw_degradation(rng)
            kernel = kernel_from_spec(spec)
            blurred, clear = self.degrade_with(torch.from_numpy(big)[None], kernel, noise, generator)
            pairs.append((blurred, clear, [kernel], torch.tensor([noise])))
        return pairs

    def _validation_crops(self, images: Any, size: int, stored: bool, exclude: Sequence[Path]) -> list[np.ndarray]:
        """The centre ``size x size`` (or less) of each validation image with a margin of ``max_kernel // 2``
        on every side (for the 'valid' blur), as float32 ``(C, Y, X)``; with ``gray_fraction`` each again in
        gray."""
        if stored:
            arrays = list(images)
        else:
            arrays, _ = load_images(images, self.channels, exclude, min_size=max(self.big) - self.crop + 8)
        r = self.max_kernel // 2
        crops = []
        for stored_image in self._with_gray(arrays):
            image = _expand(stored_image)
            h, w = (min(size, n - 2 * r) for n in image.shape[-2:])
            y0, x0 = (image.shape[-2] - h) // 2 - r, (image.shape[-1] - w) // 2 - r
            crops.append(np.ascontiguousarray(image[:, y0 : y0 + h + 2 * r, x0 : x0 + w + 2 * r]))
        return crops


#: Validation pairs a realistic run draws at least (several degradations per image when it has few images).
MIN_VALIDATION_PAIRS = 4


class RealisticSynthesizer(FamilySynthesizer):
    """Any-kernel training pairs under the realistic :class:`~napari_crcnet.training.degradation.Degradation`.

    Each crop gets a kernel from :func:`napari_crcnet.kernels.random_kernel_spec` that blurs it in linear
    light, a camera (response curve, clipped highlights, Gaussian or Poisson-Gaussian noise, 8-bit, JPEG)
    and a *given* kernel: the true one perturbed by the kernel-error model, which is what the network and
    its MMSE input get. Some crops are dead leaves or downscaled photos (the content mix).
    :meth:`sample_degraded` returns ``(blurred, target, given_kernels, noise_rms)``; ``noise_rms`` is the
    noise a real image's estimator would see (see :meth:`Camera.capture`).

    Parameters
    ----------
    images, channels, crop, max_kernel, augment, seed, device, exclude, stored, names
        As for :class:`FamilySynthesizer` (``gray_fraction`` is not used).
    degradation : Degradation, "realistic" or dict
        See :meth:`Degradation.from_spec`.
    """

    def __init__(
        self,
        images: Any,
        channels: int = 3,
        crop: int = 64,
        max_kernel: int = 31,
        degradation: Any = "realistic",
        augment: bool = True,
        seed: int = 0,
        device: Any = "cpu",
        exclude: Sequence[Path] = (),
        stored: bool = False,
        names: Sequence[str] | None = None,
    ) -> None:
        from .degradation import Degradation

        self.degradation = Degradation.from_spec(degradation)
        if images is None and self.degradation.content == "fluorescence":  # all content is synthetic
            images, stored, names = [], True, []
        super().__init__(images, channels, crop, max_kernel, self.degradation.noise_range, augment, seed, device,
                         exclude, stored, names)

    def _random_crop(self) -> np.ndarray:
        from .content import dead_leaves, fluorescence

        if self.degradation.content == "fluorescence":
            return np.repeat(fluorescence(self.big[0], self.rng), self.channels, axis=0)
        choice = self.rng.random()
        if choice < self.degradation.dead_leaves:
            return dead_leaves(self.big[0], self.channels, self.rng)
        if choice < self.degradation.dead_leaves + self.degradation.downscaled:
            image = self.images[int(self.rng.integers(len(self.images)))]
            if min(image.shape[-2] - 2 * self.big[0], image.shape[-1] - 2 * self.big[1]) >= 0:
                return super()._random_crop(image, downscaled=True)
        return super()._random_crop()

    def degrade_realistic(
        self, big: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, float]:
        """One clear crop ``big`` (``(C, Y + 2r, X + 2r)``) to ``(blurred, target, given_kernel, noise_rms)``,
        the tensors ``(1, C, Y, X)``; every draw from ``rng``."""
        from ..kernels import kernel_from_spec, random_kernel_spec, random_psf

        if self.degradation.kernels == "microscopy":
            kernel = random_psf(rng, self.max_kernel)
        else:
            kernel = kernel_from_spec(random_kernel_spec(rng, self.max_kernel))
        camera = self.degradation.camera
        settings = camera.draw(rng)
        r = self.max_kernel // 2
        linear = torch.from_numpy(np.ascontiguousarray(camera.linear(big, settings), dtype=np.float32))
        blurred = BlurOperator(kernel, boundary="periodic", device="cpu").forward(linear[None])[0, :, r:-r, r:-r]
        b, target, rms = camera.capture(blurred.numpy().astype(np.float64), linear[:, r:-r, r:-r].numpy(), settings,
                                        rng)
        given = self.degradation.kernel_error.perturb(kernel, rng)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None].to(self.device)  # noqa: E731
        return as_tensor(b), as_tensor(target), given, rms

    def sample_degraded(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray], torch.Tensor]:
        """``(blurred, target, given_kernels, noise_rms)`` for a batch of crops."""
        parts = [self.degrade_realistic(self._random_crop(), self.rng) for _ in range(int(batch))]
        return (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), [p[2] for p in parts],
                torch.tensor([p[3] for p in parts], dtype=torch.float32))

    def validation_pairs(
        self, images: Any, size: int = 128, seed: int = 0, stored: bool = False, exclude: Sequence[Path] = ()
    ) -> list[tuple[torch.Tensor, torch.Tensor, list[np.ndarray], torch.Tensor]]:
        """Fixed held-out ``(blurred, target, [given_kernel], noise_rms)``: the centre ``size x size`` (or
        less) of each image under a realistic degradation drawn from a generator seeded by ``seed``; with
        fewer than :data:`MIN_VALIDATION_PAIRS` images, each gets that many draws in total (one random
        degradation of one image says little: the fluorescence run's single C. elegans pair rose while the
        model got worse on the microscopy benchmark)."""
        rng = np.random.default_rng(int(seed))
        crops = self._validation_crops(images, size, stored, exclude)
        repeats = -(-MIN_VALIDATION_PAIRS // max(len(crops), 1))  # ceil: 1 for 4 or more images
        pairs = []
        for big in [crop for crop in crops for _ in range(repeats)]:
            blurred, target, given, rms = self.degrade_realistic(big, rng)
            pairs.append((blurred, target, [given], torch.tensor([rms], dtype=torch.float32)))
        return pairs
