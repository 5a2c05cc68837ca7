"""The training loop: :func:`train` (a :class:`~napari_crcnet.training.config.TrainConfig` in, a
:class:`~napari_crcnet.training.config.TrainResult` out), resumable from checkpoints.

One model is trained per kernel and noise level (as in the paper), or, with ``kernel="any"``, one model over
a family of kernels and noise levels. Each step draws a batch of on-the-fly pairs
(:class:`~napari_crcnet.training.data.PairSynthesizer`, :class:`~napari_crcnet.training.data.FamilySynthesizer`
with a kernel and noise level per crop, or :class:`~napari_crcnet.training.data.RealisticSynthesizer` under
the realistic degradation model), feeds the network the blurred crop (paper configuration) or its
closed-form MMSE estimate ``m = F^-1[conj(K) B / (|K|^2 + sigma)]`` (default configuration) plus any extra
input maps (:class:`~napari_crcnet.training.inputs.NetworkInputs`, the same construction as inference), and
minimises :func:`~napari_crcnet.training.loss.crcnet_loss` with Adam.

Learning rate at step ``t`` (0-based)::

    lr(t) = lr * min(1, (t + 1) / warmup) * lr_decay ** (t // decay_every)

(paper: lr 1e-3, x0.8 every 1000 iterations, no warm-up). The rate is a pure function of ``t``, so no
scheduler state needs saving.

Gradient clipping (:class:`~napari_crcnet.training.optim.GradientClip`): the global gradient norm is clipped
at ``min(grad_clip, clip_factor * g_mean)``, ``g_mean`` being the running mean of the clipped norms of the
steps before. Without it a run can leave a good state within a few steps and not come back (a per-kernel
fit went from +3.5 dB over MMSE at step 740 to -8 dB at step 800, the norms rising from about 75 to
thousands); with it each update stays the size of the updates that came before.

Checkpoints (:mod:`~napari_crcnet.training.checkpoint`) restore every random state, so ``3 steps + resume +
3 steps`` gives the same weights, bit for bit, as 6 steps in one go (same device, threads and library
versions).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._arrays import resolve_device
from .._progress import Cancelled, ProgressCallback
from ..inference import CLASSICAL_INPUTS
from ..operators import BlurOperator
from .checkpoint import checkpoint_json_path, load_checkpoint, restore_checkpoint, save_checkpoint
from .config import (
    ANY_KERNEL,
    ANY_KERNEL_DEFAULTS,
    TrainConfig,
    TrainResult,
    _is_arrays,
    _sources,
    family_sha256,
    resolve_kernel,
    resolve_model_config,
    run_model_config,
)
from .data import FamilySynthesizer, PairSynthesizer, RealisticSynthesizer, find_images, load_images
from .distributed import local_device, start_processes
from .evaluation import autocast, choose_mmse_sigma, evaluate
from .inputs import NetworkInputs, mmse_filter
from .log import TrainLog
from .loss import crcnet_loss
from .optim import CLIP_MOMENTUM, CLIP_WARMUP, GradientClip, learning_rate

__all__ = [  # the names older code imports from here
    "ANY_KERNEL", "ANY_KERNEL_DEFAULTS", "CLIP_MOMENTUM", "CLIP_WARMUP", "GradientClip", "NetworkInputs",
    "TrainConfig", "TrainResult", "checkpoint_json_path", "choose_mmse_sigma", "evaluate", "family_sha256",
    "learning_rate", "load_checkpoint", "mmse_filter", "resolve_kernel", "resolve_model_config",
    "run_model_config", "save_checkpoint", "train",
]


#: Richardson-Lucy iterations of the "richardson-lucy" network input (the method's default, from a flat start).
RL_INPUT_ITERATIONS = 10


def _initialise_from(model: torch.nn.Module, init: Any, model_config: Any) -> dict[str, Any]:
    """Copy the weights of the model ``init`` (path or name) into ``model``; the architectures must match,
    except that a gray run may start from a lifted colour model (converted exactly by
    :func:`~napari_crcnet.models.crcnet.colour_to_gray`). Returns the init model's card."""
    from ..models.crcnet import colour_to_gray
    from ..models.store import load_model

    source, card = load_model(init, device="cpu")
    if model_config.in_channels == 1 and source.config.has_gray_equivalent:
        source = colour_to_gray(source)
    if {**source.config.to_dict(), "input": model_config.input} != model_config.to_dict():  # same weight shapes
        raise ValueError(
            f"cannot start from {card.get('name', init)!r}: its architecture {source.config.to_dict()} differs "
            f"from this run's {model_config.to_dict()} (pick the same --config / channels)"
        )
    model.load_state_dict(source.state_dict())
    return card


