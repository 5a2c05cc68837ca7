"""Non-blind deconvolution with a hyper-Laplacian gradient prior (Krishnan & Fergus, NIPS 2009).

The strong classical baseline (not in the CRCNet paper). It minimises::

    lam/2 ||k * x - b||^2 + sum_a sum_pixels |d_a x|^alpha            (0 < alpha <= 2)

(``d_a`` the forward difference along spatial axis ``a``) by half-quadratic splitting: with auxiliary
gradients ``w_a`` and a weight ``beta`` rising from 1 by ``2 sqrt(2)`` up to 256, alternate

* **w-step** (per pixel, scalar): ``w = argmin_w |w|^alpha + beta/2 (w - v)^2`` with ``v = d_a x``. Analytic for
  ``alpha = 1`` (soft threshold), ``alpha = 1/2`` (a cubic in ``u = sqrt|w|``) and ``alpha = 2/3`` (a quartic in
  ``t = |w|^(1/3)``, solved by Ferrari's method); the root with the lower objective, or ``w = 0``, is kept.
  Other ``alpha`` use a bracketed Newton iteration on the stationarity condition.
* **x-step** (one Fourier division on the operator's padded grid)::

      X = (lam conj(K) B + beta sum_a conj(D_a) W_a) / (lam |K|^2 + beta sum_a |D_a|^2)

  with ``K`` and the difference filters ``D_a`` all transfer functions of
  :class:`~napari_crcnet.operators.BlurOperator` objects on the same grid.

Boundaries: ``b`` is extended once by the operator's boundary mode, the splitting runs on that grid
(periodic there), and the result is cropped.

Reference: D. Krishnan and R. Fergus, "Fast Image Deconvolution using Hyper-Laplacian Priors",
NIPS 2009.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._progress import ProgressCallback, report
from .deconv import _check_sigma, _Problem, estimate_noise
from .operators import DEFAULT_BOUNDARY

__all__ = ["beta_schedule", "hyper_laplacian", "shrink", "suggest_lambda"]

# suggest_lambda rule, fitted by benchmarks/sigma_calibration.py (results/sigma_calibration.md):
# best lam (alpha = 2/3, taper) ~= _LAM_COEF * noise_std ** -_LAM_POWER, clipped.
_LAM_COEF = 1.114
_LAM_POWER = 1.7305
_LAM_MIN = 10.0
_LAM_MAX = 1e5
#: Model-error floor of the default lam, as a noise std (see :func:`suggest_lambda`).
LAMBDA_NOISE_FLOOR = 0.008


def beta_schedule(
    beta_start: float = 1.0, beta_rate: float = 2 * math.sqrt(2), beta_max: float = 256.0
) -> list[float]:
    """The continuation weights ``beta_start * beta_rate^i`` not exceeding ``beta_max`` (6 values by default)."""
    if not (beta_start > 0 and beta_rate > 1 and beta_max >= beta_start):
        raise ValueError("need beta_start > 0, beta_rate > 1 and beta_max >= beta_start")
    betas = []
    beta = float(beta_start)
    while beta <= beta_max * (1 + 1e-12):
        betas.append(beta)
        beta *= beta_rate
    return betas


def suggest_lambda(noise_std: float, floor: float | None = None) -> float:
    """Data weight ``lam`` for a noise level: ``lam = 1.114 * n^-1.7305`` with ``n = max(noise_std, floor)``,
    clipped to [10, 1e5].

    Fitted (best PSNR, ``alpha = 2/3``, taper boundary) by ``benchmarks/sigma_calibration.py`` on BSDS500
    training images with random shake and Gaussian kernels; see ``benchmarks/results/sigma_calibration.md``
    (about 3200 at 1 % noise; the rule loses 0.15-0.4 dB against the per-image best lam).
    ``noise_std`` is in [0, 1] image units. ``floor`` stands for model error the noise does not show (a
    measured kernel, quantisation); None uses :data:`LAMBDA_NOISE_FLOOR`, measured on real captures
    (``benchmarks/results/noise_floor.md``); 0 gives the pure noise rule.
    """
    noise = float(noise_std)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    noise = max(noise, LAMBDA_NOISE_FLOOR if floor is None else float(floor))
    if noise == 0:
        return _LAM_MAX
    return float(min(max(_LAM_COEF * noise**-_LAM_POWER, _LAM_MIN), _LAM_MAX))


# -------------------------------------------------------------------------------------- w-step
def _objective(w: torch.Tensor, v: torch.Tensor, beta: float, alpha: float) -> torch.Tensor:
    return w.abs() ** alpha + 0.5 * beta * (w - v) ** 2


def _largest_cubic_root(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest real root of the depressed cubic ``t^3 + p t + q = 0`` and a mask of 'three real roots'.

    Trigonometric form when the discriminant ``-(4p^3 + 27q^2)`` is positive (three real roots),
    Cardano's formula otherwise (one real root).
    """
    disc = -(4 * p**3 + 27 * q**2)
    three = disc > 0
    neg_p = torch.clamp(-p, min=torch.finfo(p.dtype).tiny)
    arg = torch.clamp((1.5 * q / -neg_p) * torch.sqrt(3.0 / neg_p), -1.0, 1.0)
    trig = 2 * torch.sqrt(neg_p / 3.0) * torch.cos(torch.acos(arg) / 3.0)
    root = torch.sqrt(torch.clamp(q**2 / 4 + p**3 / 27, min=0.0))
    a, b = -q / 2 + root, -q / 2 - root
    cardano = torch.sign(a) * a.abs() ** (1 / 3) + torch.sign(b) * b.abs() ** (1 / 3)
    return torch.where(three, trig, cardano), three


