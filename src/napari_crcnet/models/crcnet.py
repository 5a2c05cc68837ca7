"""CRCNet: the Concatenated Residual Convolutional Network (the CRCNet paper, section 3).

The network imitates the Iterative Residual Deconvolution (IRD) expansion of the MMSE solution,

.. math::

    x = C_x H^T \\sum_{n=0}^{N} (\\sigma' I - H C_x H^T)^n \\, b ,

with two learned parts:

**Iterative residual part.** ``N = 6`` Residual Units (RU). Each one maps a tensor ``z`` with ``C``
channels to ``RU(z) = z - T(s(W z))`` where ``W`` is a 3x3 convolution ``C -> C``, ``s`` the sigmoid and
``T`` a 3x3 transposed convolution ``C -> C`` (both with padding 1, so the spatial size is kept). ``T s W``
plays the role of ``H C_x H^T`` and the subtraction that of ``sigma' I - ...``. Unit ``i`` takes the
concatenation of the input and every earlier unit output (paper eq. 12)::

    input_1 = b,   input_i = [b, inter_1, ..., inter_{i-1}],   inter_i = RU_i(input_i)

so for RGB the units see 3, 6, 12, 24, 48 and 96 channels.

**Integrative part.** The Integrative Unit (IU) takes ``[b, inter_1, ..., inter_N]`` (192 channels for
RGB) through ``conv7x7 -> activation -> conv7x7``, 192 -> 48 -> 3 channels (padding 3), standing in for
``C_x H^T sum_n``.

The exact paper configuration (:meth:`CRCNetConfig.paper`) has 680,199 parameters for RGB. The dataclass
default differs in three ways that were measured to train better on a CPU budget: a PReLU in the IU (the
paper's ReLU can die early, leaving a flat output), the closed-form MMSE estimate ``m`` as the input
instead of the blurred image, and a global skip ``out = m + net(m)`` whose last convolution starts near
zero, so training starts from the MMSE estimate rather than from scratch.

Tensors are ``(B, C, Y, X)`` (or ``(B, C, Z, Y, X)`` with ``spatial_dims=3``), float, values in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

RU_ACTIVATIONS = ("sigmoid", "relu")
EXTRA_INPUTS = ("noise", "blurred")
#: The "noise" input channel holds ``noise_std / NOISE_MAP_SCALE`` (so 1 % noise gives 0.2, 5 % gives 1).
NOISE_MAP_SCALE = 0.05
IU_ACTIVATIONS = ("relu", "prelu")
INPUTS = ("blurred", "mmse", "hyper-laplacian", "richardson-lucy")


@dataclass
class CRCNetConfig:
    """Architecture of a :class:`CRCNet`.

    Parameters
    ----------
    in_channels : int
        Colour channels of the images (3 for RGB, 1 for gray). Output has the same count.
    n_units : int
        Number of Residual Units ``N`` (paper: 6).
    ru_activation : {"sigmoid", "relu"}
        Non-linearity between the conv and the transposed conv of each RU (paper: sigmoid).
    iu_activation : {"relu", "prelu"}
        Non-linearity between the two 7x7 convolutions of the IU (paper: ReLU; default PReLU, one
        learned slope per channel).
    iu_channels : int
        Hidden channels of the IU (paper: 48).
    concatenate : bool
        Iterative concatenation (paper eq. 12). ``False`` is the ablation "without CR": unit ``i`` only
        sees ``inter_{i-1}`` (all units have ``in_channels`` channels); the IU still takes
        ``[b, inter_1, ..., inter_N]``.
    input : {"blurred", "mmse", "hyper-laplacian", "richardson-lucy"}
        What the caller feeds the network: the blurred image ``b`` (paper), its closed-form MMSE
        estimate ``m = F^-1[conj(K) B / (|K|^2 + sigma)]`` computed with the model card's ``mmse_sigma``,
        or a classical estimate (:func:`napari_crcnet.inference.classical_input`: hyper-Laplacian with the
        card's ``hl_lambda``, Richardson-Lucy with its ``rl_iterations``). The network itself does not compute
        them; :mod:`napari_crcnet.inference` does. The weights do not depend on it (same shapes).
    skip : bool
        Global residual connection: the network returns ``x + IU(...)`` instead of ``IU(...)``.
    spatial_dims : int
        2 for images (``Conv2d``), 3 for volumes (``Conv3d``, kernels 3x3x3 and 7x7x7).
    features : int, optional
        Channels ``F`` of the first Residual Unit. None (the paper): the units start from the image's own
        channels, ``F = in_channels``. A larger ``F`` adds a learned 3x3 convolution (the "lift",
        ``in_channels -> F``) in front of the units, which then see ``F, 2F, 4F, ...`` channels; e.g.
        ``features=3`` gives a gray network the RGB network's widths (the paper's gray network is 3x
        narrower). The IU still returns ``in_channels`` channels.
    extra_inputs : tuple of {"noise", "blurred"}
        Conditioning channels fed after the image (for a model that serves many kernels and noise levels):
        ``"noise"`` one constant map ``noise_std / NOISE_MAP_SCALE``, ``"blurred"`` the blurred image
        itself (``in_channels`` maps) beside the MMSE estimate. The network input then has
        :attr:`input_channels` channels; the output and the global skip use the first ``in_channels``.
    """

    in_channels: int = 3
    n_units: int = 6
    ru_activation: str = "sigmoid"
    iu_activation: str = "prelu"
    iu_channels: int = 48
    concatenate: bool = True
    input: str = "mmse"
    skip: bool = True
    spatial_dims: int = 2
    features: int | None = None
    extra_inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_units", "iu_channels", "features"):
            value = getattr(self, name)
            if name == "features" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CRCNetConfig.{name} must be a positive integer, not {value!r}")
        if self.ru_activation not in RU_ACTIVATIONS:
            raise ValueError(f"ru_activation must be one of {RU_ACTIVATIONS}, not {self.ru_activation!r}")
        if self.iu_activation not in IU_ACTIVATIONS:
            raise ValueError(f"iu_activation must be one of {IU_ACTIVATIONS}, not {self.iu_activation!r}")
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, not {self.input!r}")
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, not {self.spatial_dims!r}")
        if isinstance(self.extra_inputs, str):
            raise ValueError(f"extra_inputs must be a list of names, not the string {self.extra_inputs!r}")
        self.extra_inputs = tuple(self.extra_inputs)
        bad = [name for name in self.extra_inputs if name not in EXTRA_INPUTS]
        if bad or len(set(self.extra_inputs)) != len(self.extra_inputs):
            raise ValueError(f"extra_inputs must be distinct names from {EXTRA_INPUTS}, not {self.extra_inputs!r}")
        self.concatenate = bool(self.concatenate)
        self.skip = bool(self.skip)

    @classmethod
    def paper(cls, in_channels: int = 3) -> CRCNetConfig:
        """The exact configuration of the paper: sigmoid RUs, ReLU IU, blurred input, no global skip."""
        return cls(
            in_channels=in_channels,
            n_units=6,
            ru_activation="sigmoid",
            iu_activation="relu",
            iu_channels=48,
            concatenate=True,
            input="blurred",
            skip=False,
        )

    @property
    def input_channels(self) -> int:
        """Channels of the network input: the image's ``in_channels`` plus the :attr:`extra_inputs` maps."""
        extra = {"noise": 1, "blurred": self.in_channels}
        return self.in_channels + sum(extra[name] for name in self.extra_inputs)

    @property
    def base_channels(self) -> int:
        """Channels ``F`` entering the units: ``features``, or :attr:`input_channels` without a lift."""
        return self.features or self.input_channels

    @property
    def lifted(self) -> bool:
        """Whether a learned convolution lifts the input to ``features`` channels first."""
        return self.features is not None and self.features != self.input_channels

    @property
    def has_gray_equivalent(self) -> bool:
        """Whether :func:`colour_to_gray` can convert this model: colour, with its input read by a lift only."""
        return self.in_channels > 1 and self.lifted

    def unit_channels(self) -> list[int]:
        """Channels of each Residual Unit (in = out): ``F 2^(i-1)`` with concatenation, else ``F``."""
        if not self.concatenate:
            return [self.base_channels] * self.n_units
        return [self.base_channels * 2**i for i in range(self.n_units)]

    def integrative_channels(self) -> int:
        """Channels entering the Integrative Unit: the (lifted) input plus every unit output (192 for RGB)."""
        return self.base_channels + sum(self.unit_channels())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (stored in model cards)."""
        data = asdict(self)
        data["extra_inputs"] = list(self.extra_inputs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CRCNetConfig:
        """Inverse of :meth:`to_dict`; raises ValueError on unknown keys (a card from a newer version)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CRCNetConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


