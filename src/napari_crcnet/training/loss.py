"""The CRCNet training loss (paper eq. 13-15): a smooth-L1 content term plus a gradient (edge) term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Weights of the paper (section 4.1): alpha for the content loss, gamma for the edge loss.
PAPER_ALPHA = 5000.0
PAPER_GAMMA = 100.0


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences of ``x`` (``..., Y, X``): ``(dh x, dv x)``.

    ``dh x[..., i, j] = x[..., i, j + 1] - x[..., i, j]`` (horizontal, shape ``(..., Y, X - 1)``) and
    ``dv x[..., i, j] = x[..., i + 1, j] - x[..., i, j]`` (vertical, shape ``(..., Y - 1, X)``).
    No padding, so no boundary term enters the loss.
    """
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def crcnet_loss(
    estimate: torch.Tensor,
    target: torch.Tensor,
    alpha: float = PAPER_ALPHA,
    gamma: float = PAPER_GAMMA,
    beta: float = 1.0,
    return_parts: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""CRCNet loss ``L = alpha * Lc + gamma * Le`` (paper eqs. 13-15).

    .. math::

        L_c = \operatorname{mean}\, \mathrm{smoothL1}_\beta(\hat x - x), \qquad
        L_e = \operatorname{mean}\,(\partial_h \hat x - \partial_h x)^2
            + \operatorname{mean}\,(\partial_v \hat x - \partial_v x)^2

    with ``smoothL1_beta(d) = 0.5 d^2 / beta`` for ``|d| < beta`` and ``|d| - 0.5 beta`` otherwise
    (Girshick 2015; beta = 1 as in the paper, so for images in [0, 1] the content term is half the mean
    squared error). The paper writes the squared norms ``||.||^2`` without saying whether they are sums or
    means; here every term is a **mean** over batch, channels and pixels, so the loss does not depend on
    the crop or batch size and the paper's weights alpha = 5000, gamma = 100 give losses of order 1-10 for
    images in [0, 1] (intensity units squared).

    Parameters
    ----------
    estimate, target : torch.Tensor
        ``(..., Y, X)`` restored and clear images, same shape. Computed in float32 whatever the input
        dtype (bf16 autocast outputs are upcast) so the small differences are not rounded away.
    alpha, gamma : float
        Weights of the content and edge terms (paper: 5000 and 100).
    beta : float
        Smooth-L1 transition point.
    return_parts : bool
        Also return the unweighted ``(Lc, Le)``.

    Returns
    -------
    torch.Tensor or tuple
        The scalar loss, or ``(loss, Lc, Le)``.
    """
    if estimate.shape != target.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} differ in shape")
    estimate = estimate.float()
    target = target.float()
    content = F.smooth_l1_loss(estimate, target, beta=beta, reduction="mean")
    eh, ev = image_gradients(estimate)
    th, tv = image_gradients(target)
    edge = F.mse_loss(eh, th, reduction="mean") + F.mse_loss(ev, tv, reduction="mean")
    loss = alpha * content + gamma * edge
    if return_parts:
        return loss, content, edge
    return loss