def _keep_better(w: torch.Tensor, valid: torch.Tensor, v: torch.Tensor, beta: float, alpha: float):
    """``w`` where it is valid and beats ``w = 0`` on the scalar objective, else 0."""
    w = torch.where(valid, w, torch.zeros_like(w))
    better = _objective(w, v, beta, alpha) < 0.5 * beta * v**2
    return torch.where(better, w, torch.zeros_like(w))


def _shrink_half(v: torch.Tensor, beta: float) -> torch.Tensor:
    # w > 0 (v > 0): 1/(2 sqrt w) = beta (v - w); with u = sqrt(w): u^3 - v u + 1/(2 beta) = 0.
    a = v.abs()
    u, three = _largest_cubic_root(-a, torch.full_like(a, 0.5 / beta))
    return _keep_better(torch.sign(v) * u**2, three & (u > 0), v, beta, 0.5)


def _shrink_two_thirds(v: torch.Tensor, beta: float) -> torch.Tensor:
    # w > 0: (2/3) w^(-1/3) = beta (v - w); with t = w^(1/3): t^4 - v t + 2/(3 beta) = 0 (Ferrari).
    a = v.abs()
    r = 2.0 / (3.0 * beta)
    m, _ = _largest_cubic_root(torch.full_like(a, -r), -(a**2) / 8)  # resolvent: m^3 - r m - v^2/8 = 0
    m = torch.clamp(m, min=torch.finfo(a.dtype).tiny)
    s = torch.sqrt(2 * m)
    inner = 2 * a / s - 2 * m
    t = 0.5 * (s + torch.sqrt(torch.clamp(inner, min=0.0)))
    return _keep_better(torch.sign(v) * t**3, inner >= 0, v, beta, 2.0 / 3.0)


