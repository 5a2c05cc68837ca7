"""Apply a CRCNet to any array: layouts, MMSE input, tiles with overlap, devices, CUDA out-of-memory fallback.

Pipeline of :func:`apply_model` for an image ``b`` (spatial axes last, optional ``channel_axis``, any
leading batch axes such as time or Z for a 2D model):

1. ``b`` is scaled to float32 in [0, 1] (integers by their dtype's maximum) and reshaped to
   ``(B, C, *spatial)`` (:func:`napari_crcnet._arrays.prepare`). A gray model (1 channel) on a colour
   image runs on each channel separately; a colour model on a different channel count is an error.
2. For ``config.input == "mmse"`` every 2D (or 3D) plane is replaced by its closed-form MMSE estimate
   ``m = F^-1[conj(K) B / (|K|^2 + sigma)]`` with the card's ``mmse_sigma`` (and ``mmse_boundary``,
   ``mmse_prior`` when the card has them), computed on the whole plane (a global Fourier operation, so
   it is never tiled) by :func:`napari_crcnet.deconv.mmse`. A card ``mmse_sigma`` of ``"suggest"`` means
   ``suggest_sigma(noise)`` for the image's noise level (given, the card's, or estimated).
   For ``config.input`` ``"hyper-laplacian"`` or ``"richardson-lucy"`` each image is replaced by that
   classical estimate instead (:func:`classical_input`, with the card's ``hl_lambda``/``hl_noise_floor`` or
   ``rl_iterations``).
   Models with ``config.extra_inputs`` (conditioned on the degradation) also get, after the image
   channels, a constant noise map ``noise / NOISE_MAP_SCALE`` and/or the blurred plane itself.
3. The network runs on overlapping tiles: the plane is cut into a grid of cores of size
   ``tile - 2 * overlap``; each core is processed with ``overlap`` pixels of context on each side (clipped
   at the image edge) and only the core is kept. The network is local, each output pixel depending on
   inputs within ``model.receptive_radius`` pixels (18 for the paper net), and it zero-pads at its
   input's edge; a window clipped at the image edge has that edge where the whole image has it. So with
   ``overlap >= receptive_radius`` the tiled result equals the untiled one everywhere (to float
   round-off), while memory stays bounded by the tile size, whatever the image size.
4. A card with a ``data_step`` rule follows the network by the data step (:mod:`napari_crcnet.datastep`)
   on every whole plane: ``x = z + F^-1[conj(K)/(|K|^2 + mu) F(b - H z)]``, which puts back what the
   blurred plane determines (``mu`` from the rule and the noise level). A rule with ``stages = K`` runs
   network and step K times, each later network pass fed the last step's output in place of the MMSE
   estimate. Residues are the network's (of the last stage).

Residues (``return_residues=True``) are the unit outputs ``inter_1..inter_N``, returned as a list of N
arrays, one per unit, unit ``i`` having ``c_i = config.unit_channels()[i-1]`` channels (RGB paper net:
3, 6, 12, 24, 48, 96):

* colour model (``C > 1``, e.g. ``(Y, X, 3)`` input with ``channel_axis=-1``): the input's shape with the
  channel axis holding ``c_i`` channels, e.g. ``(Y, X, c_i)``; ``(T, Y, X, 3)`` gives ``(T, Y, X, c_i)``;
* gray model (``C == 1``): a new leading axis of ``c_i`` channels in front of the input's shape:
  ``(Y, X)`` gives ``(c_i, Y, X)``; a gray model run per channel on ``(Y, X, 3)`` gives ``(c_i, Y, X, 3)``;
  a colour model on a gray image (run on equal channels) gives the same as a gray model, ``(c_i, Y, X)``.

They take ``sum(c_i) = 63 C`` (189 for RGB) float32 planes: ask for them on small images only.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from typing import Any

import numpy as np
import torch

from ._arrays import Layout, prepare, resolve_device
from ._progress import ProgressCallback, report
from .datastep import rule_stages
from .models.crcnet import CRCNet, network_input
from .operators import DEFAULT_BOUNDARY

__all__ = ["DEFAULT_TILE", "apply_model", "crcnet", "default_overlap"]

DEFAULT_TILE = 256
#: Extra context beyond the receptive radius in the default overlap (free safety margin, 8-aligned total).
OVERLAP_MARGIN = 6
#: Smallest core (tile minus both overlaps) the OOM fallback halves down to before moving to the CPU.
MIN_CORE = 32

# What fast=True turns on (CPU only). Channels-last tiles and weights take 0.86-0.91x the fp32 time and
# differ by 1e-6 (benchmarks/results/inference_speed.md). bfloat16 autocast takes 0.35-0.5x; its output
# moves by up to 3.8e-3 per pixel, but what a user sees, the PSNR, moves by at most a few thousandths of a dB
# on real images (benchmarks/results/cpu_speedup.md), so it is on where the CPU computes bf16 natively
# (AVX512-BF16 / AMX); elsewhere bf16 is emulated and slower, so fp32 stays.
FAST_CHANNELS_LAST = True
FAST_BFLOAT16 = "auto"


def cpu_has_bf16() -> bool:
    """True when this CPU does bfloat16 arithmetic natively (oneDNN's check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_overlap(model: CRCNet) -> int:
    """Default tile overlap: ``model.receptive_radius + OVERLAP_MARGIN`` (24 for the paper net)."""
    return int(model.receptive_radius) + OVERLAP_MARGIN


# ------------------------------------------------------------------------------------------ helpers
def _is_oom(error: BaseException) -> bool:
    """True for a CUDA/MPS out-of-memory error (torch raises RuntimeError subclasses or plain RuntimeError)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None) or getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _forward(
    model: CRCNet, x: torch.Tensor, return_residues: bool, channels_last: bool, bfloat16: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One network call on a tile ``x`` (``(1, C, *tile)``); returns float32 ``(out, residues)``."""
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    elif channels_last and x.ndim == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    if bfloat16:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            result = model(x, return_residues=return_residues)
    else:
        result = model(x, return_residues=return_residues)
    out, residues = result if return_residues else (result, [])
    return out.float(), [r.float() for r in residues]


def _axis_tiles(n: int, core: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """``(core_start, core_stop, window_start, window_stop)`` along one axis of length ``n``."""
    tiles = []
    for start in range(0, n, core):
        stop = min(start + core, n)
        tiles.append((start, stop, max(start - overlap, 0), min(stop + overlap, n)))
    return tiles


def _tiles(shape: tuple[int, ...], tile: int, overlap: int) -> list[tuple[tuple[slice, ...], ...]]:
    """Every tile of a plane of spatial ``shape``: ``(window slices, core slices in the output,
    core slices inside the window output)``. A plane that fits in one tile is one window."""
    per_axis = []
    for n in shape:
        if n <= tile:
            per_axis.append([(0, n, 0, n)])
        else:
            per_axis.append(_axis_tiles(n, tile - 2 * overlap, overlap))
    result = []
    for combo in itertools.product(*per_axis):
        window = tuple(slice(w0, w1) for _, _, w0, w1 in combo)
        core = tuple(slice(c0, c1) for c0, c1, _, _ in combo)
        inner = tuple(slice(c0 - w0, c1 - w0) for c0, c1, w0, _ in combo)
        result.append((window, core, inner))
    return result


class _Runner:
    """Runs the network tile by tile, halving the tile and then moving to the CPU on out-of-memory."""

    def __init__(
        self,
        model: CRCNet,
        device: torch.device,
        tile: int,
        overlap: int,
        fast: bool,
        return_residues: bool,
        progress: ProgressCallback | None,
    ) -> None:
        self.model = model
        self.device = device
        self.tile = self.initial_tile = tile
        self.overlap = overlap
        self.fast = fast
        self.return_residues = return_residues
        self.progress = progress
        self._on_device = self._place(model)

    def _place(self, model: CRCNet) -> CRCNet:
        """The model on ``self.device`` (a copy when it must move or change memory format; never the caller's)."""
        channels_last, _ = self._flags()
        if not channels_last and _model_device(model) == self.device:
            return model
        placed = copy.deepcopy(model).to(self.device)
        if channels_last:  # weights in channels-last too: measured faster than converting the input only
            fmt = torch.channels_last if model.config.spatial_dims == 2 else torch.channels_last_3d
            placed = placed.to(memory_format=fmt)
        return placed

    def _flags(self) -> tuple[bool, bool]:
        if not self.fast:
            return False, False
        cpu = self.device.type == "cpu"
        bfloat16 = cpu_has_bf16() if FAST_BFLOAT16 == "auto" else bool(FAST_BFLOAT16)
        return FAST_CHANNELS_LAST and cpu, bfloat16 and cpu

    def _fallback(self, error: BaseException) -> None:
        """Next, more frugal configuration after an out-of-memory error; re-raises when none is left."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.tile // 2 - 2 * self.overlap >= MIN_CORE:
            self.tile //= 2
            warnings.warn(f"out of memory on {self.device}: retrying with tiles of {self.tile} pixels", stacklevel=4)
            return
        if self.device.type != "cpu":
            warnings.warn(f"out of memory on {self.device} even with small tiles: running on the CPU", stacklevel=4)
            self.device = torch.device("cpu")
            self._on_device = self._place(self.model)
            self.tile = self.initial_tile  # the CPU has the host's memory: start over
            return
        raise error

    def run_plane(self, plane: np.ndarray, out: np.ndarray, residues: list[np.ndarray], done: int, total: int) -> int:
        """Network on ``plane`` (``(C, *spatial)``) into ``out`` and ``residues``; returns tiles done so far.

        After an out-of-memory error the whole plane is redone with the smaller tile (``total`` is an
        estimate made with the first tile size; progress never goes backwards past it).
        """
        while True:
            try:
                return self._run_plane(plane, out, residues, done, total)
            except Exception as error:  # only OOM is handled; everything else (Cancelled too) propagates
                if not _is_oom(error):
                    raise
                self._fallback(error)

    def _run_plane(self, plane: np.ndarray, out: np.ndarray, residues: list[np.ndarray], done: int, total: int) -> int:
        channels_last, bfloat16 = self._flags()
        for window, core, inner in _tiles(plane.shape[1:], self.tile, self.overlap):
            x = torch.from_numpy(np.ascontiguousarray(plane[(slice(None), *window)]))[None].to(self.device)
            y, inters = _forward(self._on_device, x, self.return_residues, channels_last, bfloat16)
            out[(slice(None), *core)] = y[(0, slice(None), *inner)].cpu().numpy()
            for target, r in zip(residues, inters):
                target[(slice(None), *core)] = r[(0, slice(None), *inner)].cpu().numpy()
            done += 1
            report(self.progress, min(done, total), total)
        return done


def _model_device(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _card_kernel(card: dict[str, Any], kernel: Any) -> np.ndarray:
    source = kernel if kernel is not None else card.get("kernel")
    if source is None:
        raise ValueError(
            "this model takes the MMSE estimate as input, which needs the blur kernel: "
            "pass kernel=... (its card has none)"
        )
    if isinstance(source, str):
        from .kernels import kernel_from_spec

        source = kernel_from_spec(source)
    k = np.asarray(source, dtype=np.float64)
    return k / k.sum()


def _plane_kernel(card: dict[str, Any], kernel: Any, spatial_ndim: int) -> np.ndarray:
    """The kernel an input estimate uses (:func:`_card_kernel`), checked against the model's plane dimension."""
    k = _card_kernel(card, kernel)
    if k.ndim != spatial_ndim:
        raise ValueError(f"the kernel is {k.ndim}D but the model works on {spatial_ndim}D planes")
    return k


def _needs_noise(config: Any, card: dict[str, Any]) -> bool:
    return ("noise" in config.extra_inputs or config.input in CLASSICAL_INPUTS or bool(card.get("data_step"))
            or (config.input == "mmse" and card.get("mmse_sigma") == "suggest"))


def _noise_level(noise: float | None, card: dict[str, Any], image: Any, channel_axis: int | None) -> float:
    """The noise std the model is told about: ``noise`` if given, else the card's (a model trained at one
    level), else :func:`~napari_crcnet.deconv.estimate_noise` of the image."""
    if noise is None and isinstance(card.get("noise"), (int, float)) and not isinstance(card.get("noise"), bool):
        noise = card["noise"]
    source = "given"
    if noise is None:
        from .deconv import estimate_noise

        noise, source = float(estimate_noise(image, channel_axis=channel_axis)), "estimated"
    if not (isinstance(noise, (int, float, np.floating)) and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a standard deviation >= 0 (image in [0, 1]), not {noise!r}")
    _warn_outside_noise_range(float(noise), source, card)
    return float(noise)


def _warn_outside_noise_range(noise: float, source: str, card: dict[str, Any]) -> None:
    """Warn when a model trained over a noise range (card ``noise`` = ``[low, high]``) meets a level outside
    it: the network never saw that noise map value, so expect a weaker result."""
    trained = card.get("noise")
    if not (isinstance(trained, (list, tuple)) and len(trained) == 2):
        return
    low, high = (float(v) for v in trained)
    if not low <= noise <= high:
        warnings.warn(
            f"model {card.get('name', '?')!r} was trained for noise std {100 * low:.2g}-{100 * high:.2g} % of the "
            f"image range; this image's ({source}) is {100 * noise:.2g} %: expect a weaker result"
            + (" (pass noise= to override the estimate)" if source == "estimated" else ""),
            stacklevel=4,
        )


def _mmse_planes(
    batch: np.ndarray,
    card: dict[str, Any],
    kernel: Any,
    spatial_ndim: int,
    device: torch.device,
    noise: float | None = None,
) -> np.ndarray:
    """Replace every plane of ``batch`` (``(N, C, *spatial)``) by its MMSE estimate, one plane at a time
    (bounds memory: one plane's FFT grid at a time). The card's ``mmse_sigma`` is a number, or
    ``"suggest"``: :func:`~napari_crcnet.deconv.suggest_sigma` of the ``noise`` level (at least the card's
    ``mmse_noise_floor``)."""
    from .deconv import mmse, suggest_sigma

    sigma = card.get("mmse_sigma")
    if sigma == "suggest":  # with the card's floor for model error (models trained with one; else 0)
        sigma = suggest_sigma(noise, floor=float(card.get("mmse_noise_floor") or 0.0))
    if sigma is None:
        raise ValueError("this model takes the MMSE estimate as input but its card has no 'mmse_sigma'")
    k = _plane_kernel(card, kernel, spatial_ndim)
    boundary = card.get("mmse_boundary") or DEFAULT_BOUNDARY
    prior = card.get("mmse_prior")
    flat = batch.reshape((-1, *batch.shape[-spatial_ndim:]))
    estimate = np.empty(flat.shape, np.float32)
    for index in range(flat.shape[0]):
        estimate[index] = mmse(
            flat[index], k, float(sigma), prior=prior, boundary=boundary, device=device, dtype=np.float32
        )
    return estimate.reshape(batch.shape)


#: Network inputs that are a classical estimate computed image by image (the MMSE one is filtered plane by plane).
CLASSICAL_INPUTS = ("hyper-laplacian", "richardson-lucy")


def classical_input(
    name: str, image: np.ndarray, kernel: np.ndarray, noise: float, card: dict[str, Any], device: Any = "cpu",
) -> np.ndarray:
    """The network input ``name`` of one image ``(C, *spatial)`` (channels first), float32, same shape.

    * ``"hyper-laplacian"``: :func:`~napari_crcnet.hyper_laplacian` at the card's ``hl_lambda``, or for
      ``"suggest"`` (the default) ``lam = suggest_lambda(noise, floor=card["hl_noise_floor"])``;
    * ``"richardson-lucy"``: :func:`~napari_crcnet.richardson_lucy` with the card's ``rl_iterations``
      (default 10) from its flat start.

    Both use the card's ``mmse_boundary``. Training builds its inputs with this function too, so a model
    sees at inference exactly what it learned on.
    """
    from .hyperlaplacian import hyper_laplacian, suggest_lambda
    from .richardsonlucy import richardson_lucy

    boundary = card.get("mmse_boundary") or DEFAULT_BOUNDARY
    axis = 0 if image.shape[0] > 1 else None
    plane = image if axis == 0 else image[0]
    if name == "hyper-laplacian":
        lam = card.get("hl_lambda", "suggest")
        if lam == "suggest":
            lam = suggest_lambda(noise, floor=card.get("hl_noise_floor"))
        result = hyper_laplacian(plane, kernel, float(lam), channel_axis=axis, boundary=boundary, device=device,
                                 dtype=np.float32)
    elif name == "richardson-lucy":
        result = richardson_lucy(plane, kernel, int(card.get("rl_iterations", 10)), channel_axis=axis,
                                 boundary=boundary, device=device, dtype=np.float32)
    else:
        raise ValueError(f"no classical input {name!r}; known: {CLASSICAL_INPUTS}")
    return result.reshape(image.shape)


def _classical_planes(
    batch: np.ndarray, card: dict[str, Any], kernel: Any, spatial_ndim: int, device: torch.device, noise: float,
    name: str,
) -> np.ndarray:
    """Replace every image of ``batch`` (``(N, C, *spatial)``, channels together) by :func:`classical_input`."""
    k = _plane_kernel(card, kernel, spatial_ndim)
    estimate = np.empty(batch.shape, np.float32)
    for index in range(batch.shape[0]):
        estimate[index] = classical_input(name, batch[index], k, noise, card, device)
    return estimate


def _data_step_planes(
    out: np.ndarray, blurred: np.ndarray, card: dict[str, Any], kernel: Any, spatial_ndim: int, device: torch.device,
    noise: float | None,
) -> np.ndarray:
    """The card's data step (:mod:`napari_crcnet.datastep`) on every plane of the network output ``out``
    (``(N, C, *spatial)``) against the blurred planes, ``mu`` from the card's rule and the noise level."""
    from .datastep import apply_data_step, data_step_mu

    if noise is None:
        raise ValueError("this model's card has a data step but no noise level was found")
    k = _plane_kernel(card, kernel, spatial_ndim)
    boundary = card.get("mmse_boundary") or DEFAULT_BOUNDARY
    return apply_data_step(out, blurred, k, data_step_mu(noise, card["data_step"]), boundary, device)


def _network_planes(
    runner: _Runner, planes: np.ndarray, out: np.ndarray, residues: list[np.ndarray], done: int, total: int
) -> int:
    """The network on every plane of ``planes`` into ``out`` (and the residues), tile by tile; returns the
    tiles done so far (for progress over all planes and stages)."""
    with torch.inference_mode():
        for index in range(planes.shape[0]):
            done = runner.run_plane(planes[index], out[index], [r[index] for r in residues], done, total)
    return done


def _residue_layout(layout: Layout, residue: np.ndarray, gray_model: bool) -> np.ndarray:
    """Residue of one unit, ``(B, C, c_i, *spatial)``, to the documented user layout (module docstring)."""
    if gray_model:
        return np.stack([layout.from_batch(residue[:, :, j]) for j in range(residue.shape[2])])
    shape = list(layout.shape)
    c_i = residue.shape[2]
    if layout.channel_axis is not None:
        shape[layout.channel_axis] = c_i
    target = Layout.of(tuple(shape), layout.channel_axis, layout.spatial_ndim)
    return target.from_batch(residue[:, 0])


# ---------------------------------------------------------------------------------------------- API
def apply_model(
    model: CRCNet,
    card: dict[str, Any] | None,
    image: Any,
    *,
    kernel: Any = None,
    channel_axis: int | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int | None = None,
    device: Any = "auto",
    return_residues: bool = False,
    progress: ProgressCallback | None = None,
    fast: bool = True,
    dtype: Any = np.float32,
    noise: float | None = None,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Deblur ``image`` with a loaded CRCNet (no kernel or channel checks: see :func:`crcnet`).

    Parameters
    ----------
    model : CRCNet
        The network (not modified; copied when it must move to another device).
    card : dict or None
        Its model card. Needed for ``config.input == "mmse"``: ``mmse_sigma`` (and ``kernel`` unless
        given); optional ``mmse_boundary`` (default the package default, "taper") and ``mmse_prior``.
        With a ``data_step`` rule the network output is followed by the data step
        (:mod:`napari_crcnet.datastep`) with ``mu`` from the rule and the noise level, and the two run the
        rule's ``stages`` times (the residues are those of the last stage).
    image : array_like
        Blurred image, spatial axes last (``config.spatial_dims`` of them), any leading batch axes.
        Integers are scaled to [0, 1]. Not modified.
    kernel : array_like or str, optional
        Blur kernel used for the MMSE input; default the card's. (Pass the card's kernel, or force a
        different one knowingly: the network was trained for the card's.)
    channel_axis : int, optional
        Colour axis (None: gray). A gray model runs on each channel; a colour model runs on images of its
        channel count, or on a gray image as that many equal channels, returning their mean.
    tile : int
        Largest window (pixels per spatial axis) fed to the network at once; bounds memory.
    overlap : int, optional
        Context on each side of a tile's core; default :func:`default_overlap`. With
        ``overlap >= model.receptive_radius`` tiling changes nothing (see the module docstring).
    device : str or torch.device
        ``"auto"``: CUDA, MPS, else CPU. On out-of-memory the tile is halved (down to a core of
        ``MIN_CORE`` pixels), then the work moves to the CPU, each time with a warning.
    return_residues : bool
        Also return the unit outputs, laid out as described in the module docstring.
    progress : callable, optional
        ``progress(done, total)`` after every tile; raising :class:`~napari_crcnet.Cancelled` stops.
    fast : bool
        CPU speed-ups: channels-last memory format, and bfloat16 autocast on CPUs that compute bf16
        natively (:func:`cpu_has_bf16`); measured 2-3x faster with a PSNR change of a few thousandths of a
        dB (``benchmarks/results/cpu_speedup.md``). ``fast=False``: plain float32.
    dtype : numpy dtype
        Output dtype (float32; float64 only changes the output type, the network runs in float32).
    noise : float, optional
        Noise standard deviation of ``image`` (intensity units, 0.01 = 1 %), for models that take it: a
        ``"noise"`` extra input, or ``mmse_sigma = "suggest"`` in the card. Default: the card's ``noise``
        when it is one number, else :func:`~napari_crcnet.deconv.estimate_noise` of the image.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, list of numpy.ndarray)
        The deblurred image, same shape as ``image``, not clipped to [0, 1]; and the residues.
    """
    if not isinstance(model, CRCNet):
        raise TypeError(f"model must be a CRCNet, not {type(model).__name__}")
    card = card or {}
    config = model.config
    spatial_ndim = config.spatial_dims
    tile = int(tile)
    overlap = default_overlap(model) if overlap is None else int(overlap)
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, not {overlap}")
    if tile - 2 * overlap < 1:
        raise ValueError(f"tile ({tile}) must be larger than twice the overlap ({overlap})")
    if overlap < model.receptive_radius:
        warnings.warn(
            f"overlap {overlap} < receptive radius {model.receptive_radius}: tile seams may show", stacklevel=2
        )
    dev = resolve_device(device)

    batch, layout = prepare(image, channel_axis, spatial_ndim, np.float32)
    n_batch, channels = batch.shape[:2]
    gray_model = config.in_channels == 1
    if not gray_model and channel_axis is None and batch.shape[-1] == config.in_channels:
        raise ValueError(f"the model takes {config.in_channels} channels and the image has no channel axis: "
                         "pass channel_axis=-1 for an RGB image")
    from .models.store import check_channels

    check_channels(config.in_channels, channels)
    colour_on_gray = not gray_model and channels == 1
    spatial = batch.shape[2:]
    if gray_model:
        planes = batch.reshape((n_batch * channels, 1, *spatial))
    elif colour_on_gray:  # a gray image as equal colour channels (how the any-kernel model sees gray)
        planes = np.repeat(batch, config.in_channels, axis=1)
    else:
        planes = batch
    noise_level = _noise_level(noise, card, image, channel_axis) if _needs_noise(config, card) else None
    blurred = planes
    if config.input == "mmse":
        planes = _mmse_planes(planes, card, kernel, spatial_ndim, dev, noise_level)
    elif config.input in CLASSICAL_INPUTS:
        planes = _classical_planes(planes, card, kernel, spatial_ndim, dev, noise_level, config.input)
    planes = network_input(config, planes, blurred, noise_level)

    unit_channels = config.unit_channels() if return_residues else []
    residues = [np.empty((planes.shape[0], c, *spatial), np.float32) for c in unit_channels]
    runner = _Runner(model, dev, tile, overlap, fast, return_residues, progress)
    stages = rule_stages(card.get("data_step"))
    total = len(_tiles(spatial, tile, overlap)) * planes.shape[0] * stages
    done = 0
    for stage in range(stages):
        out = np.empty((planes.shape[0], config.in_channels, *spatial), np.float32)
        done = _network_planes(runner, planes, out, residues, done, total)
        if card.get("data_step"):
            out = _data_step_planes(out, blurred, card, kernel, spatial_ndim, dev, noise_level)
        if stage + 1 < stages:  # unrolled: the next stage feeds this step's output to the network
            planes = network_input(config, out, blurred, noise_level)

    if colour_on_gray:
        out = out.mean(axis=1, keepdims=True)
    result = layout.from_batch(out.reshape((n_batch, channels, *spatial))).astype(dtype, copy=False)
    if not return_residues:
        return result
    shaped = []
    for r in residues:
        r = r.reshape((n_batch, channels if gray_model else 1, r.shape[1], *spatial))
        shaped.append(_residue_layout(layout, r, gray_model or colour_on_gray).astype(dtype, copy=False))
    return result, shaped


def crcnet(
    image: Any,
    model: Any = None,
    kernel: Any = None,
    *,
    channel_axis: int | None = None,
    force: bool = False,
    device: Any = "auto",
    return_residues: bool = False,
    progress: ProgressCallback | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int | None = None,
    fast: bool = True,
    noise: float | None = None,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Deblur ``image`` with a trained CRCNet, checking that the model fits the kernel and the channels.

    Parameters
    ----------
    image : array_like
        Blurred image (spatial axes last; ``channel_axis`` for colour; leading axes are a batch, e.g. a
        time series or a Z stack processed slice by slice). Integers are scaled to [0, 1].
    model : str, Path or (CRCNet, dict)
        A shipped or user model name (see :func:`napari_crcnet.list_models`), a ``.safetensors`` path,
        or an already loaded ``(model, card)`` pair. None (default): the model specialised to ``kernel``
        by :func:`napari_crcnet.specialise` when there is one (:func:`~napari_crcnet.specialisation.find_specialised`),
        else the model trained for any kernel up to 31x31 px and noise of 0.5-5 %, ``"any-kernel-gray"``
        for a gray image when installed, else ``"any-kernel"``
        (:func:`~napari_crcnet.models.store.default_model`).
    kernel : array_like or str, optional
        The kernel ``image`` was blurred with (convolution-oriented, centred; a spec string such as
        ``"gaussian:2"`` also works). A model only undoes the blur it was trained for: a kernel other
        than the card's raises ValueError unless ``force=True``. None: assume the card's kernel.
    channel_axis, device, return_residues, progress, tile, overlap, fast, noise
        See :func:`apply_model`.
    force : bool
        Apply the model even to a kernel it was not trained for (its MMSE input then uses ``kernel``).

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, list of numpy.ndarray)
        Deblurred float32 image of ``image``'s shape (and the residues, see the module docstring).
    """
    from .models import store

    if isinstance(kernel, str):
        from .kernels import kernel_from_spec

        kernel = kernel_from_spec(kernel)
    if kernel is not None:  # the one kernel check of every method: real, finite, >= 0, positive sum, odd
        from .kernels import validate_kernel

        kernel = validate_kernel(kernel)
    array = np.asarray(image)
    layout = Layout.of(array.shape, channel_axis, 2)  # a clear error for a non-integer or out-of-range axis
    channels = layout.channels
    if model is None:  # a model specialised to this kernel (napari_crcnet.specialise), else the default
        from .specialisation import find_specialised

        specialised = find_specialised(kernel, channels) if kernel is not None else None
        model = specialised if specialised is not None else store.default_model(channels)
    if isinstance(model, (tuple, list)) and len(model) == 2:
        net, card = model
        card = dict(card or {})
        if not isinstance(net, CRCNet):
            raise TypeError(f"model pair must be (CRCNet, card), got ({type(net).__name__}, ...)")
        if kernel is not None:
            store.check_kernel(card, kernel, force)
        store.check_channels(net.config.in_channels, channels)
    else:
        net, card = store.load_model(model, kernel=kernel, force=force, device=device, channels=channels)
    return apply_model(
        net,
        card,
        array,
        kernel=kernel,
        channel_axis=channel_axis,
        tile=tile,
        overlap=overlap,
        device=device,
        return_residues=return_residues,
        progress=progress,
        fast=fast,
        noise=noise,
    )
