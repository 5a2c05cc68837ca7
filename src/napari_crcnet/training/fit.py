"""The training loop: :class:`TrainConfig`, :func:`train` -> :class:`TrainResult`, checkpoints, resume.

One model is trained per kernel and noise level (as in the paper), or, with ``kernel="any"``, one model over
a family of kernels and noise levels. Each step draws a batch of on-the-fly pairs
(:class:`~napari_crcnet.training.data.PairSynthesizer`, or
:class:`~napari_crcnet.training.data.FamilySynthesizer` with a kernel and noise level per crop), feeds the
network the blurred crop (paper configuration) or its closed-form MMSE estimate
``m = F^-1[conj(K) B / (|K|^2 + sigma)]`` (default configuration, computed in torch on the batch through
``BlurOperator.filter``) plus any extra input maps (:class:`NetworkInputs`, the same construction as
inference), and minimises :func:`~napari_crcnet.training.loss.crcnet_loss` with Adam.

Learning rate at step ``t`` (0-based)::

    lr(t) = lr * min(1, (t + 1) / warmup) * lr_decay ** (t // decay_every)

(paper: lr 1e-3, x0.8 every 1000 iterations, no warm-up). The rate is a pure function of ``t``, so no
scheduler state needs saving.

Gradient clipping (:class:`GradientClip`): the global gradient norm is clipped at
``min(grad_clip, clip_factor * g_mean)``, ``g_mean`` being the running mean of the clipped norms of the
steps before. Without it a run can leave a good state within a few steps and not come back (a per-kernel
fit went from +3.5 dB over MMSE at step 740 to -8 dB at step 800, the norms rising from about 75 to
thousands); with it each update stays the size of the updates that came before.

Checkpoints are one safetensors file (model weights, Adam moments, torch RNG states) whose metadata holds
a JSON document (step, NumPy generator state, model configuration, mmse_sigma, elapsed time, validation
history); a readable copy of that JSON is written next to it (``.json``). Both are written atomically
(temporary file in the same folder, then ``os.replace``): a crash while writing leaves the previous
checkpoint intact. Resuming restores every random state, so ``3 steps + resume + 3 steps`` gives the same
weights, bit for bit, as 6 steps in one go (same device, threads and library versions).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._arrays import resolve_device
from .._progress import Cancelled, ProgressCallback
from ..models.store import atomic_write
from ..operators import DEFAULT_BOUNDARY, BlurOperator
from .data import (
    FamilySynthesizer,
    PairSynthesizer,
    RealisticSynthesizer,
    check_family_options,
    check_gray_fraction,
    find_images,
    load_images,
)
from .loss import PAPER_ALPHA, PAPER_GAMMA, crcnet_loss

CHECKPOINT_FORMAT = 1
#: ``TrainConfig.kernel`` value for one model over the whole kernel family (the "any kernel" CRCNet).
ANY_KERNEL = "any"
_META_KEY = "napari_crcnet_checkpoint"


@dataclass
class TrainConfig:
    """Everything a training run needs; JSON-able apart from ``kernel``/``images`` given as arrays.

    Parameters
    ----------
    kernel : array, str or Path
        The blur kernel (convolution-oriented, odd-sized, centred; normalised to sum 1), a spec such as
        ``"gaussian:2"`` / ``"shake:21,seed=3"`` or a kernel file (see ``kernels.kernel_from_spec``); or
        ``"any"`` (:data:`ANY_KERNEL`) for one model over the kernel family of
        ``kernels.random_kernel_spec`` and the noise levels ``noise_range`` (each crop its own; the MMSE
        input uses the crop's kernel and ``suggest_sigma(noise)``).
    images : folder, file, list of them, or list of arrays
        Clear training images (``(Y, X)`` gray or ``(Y, X, 3)`` RGB arrays, channel last).
    val_images : same, optional
        Held-out validation images (removed from the training set when they are files in it). When
        None, ``n_val`` training images (chosen by the seed) are held out instead.
    channels : int
        1 (gray model; RGB images are converted to luma) or 3 (RGB; gray images are repeated).
    model : {"default", "paper"} or dict or CRCNetConfig
        Architecture: ``"default"`` = ``CRCNetConfig()`` (PReLU IU, MMSE input, skip), ``"paper"`` =
        ``CRCNetConfig.paper()``; a dict overrides fields of the default (``{"preset": "paper", ...}``
        overrides the paper one). ``in_channels`` is set from ``channels``. With ``init`` and
        ``"default"`` the init model's architecture is used; with ``kernel="any"`` the default also
        takes the noise level as an input (:data:`ANY_KERNEL_DEFAULTS`).
    noise : float
        Std of the Gaussian noise added to the blurred crops (intensity units, 0.01 = 1 %).
    photons : float, optional
        Also Poisson noise with this expected photon count at intensity 1 (microscopy).
    mmse_sigma : float, optional
        ``sigma`` of the MMSE input; None chooses it by a search on the validation pairs
        (:func:`choose_mmse_sigma`). Stored in the model card.
    iterations, batch, crop, lr, lr_decay, decay_every, warmup
        Schedule (see the module docstring); crops are ``crop x crop`` pixels.
    grad_clip : float or None
        Clip the global gradient norm to at most this value (None: no fixed bound).
    clip_factor : float or None
        Also clip it to this many times the running mean of the previous clipped norms (once
        ``CLIP_WARMUP`` steps are in that mean; see :class:`GradientClip`). None: only ``grad_clip``.
    alpha, gamma : float
        Loss weights (paper 5000 and 100).
    augment : bool
        Random flips and 90 degree rotations of the crops.
    seed : int
        Seeds the network initialisation, the crops and the noise: a run is a function of its config.
    val_every : int
        Validate every this many iterations (and at the end); 0 disables periodic validation.
    val_size : int
        Side of the centre crop of each validation image (pixels).
    n_val : int
        Images held out for validation when ``val_images`` is None.
    log_every : int
        Write a training-loss record every this many iterations.
    checkpoint : path, optional
        Checkpoint file (``.safetensors``; a ``.json`` copy of its metadata is written beside it).
    checkpoint_every_s : float
        Seconds between checkpoints (also written on stop and at the end).
    resume : bool
        Continue from ``checkpoint`` when it exists (else start fresh).
    output : path, optional
        Where to save the trained model (``store.save_model``: ``.safetensors`` + ``.json`` card).
    name, description : str
        Model card fields.
    log_path : path, optional
        JSON-lines log (appended to, so a resumed run continues it).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    amp : {"auto", "bf16", "off"}
        bfloat16 autocast for the network ("auto": on for CPU and bf16-capable CUDA).
    channels_last : bool
        Use the channels-last memory format for the network and its input (measured 10-20 % faster
        per step on this CPU with bf16; see benchmarks/results/training_speed.md).
    threads : int, optional
        ``torch.set_num_threads`` for the run.
    mmse_boundary : str
        Boundary mode of the MMSE input on each crop (the inference default, ``"taper"``).
    time_limit_s : float, optional
        Stop (checkpoint, save, ``stopped=True``) after this many seconds of this call.
    card : dict
        Extra model card fields (merged last).
    noise_range : (float, float)
        With ``kernel="any"``: noise std drawn log-uniformly in this range per crop (``noise`` unused).
    max_kernel : int
        With ``kernel="any"``: largest kernel side drawn (odd, >= 9).
    init : path or model name, optional
        Start from this model's weights (same architecture) instead of a random initialisation, e.g. a
        per-kernel fit from the shipped any-kernel model. A gray run (``channels=1``) may start from a
        lifted colour model: it begins as that model's exact gray equivalent
        (:func:`~napari_crcnet.models.crcnet.colour_to_gray`). Ignored when resuming from a checkpoint. From an
        any-kernel model (card ``mmse_sigma`` "suggest") the MMSE input keeps that model's
        ``suggest_sigma(noise)`` unless ``mmse_sigma`` is given, instead of searching for the best sigma.
    gray_fraction : float
        RGB only: the fraction of training crops made gray (luma in all three channels); validation then
        scores each image in colour and in gray. Default 0. The noise of a gray crop is still drawn per
        channel, whereas a real gray image given to an RGB model as equal channels has the same noise in
        each: measured on the any-kernel model, this does not teach the RGB model gray images (far below
        hyper-Laplacian on them, below MMSE on microscopy; ``benchmarks/results/any_kernel.md``), hence a
        separate gray model.
    degradation : "realistic", dict or None
        With ``kernel="any"``: train under the realistic degradation model
        (:class:`~napari_crcnet.training.degradation.Degradation`: kernel error, camera response, clipping,
        Gaussian or Poisson-Gaussian noise, 8-bit, JPEG, dead-leaves and downscaled content) instead of the
        exact 'valid' blur with Gaussian noise (None, the default). ``noise_range`` is then the camera's.
    mmse_noise_floor : float
        With ``kernel="any"``: the MMSE input uses ``suggest_sigma(max(noise, mmse_noise_floor))``, a floor
        for model error (kernel error, quantisation) that the noise level does not show. Stored in the card
        and used by inference. Default 0 (no floor).
    """

    kernel: Any
    images: Any
    val_images: Any = None
    channels: int = 3
    model: Any = "default"
    noise: float = 0.01
    photons: float | None = None
    mmse_sigma: float | None = None
    iterations: int = 5000
    batch: int = 8
    crop: int = 64
    lr: float = 3e-4
    lr_decay: float = 0.8
    decay_every: int = 1000
    warmup: int = 100
    grad_clip: float | None = 1000.0
    clip_factor: float | None = 4.0
    alpha: float = PAPER_ALPHA
    gamma: float = PAPER_GAMMA
    augment: bool = True
    seed: int = 0
    val_every: int = 250
    val_size: int = 128
    n_val: int = 4
    log_every: int = 50
    checkpoint: Any = None
    checkpoint_every_s: float = 120.0
    resume: bool = False
    output: Any = None
    name: str | None = None
    description: str = ""
    log_path: Any = None
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    threads: int | None = None
    mmse_boundary: str = DEFAULT_BOUNDARY
    time_limit_s: float | None = None
    card: dict = field(default_factory=dict)
    noise_range: tuple[float, float] = (0.005, 0.05)
    max_kernel: int = 31
    init: Any = None
    gray_fraction: float = 0.0
    degradation: Any = None
    mmse_noise_floor: float = 0.0

    @property
    def any_kernel(self) -> bool:
        """True for a model over the whole kernel family (``kernel="any"``)."""
        return isinstance(self.kernel, str) and self.kernel == ANY_KERNEL

    def validate(self) -> None:
        """Raise ValueError for a bad value (called by :func:`train` before any work)."""
        positive_ints = {"iterations": self.iterations, "batch": self.batch, "crop": self.crop,
                         "decay_every": self.decay_every}
        for key, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{key} must be a positive integer, not {value!r}")
        if self.crop < 8:
            raise ValueError(f"crop must be at least 8 pixels, not {self.crop}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, not {self.lr!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], not {self.lr_decay!r}")
        if self.noise < 0 or not math.isfinite(self.noise):
            raise ValueError(f"noise must be a standard deviation >= 0, not {self.noise!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), not {self.channels!r}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'off', not {self.amp!r}")
        if self.mmse_sigma is not None and not self.mmse_sigma > 0:
            raise ValueError(f"mmse_sigma must be positive, not {self.mmse_sigma!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, not {self.grad_clip!r}")
        if self.clip_factor is not None and not self.clip_factor > 1:
            raise ValueError(f"clip_factor must be > 1 or None, not {self.clip_factor!r}")
        check_gray_fraction(self.gray_fraction, self.channels)
        if self.any_kernel:
            check_family_options(self.max_kernel, self.noise_range)
            if self.photons is not None:
                raise ValueError("photons (Poisson noise) is not supported with kernel='any'")
            if self.mmse_sigma is not None:
                raise ValueError("mmse_sigma is chosen per crop (suggest_sigma of its noise) with kernel='any'")
        if (self.degradation is not None or self.mmse_noise_floor) and not self.any_kernel:
            raise ValueError("degradation and mmse_noise_floor need kernel='any'")
        if self.degradation is not None:
            from .degradation import Degradation

            Degradation.from_spec(self.degradation)
            if self.gray_fraction:
                raise ValueError("gray_fraction is not used with a degradation model")
        if not (math.isfinite(self.mmse_noise_floor) and 0 <= self.mmse_noise_floor < 1):
            raise ValueError(f"mmse_noise_floor must be in [0, 1), not {self.mmse_noise_floor!r}")

    def summary(self) -> dict[str, Any]:
        """JSON-able description (arrays replaced by a short note) for logs and cards."""
        out = {}
        for key, value in asdict(self).items():
            out[key] = _describe(value)
        return out


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : CRCNet
        The trained network (on the training device, eval mode).
    card : dict
        Its model card (as saved when ``output`` was given).
    steps : int
        Iterations completed in total (including before a resume).
    stopped : bool
        True when stopped early (stop_event, a progress callback raising Cancelled, time limit).
    elapsed_s : float
        Training wall time in seconds, summed over resumed runs.
    model_path, checkpoint_path : Path or None
        Files written.
    history : list of dict
        Validation records of this call (see the log format in the training README).
    metrics : dict
        Final validation metrics (model vs MMSE).
    """

    model: Any
    card: dict
    steps: int
    stopped: bool
    elapsed_s: float
    model_path: Path | None = None
    checkpoint_path: Path | None = None
    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- helpers
def _describe(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return f"array{list(value.shape)}"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def resolve_kernel(kernel: Any) -> np.ndarray:
    """Kernel array from an array, a spec string (``"gaussian:2"``) or a file; validated, 2D, sum 1."""
    from .. import kernels

    if isinstance(kernel, (str, os.PathLike)):
        kernel = kernels.kernel_from_spec(str(kernel))
    kernel = kernels.validate_kernel(np.asarray(kernel), ndim=2)
    return np.asarray(kernel, dtype=np.float64)


#: The default architecture's overrides for ``kernel="any"``: the network is told each image's noise level,
#: a 3x3 lift keeps the units at the widths of the RGB network (3, 6, ..., 96) whatever the input maps, and
#: the RUs use ReLU (with the lift, sigmoid RUs learned far slower: benchmarks/results/training_any.md).
ANY_KERNEL_DEFAULTS: dict[str, Any] = {"extra_inputs": ["noise"], "features": 3, "ru_activation": "relu"}


def run_model_config(config: TrainConfig):
    """The architecture of a run: the ``init`` model's when starting from one with ``model="default"``;
    for ``kernel="any"`` the default gets :data:`ANY_KERNEL_DEFAULTS`; else :func:`resolve_model_config`."""
    model = config.model
    if config.init is not None and isinstance(model, str) and model == "default":
        from ..models.store import read_config

        init_config = read_config(config.init)
        gray_from_colour = config.channels == 1 and init_config.has_gray_equivalent
        if init_config.in_channels != config.channels and not gray_from_colour:
            raise ValueError(
                f"{config.init} is a {init_config.in_channels}-channel model, this run has {config.channels}"
            )
        model = {**init_config.to_dict(), "in_channels": config.channels}
    elif config.any_kernel and isinstance(model, str) and model == "default":
        model = dict(ANY_KERNEL_DEFAULTS)
    return resolve_model_config(model, config.channels)


def resolve_model_config(model: Any, channels: int):
    """A ``CRCNetConfig`` from ``"default"``, ``"paper"``, a dict of overrides or a config."""
    from ..models.crcnet import CRCNetConfig

    if isinstance(model, CRCNetConfig):
        data = model.to_dict()
        data["in_channels"] = channels
        return CRCNetConfig.from_dict(data)
    if isinstance(model, str):
        model = {"preset": model}
    if not isinstance(model, dict):
        raise ValueError(f"model must be 'default', 'paper', a dict or a CRCNetConfig, not {model!r}")
    overrides = dict(model)
    preset = overrides.pop("preset", "default")
    if preset == "paper":
        base = CRCNetConfig.paper(in_channels=channels).to_dict()
    elif preset == "default":
        base = CRCNetConfig(in_channels=channels).to_dict()
    else:
        raise ValueError(f"unknown model preset {preset!r}: use 'default' or 'paper'")
    base.update(overrides)
    base["in_channels"] = channels
    return CRCNetConfig.from_dict(base)


#: Steps whose norms enter :class:`GradientClip`'s running mean before it clips relative to it.
CLIP_WARMUP = 25
#: Weight of the past in that running mean (an exponential moving average over about 100 steps).
CLIP_MOMENTUM = 0.99


@dataclass
class GradientClip:
    """Clip the global gradient norm at ``min(absolute, factor * g_mean)`` (either may be None: no bound).

    ``g_mean`` is the bias-corrected exponential moving average (momentum ``CLIP_MOMENTUM``) of the norms
    of the previous finite steps *after* clipping, so a burst of large gradients cannot raise its own
    bound faster than ``factor`` allows; it is used once ``CLIP_WARMUP`` steps are in it. The state
    (``total``, ``count``) goes into checkpoints, so a resumed run clips exactly as one long run would.
    """

    absolute: float | None = None
    factor: float | None = None
    total: float = 0.0
    count: int = 0

    def limit(self) -> float:
        """The bound for the next step."""
        bound = self.absolute if self.absolute is not None else math.inf
        if self.factor is not None and self.count >= CLIP_WARMUP:
            mean = self.total / (1.0 - CLIP_MOMENTUM**self.count)
            bound = min(bound, self.factor * mean)
        return bound

    def __call__(self, parameters: Any) -> tuple[float, bool]:
        """Clip the gradients of ``parameters`` in place; returns (norm before clipping, whether clipped)."""
        bound = self.limit()
        norm = float(torch.nn.utils.clip_grad_norm_(parameters, bound))
        if math.isfinite(norm):
            self.total = CLIP_MOMENTUM * self.total + (1.0 - CLIP_MOMENTUM) * min(norm, bound)
            self.count += 1
        return norm, norm > bound

    def state_dict(self) -> dict[str, float]:
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total, self.count = float(state["total"]), int(state["count"])


def learning_rate(config: TrainConfig, step: int) -> float:
    """``lr * min(1, (step + 1) / warmup) * lr_decay ** (step // decay_every)`` (step is 0-based)."""
    warm = min(1.0, (step + 1) / config.warmup) if config.warmup and config.warmup > 0 else 1.0
    return config.lr * warm * config.lr_decay ** (step // config.decay_every)


def mmse_filter(operator: BlurOperator, blurred: torch.Tensor, sigma: float) -> torch.Tensor:
    """Closed-form MMSE estimate ``F^-1[conj(K) B / (|K|^2 + sigma)]`` of a batch, in torch."""
    return operator.filter(blurred, lambda K: K.conj() / (K.abs() ** 2 + sigma))


class NetworkInputs:
    """Turns blurred crops into the network's input and the MMSE baseline it is scored against.

    Per-kernel (``kernel`` given): the MMSE estimate of the whole batch with that kernel at ``sigma``.
    Any-kernel (``kernel`` None): each crop's own kernel and ``sigma = deconv.suggest_sigma(max(noise, floor))``
    (``noise_floor``, 0 by default).
    The baseline is that estimate, or (per-kernel, ``baseline_sigma`` given) the MMSE estimate at the best
    sigma when the input uses another one. The input is then
    :func:`~napari_crcnet.models.crcnet.network_input` of the estimate (or of the blurred crop for
    ``config.input == "blurred"``) with the configured extra maps, exactly as inference builds it.
    """

    def __init__(
        self, model_config: Any, device: torch.device, boundary: str, kernel: Any = None, sigma: float | None = None,
        noise: float | None = None, baseline_sigma: float | None = None, noise_floor: float = 0.0,
    ) -> None:
        self.config = model_config
        self.noise_floor = float(noise_floor)
        self.device = device
        self.boundary = boundary
        self.operator = None if kernel is None else BlurOperator(kernel, boundary=boundary, device=device)
        self.sigma = sigma
        self.noise = noise
        self.baseline_sigma = baseline_sigma

    def __call__(
        self, blurred: torch.Tensor, kernels: list[np.ndarray] | None = None, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(net_input, mmse_estimate)`` of a batch ``(B, C, Y, X)``."""
        from ..deconv import suggest_sigma
        from ..models.crcnet import network_input

        if self.operator is not None:
            estimate = mmse_filter(self.operator, blurred, self.sigma)
            noise = self.noise
        else:
            estimate = torch.cat([
                mmse_filter(BlurOperator(k, boundary=self.boundary, device=self.device), blurred[i : i + 1],
                            suggest_sigma(float(noise[i]), floor=self.noise_floor))
                for i, k in enumerate(kernels)
            ])
        image = estimate if self.config.input == "mmse" else blurred
        return network_input(self.config, image, blurred, noise), estimate

    def baseline(self, blurred: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """The MMSE estimate a model is scored against: ``estimate`` (the input's), or the one at
        ``baseline_sigma`` when set (a fit whose input keeps an init model's sigma is still compared with
        the best MMSE, not a weaker one)."""
        if self.baseline_sigma is None or self.operator is None:
            return estimate
        return mmse_filter(self.operator, blurred, self.baseline_sigma)


def _autocast(device: torch.device, amp: str):
    if amp == "off":
        return contextlib.nullcontext()
    if device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _metric_functions():
    """(psnr, ssim) from napari_crcnet.metrics (SSIM of RGB on the Y channel, as in the paper)."""
    try:
        from ..metrics import psnr, ssim
    except ImportError:  # metrics.py not installed in this checkout: same definitions, via scikit-image
        psnr, ssim = _fallback_psnr, _fallback_ssim
    return psnr, ssim


def _luma(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    if channel_axis is None:
        return image
    rgb = np.moveaxis(image, channel_axis, -1)
    return (16 + rgb @ np.array([65.481, 128.553, 24.966])) / 255.0


def _fallback_psnr(reference, estimate, data_range=1.0, channel_axis=None, crop=0):
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(estimate, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def _fallback_ssim(reference, estimate, channel_axis=None, crop=0):
    from skimage.metrics import structural_similarity

    a, b = _luma(np.asarray(reference, np.float64), channel_axis), _luma(np.asarray(estimate, np.float64), channel_axis)
    return float(structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def _to_image(t: torch.Tensor) -> tuple[np.ndarray, int | None]:
    """(1, C, Y, X) tensor -> clipped float64 ``(Y, X)`` or ``(C, Y, X)`` array and its channel axis."""
    array = t.detach().float().cpu().numpy()[0].astype(np.float64)
    array = np.clip(array, 0.0, 1.0)
    if array.shape[0] == 1:
        return array[0], None
    return array, 0


def choose_mmse_sigma(
    pairs: list[tuple[torch.Tensor, torch.Tensor]], operator: BlurOperator, noise: float
) -> tuple[float, dict[str, float]]:
    """The MMSE ``sigma`` that maximises the mean PSNR on the validation ``pairs``.

    A grid of 31 values ``10**linspace(-5, -0.5)`` (factor 1.44 apart) plus ``deconv.suggest_sigma(noise)``
    when available is searched; the returned dict maps each tried sigma to its mean PSNR (dB). This is
    the sigma of the model card: the network learns to improve on exactly that estimate.
    """
    psnr, _ = _metric_functions()
    candidates = list(10.0 ** np.linspace(-5, -0.5, 31))
    with contextlib.suppress(Exception):
        from ..deconv import suggest_sigma

        candidates.append(float(suggest_sigma(noise)))
    scores: dict[str, float] = {}
    best, best_score = candidates[0], -math.inf
    with torch.no_grad():
        for sigma in candidates:
            values = []
            for blurred, clear in pairs:
                estimate, axis = _to_image(mmse_filter(operator, blurred, sigma))
                reference, _ = _to_image(clear)
                values.append(float(psnr(reference, estimate, channel_axis=axis)))
            score = float(np.mean(values))
            scores[f"{sigma:.6g}"] = round(score, 4)
            if score > best_score:
                best, best_score = float(sigma), score
    return best, scores


def _iu_activation(model: torch.nn.Module) -> torch.nn.Module | None:
    """The Integrative Unit's activation module (for the dead-unit check)."""
    integrate = getattr(model, "integrate", None)
    if integrate is not None and hasattr(integrate, "act"):
        return integrate.act
    found = [m for m in model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.PReLU))]
    return found[-1] if found else None


def evaluate(
    model: torch.nn.Module,
    pairs: list[tuple],
    inputs: NetworkInputs,
    amp: str = "off",
    channels_last: bool = True,
) -> dict[str, float]:
    """Mean PSNR/SSIM of the model and of its MMSE baseline on ``pairs``, and the IU dead-unit fraction.

    ``pairs`` are ``(blurred, clear)`` (per-kernel) or ``(blurred, clear, kernels, noise)`` (any-kernel)
    tuples of one image each; ``inputs`` makes the network input and the baseline.
    Outputs are clipped to [0, 1] before scoring; SSIM of RGB is on the Y channel (``metrics.ssim``).
    ``iu_dead`` is the fraction of the IU's hidden channels whose pre-activation is never positive on any
    validation pixel: such a ReLU unit passes no signal and gets no gradient (the paper's ReLU IU can die
    entirely, giving a flat output).
    """
    psnr, ssim = _metric_functions()
    device = next(model.parameters()).device
    act = _iu_activation(model)
    peak: list[torch.Tensor] = []

    def hook(_module, inputs, _output):
        pre = inputs[0].detach().float()
        peak.append(pre.amax(dim=tuple(d for d in range(pre.ndim) if d != 1)))

    handle = act.register_forward_hook(hook) if act is not None else None
    was_training = model.training
    model.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "mmse_psnr": [], "mmse_ssim": []}
    try:
        with torch.no_grad():
            for blurred, clear, *degradation in pairs:
                net_input, estimate = inputs(blurred.to(device), *degradation)
                estimate = inputs.baseline(blurred.to(device), estimate)
                if channels_last:
                    net_input = net_input.contiguous(memory_format=torch.channels_last)
                with _autocast(device, amp):
                    out = model(net_input)
                reference, axis = _to_image(clear)
                restored, _ = _to_image(out.float())
                baseline, _ = _to_image(estimate)
                scores["psnr"].append(float(psnr(reference, restored, channel_axis=axis)))
                scores["ssim"].append(float(ssim(reference, restored, channel_axis=axis)))
                scores["mmse_psnr"].append(float(psnr(reference, baseline, channel_axis=axis)))
                scores["mmse_ssim"].append(float(ssim(reference, baseline, channel_axis=axis)))
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    result = {key: round(float(np.mean(values)), 4) for key, values in scores.items()}
    result["gain_psnr"] = round(result["psnr"] - result["mmse_psnr"], 4)
    result["gain_ssim"] = round(result["ssim"] - result["mmse_ssim"], 4)
    if peak:
        alive = torch.stack(peak).amax(dim=0) > 0
        result["iu_dead"] = round(1.0 - float(alive.float().mean()), 4)
    return result


# ----------------------------------------------------------------------------------------- logging
class _Log:
    """JSON-lines log to a file and/or a callable taking each record (a dict)."""

    def __init__(self, target: Any, path: Any) -> None:
        self.callback: Callable[[dict], None] | None = target if callable(target) else None
        file_path = target if isinstance(target, (str, os.PathLike)) else path
        self.path = Path(file_path) if file_path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, record: dict) -> None:
        record = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **record}
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, allow_nan=True) + "\n")
        if self.callback is not None:
            self.callback(record)