def _shrink_newton(v: torch.Tensor, beta: float, alpha: float, steps: int = 60) -> torch.Tensor:
    """Bracketed Newton on ``g(w) = alpha w^(alpha-1) + beta (w - |v|) = 0`` (any ``0 < alpha <= 2``)."""
    a = v.abs()
    if alpha > 1:  # convex objective: one root in [0, |v|], g increasing
        lo, hi = torch.zeros_like(a), a.clone()
        valid = torch.ones_like(a, dtype=torch.bool)
    else:  # the local minimum lies right of the inflection w_c, where g increases
        w_c = (alpha * (1 - alpha) / beta) ** (1 / (2 - alpha))
        lo, hi = torch.full_like(a, w_c), a.clone()
        g_c = alpha * w_c ** (alpha - 1) + beta * (w_c - a)
        valid = (a > w_c) & (g_c <= 0)
    w = hi.clone()
    tiny = torch.finfo(a.dtype).tiny
    for _ in range(steps):
        wp = torch.clamp(w, min=tiny)
        g = alpha * wp ** (alpha - 1) + beta * (wp - a)
        dg = alpha * (alpha - 1) * wp ** (alpha - 2) + beta
        lo = torch.where(g < 0, w, lo)
        hi = torch.where(g >= 0, w, hi)
        step = w - g / dg
        inside = (step > lo) & (step < hi) & torch.isfinite(step)
        w = torch.where(inside, step, 0.5 * (lo + hi))
    return _keep_better(torch.sign(v) * w, valid, v, beta, alpha)


def shrink(v: torch.Tensor, beta: float, alpha: float) -> torch.Tensor:
    """The w-step: ``argmin_w |w|^alpha + beta/2 (w - v)^2`` element-wise.

    ``alpha = 1``: soft threshold ``sign(v) max(|v| - 1/beta, 0)``; ``alpha = 2``: ``beta v / (beta + 2)``;
    ``alpha = 1/2`` and ``2/3``: analytic roots (see the module docstring); any other ``alpha`` in (0, 2]:
    bracketed Newton. Ties between the non-zero minimiser and ``w = 0`` go to 0.
    """
    if not 0 < alpha <= 2:
        raise ValueError(f"alpha must be in (0, 2], got {alpha!r}")
    if alpha == 1:
        return torch.sign(v) * torch.clamp(v.abs() - 1.0 / beta, min=0.0)
    if alpha == 2:
        return beta * v / (beta + 2.0)
    if abs(alpha - 0.5) < 1e-12:
        return _shrink_half(v, beta)
    if abs(alpha - 2.0 / 3.0) < 1e-12:
        return _shrink_two_thirds(v, beta)
    return _shrink_newton(v, beta, alpha)


# ------------------------------------------------------------------------------------ main entry
def _difference_stencils(ndim: int) -> list[np.ndarray]:
    """Forward differences ``x[i+1] - x[i]`` along each spatial axis, as centred 3-tap convolution stencils."""
    stencils = []
    for axis in range(ndim):
        stencil = np.zeros((3,) * ndim)
        index = [1] * ndim
        stencil[tuple(index)] = -1.0
        index[axis] = 0  # convolution flips: the tap at offset -1 reads x[i + 1]
        stencil[tuple(index)] = 1.0
        stencils.append(stencil)
    return stencils


