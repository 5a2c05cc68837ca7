"""The optimiser's schedule: the learning rate at each step and the relative gradient clip."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .config import TrainConfig

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


