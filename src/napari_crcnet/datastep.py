"""The data step: after the network, put back what the blurred image itself determines.

A network's estimate ``z`` is a guess; the blurred image ``b = H x + n`` pins down every frequency the
kernel passes well. The data step is the half-quadratic-splitting data update (as in USRNet's data
module, Zhang et al., CVPR 2020), applied once after the network:

.. math::

    x = \\arg\\min_x \\|H x - b\\|^2 + \\mu \\|x - z\\|^2
      = z + F^{-1}\\left[\\frac{\\overline{K}}{|K|^2 + \\mu} F(b - H z)\\right]

(exact on a periodic grid; with the ``"taper"`` or ``"reflect"`` boundary,
:class:`~napari_crcnet.operators.BlurOperator` extends the residual ``b - H z`` as it extends an image for
MMSE). Where ``|K|^2 >> mu`` the result follows the data, where ``|K|^2 << mu`` (frequencies the blur
destroyed) it keeps the network's ``z``; as ``mu -> infinity`` it is ``z`` itself. It is the MMSE filter
(:func:`~napari_crcnet.deconv.mmse`) applied to the residual.

Why: a network trained on noise of 0.5-5 % adds an error of its own (about 0.02 rms on Levin's scenes) that
the data would not allow when the noise is low; the data step removes it (``benchmarks/results/real_data.md``:
Levin's scenes with 0.2 % noise, the gray model 31.5 dB -> 34.4 dB). With an inexact kernel the data it
puts back is wrong in part, so ``mu`` is a compromise, chosen by ``benchmarks/data_step.py`` on held-out
photos with exact and perturbed kernels (``benchmarks/results/data_step_<model>.md``).

``mu`` follows the noise level ``n`` (image units) by the rule a model's card stores as ``data_step``::

    mu = mu_ref * (max(n, noise_floor) / 0.01) ** power

``noise_floor`` stands for the model error that the noise level does not show (an inexact kernel), as in
:func:`~napari_crcnet.deconv.suggest_sigma`.

**Stages.** A rule may also name ``stages`` (default 1): the network and the step then run that many times,
unrolled as in USRNet, each later stage feeding the previous step's output ``x_k`` to the same network in
place of the MMSE estimate (``z_{k+1} = net(x_k)``, ``x_{k+1} = step(z_{k+1})``). Training puts every stage in
the loss's path (:class:`~napari_crcnet.training.inputs.NetworkInputs`), inference runs them in turn
(:func:`~napari_crcnet.inference.apply_model`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .operators import BlurOperator

#: The noise level at which ``mu_ref`` applies (1 %).
REFERENCE_NOISE = 0.01
RULE_KEYS = ("mu", "power", "noise_floor")
#: A rule's optional key: how many network + step stages run (module docstring).
STAGES_KEY = "stages"
MAX_STAGES = 8


def check_rule(rule: Any) -> dict[str, float]:
    """The ``data_step`` rule ``{"mu", "power", "noise_floor"}`` as floats (``"stages"``, when given, an
    integer 1-8 kept as one); ValueError when malformed."""
    if not isinstance(rule, dict) or not set(RULE_KEYS) <= set(rule) <= {*RULE_KEYS, STAGES_KEY}:
        raise ValueError(f"a data_step rule is a dict with keys {RULE_KEYS} (and optionally {STAGES_KEY!r}), "
                         f"not {rule!r}")
    try:
        values: dict[str, Any] = {key: float(rule[key]) for key in RULE_KEYS}
    except (TypeError, ValueError):
        raise ValueError(f"a data_step rule holds numbers, not {rule!r}") from None
    if not all(math.isfinite(v) for v in values.values()) or values["mu"] <= 0 or values["noise_floor"] < 0:
        raise ValueError(f"data_step needs mu > 0, noise_floor >= 0 and a finite power, not {rule!r}")
    if STAGES_KEY in rule:
        stages = rule[STAGES_KEY]
        if isinstance(stages, bool) or not isinstance(stages, int) or not 1 <= stages <= MAX_STAGES:
            raise ValueError(f"data_step stages must be an integer from 1 to {MAX_STAGES}, not {stages!r}")
        values[STAGES_KEY] = stages
    return values


def rule_stages(rule: dict[str, Any] | None) -> int:
    """How many network + step stages a rule runs: its ``"stages"``, else 1 (also 1 without a rule)."""
    return 1 if rule is None else int(check_rule(rule).get(STAGES_KEY, 1))


def data_step_mu(noise: float, rule: dict[str, Any]) -> float:
    """``mu = mu_ref * (max(noise, noise_floor) / 0.01) ** power`` (module docstring); ``noise`` in image units."""
    values = check_rule(rule)
    level = max(float(noise), values["noise_floor"], 1e-6)
    return values["mu"] * (level / REFERENCE_NOISE) ** values["power"]


def data_step(operator: BlurOperator, blurred: torch.Tensor, estimate: torch.Tensor, mu: float) -> torch.Tensor:
    """``z + F^-1[conj(K) / (|K|^2 + mu) F(b - H z)]`` for a batch ``(..., *spatial)`` (module docstring).

    ``operator`` is the blur ``H`` (its kernel and boundary), ``blurred`` is ``b``, ``estimate`` is ``z``; the
    result has ``estimate``'s shape. Differentiable (training puts it after the network).
    """
    if mu <= 0 or not math.isfinite(mu):
        raise ValueError(f"mu must be a positive number, not {mu!r}")
    residual = blurred - operator.forward(estimate)
    return estimate + operator.filter(residual, lambda K: K.conj() / (K.real**2 + K.imag**2 + mu))


def apply_data_step(
    estimate: np.ndarray, blurred: np.ndarray, kernel: np.ndarray, mu: float, boundary: str, device: Any = "cpu"
) -> np.ndarray:
    """:func:`data_step` of NumPy planes ``(N, C, *spatial)`` (spatial axes: ``kernel.ndim``), one plane at a
    time (bounds memory as the MMSE input does); float32, same shape."""
    operator = BlurOperator(kernel, boundary=boundary, device=device)
    out = np.empty(estimate.shape, np.float32)
    with torch.no_grad():
        for index in range(estimate.shape[0]):
            z = torch.as_tensor(np.ascontiguousarray(estimate[index]), device=operator.device)
            b = torch.as_tensor(np.ascontiguousarray(blurred[index]), device=operator.device)
            out[index] = data_step(operator, b, z, mu).float().cpu().numpy()
    return out