def hyper_laplacian(
    image: Any,
    kernel: Any,
    lam: float | None = None,
    alpha: float = 2 / 3,
    *,
    n_inner: int = 1,
    beta_start: float = 1.0,
    beta_rate: float = 2 * math.sqrt(2),
    beta_max: float = 256.0,
    channel_axis: int | None = None,
    boundary: str = DEFAULT_BOUNDARY,
    device: Any = "auto",
    dtype: Any = np.float32,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Deconvolve with a hyper-Laplacian gradient prior by half-quadratic splitting (Krishnan & Fergus 2009).

    Minimises ``lam/2 ||k * x - b||^2 + sum |grad x|^alpha`` (see the module docstring).

    Parameters
    ----------
    image : array_like
        Blurred image ``b`` (spatial axes last; integers scaled to [0, 1]).
    kernel : array_like
        Convolution kernel, 2D or 3D (``kernel.ndim`` spatial axes, gradients along each of them).
    lam : float, optional
        Data-term weight (> 0); larger trusts the data more. None: ``suggest_lambda(estimate_noise(image))``.
    alpha : float
        Prior exponent in (0, 2]; 2/3 (default) and 1/2 are the paper's natural-image values.
    n_inner : int
        Alternations (w-step, x-step) per value of ``beta`` (default 1, as Krishnan & Fergus).
    beta_start, beta_rate, beta_max : float
        Continuation: ``beta = beta_start * beta_rate^i <= beta_max`` (1, 2 sqrt 2, 256: 6 outer iterations).
    channel_axis, boundary, device, dtype
        As for :func:`napari_crcnet.deconv.mmse`.
    progress : callable, optional
        ``progress(done, total)`` after every outer iteration (of every chunk of images); raising
        :class:`~napari_crcnet.Cancelled` stops the computation and nothing is returned.

    Returns
    -------
    numpy.ndarray
        Restored image, same shape as ``image``, float32.
    """
    alpha = _check_sigma(alpha, 2.0, "alpha")  # a number in (0, 2], named in the error
    if isinstance(n_inner, bool) or int(n_inner) != n_inner or n_inner < 1:
        raise ValueError(f"n_inner must be a positive integer, got {n_inner!r}")
    betas = beta_schedule(beta_start, beta_rate, beta_max)
    problem = _Problem(image, kernel, channel_axis, boundary, device, dtype)
    if lam is None:
        lam = suggest_lambda(estimate_noise(image, channel_axis=channel_axis))
    lam = _check_sigma(lam, None, "lam")

    op = problem.operator
    dims = tuple(range(-op.ndim, 0))
    K = op.transfer(problem.grid)
    D = [problem.transfer_of(s) for s in _difference_stencils(op.ndim)]
    data_weight = lam * (K.real**2 + K.imag**2)
    gradient_power = sum(d.real**2 + d.imag**2 for d in D)

    inside = _image_mask(problem)
    out = np.empty(problem.batch.shape, dtype=problem.out_dtype)
    parts = list(problem.chunks())
    total = len(betas) * len(parts)
    for c, part in enumerate(parts):
        B = problem.spectrum(part)
        # P b (the image and its extension), only where there is an extension to refill
        extended = None if inside is None else torch.fft.irfftn(B, s=problem.grid, dim=dims)
        X = B
        for i, beta in enumerate(betas):
            if extended is not None and i > 0:
                B = _refill_extension(extended, X, K, inside, problem.grid, dims)
            data_term = lam * K.conj() * B
            denominator = data_weight + beta * gradient_power
            for _ in range(int(n_inner)):
                numerator = data_term
                for d in D:
                    v = torch.fft.irfftn(d * X, s=problem.grid, dim=dims)
                    w = shrink(v, beta, alpha)
                    numerator = numerator + beta * d.conj() * torch.fft.rfftn(w, dim=dims)
                X = numerator / denominator
            report(progress, c * len(betas) + i + 1, total)
        out[part] = op.from_fourier(X, problem.spatial).cpu().numpy()
    return problem.finish(out)


def _image_mask(problem: Any) -> torch.Tensor | None:
    """1 on the image's pixels of the FFT grid, 0 on the extension (None for periodic: no extension)."""
    op = problem.operator
    if op.boundary == "periodic":
        return None
    ones = torch.ones(problem.spatial, dtype=op.dtype, device=op.device)
    return op.crop_adjoint(ones, problem.grid)


def _refill_extension(
    extended: torch.Tensor, X: torch.Tensor, K: torch.Tensor, inside: torch.Tensor, grid: tuple, dims: tuple
) -> torch.Tensor:
    """Spectrum of the data with its extension replaced by the current estimate blurred, ``k * x``.

    The data term then asks ``k * x = b`` on the image only (the extension agrees with the estimate, so it
    costs nothing there): the sparse prior is no longer pulled towards the artificial mirrored and tapered
    border, which otherwise leaves striped ringing along the edges.
    """
    blurred = torch.fft.irfftn(K * X, s=grid, dim=dims)
    return torch.fft.rfftn(inside * extended + (1 - inside) * blurred, dim=dims)