def network_input(config: CRCNetConfig, image: Any, blurred: Any = None, noise: Any = None) -> Any:
    """The network's input: ``image`` (MMSE estimate or blurred image, ``(B, C, *spatial)``) followed by the
    :attr:`~CRCNetConfig.extra_inputs` maps, on axis 1; NumPy arrays or torch tensors (same type out).

    ``noise`` is the noise std, one number or one per batch item (``"noise"`` map value
    ``noise / NOISE_MAP_SCALE``); ``blurred`` is the blurred image (for ``"blurred"``).
    """
    if not config.extra_inputs:
        return image
    is_torch = isinstance(image, torch.Tensor)
    parts = [image]
    for name in config.extra_inputs:
        if name == "noise":
            if noise is None:
                raise ValueError("this model takes the noise level as an input: pass noise=")
            shape = (image.shape[0], 1, *image.shape[2:])
            if is_torch:
                level = torch.as_tensor(noise, dtype=image.dtype, device=image.device).reshape(-1)
                parts.append((level / NOISE_MAP_SCALE).reshape(-1, *[1] * (image.ndim - 1)).expand(shape))
            else:
                level = np.asarray(noise, dtype=image.dtype).reshape(-1)
                parts.append(np.broadcast_to((level / NOISE_MAP_SCALE).reshape(-1, *[1] * (image.ndim - 1)), shape))
        else:  # "blurred"
            if blurred is None:
                raise ValueError("this model takes the blurred image as an input: pass blurred=")
            parts.append(blurred)
    return torch.cat(parts, dim=1) if is_torch else np.concatenate(parts, axis=1).astype(image.dtype, copy=False)


