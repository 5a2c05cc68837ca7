"""What a training run is: :class:`TrainConfig`, :class:`TrainResult`, and how a config resolves (kernel,
architecture, the identity of an any-kernel problem)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..operators import DEFAULT_BOUNDARY
from .data import check_family_options, check_gray_fraction
from .loss import PAPER_ALPHA, PAPER_GAMMA

#: ``TrainConfig.kernel`` value for one model over the whole kernel family (the "any kernel" CRCNet).
ANY_KERNEL = "any"


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
    start_from_input : bool
        After loading ``init``, scale its last convolution to almost zero
        (:meth:`~napari_crcnet.models.crcnet.CRCNet.start_from_input`), so that training starts from the
        input estimate's quality rather than the init model's: what it then learns is only what helps on
        this run's data. The init model's features are kept. Default False.
    data_step : "init", dict or None
        The data step after the network (:mod:`napari_crcnet.datastep`), in the loss and in the card: a rule
        ``{"mu", "power", "noise_floor"}``; ``"init"`` (the default) the ``init`` model's rule (none without
        one), so a fine-tune keeps what its model does at inference; None: no data step.
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
    start_from_input: bool = False
    data_step: Any = "init"

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
        synthetic = False
        if self.degradation is not None:
            from .degradation import Degradation

            synthetic = Degradation.from_spec(self.degradation).content == "fluorescence"
            if self.gray_fraction:
                raise ValueError("gray_fraction is not used with a degradation model")
        if self.images is None and not synthetic:
            raise ValueError("images: give clear training images (only degradation='fluorescence' needs none)")
        if not (math.isfinite(self.mmse_noise_floor) and 0 <= self.mmse_noise_floor < 1):
            raise ValueError(f"mmse_noise_floor must be in [0, 1), not {self.mmse_noise_floor!r}")
        if self.data_step is not None and self.data_step != "init":
            from ..datastep import check_rule

            check_rule(self.data_step)

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


#: Model fields a run from ``init`` may change without changing the weights' shapes.
INIT_OVERRIDES = {"input"}


def run_model_config(config: TrainConfig):
    """The architecture of a run: the ``init`` model's when starting from one with ``model="default"`` (or
    with a dict of :data:`INIT_OVERRIDES` only, fields that leave the weights' shapes, e.g. ``{"input": ...}``);
    for ``kernel="any"`` the default gets :data:`ANY_KERNEL_DEFAULTS`; else :func:`resolve_model_config`."""
    model = config.model
    input_only = isinstance(model, dict) and set(model) <= INIT_OVERRIDES
    if config.init is not None and (input_only or (isinstance(model, str) and model == "default")):
        from ..models.store import read_config

        init_config = read_config(config.init)
        gray_from_colour = config.channels == 1 and init_config.has_gray_equivalent
        if init_config.in_channels != config.channels and not gray_from_colour:
            raise ValueError(
                f"{config.init} is a {init_config.in_channels}-channel model, this run has {config.channels}"
            )
        model = {**init_config.to_dict(), **(model if isinstance(model, dict) else {}), "in_channels": config.channels}
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


#: Degradation fields added after runs had started, with their defaults: left out of a run's identity when
#: at the default, so a checkpoint written before they existed still resumes.
LATER_DEGRADATION_FIELDS = {"content": "photo", "kernels": "any"}


def family_sha256(config: TrainConfig) -> str:
    """Identity of an any-kernel training problem (kernel family, size limit, noise range), as a sha256."""
    import hashlib

    from ..kernels import KERNEL_FAMILY

    problem = {"kernel": ANY_KERNEL, "family": KERNEL_FAMILY, "max_kernel": int(config.max_kernel),
               "noise_range": [float(v) for v in config.noise_range]}
    if config.degradation is not None:  # the older runs' identity is unchanged
        from .degradation import Degradation

        settings = Degradation.from_spec(config.degradation).to_dict()
        for key, default in LATER_DEGRADATION_FIELDS.items():  # fields added later count only when set
            if settings.get(key) == default:
                settings.pop(key)
        problem["degradation"] = settings
        problem["mmse_noise_floor"] = float(config.mmse_noise_floor)
    text = json.dumps(problem, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()



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


def _is_arrays(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (
        isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, np.ndarray) for v in value)
    )