# ------------------------------------------------------------------------------------- checkpoints
def checkpoint_json_path(path: Any) -> Path:
    """The readable JSON copy written beside a checkpoint (``x.ckpt.safetensors`` -> ``x.ckpt.json``)."""
    path = Path(path)
    return path.with_suffix(".json") if path.suffix == ".safetensors" else path.with_name(path.name + ".json")


def _write_tensors(tensors: dict[str, torch.Tensor], tmp: str, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, tmp, metadata=metadata)


def save_checkpoint(
    path: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    synthesizer: PairSynthesizer,
    meta: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically (see the module docstring); ``meta`` must be JSON-able."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        tensors[f"model.{key}"] = value.detach().cpu().contiguous().clone()
    state = optimizer.state_dict()
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous().clone()
    rng = synthesizer.state_dict()
    tensors["rng.noise"] = rng["torch"]
    tensors["rng.global"] = torch.get_rng_state()
    document = dict(meta)
    document.update(
        format=CHECKPOINT_FORMAT,
        numpy_rng=rng["numpy"],
        param_groups=state["param_groups"],
        saved=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    text = json.dumps(document, allow_nan=True)
    atomic_write(path, lambda tmp: _write_tensors(tensors, tmp, {_META_KEY: text}))

    def write_json(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, allow_nan=True)

    atomic_write(checkpoint_json_path(path), write_json)
    return path


def load_checkpoint(path: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint: ``(tensors, metadata document)``. Never unpickles. ValueError if unreadable."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:
        raise ValueError(f"{path}: not a readable training checkpoint ({error})") from error
    if _META_KEY not in metadata:
        raise ValueError(f"{path}: a safetensors file, but not a napari-crcnet training checkpoint")
    return tensors, json.loads(metadata[_META_KEY])


def _restore(
    tensors: dict[str, torch.Tensor],
    document: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    synthesizer: PairSynthesizer,
) -> None:
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=True)
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    groups = []
    for group in document["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    optimizer.load_state_dict({"state": slots, "param_groups": groups})
    synthesizer.load_state_dict({"numpy": document["numpy_rng"], "torch": tensors["rng.noise"]})
    torch.set_rng_state(tensors["rng.global"])


def family_sha256(config: TrainConfig) -> str:
    """Identity of an any-kernel training problem (kernel family, size limit, noise range), as a sha256."""
    import hashlib

    from ..kernels import KERNEL_FAMILY

    problem = {"kernel": ANY_KERNEL, "family": KERNEL_FAMILY, "max_kernel": int(config.max_kernel),
               "noise_range": [float(v) for v in config.noise_range]}
    if config.degradation is not None:  # the older runs' identity is unchanged
        from .degradation import Degradation

        problem["degradation"] = Degradation.from_spec(config.degradation).to_dict()
        problem["mmse_noise_floor"] = float(config.mmse_noise_floor)
    text = json.dumps(problem, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _initialise_from(model: torch.nn.Module, init: Any, model_config: Any) -> dict[str, Any]:
    """Copy the weights of the model ``init`` (path or name) into ``model``; the architectures must match,
    except that a gray run may start from a lifted colour model (converted exactly by
    :func:`~napari_crcnet.models.crcnet.colour_to_gray`). Returns the init model's card."""
    from ..models.crcnet import colour_to_gray
    from ..models.store import load_model

    source, card = load_model(init, device="cpu")
    if model_config.in_channels == 1 and source.config.has_gray_equivalent:
        source = colour_to_gray(source)
    if source.config.to_dict() != model_config.to_dict():
        raise ValueError(
            f"cannot start from {card.get('name', init)!r}: its architecture {source.config.to_dict()} differs "
            f"from this run's {model_config.to_dict()} (pick the same --config / channels)"
        )
    model.load_state_dict(source.state_dict())
    return card


# ---------------------------------------------------------------------------------------------- train
def _split_validation(config: TrainConfig, synthesizer: PairSynthesizer) -> tuple[list, list[str], str]:
    """Validation images: the given ones, or ``n_val`` training images held out (chosen by the seed)."""
    if config.val_images is not None:
        min_size = max(synthesizer.big) - config.crop + 8  # kernel size + 8 pixels of valid blur
        images, names = load_images(config.val_images, config.channels, min_size=min_size)
        return images, names, "held-out arrays" if _is_arrays(config.val_images) else "held-out files"
    n = len(synthesizer.images)
    if n >= 2 * max(config.n_val, 1) and config.n_val > 0:
        picks = sorted(np.random.default_rng(config.seed + 7919).choice(n, config.n_val, replace=False).tolist())
        images = [synthesizer.images[i] for i in picks]
        names = [synthesizer.names[i] for i in picks]
        synthesizer.images = [im for i, im in enumerate(synthesizer.images) if i not in picks]
        synthesizer.names = [nm for i, nm in enumerate(synthesizer.names) if i not in picks]
        return images, names, f"{config.n_val} training images held out"
    # too few images to hold any out: validate on (crops of) training images, and say so
    return list(synthesizer.images[:4]), list(synthesizer.names[:4]), "training images (too few to hold out)"


def _sources(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return "1 array"
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, np.ndarray) for v in value):
            return f"{len(value)} arrays"
        return [str(v) for v in value]
    return str(value)


def train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    stop_event: threading.Event | None = None,
    log: Any = None,
) -> TrainResult:
    """Train a CRCNet for one kernel and noise level (see the module docstring for the schedule).

    Parameters
    ----------
    config : TrainConfig
        What to train (kernel, images, architecture, schedule, files).
    progress : callable, optional
        ``progress(done_iterations, total_iterations)`` after every step; raising
        :class:`~napari_crcnet._progress.Cancelled` stops training like ``stop_event``.
    stop_event : threading.Event, optional
        Set it (from any thread) to stop after the current step.
    log : path or callable, optional
        JSON-lines log file (default ``config.log_path``) or a function receiving each record dict.
        Records have ``event`` = ``"start"``, ``"train"`` (mean loss, lr, gradient norm, steps/s),
        ``"val"`` (model and MMSE PSNR/SSIM, gain, ``iu_dead``), ``"checkpoint"``, ``"end"``.

    Returns
    -------
    TrainResult
        On a stop (event, Cancelled, time limit) the run still writes its checkpoint (resumable) and, when
        ``config.output`` is set, saves the model trained so far; ``result.stopped`` is True. A
        ``KeyboardInterrupt`` writes the checkpoint and is re-raised.

    Raises
    ------
    ValueError
        Bad configuration, unreadable images, a checkpoint for another kernel or architecture.
    """
    from ..models.crcnet import CRCNet

    config.validate()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    device = resolve_device(config.device)
    kernel = None if config.any_kernel else resolve_kernel(config.kernel)
    model_config = run_model_config(config)
    from ..models.store import kernel_sha256

    sha = family_sha256(config) if config.any_kernel else kernel_sha256(kernel)
    amp = config.amp
    if amp == "auto":
        amp = "bf16" if device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported()) else "off"

    val_files: list[Path] = []
    if config.val_images is not None and not _is_arrays(config.val_images):
        val_files = find_images(config.val_images)
    if config.degradation is not None:
        synthesizer: PairSynthesizer = RealisticSynthesizer(
            config.images, channels=config.channels, crop=config.crop, max_kernel=config.max_kernel,
            degradation=config.degradation, augment=config.augment, seed=config.seed, device=device,
            exclude=val_files,
        )
    elif config.any_kernel:
        synthesizer = FamilySynthesizer(
            config.images, channels=config.channels, crop=config.crop, max_kernel=config.max_kernel,
            noise_range=config.noise_range, augment=config.augment, seed=config.seed, device=device,
            exclude=val_files, gray_fraction=config.gray_fraction,
        )
    else:
        synthesizer = PairSynthesizer(
            config.images, kernel, channels=config.channels, crop=config.crop, noise=config.noise,
            photons=config.photons, augment=config.augment, seed=config.seed, device=device, exclude=val_files,
            gray_fraction=config.gray_fraction,
        )
    val_images, val_names, val_note = _split_validation(config, synthesizer)
    if config.gray_fraction > 0:
        val_note += ", each in colour and in gray"
    val_pairs = synthesizer.validation_pairs(val_images, size=config.val_size, seed=config.seed + 104729, stored=True)

    torch.manual_seed(config.seed)
    model = CRCNet(model_config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    clipper = GradientClip(config.grad_clip, config.clip_factor)

    logger = _Log(log, config.log_path)
    checkpoint = Path(config.checkpoint) if config.checkpoint is not None else None
    step, elapsed_before, history_before = 0, 0.0, []
    sigma_scores: dict[str, float] = {}
    resumed = False
    mmse_sigma = config.mmse_sigma
    baseline_sigma = None  # the best MMSE sigma, kept apart when the input uses another one
    input_sigma_from_init = None
    if config.resume and checkpoint is not None and checkpoint.exists():
        tensors, document = load_checkpoint(checkpoint)
        if document.get("kernel_sha256") != sha:
            raise ValueError(f"{checkpoint} was trained for another kernel; delete it or use another --checkpoint")
        if document.get("model_config") != model_config.to_dict():
            raise ValueError(f"{checkpoint} holds another architecture {document.get('model_config')}")
        _restore(tensors, document, model, optimizer, synthesizer)
        step = int(document["step"])
        elapsed_before = float(document.get("elapsed_s", 0.0))
        history_before = list(document.get("history", []))
        mmse_sigma = document["mmse_sigma"]
        baseline_sigma = document.get("baseline_sigma")
        sigma_scores = document.get("sigma_scores", {})
        if document.get("grad_clip") is not None:  # older checkpoints: the running mean starts again
            clipper.load_state_dict(document["grad_clip"])
        resumed = True
    elif config.init is not None:
        init_card = _initialise_from(model, config.init, model_config)
        if mmse_sigma is None and init_card.get("mmse_sigma") == "suggest" and not config.any_kernel:
            # An any-kernel init learned on MMSE inputs made with suggest_sigma(noise): keep that input
            # rather than a searched sigma (often 2x larger), so the fit starts where the init model is good.
            from ..deconv import suggest_sigma

            input_sigma_from_init = float(suggest_sigma(config.noise, floor=init_card.get("mmse_noise_floor") or 0.0))
    if config.any_kernel:
        mmse_sigma = "suggest"  # per crop: deconv.suggest_sigma(noise)
        inputs = NetworkInputs(model_config, device, config.mmse_boundary, noise_floor=config.mmse_noise_floor)
    else:
        if mmse_sigma is None:
            mmse_operator = BlurOperator(kernel, boundary=config.mmse_boundary, device=device)
            mmse_sigma, sigma_scores = choose_mmse_sigma(val_pairs, mmse_operator, config.noise)
            if input_sigma_from_init is not None:
                baseline_sigma, mmse_sigma = float(mmse_sigma), input_sigma_from_init
        mmse_sigma = float(mmse_sigma)
        inputs = NetworkInputs(model_config, device, config.mmse_boundary, kernel, mmse_sigma, config.noise,
                               baseline_sigma=baseline_sigma)

    logger({
        "event": "start", "step": step, "resumed": resumed, "iterations": config.iterations,
        "device": str(device), "amp": amp, "threads": torch.get_num_threads(), "kernel_sha256": sha,
        "mmse_sigma": mmse_sigma, "model_config": model_config.to_dict(),
        "n_parameters": sum(p.numel() for p in model.parameters()), "n_train_images": len(synthesizer),
        "validation": {"images": val_names, "note": val_note, "size": config.val_size},
        "config": config.summary(),
    })

    history: list[dict] = []
    state = {"loss": 0.0, "grad": 0.0, "count": 0, "skipped": 0, "clipped": 0}
    start = time.perf_counter()
    last_checkpoint = start
    window_start, window_step = start, step

    def meta() -> dict[str, Any]:
        return {
            "step": step, "kernel_sha256": sha, "model_config": model_config.to_dict(), "mmse_sigma": mmse_sigma,
            "baseline_sigma": baseline_sigma, "sigma_scores": sigma_scores,
            "elapsed_s": elapsed_before + time.perf_counter() - start,
            "history": (history_before + history)[-200:], "train_config": config.summary(),
            "grad_clip": clipper.state_dict(),
        }

    def write_checkpoint(reason: str) -> None:
        nonlocal last_checkpoint
        if checkpoint is None:
            return
        save_checkpoint(checkpoint, model, optimizer, synthesizer, meta())
        last_checkpoint = time.perf_counter()
        logger({"event": "checkpoint", "step": step, "path": str(checkpoint), "reason": reason})

    def validate() -> dict[str, Any]:
        record = evaluate(model, val_pairs, inputs, amp, config.channels_last)
        record = {"event": "val", "step": step, **record}
        history.append(record)
        logger(record)
        return record

    stopped = False
    interrupted = False
    model.train()
    try:
        while step < config.iterations:
            if stop_event is not None and stop_event.is_set():
                stopped = True
                break
            if config.time_limit_s is not None and time.perf_counter() - start >= config.time_limit_s:
                stopped = True
                break
            rate = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = rate
            if config.any_kernel:
                blurred, clear, kernels, noise = synthesizer.sample_degraded(config.batch)
            else:
                (blurred, clear), kernels, noise = synthesizer.sample(config.batch), None, None
            with torch.no_grad():
                net_input, _ = inputs(blurred, kernels, noise)
            if config.channels_last:
                net_input = net_input.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                out = model(net_input)
            loss = crcnet_loss(out.float(), clear, alpha=config.alpha, gamma=config.gamma)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm, clipped = clipper(model.parameters())
            loss_value = float(loss.detach())
            if math.isfinite(loss_value) and math.isfinite(grad_norm):
                optimizer.step()
                state["loss"] += loss_value
                state["grad"] += grad_norm
                state["count"] += 1
                state["clipped"] += clipped
            else:  # a non-finite batch would poison Adam's moments: skip it, and say so in the log
                state["skipped"] += 1
            step += 1
            if config.log_every and (step % config.log_every == 0 or step == config.iterations):
                now = time.perf_counter()
                count = max(state["count"], 1)
                logger({
                    "event": "train", "step": step, "loss": round(state["loss"] / count, 6), "lr": rate,
                    "grad_norm": round(state["grad"] / count, 4), "skipped": state["skipped"],
                    "clipped": state["clipped"],
                    "steps_per_s": round((step - window_step) / max(now - window_start, 1e-9), 4),
                    "elapsed_s": round(elapsed_before + now - start, 1),
                })
                state.update(loss=0.0, grad=0.0, count=0, skipped=0, clipped=0)
                window_start, window_step = now, step
            if config.val_every and step % config.val_every == 0 and step < config.iterations:
                validate()
            if checkpoint is not None and time.perf_counter() - last_checkpoint >= config.checkpoint_every_s:
                write_checkpoint("periodic")
            if progress is not None:
                progress(step, config.iterations)
    except Cancelled:
        stopped = True
    except KeyboardInterrupt:
        interrupted = True
        stopped = True

    write_checkpoint("stop" if stopped else "end")
    if interrupted:
        logger({"event": "end", "step": step, "stopped": True, "reason": "KeyboardInterrupt"})
        raise KeyboardInterrupt

    final = validate() if val_pairs else {}
    elapsed = elapsed_before + time.perf_counter() - start
    metrics = {
        "validation": {
            "model_psnr": final.get("psnr"), "model_ssim": final.get("ssim"),
            "mmse_psnr": final.get("mmse_psnr"), "mmse_ssim": final.get("mmse_ssim"),
            "gain_psnr": final.get("gain_psnr"), "gain_ssim": final.get("gain_ssim"),
            "iu_dead": final.get("iu_dead"), "images": val_names, "note": val_note,
            "crop": config.val_size, "ssim_channel": "Y (BT.601) for RGB",
        }
    }
    card = {
        "name": config.name or (Path(config.output).stem if config.output else "crcnet"),
        "description": config.description,
        "kernel": None if kernel is None else kernel.tolist(),
        "kernel_sha256": None if kernel is None else sha,
        "noise": list(synthesizer.noise_range) if config.any_kernel else config.noise,
        "photons": config.photons,
        "mmse_sigma": mmse_sigma,
        "mmse_boundary": config.mmse_boundary,
        "training": {
            "images": _sources(config.images), "n_train_images": len(synthesizer),
            "val_images": val_names, "validation": val_note,
            "channels": config.channels, "gray_from_rgb": "BT.601 luma" if config.channels == 1 else None,
            "iterations": step, "target_iterations": config.iterations, "stopped_early": stopped,
            "batch": config.batch, "crop": config.crop, "augment": config.augment,
            "gray_fraction": config.gray_fraction,
            "pairs": "valid blur of random crops (periodic operator on crop + kernel radius, centre kept) + noise",
            "optimizer": "Adam", "lr": config.lr, "lr_decay": config.lr_decay, "decay_every": config.decay_every,
            "warmup": config.warmup, "grad_clip": config.grad_clip, "clip_factor": config.clip_factor,
            "loss": f"{config.alpha:g} * mean smoothL1 + {config.gamma:g} * (mean (dh)^2 + mean (dv)^2)",
            "seed": config.seed, "amp": amp, "device": str(device), "threads": torch.get_num_threads(),
            "wall_time_s": round(elapsed, 1), "torch": torch.__version__,
            "mmse_sigma_search": sigma_scores,
            "baseline_mmse_sigma": baseline_sigma if baseline_sigma is not None else mmse_sigma,
        },
        "metrics": metrics,
    }
    if config.any_kernel:
        from ..kernels import KERNEL_FAMILY

        card["kernel_family"] = {"types": dict(KERNEL_FAMILY), "max_kernel": config.max_kernel,
                                 "sampler": "napari_crcnet.kernels.random_kernel_spec"}
        card["training"]["pairs"] = ("valid blur of random crops, each by its own kernel from kernel_family and "
                                     "Gaussian noise of std log-uniform in noise")
        if config.mmse_noise_floor:
            card["mmse_noise_floor"] = float(config.mmse_noise_floor)
        if config.degradation is not None:
            card["training"]["degradation"] = synthesizer.degradation.to_dict()
            card["training"]["pairs"] = ("realistic degradation (training/degradation.py): each crop blurred in linear "
                                         "light by its own kernel from kernel_family, camera noise, response, "
                                         "clipping, 8-bit and JPEG; the network gets a perturbed kernel")
    card = _merge(card, config.card)
    model_path = None
    if config.output is not None:
        from ..models.store import save_model

        card = save_model(config.output, model, card)
        model_path = Path(config.output)
        if model_path.suffix != ".safetensors":
            model_path = model_path.with_name(model_path.name + ".safetensors")
    logger({"event": "end", "step": step, "stopped": stopped, "elapsed_s": round(elapsed, 1),
            "model_path": str(model_path) if model_path else None,
            **{k: final.get(k) for k in ("psnr", "mmse_psnr", "gain_psnr")}})
    model.eval()
    return TrainResult(model=model, card=card, steps=step, stopped=stopped, elapsed_s=elapsed,
                       model_path=model_path, checkpoint_path=checkpoint, history=history, metrics=metrics)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _is_arrays(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (
        isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, np.ndarray) for v in value)
    )
