"""The network's input for a batch of blurred crops (MMSE or hyper-Laplacian estimate + extra maps), as
inference builds it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..operators import BlurOperator


def mmse_filter(operator: BlurOperator, blurred: torch.Tensor, sigma: float) -> torch.Tensor:
    """Closed-form MMSE estimate ``F^-1[conj(K) B / (|K|^2 + sigma)]`` of a batch, in torch."""
    return operator.filter(blurred, lambda K: K.conj() / (K.abs() ** 2 + sigma))


def hyper_laplacian_crop(crop: torch.Tensor, kernel: np.ndarray, lam: float, boundary: str) -> torch.Tensor:
    """:func:`~napari_crcnet.hyper_laplacian` of one crop ``(1, C, Y, X)`` at data weight ``lam``, same shape."""
    from ..hyperlaplacian import hyper_laplacian

    image = crop[0].detach().cpu().numpy()
    axis = 0 if image.shape[0] > 1 else None
    result = hyper_laplacian(image if axis == 0 else image[0], kernel, lam, channel_axis=axis, boundary=boundary,
                             device=crop.device)
    return torch.as_tensor(result, dtype=crop.dtype, device=crop.device).reshape(crop.shape)


class NetworkInputs:
    """Turns blurred crops into the network's input and the MMSE baseline it is scored against.

    Per-kernel (``kernel`` given): the MMSE estimate of the whole batch with that kernel at ``sigma``.
    Any-kernel (``kernel`` None): each crop's own kernel and ``sigma = deconv.suggest_sigma(max(noise, floor))``
    (``noise_floor``, 0 by default); for ``config.input == "hyper-laplacian"`` the input is each crop's
    hyper-Laplacian estimate at ``lam = suggest_lambda(max(noise, hl_noise_floor))`` instead.
    The baseline is that estimate, or (per-kernel, ``baseline_sigma`` given) the MMSE estimate at the best
    sigma when the input uses another one. The input is then
    :func:`~napari_crcnet.models.crcnet.network_input` of the estimate (or of the blurred crop for
    ``config.input == "blurred"``) with the configured extra maps, exactly as inference builds it.
    """

    def __init__(
        self, model_config: Any, device: torch.device, boundary: str, kernel: Any = None, sigma: float | None = None,
        noise: float | None = None, baseline_sigma: float | None = None, noise_floor: float = 0.0,
        hl_noise_floor: float | None = None,
    ) -> None:
        self.config = model_config
        self.noise_floor = float(noise_floor)
        self.hl_noise_floor = hl_noise_floor
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
        image = {"mmse": estimate, "blurred": blurred}.get(self.config.input)
        if image is None:  # "hyper-laplacian" (any-kernel runs only)
            from ..hyperlaplacian import suggest_lambda

            image = torch.cat([
                hyper_laplacian_crop(blurred[i : i + 1], k, suggest_lambda(float(noise[i]), floor=self.hl_noise_floor),
                                     self.boundary)
                for i, k in enumerate(kernels)
            ])
        return network_input(self.config, image, blurred, noise), estimate

    def baseline(self, blurred: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """The MMSE estimate a model is scored against: ``estimate`` (the input's), or the one at
        ``baseline_sigma`` when set (a fit whose input keeps an init model's sigma is still compared with
        the best MMSE, not a weaker one)."""
        if self.baseline_sigma is None or self.operator is None:
            return estimate
        return mmse_filter(self.operator, blurred, self.baseline_sigma)


