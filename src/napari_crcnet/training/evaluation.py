"""Scoring during training: validation PSNR/SSIM against the MMSE baseline, the MMSE sigma search, the IU
dead-unit check, and the bfloat16 autocast both training and validation use."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from ..operators import BlurOperator
from .inputs import NetworkInputs, mmse_filter


def autocast(device: torch.device, amp: str):
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

                def forward(x: torch.Tensor) -> torch.Tensor:
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with autocast(device, amp):
                        return model(x)

                out = inputs.unrolled(forward, net_input, blurred.to(device), *degradation)
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