def data_step_rule(config: TrainConfig) -> dict[str, float] | None:
    """The run's data step rule: ``config.data_step``, or for ``"init"`` the init model's (None without)."""
    if config.data_step != "init":
        return config.data_step
    if config.init is None:
        return None
    from ..models.store import read_card

    return read_card(config.init).get("data_step")


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




def _synthesizer(config: TrainConfig, kernel: np.ndarray | None, device: torch.device) -> PairSynthesizer:
    """The pair synthesizer of a run (realistic, any-kernel or per-kernel), validation files excluded."""
    val_files: list[Path] = []
    if config.val_images is not None and not _is_arrays(config.val_images):
        val_files = find_images(config.val_images)
    common = {"channels": config.channels, "crop": config.crop, "augment": config.augment, "seed": config.seed,
              "device": device, "exclude": val_files}
    if config.degradation is not None:
        return RealisticSynthesizer(config.images, max_kernel=config.max_kernel, degradation=config.degradation,
                                    **common)
    if config.any_kernel:
        return FamilySynthesizer(config.images, max_kernel=config.max_kernel, noise_range=config.noise_range,
                                 gray_fraction=config.gray_fraction, **common)
    return PairSynthesizer(config.images, kernel, noise=config.noise, photons=config.photons,
                           gray_fraction=config.gray_fraction, **common)


def _amp(config: TrainConfig, device: torch.device) -> str:
    """"bf16" or "off": ``config.amp``, with "auto" meaning bf16 on the CPU and on bf16-capable CUDA."""
    if config.amp != "auto":
        return config.amp
    bf16 = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    return "bf16" if bf16 else "off"


