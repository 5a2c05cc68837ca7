"""A realistic degradation model: what real blurred images do that ``b = k * x + n`` does not.

One implementation, used by training (:class:`~napari_crcnet.training.data.RealisticSynthesizer`) and by
the benchmarks (``benchmarks/real_data.py``, the kernel-error protocol). Three parts:

* :class:`KernelError` -- the kernel given to the method differs from the one that blurred the image, as a
  measured or blind-estimated kernel does: a small sub-pixel shift, rotation and scale change, a thicker or
  thinner trajectory, noise on and around the support, lost faint tails. Some crops keep the exact kernel.
* :class:`Camera` -- the capture, applied to a clear image ``x`` (display values in [0, 1])::

      lin = (e * x^g)                     camera response g (1 = linear), exposure e >= 1
      y   = min(k * lin, 1)               blur in linear light, highlights clipped (when e > 1)
      y   = y + s N(0, 1)                 Gaussian noise, or Poisson(p y) / p + r N(0, 1) (photons p, read r)
      b   = Q(JPEG(max(y, 0)^(1/g)))      back to display values, 8-bit quantisation Q, JPEG (optional)

  and the target is ``min(e * x^g, 1)^(1/g)``: the same exposure and curve without blur and noise. The
  noise level reported with each pair is the root mean square of ``b`` minus its noise-free version, the
  quantity a noise estimator measures on a real image.
* **Content** (in :class:`Degradation`, generators in :mod:`~napari_crcnet.training.content`): for photos a
  share of crops are synthetic *dead leaves* (flat regions and strong edges, which photo sets such as
  BSDS500 have few of) and a share are photo crops downscaled 2x (sharper edges, flatter areas); for a
  fluorescence model every crop is synthetic fluorescence (filaments, blobs, membranes, puncta on a dark
  background) and the kernels are microscope PSFs (:func:`napari_crcnet.kernels.random_psf`).

Presets: ``"realistic"`` (photos: :class:`Degradation` defaults) and ``"fluorescence"``
(:meth:`Degradation.fluorescence`).

Every draw comes from the NumPy generator passed in, so a synthesizer's saved generator state reproduces
its pairs exactly.

References
----------
S. Vasu, V. R. Maligireddy, A. N. Rajagopalan, "Non-blind deblurring: handling kernel uncertainty with
CNNs", CVPR 2018. Y. Nan, H. Ji, "Deep learning for handling kernel/model uncertainty in image
deconvolution", CVPR 2020. R. Achddou, Y. Gousseau, S. Ladjal, "Synthetic images as a regularity prior for
image restoration neural networks", SSVM 2021 (dead leaves).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy import ndimage


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def _check_probability(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], not {value!r}")


def _check_range(name: str, bounds: Any, low: float = 0.0) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), not {bounds!r}") from None
    if not (low <= a <= b and math.isfinite(b)):
        raise ValueError(f"{name} must be (low, high) with {low:g} <= low <= high, not {bounds!r}")
    return a, b


# ------------------------------------------------------------------------------------------ kernel error
@dataclass(frozen=True)
class KernelError:
    """How a measured or estimated kernel differs from the true one (all sizes in pixels of the kernel).

    Parameters
    ----------
    exact : float
        Probability that the kernel is given exactly (no error at all).
    shift : float
        Largest sub-pixel shift per axis (uniform in ``[-shift, shift]``).
    rotation : float
        Largest rotation, degrees (uniform in ``[-rotation, rotation]``).
    scale : float
        Largest relative size change (zoom uniform in ``[1 - scale, 1 + scale]``).
    width : float
        Probability of a thicker (Gaussian blur of std 0.3-0.8 px) or thinner (``k^p``, p in 1.3-2)
        trajectory, each half of that.
    support_noise : float
        Largest std of the noise added on and around the support (the support dilated by 2 px), as a
        fraction of the kernel maximum; the std is uniform in ``[0, support_noise]``.
    tail : float
        Largest threshold, as a fraction of the maximum, below which values are lost (set to 0).
    """

    exact: float = 0.2
    shift: float = 0.5
    rotation: float = 5.0
    scale: float = 0.1
    width: float = 0.5
    support_noise: float = 0.05
    tail: float = 0.1

    def __post_init__(self) -> None:
        _check_probability("exact", self.exact)
        _check_probability("width", self.width)
        for name in ("shift", "rotation", "scale", "support_noise", "tail"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if self.scale >= 0.5 or self.tail >= 1:
            raise ValueError("scale must be below 0.5 and tail below 1")

    def perturb(self, kernel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A perturbed copy of a 2D ``kernel`` (odd-sized, non-negative, sum 1), or the kernel itself with
        probability :attr:`exact`. The result is odd-sized, non-negative and sums to 1; it may be 2 px wider
        on each side than ``kernel``."""
        kernel = np.asarray(kernel, dtype=np.float64)
        if rng.random() < self.exact:
            return kernel
        k = np.pad(kernel, 2)
        k = self._warp(k, rng)
        k = self._change_width(k, rng)
        peak = k.max()
        support = ndimage.binary_dilation(k > 0.05 * peak, iterations=2)
        k = k + support * rng.normal(0.0, _uniform(rng, (0, self.support_noise)) * peak, size=k.shape)
        k = np.clip(k, 0.0, None)
        k[k < _uniform(rng, (0, self.tail)) * k.max()] = 0.0
        return _normalised_odd(k, kernel)

    def _warp(self, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rotate by ``a``, zoom by ``z`` about the centre and shift by ``d`` (bilinear resampling)."""
        a = math.radians(_uniform(rng, (-self.rotation, self.rotation)))
        z = _uniform(rng, (1 - self.scale, 1 + self.scale))
        d = rng.uniform(-self.shift, self.shift, size=2)
        # affine_transform maps output coordinates o to input ones: i = M o + offset, so M is the inverse map.
        inverse = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) / z
        centre = (np.array(k.shape) - 1) / 2
        offset = centre - inverse @ (centre + d)
        return ndimage.affine_transform(k, inverse, offset=offset, order=1, mode="constant")

    def _change_width(self, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.width:
            return k
        if rng.random() < 0.5:
            return ndimage.gaussian_filter(k, _uniform(rng, (0.3, 0.8)), mode="constant")
        return np.clip(k, 0.0, None) ** _uniform(rng, (1.3, 2.0))


def _normalised_odd(k: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``k`` with all-zero borders trimmed symmetrically (centre kept), normalised; ``fallback`` if empty."""
    total = k.sum()
    if not (total > 0 and np.isfinite(total)):
        return fallback
    rows = np.flatnonzero(k.max(axis=1) > 0)
    cols = np.flatnonzero(k.max(axis=0) > 0)
    c = min(rows[0], k.shape[0] - 1 - rows[-1], cols[0], k.shape[1] - 1 - cols[-1])
    k = k[c : k.shape[0] - c, c : k.shape[1] - c]
    return np.ascontiguousarray(k / k.sum())


# ------------------------------------------------------------------------------------------------ camera
@dataclass(frozen=True)
class Camera:
    """The capture after the blur: response curve, clipped highlights, noise, 8-bit quantisation, JPEG.

    Parameters
    ----------
    noise : (float, float)
        Gaussian noise std range (log-uniform), in [0, 1] units of linear intensity.
    poisson : float
        Probability of Poisson-Gaussian noise instead: ``Poisson(p y) / p + r N(0, 1)``.
    photons : (float, float)
        Expected photon count ``p`` at intensity 1 (log-uniform). The default, 200-20000, keeps photo noise
        below about 7 %; fluorescence microscopy goes down to about 10.
    read_noise : (float, float)
        Read noise std ``r`` (uniform).
    response : float
        Probability of a camera response curve: display = linear^(1/g).
    gamma : (float, float)
        ``g`` (uniform).
    clip : float
        Probability of over-exposure: intensities multiplied by ``e`` and clipped at 1.
    exposure : (float, float)
        ``e`` (uniform).
    quantise : float
        Probability of 8-bit quantisation (``round(255 b) / 255`` after clipping to [0, 1]).
    jpeg : float
        Probability of JPEG compression (8-bit, so quantised too).
    jpeg_quality : (int, int)
        Quality range (uniform integers, inclusive).
    """

    noise: tuple[float, float] = (0.001, 0.05)
    poisson: float = 0.3
    photons: tuple[float, float] = (200.0, 2e4)
    read_noise: tuple[float, float] = (0.0005, 0.01)
    response: float = 0.3
    gamma: tuple[float, float] = (1.8, 2.4)
    clip: float = 0.15
    exposure: tuple[float, float] = (1.1, 2.0)
    quantise: float = 0.6
    jpeg: float = 0.2
    jpeg_quality: tuple[int, int] = (75, 95)

    def __post_init__(self) -> None:
        for name in ("poisson", "response", "clip", "quantise", "jpeg"):
            _check_probability(name, getattr(self, name))
        _check_range("noise", self.noise, low=1e-6)
        _check_range("photons", self.photons, low=1e-3)
        _check_range("read_noise", self.read_noise)
        _check_range("gamma", self.gamma, low=1.0)
        _check_range("exposure", self.exposure, low=1.0)
        _, high = _check_range("jpeg_quality", self.jpeg_quality, low=1)
        if high > 100:
            raise ValueError(f"jpeg_quality must be within [1, 100], not {self.jpeg_quality!r}")

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """One capture's settings (the draws are in a fixed order, so a seed reproduces them)."""
        poisson = rng.random() < self.poisson
        return {
            "gamma": _uniform(rng, self.gamma) if rng.random() < self.response else 1.0,
            "exposure": _uniform(rng, self.exposure) if rng.random() < self.clip else 1.0,
            "photons": _log_uniform(rng, self.photons) if poisson else None,
            "read": _uniform(rng, self.read_noise) if poisson else None,
            "noise": None if poisson else _log_uniform(rng, self.noise),
            "jpeg": int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)) if rng.random() < self.jpeg
            else None,
            "quantise": bool(rng.random() < self.quantise),
        }

    def linear(self, x: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
        """Display values ``x`` to exposed linear intensity ``e x^g`` (before the blur)."""
        return settings["exposure"] * np.clip(x, 0.0, None) ** settings["gamma"]

    def capture(
        self, blurred: np.ndarray, clear: np.ndarray, settings: dict[str, Any], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """``(b, target, noise_rms)`` from the blurred and clear linear intensities (``(C, Y, X)``).

        ``noise_rms`` is the root mean square of ``b`` minus the same capture without noise, quantisation
        and JPEG (the noise a real image's estimator sees), in display units.
        """
        clipped = settings["exposure"] > 1
        y = np.minimum(blurred, 1.0) if clipped else blurred
        target = self._display(np.minimum(clear, 1.0) if clipped else clear, settings)
        if settings["photons"] is not None:
            photons = settings["photons"]
            noisy = rng.poisson(np.clip(y, 0.0, None) * photons) / photons
            noisy = noisy + settings["read"] * rng.standard_normal(y.shape)
        else:
            noisy = y + settings["noise"] * rng.standard_normal(y.shape)
        clean = self._display(y, settings)
        b = self._display(noisy, settings)
        if settings["quantise"] or settings["jpeg"] is not None:
            b = np.round(np.clip(b, 0.0, 1.0) * 255) / 255
        if settings["jpeg"] is not None:
            b = _jpeg(b, settings["jpeg"])
        rms = float(np.sqrt(np.mean((b - clean) ** 2)))
        return b.astype(np.float32), target.astype(np.float32), rms

    @staticmethod
    def _display(linear: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
        gamma = settings["gamma"]
        return linear if gamma == 1.0 else np.clip(linear, 0.0, None) ** (1.0 / gamma)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a ``(C, Y, X)`` image in [0, 1] (C = 1 gray or 3 RGB), through Pillow."""
    from PIL import Image

    pixels = np.round(np.moveaxis(image, 0, -1) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float64) / 255
    return decoded[None] if decoded.ndim == 2 else np.moveaxis(decoded, -1, 0)


# ------------------------------------------------------------------------------------------- the whole
@dataclass(frozen=True)
class Degradation:
    """Kernel error, camera and content mix (see the module docstring).

    Parameters
    ----------
    kernel_error : KernelError
    camera : Camera
    dead_leaves : float
        Fraction of crops that are synthetic dead leaves.
    downscaled : float
        Fraction of crops cut twice as large and downscaled 2x (photos only; too small images fall back
        to a plain crop).
    content : {"photo", "fluorescence"}
        "photo": crops of the training images (and the two fractions above); "fluorescence": every crop is
        :func:`~napari_crcnet.training.content.fluorescence` (no training images needed).
    kernels : {"any", "microscopy"}
        The true kernels: the any-kernel family (:func:`napari_crcnet.kernels.random_kernel_spec`) or
        microscope PSFs (:func:`napari_crcnet.kernels.random_psf`).
    """

    kernel_error: KernelError = field(default_factory=KernelError)
    camera: Camera = field(default_factory=Camera)
    dead_leaves: float = 0.15
    downscaled: float = 0.15
    content: str = "photo"
    kernels: str = "any"

    def __post_init__(self) -> None:
        _check_probability("dead_leaves", self.dead_leaves)
        _check_probability("downscaled", self.downscaled)
        if self.dead_leaves + self.downscaled > 1:
            raise ValueError("dead_leaves + downscaled must be at most 1")
        if self.content not in ("photo", "fluorescence"):
            raise ValueError(f"content must be 'photo' or 'fluorescence', not {self.content!r}")
        if self.kernels not in ("any", "microscopy"):
            raise ValueError(f"kernels must be 'any' or 'microscopy', not {self.kernels!r}")

    @classmethod
    def fluorescence(cls) -> Degradation:
        """Fluorescence microscopy: synthetic fluorescence content, microscope PSFs known to within 10 % in
        size (no rotation or trajectory change, a little noise around the support, 30 % exact), Poisson
        noise of 10-10000 photons plus read noise on every crop, no curve, few saturated pixels, 16-bit-like
        (no 8-bit quantisation on 80 % of the crops), no JPEG."""
        return cls(
            kernel_error=KernelError(exact=0.3, shift=0.3, rotation=0.0, scale=0.1, width=0.3, support_noise=0.02,
                                     tail=0.05),
            camera=Camera(noise=(0.001, 0.02), poisson=1.0, photons=(10.0, 1e4), read_noise=(0.0005, 0.01),
                          response=0.0, clip=0.05, exposure=(1.05, 1.5), quantise=0.2, jpeg=0.0),
            dead_leaves=0.0, downscaled=0.0, content="fluorescence", kernels="microscopy",
        )

    @classmethod
    def from_spec(cls, spec: Any) -> Degradation:
        """``"realistic"`` (the defaults), ``"fluorescence"``, a dict of fields (``{"camera": {"jpeg": 0}, ...}``)
        or an instance."""
        if isinstance(spec, cls):
            return spec
        if spec == "realistic":
            return cls()
        if spec == "fluorescence":
            return cls.fluorescence()
        if not isinstance(spec, dict):
            raise ValueError(f"degradation must be 'realistic', 'fluorescence' or a dict of settings, not {spec!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown degradation settings {sorted(unknown)}; known: {sorted(known)}")
        parts = dict(spec)
        try:
            if isinstance(parts.get("kernel_error"), dict):
                parts["kernel_error"] = KernelError(**parts["kernel_error"])
            if isinstance(parts.get("camera"), dict):
                parts["camera"] = Camera(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in parts["camera"].items()})
        except TypeError as error:
            raise ValueError(f"bad degradation settings: {error}") from None
        return cls(**parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (the inverse of :meth:`from_spec`)."""
        return asdict(self)

    @property
    def noise_range(self) -> tuple[float, float]:
        """The range of noise std the network was told about, about (what a model card reports as its
        trained noise): the Gaussian range, widened with Poisson-Gaussian noise to the read noise below and
        the shot noise at intensity 1 of the fewest photons, ``1 / sqrt(photons_low)``, above."""
        low, high = self.camera.noise
        if self.camera.poisson > 0:
            low = min(low, self.camera.read_noise[0]) if self.camera.poisson < 1 else self.camera.read_noise[0]
            shot = 1 / math.sqrt(self.camera.photons[0])
            high = max(high, shot) if self.camera.poisson < 1 else max(self.camera.read_noise[1], shot)
        return (float(low), float(high))