def _conv(spatial_dims: int) -> type[nn.Module]:
    return nn.Conv2d if spatial_dims == 2 else nn.Conv3d


def _conv_transpose(spatial_dims: int) -> type[nn.Module]:
    return nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d


class ResidualUnit(nn.Module):
    """``RU(z) = z - T(act(W z))``: 3x3 conv, activation, 3x3 transposed conv, channels and size kept.

    Mirrors one IRD step ``r <- sigma' r - H C_x H^T r``: ``W`` ~ ``C_x^(1/2) H^T``, ``T`` ~ its transpose.
    Parameters: ``2 * (9 C^2 + C)`` in 2D.
    """

    def __init__(self, channels: int, activation: str = "sigmoid", spatial_dims: int = 2) -> None:
        super().__init__()
        self.conv = _conv(spatial_dims)(channels, channels, 3, padding=1)
        self.act = nn.Sigmoid() if activation == "sigmoid" else nn.ReLU()
        self.deconv = _conv_transpose(spatial_dims)(channels, channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z - self.deconv(self.act(self.conv(z)))


class IntegrativeUnit(nn.Module):
    """``conv7x7 (C_in -> hidden) -> activation -> conv7x7 (hidden -> C_out)``, padding 3 (size kept)."""

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        out_channels: int,
        activation: str = "relu",
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        conv = _conv(spatial_dims)
        self.conv1 = conv(in_channels, hidden, 7, padding=3)
        self.act = nn.ReLU() if activation == "relu" else nn.PReLU(hidden, init=0.25)
        self.conv2 = conv(hidden, out_channels, 7, padding=3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(z)))