class _Run:
    """One call of :func:`train`: the set-up (:meth:`__init__`, :meth:`_start`), the loop (:meth:`loop`,
    one :meth:`step` at a time) and the result (:meth:`finish`, :meth:`card`)."""

    def __init__(self, config: TrainConfig, log: Any) -> None:
        from ..models.crcnet import CRCNet
        from ..models.store import kernel_sha256

        config.validate()
        if config.threads:
            torch.set_num_threads(int(config.threads))
        self.config = config
        self.device = local_device(resolve_device(config.device))
        self.procs = start_processes(self.device, config.batch)  # torchrun: one of several processes
        self.kernel = None if config.any_kernel else resolve_kernel(config.kernel)
        self.model_config = run_model_config(config)
        self.sha = family_sha256(config) if config.any_kernel else kernel_sha256(self.kernel)
        self.amp = _amp(config, self.device)
        self.synthesizer = _synthesizer(config, self.kernel, self.device)
        self.val_images, self.val_names, self.val_note = _split_validation(config, self.synthesizer)
        if config.gray_fraction > 0:
            self.val_note += ", each in colour and in gray"
        self.val_pairs = self.synthesizer.validation_pairs(self.val_images, size=config.val_size,
                                                           seed=config.seed + 104729, stored=True)
        torch.manual_seed(config.seed)
        self.model = CRCNet(self.model_config).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.clipper = GradientClip(config.grad_clip, config.clip_factor)
        main = self.procs.main  # only rank 0 logs and writes files
        self.logger = TrainLog(log if main else None, config.log_path if main else None)
        self.checkpoint = Path(config.checkpoint) if config.checkpoint is not None else None
        self.step, self.elapsed_before, self.history_before, self.history = 0, 0.0, [], []
        self.sigma_scores: dict[str, float] = {}
        self.resumed = False
        self.baseline_sigma = None  # the best MMSE sigma, kept apart when the input uses another one
        self._start()
        self.net = self.procs.wrap(self.model, self.device)
        self.cancelled = False
        self.started = self.last_checkpoint = time.perf_counter()

    # ------------------------------------------------------------------------------------ set-up
    def _start(self) -> None:
        """Resume from the checkpoint or start from ``init``; then choose the network's input."""
        config = self.config
        self.data_step = data_step_rule(config)
        mmse_sigma, input_sigma_from_init = config.mmse_sigma, None
        if config.resume and self.checkpoint is not None and self.checkpoint.exists():
            mmse_sigma = self._resume()
        elif config.init is not None:
            init_card = _initialise_from(self.model, config.init, self.model_config)
            if config.start_from_input:
                self.model.start_from_input()
            if mmse_sigma is None and init_card.get("mmse_sigma") == "suggest" and not config.any_kernel:
                # An any-kernel init learned on MMSE inputs made with suggest_sigma(noise): keep that input
                # rather than a searched sigma (often 2x larger), so the fit starts where the init model is good.
                from ..deconv import suggest_sigma

                floor = init_card.get("mmse_noise_floor") or 0.0
                input_sigma_from_init = float(suggest_sigma(config.noise, floor=floor))
        if self.model_config.input in CLASSICAL_INPUTS and not config.any_kernel:
            raise ValueError(f"the {self.model_config.input} input is for kernel='any' runs (per-kernel fits use MMSE)")
        if config.any_kernel:
            self.mmse_sigma: Any = "suggest"  # per crop: deconv.suggest_sigma(noise, floor)
            self.inputs = NetworkInputs(self.model_config, self.device, config.mmse_boundary,
                                        noise_floor=config.mmse_noise_floor, classical=self._classical_card(),
                                        data_step=self.data_step)
            return
        if mmse_sigma is None:
            operator = BlurOperator(self.kernel, boundary=config.mmse_boundary, device=self.device)
            mmse_sigma, self.sigma_scores = choose_mmse_sigma(self.val_pairs, operator, config.noise)
            if input_sigma_from_init is not None:
                self.baseline_sigma, mmse_sigma = float(mmse_sigma), input_sigma_from_init
        self.mmse_sigma = float(mmse_sigma)
        self.inputs = NetworkInputs(self.model_config, self.device, config.mmse_boundary, self.kernel,
                                    self.mmse_sigma, config.noise, baseline_sigma=self.baseline_sigma,
                                    data_step=self.data_step)

    def _classical_card(self) -> dict[str, Any]:
        """The card fields of a classical network input (:func:`~napari_crcnet.inference.classical_input`),
        today's defaults written out so that inference keeps them if the defaults change; {} for MMSE."""
        from ..hyperlaplacian import LAMBDA_NOISE_FLOOR

        if self.model_config.input == "hyper-laplacian":
            return {"hl_lambda": "suggest", "hl_noise_floor": LAMBDA_NOISE_FLOOR}
        if self.model_config.input == "richardson-lucy":
            return {"rl_iterations": RL_INPUT_ITERATIONS}
        return {}

    def _resume(self) -> Any:
        """Restore every state from the checkpoint; returns its MMSE sigma."""
        tensors, document = load_checkpoint(self.checkpoint)
        if document.get("kernel_sha256") != self.sha:
            raise ValueError(f"{self.checkpoint} was trained for another kernel; delete it or use another --checkpoint")
        if not _same_architecture(document.get("model_config"), self.model_config):
            raise ValueError(f"{self.checkpoint} holds another architecture {document.get('model_config')}")
        restore_checkpoint(tensors, document, self.model, self.optimizer, self.synthesizer)
        self.step = int(document["step"])
        self.elapsed_before = float(document.get("elapsed_s", 0.0))
        self.history_before = list(document.get("history", []))
        self.baseline_sigma = document.get("baseline_sigma")
        self.sigma_scores = document.get("sigma_scores", {})
        if document.get("grad_clip") is not None:  # older checkpoints: the running mean starts again
            self.clipper.load_state_dict(document["grad_clip"])
        self.resumed = True
        return document["mmse_sigma"]

    def log_start(self) -> None:
        config = self.config
        self.logger({
            "event": "start", "step": self.step, "resumed": self.resumed, "iterations": config.iterations,
            "device": str(self.device), "amp": self.amp, "threads": torch.get_num_threads(),
            "kernel_sha256": self.sha, "mmse_sigma": self.mmse_sigma, "model_config": self.model_config.to_dict(),
            "world_size": self.procs.world_size,
            "n_parameters": sum(p.numel() for p in self.model.parameters()),
            "n_train_images": len(self.synthesizer),
            "validation": {"images": self.val_names, "note": self.val_note, "size": config.val_size},
            "config": config.summary(),
        })

    # ------------------------------------------------------------------------------------ the loop
    def loop(self, progress: ProgressCallback | None, stop_event: threading.Event | None) -> bool:
        """Train until the iterations are done or a stop; returns whether it stopped early. A
        ``KeyboardInterrupt`` writes the checkpoint and is re-raised. Under torchrun every process stops at
        the same step (a stop on any one is shared)."""
        config = self.config
        window = {"loss": 0.0, "grad": 0.0, "count": 0, "skipped": 0, "clipped": 0,
                  "start": self.started, "step": self.step}
        self.net.train()
        try:
            while self.step < config.iterations:
                asked = (stop_event is not None and stop_event.is_set()) or self._out_of_time() or self.cancelled
                if self.procs.any(asked):
                    return self._stop("stop", stopped=True)
                self._step(window)
                self._log_window(window)
                if config.val_every and self.step % config.val_every == 0 and self.step < config.iterations:
                    self.validate()
                if self.checkpoint is not None and time.perf_counter() - self.last_checkpoint >= \
                        config.checkpoint_every_s:
                    self.write_checkpoint("periodic")
                if progress is not None and self.procs.main:
                    try:
                        progress(self.step, config.iterations)
                    except Cancelled:
                        self.cancelled = True  # stop before the next step, on every process
        except KeyboardInterrupt:
            self._stop("stop", stopped=True)
            self.logger({"event": "end", "step": self.step, "stopped": True, "reason": "KeyboardInterrupt"})
            raise
        return self._stop("end", stopped=False)

    def _out_of_time(self) -> bool:
        limit = self.config.time_limit_s
        return limit is not None and time.perf_counter() - self.started >= limit

    def _stop(self, reason: str, stopped: bool) -> bool:
        self.write_checkpoint(reason)
        return stopped

    def _step(self, window: dict[str, Any]) -> None:
        """One optimisation step on a fresh batch (a non-finite batch is skipped: it would poison Adam)."""
        config = self.config
        rate = learning_rate(config, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        window["lr"] = rate
        batch = config.batch // self.procs.world_size  # the global batch, split across processes
        self.procs.seed_step(self.synthesizer, config.seed, self.step)
        if config.any_kernel:
            blurred, clear, kernels, noise = self.synthesizer.sample_degraded(batch)
        else:
            (blurred, clear), kernels, noise = self.synthesizer.sample(batch), None, None
        with torch.no_grad():
            net_input, _ = self.inputs(blurred, kernels, noise)
        out = self.inputs.unrolled(self._forward, net_input, blurred, kernels, noise)
        loss = crcnet_loss(out, clear, alpha=config.alpha, gamma=config.gamma)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP the gradients are averaged over the processes here
        grad_norm, clipped = self.clipper(self.model.parameters())
        loss_value = self.procs.mean(float(loss.detach()))
        if math.isfinite(loss_value) and math.isfinite(grad_norm):
            self.optimizer.step()
            window["loss"] += loss_value
            window["grad"] += grad_norm
            window["count"] += 1
            window["clipped"] += clipped
        else:
            window["skipped"] += 1
        self.step += 1

    def _forward(self, net_input: torch.Tensor) -> torch.Tensor:
        """The network on one stage's input, in the run's memory format and mixed precision."""
        if self.config.channels_last:
            net_input = net_input.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp):
            return self.net(net_input)

    def _log_window(self, window: dict[str, Any]) -> None:
        """Every ``log_every`` steps: a "train" record of the window's means, then a new window."""
        every = self.config.log_every
        if not every or (self.step % every and self.step != self.config.iterations):
            return
        now = time.perf_counter()
        count = max(window["count"], 1)
        self.logger({
            "event": "train", "step": self.step, "loss": round(window["loss"] / count, 6), "lr": window["lr"],
            "grad_norm": round(window["grad"] / count, 4), "skipped": window["skipped"],
            "clipped": window["clipped"],
            "steps_per_s": round((self.step - window["step"]) / max(now - window["start"], 1e-9), 4),
            "elapsed_s": round(self.elapsed_before + now - self.started, 1),
        })
        window.update(loss=0.0, grad=0.0, count=0, skipped=0, clipped=0, start=now, step=self.step)

    def validate(self) -> dict[str, Any]:
        if not self.procs.main:
            return {}
        record = evaluate(self.model, self.val_pairs, self.inputs, self.amp, self.config.channels_last)
        record = {"event": "val", "step": self.step, **record}
        self.history.append(record)
        self.logger(record)
        return record

    def write_checkpoint(self, reason: str) -> None:
        if self.checkpoint is None or not self.procs.main:
            return
        meta = {
            "step": self.step, "kernel_sha256": self.sha, "model_config": self.model_config.to_dict(),
            "mmse_sigma": self.mmse_sigma, "baseline_sigma": self.baseline_sigma, "sigma_scores": self.sigma_scores,
            "elapsed_s": self.elapsed(), "history": (self.history_before + self.history)[-200:],
            "train_config": self.config.summary(), "grad_clip": self.clipper.state_dict(),
        }
        save_checkpoint(self.checkpoint, self.model, self.optimizer, self.synthesizer, meta)
        self.last_checkpoint = time.perf_counter()
        self.logger({"event": "checkpoint", "step": self.step, "path": str(self.checkpoint), "reason": reason})

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    # ------------------------------------------------------------------------------------ the result
    def finish(self, stopped: bool) -> TrainResult:
        """Final validation, the card, the saved model and the "end" record."""
        final = self.validate() if self.val_pairs else {}
        elapsed = self.elapsed()
        metrics = {"validation": {
            "model_psnr": final.get("psnr"), "model_ssim": final.get("ssim"),
            "mmse_psnr": final.get("mmse_psnr"), "mmse_ssim": final.get("mmse_ssim"),
            "gain_psnr": final.get("gain_psnr"), "gain_ssim": final.get("gain_ssim"),
            "iu_dead": final.get("iu_dead"), "images": self.val_names, "note": self.val_note,
            "crop": self.config.val_size, "ssim_channel": "Y (BT.601) for RGB",
        }}
        card = _merge(self.card(stopped, elapsed, metrics), self.config.card)
        model_path = None
        if self.config.output is not None and self.procs.main:
            from ..models.store import save_model

            card = save_model(self.config.output, self.model, card)
            model_path = Path(self.config.output)
            if model_path.suffix != ".safetensors":
                model_path = model_path.with_name(model_path.name + ".safetensors")
        self.logger({"event": "end", "step": self.step, "stopped": stopped, "elapsed_s": round(elapsed, 1),
                     "model_path": str(model_path) if model_path else None,
                     **{k: final.get(k) for k in ("psnr", "mmse_psnr", "gain_psnr")}})
        self.model.eval()
        return TrainResult(model=self.model, card=card, steps=self.step, stopped=stopped, elapsed_s=elapsed,
                           model_path=model_path, checkpoint_path=self.checkpoint, history=self.history,
                           metrics=metrics)

    def card(self, stopped: bool, elapsed: float, metrics: dict[str, Any]) -> dict[str, Any]:
        """The model card (before ``config.card`` is merged in)."""
        config, kernel = self.config, self.kernel
        card = {
            "name": config.name or (Path(config.output).stem if config.output else "crcnet"),
            "description": config.description,
            "kernel": None if kernel is None else kernel.tolist(),
            "kernel_sha256": None if kernel is None else self.sha,
            "noise": list(self.synthesizer.noise_range) if config.any_kernel else config.noise,
            "photons": config.photons,
            "mmse_sigma": self.mmse_sigma,
            "mmse_boundary": config.mmse_boundary,
            "training": self._training_card(stopped, elapsed),
            "metrics": metrics,
        }
        if self.data_step is not None:
            card["data_step"] = dict(self.data_step)
        if config.any_kernel:
            from ..kernels import KERNEL_FAMILY

            card["kernel_family"] = {"types": dict(KERNEL_FAMILY), "max_kernel": config.max_kernel,
                                     "sampler": "napari_crcnet.kernels.random_kernel_spec"}
            if config.degradation is not None and self.synthesizer.degradation.kernels == "microscopy":
                card["kernel_family"] = {"types": {"microscope PSFs": 1.0}, "max_kernel": config.max_kernel,
                                         "sampler": "napari_crcnet.kernels.random_psf"}
            card["training"]["pairs"] = ("valid blur of random crops, each by its own kernel from kernel_family "
                                         "and Gaussian noise of std log-uniform in noise")
            if config.mmse_noise_floor:
                card["mmse_noise_floor"] = float(config.mmse_noise_floor)
            card.update(self._classical_card())
            if config.degradation is not None:
                card["training"]["degradation"] = self.synthesizer.degradation.to_dict()
                content = self.synthesizer.degradation.content
                card["training"]["pairs"] = (
                    f"realistic degradation (training/degradation.py), {content} content: each crop blurred in "
                    "linear light by its own kernel from kernel_family, then the camera (noise, response, clipping, "
                    "quantisation, JPEG as its settings say); the network gets a perturbed kernel")
        return card

    def _training_card(self, stopped: bool, elapsed: float) -> dict[str, Any]:
        config = self.config
        return {
            "images": _sources(config.images), "n_train_images": len(self.synthesizer),
            "val_images": self.val_names, "validation": self.val_note,
            "channels": config.channels, "gray_from_rgb": "BT.601 luma" if config.channels == 1 else None,
            "iterations": self.step, "target_iterations": config.iterations, "stopped_early": stopped,
            "batch": config.batch, "crop": config.crop, "augment": config.augment,
            "gray_fraction": config.gray_fraction,
            "pairs": "valid blur of random crops (periodic operator on crop + kernel radius, centre kept) + noise",
            "optimizer": "Adam", "lr": config.lr, "lr_decay": config.lr_decay, "decay_every": config.decay_every,
            "warmup": config.warmup, "grad_clip": config.grad_clip, "clip_factor": config.clip_factor,
            "loss": f"{config.alpha:g} * mean smoothL1 + {config.gamma:g} * (mean (dh)^2 + mean (dv)^2)",
            "seed": config.seed, "amp": self.amp, "device": str(self.device), "threads": torch.get_num_threads(),
            "wall_time_s": round(elapsed, 1), "torch": torch.__version__, "world_size": self.procs.world_size,
            "mmse_sigma_search": self.sigma_scores,
            "baseline_mmse_sigma": self.baseline_sigma if self.baseline_sigma is not None else self.mmse_sigma,
        }


def train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    stop_event: threading.Event | None = None,
    log: Any = None,
) -> TrainResult:
    """Train a CRCNet for one kernel and noise level, or for the kernel family (see the module docstring).

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
    run = _Run(config, log)
    try:
        run.log_start()
        stopped = run.loop(progress, stop_event)
        return run.finish(stopped)
    finally:
        run.procs.close()


def _same_architecture(saved: Any, model_config: Any) -> bool:
    """Whether a checkpoint's model configuration is ``model_config``; fields added to the configuration since
    the checkpoint was written take their defaults (older checkpoints lack them)."""
    from ..models.crcnet import CRCNetConfig

    try:
        return CRCNetConfig.from_dict(dict(saved)).to_dict() == model_config.to_dict()
    except (TypeError, ValueError):
        return False


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


