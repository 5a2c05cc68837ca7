"""The network's input for a batch of blurred crops (MMSE or another classical estimate + extra maps), as
inference builds it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..operators import BlurOperator


def mmse_filter(operator: BlurOperator, blurred: torch.Tensor, sigma: float) -> torch.Tensor:
    """Closed-form MMSE estimate ``F^-1[conj(K) B / (|K|^2 + sigma)]`` of a batch, in torch."""
    return operator.filter(blurred, lambda K: K.conj() / (K.abs() ** 2 + sigma))


class NetworkInputs:
    """Turns blurred crops into the network's input and the MMSE baseline it is scored against.

    Per-kernel (``kernel`` given): the MMSE estimate of the whole batch with that kernel at ``sigma``.
    Any-kernel (``kernel`` None): each crop's own kernel and ``sigma = deconv.suggest_sigma(max(noise, floor))``
    (``noise_floor``, 0 by default); for a classical ``config.input`` (``"hyper-laplacian"``,
    ``"richardson-lucy"``) the input is each crop's :func:`~napari_crcnet.inference.classical_input` with the
    card fields ``classical`` (``hl_noise_floor``, ``rl_iterations``) instead.
    The baseline is that estimate, or (per-kernel, ``baseline_sigma`` given) the MMSE estimate at the best
    sigma when the input uses another one. The input is then
    :func:`~napari_crcnet.models.crcnet.network_input` of the estimate (or of the blurred crop for
    ``config.input == "blurred"``) with the configured extra maps, exactly as inference builds it.
    :meth:`finish` applies the run's data step (``data_step``, a rule of :mod:`napari_crcnet.datastep`) to
    the network output, as inference does; :meth:`unrolled` runs the network and the step for each of the
    rule's stages.
    """

    def __init__(
        self, model_config: Any, device: torch.device, boundary: str, kernel: Any = None, sigma: float | None = None,
        noise: float | None = None, baseline_sigma: float | None = None, noise_floor: float = 0.0,
        classical: dict[str, Any] | None = None, data_step: dict[str, Any] | None = None,
    ) -> None:
        self.config = model_config
        self.data_step = data_step
        self.noise_floor = float(noise_floor)
        self.classical = dict(classical or {})
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
        if image is None:  # a classical estimate (any-kernel runs only), built as inference builds it
            image = torch.cat([self._classical(blurred[i : i + 1], k, float(noise[i])) for i, k in enumerate(kernels)])
        return network_input(self.config, image, blurred, noise), estimate

    def finish(
        self, out: torch.Tensor, blurred: torch.Tensor, kernels: list[np.ndarray] | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network output ``out`` after the data step (:func:`~napari_crcnet.datastep.data_step`, each crop
        with its own kernel and noise level, as inference does), or ``out`` itself without a ``data_step``."""
        from ..datastep import data_step, data_step_mu

        if self.data_step is None:
            return out
        if self.operator is not None:
            return data_step(self.operator, blurred, out, data_step_mu(self.noise, self.data_step))
        return torch.cat([
            data_step(BlurOperator(k, boundary=self.boundary, device=self.device), blurred[i : i + 1], out[i : i + 1],
                      data_step_mu(float(noise[i]), self.data_step))
            for i, k in enumerate(kernels)
        ])

    @property
    def stages(self) -> int:
        """Network + data step stages of the run's rule (1 without a rule or without ``"stages"``)."""
        from ..datastep import rule_stages

        return rule_stages(self.data_step)

    def unrolled(
        self, forward: Callable[[torch.Tensor], torch.Tensor], net_input: torch.Tensor, blurred: torch.Tensor,
        kernels: list[np.ndarray] | None = None, noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x_K`` of the unrolled stages: ``x_1 = finish(forward(net_input))`` and, for each later stage,
        ``x_{k+1} = finish(forward(network_input(x_k)))`` (the step's output in place of the MMSE estimate,
        with the same extra maps), as inference runs them. ``forward`` is the network (under any autocast)."""
        from ..models.crcnet import network_input

        maps_noise = self.noise if self.operator is not None else noise
        out = self.finish(forward(net_input).float(), blurred, kernels, noise)
        for _ in range(self.stages - 1):
            out = self.finish(forward(network_input(self.config, out, blurred, maps_noise)).float(), blurred,
                              kernels, noise)
        return out

    def _classical(self, crop: torch.Tensor, kernel: np.ndarray, noise: float) -> torch.Tensor:
        """:func:`~napari_crcnet.inference.classical_input` of one crop ``(1, C, Y, X)``, same shape."""
        from ..inference import classical_input

        card = {**self.classical, "mmse_boundary": self.boundary}
        result = classical_input(self.config.input, crop[0].detach().cpu().numpy(), kernel, noise, card, crop.device)
        return torch.as_tensor(result, dtype=crop.dtype, device=crop.device)[None]

    def baseline(self, blurred: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """The MMSE estimate a model is scored against: ``estimate`` (the input's), or the one at
        ``baseline_sigma`` when set (a fit whose input keeps an init model's sigma is still compared with
        the best MMSE, not a weaker one)."""
        if self.baseline_sigma is None or self.operator is None:
            return estimate
        return mmse_filter(self.operator, blurred, self.baseline_sigma)