class CRCNet(nn.Module):
    """The CRCNet of the paper; see the module docstring for the architecture.

    Parameters
    ----------
    config : CRCNetConfig, optional
        Architecture (default: ``CRCNetConfig()``, the robust variant; ``CRCNetConfig.paper()`` for the
        exact paper network).

    Notes
    -----
    With ``config.skip`` the last convolution is initialised with weights scaled by 1e-3 and zero bias,
    so that a fresh network is (almost) the identity: ``out ~= x``, i.e. it starts at the MMSE estimate
    when fed one. Gradients still reach every layer from the first step, unlike an exact zero init of
    both the weights and the preceding activations.
    """

    def __init__(self, config: CRCNetConfig | None = None) -> None:
        super().__init__()
        self.config = CRCNetConfig() if config is None else config
        cfg = self.config
        self.lift = _conv(cfg.spatial_dims)(cfg.input_channels, cfg.features, 3, padding=1) if cfg.lifted else None
        self.units = nn.ModuleList(
            ResidualUnit(c, cfg.ru_activation, cfg.spatial_dims) for c in cfg.unit_channels()
        )
        self.integrate = IntegrativeUnit(
            cfg.integrative_channels(), cfg.iu_channels, cfg.in_channels, cfg.iu_activation, cfg.spatial_dims
        )
        if cfg.skip:
            self.start_from_input()

    def start_from_input(self) -> None:
        """Scale the last convolution by 1e-3 and zero its bias, so that with the global skip the network
        returns (almost exactly) its input: training then starts from the input estimate's quality."""
        with torch.no_grad():
            self.integrate.conv2.weight.mul_(1e-3)
            self.integrate.conv2.bias.zero_()

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel depends on, per side: 2 per RU (two 3x3 layers) + 6 for the IU.

        The deepest path runs through every unit in turn, so ``2 * n_units + 6`` (18 for the paper net),
        plus 1 for the lift when there is one. Tiles that overlap by at least this much reproduce the
        untiled result exactly.
        """
        return 2 * self.config.n_units + 6 + int(self.config.lifted)

    @property
    def n_parameters(self) -> int:
        """Number of trainable scalars (680,199 for ``CRCNetConfig.paper(3)``)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, x: torch.Tensor, return_residues: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Deblur ``x`` (``(B, C, *spatial)``).

        Parameters
        ----------
        x : torch.Tensor
            The blurred image (``config.input == "blurred"``) or its MMSE or classical estimate, followed by
            the :attr:`~CRCNetConfig.extra_inputs` maps: ``(B, input_channels, *spatial)``.
        return_residues : bool
            Also return the unit outputs ``[inter_1, ..., inter_N]`` (the learned residues; unit ``i``
            has ``config.unit_channels()[i-1]`` channels).

        Returns
        -------
        out : torch.Tensor
            ``IU([z, inter_1..inter_N])`` with ``z = x`` (or ``lift(x)``), plus ``x`` when ``config.skip``;
            same shape as ``x``.
        residues : list of torch.Tensor
            Only with ``return_residues=True``.
        """
        expected = self.config.input_channels
        if x.ndim != self.config.spatial_dims + 2 or x.shape[1] != expected:
            axes = "Z, Y, X" if self.config.spatial_dims == 3 else "Y, X"
            raise ValueError(f"CRCNet expects a tensor (B, {expected}, {axes}), got shape {tuple(x.shape)}")
        outputs = [x if self.lift is None else self.lift(x)]
        for unit in self.units:
            z = torch.cat(outputs, dim=1) if self.config.concatenate else outputs[-1]
            outputs.append(unit(z))
        out = self.integrate(torch.cat(outputs, dim=1))
        if self.config.skip:
            out = out + x[:, : self.config.in_channels]
        if return_residues:
            return out, outputs[1:]
        return out

    def extra_repr(self) -> str:
        return f"receptive_radius={self.receptive_radius}, parameters={self.n_parameters:,}"


def colour_to_gray(net: CRCNet) -> CRCNet:
    """The 1-channel CRCNet that computes exactly what ``net`` (a lifted colour model) does on a gray image
    given as equal channels, with the mean of its output channels as the result.

    Only the two layers that touch image channels change; everything between them is copied:

    - the lift reads ``C`` equal image maps (and, for ``"blurred"`` inputs, ``C`` equal blurred maps), so
      its weights for them are summed: ``W_gray[:, 0] = sum_c W[:, c]``; the noise map's weights stay;
    - the Integrative Unit's last convolution is averaged over its ``C`` outputs:
      ``W_gray[0] = mean_c W[c]``, ``b_gray = mean_c b_c``; the global skip then adds the gray input, which
      is the mean of the equal skip channels.

    Used to start a gray model's training from a trained colour one (``TrainConfig(init=...)``). Raises
    ValueError for a model without a lift (its units read the image channels directly) or a gray one.
    """
    cfg = net.config
    if not cfg.has_gray_equivalent:
        raise ValueError("colour_to_gray needs a colour model whose input goes through a lift (features set)")
    like = next(net.parameters())
    gray = CRCNet(CRCNetConfig.from_dict({**cfg.to_dict(), "in_channels": 1})).to(like.device, like.dtype)
    state = {key: value.clone() for key, value in net.state_dict().items()}
    c = cfg.in_channels
    lift = state["lift.weight"]
    groups = [lift[:, :c].sum(dim=1, keepdim=True)]
    offset = c
    for name in cfg.extra_inputs:
        width = 1 if name == "noise" else c
        block = lift[:, offset : offset + width]
        groups.append(block if name == "noise" else block.sum(dim=1, keepdim=True))
        offset += width
    state["lift.weight"] = torch.cat(groups, dim=1)
    state["integrate.conv2.weight"] = state["integrate.conv2.weight"].mean(dim=0, keepdim=True)
    state["integrate.conv2.bias"] = state["integrate.conv2.bias"].mean(dim=0, keepdim=True)
    gray.load_state_dict(state)
    return gray
