"""The CRCNet network: architecture exactly as in the paper (section 3), variants, residues, init."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_crcnet.models.crcnet import CRCNet, CRCNetConfig, network_input

torch.set_num_threads(1)


def expected_parameters(c: int, n: int = 6, hidden: int = 48, concatenate: bool = True, prelu: bool = False) -> int:
    """Closed-form count: RU with C channels = 2 (9 C^2 + C); IU = 49 Cin h + h + 49 h C + C (+ h PReLU)."""
    units = [c * 2**i for i in range(n)] if concatenate else [c] * n
    ru = sum(2 * (9 * u * u + u) for u in units)
    iu_in = c + sum(units)
    iu = 49 * iu_in * hidden + hidden + 49 * hidden * c + c
    return ru + iu + (hidden if prelu else 0)


def test_paper_rgb_has_680199_parameters_and_the_channel_plan():
    net = CRCNet(CRCNetConfig.paper(3))
    assert net.n_parameters == 680_199 == expected_parameters(3)
    assert net.config.unit_channels() == [3, 6, 12, 24, 48, 96]
    assert net.config.integrative_channels() == 192
    # Each unit keeps its channel count: conv C->C 3x3 and transposed conv C->C 3x3.
    for unit, c in zip(net.units, [3, 6, 12, 24, 48, 96]):
        assert tuple(unit.conv.weight.shape) == (c, c, 3, 3)
        assert tuple(unit.deconv.weight.shape) == (c, c, 3, 3)
        assert isinstance(unit.deconv, torch.nn.ConvTranspose2d)
        assert isinstance(unit.act, torch.nn.Sigmoid)
    assert tuple(net.integrate.conv1.weight.shape) == (48, 192, 7, 7)
    assert tuple(net.integrate.conv2.weight.shape) == (3, 48, 7, 7)
    assert isinstance(net.integrate.act, torch.nn.ReLU)


@pytest.mark.parametrize("c", [1, 2])
def test_other_channel_counts(c):
    assert CRCNet(CRCNetConfig.paper(c)).n_parameters == expected_parameters(c)


def test_gray_paper_count():
    assert CRCNet(CRCNetConfig.paper(1)).n_parameters == 177_625
    assert CRCNetConfig.paper(1).unit_channels() == [1, 2, 4, 8, 16, 32]


def test_default_config_differs_from_paper_as_specified():
    paper, default = CRCNetConfig.paper(), CRCNetConfig()
    assert (paper.iu_activation, paper.input, paper.skip) == ("relu", "blurred", False)
    assert (default.iu_activation, default.input, default.skip) == ("prelu", "mmse", True)
    same = ("in_channels", "n_units", "ru_activation", "iu_channels", "concatenate", "spatial_dims")
    assert all(getattr(paper, k) == getattr(default, k) for k in same)
    assert CRCNet(default).n_parameters == expected_parameters(3, prelu=True)


def test_without_concatenation_ablation():
    config = CRCNetConfig(in_channels=3, concatenate=False)
    assert config.unit_channels() == [3] * 6
    assert config.integrative_channels() == 21
    net = CRCNet(config)
    assert net.n_parameters == expected_parameters(3, concatenate=False, prelu=True)
    x = torch.rand(1, 3, 20, 20)
    out, residues = net(x, return_residues=True)
    assert out.shape == x.shape and [r.shape[1] for r in residues] == [3] * 6
    # Unit i sees only inter_{i-1}: its output equals the unit applied to the previous output alone.
    with torch.no_grad():
        assert torch.allclose(net.units[2](residues[1]), residues[2])


def test_forward_shapes_and_residues():
    net = CRCNet(CRCNetConfig.paper(3))
    x = torch.rand(2, 3, 17, 23)
    with torch.no_grad():
        out = net(x)
        out2, residues = net(x, return_residues=True)
    assert out.shape == x.shape
    assert torch.equal(out, out2)
    assert [tuple(r.shape) for r in residues] == [(2, c, 17, 23) for c in (3, 6, 12, 24, 48, 96)]
    # The literal recurrence of eq. (12): unit i gets [b, inter_1, ..., inter_{i-1}].
    with torch.no_grad():
        inputs = [x]
        for unit, r in zip(net.units, residues):
            z = torch.cat(inputs, 1)
            assert torch.allclose(unit(z), r)
            assert torch.allclose(r, z - unit.deconv(torch.sigmoid(unit.conv(z))))
            inputs.append(r)
        assert torch.allclose(net.integrate(torch.cat(inputs, 1)), out)


def test_skip_model_starts_near_identity():
    torch.manual_seed(0)
    net = CRCNet(CRCNetConfig(in_channels=3))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = net(x)
    assert float((out - x).abs().max()) < 5e-3
    # ...but it is not frozen there: every parameter gets a gradient on the first step.
    loss = ((net(x) - 0.5) ** 2).mean()
    loss.backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.parameters())
    # The paper network (no skip) is not the identity.
    with torch.no_grad():
        assert float((CRCNet(CRCNetConfig.paper(3))(x) - x).abs().max()) > 1e-2


@pytest.mark.parametrize(("config", "radius"), [(CRCNetConfig.paper(1), 18), (CRCNetConfig(1, features=2), 19)])
def test_receptive_radius_is_exact(config, radius):
    net = CRCNet(config).double()
    assert net.receptive_radius == radius
    # A delta perturbation changes the output exactly within the radius (Chebyshev distance).
    x = torch.rand(1, 1, 49, 49, dtype=torch.float64)
    y = x.clone()
    y[0, 0, 24, 24] += 1.0
    with torch.no_grad():
        diff = (net(y) - net(x)).abs()[0, 0]
    changed = (diff > 0).nonzero()
    assert int((changed - 24).abs().max()) == radius


def test_extra_inputs_widen_the_input_only():
    config = CRCNetConfig(in_channels=3, extra_inputs=["noise", "blurred"])
    assert config.extra_inputs == ("noise", "blurred") and config.input_channels == 7
    assert CRCNetConfig.from_dict(config.to_dict()) == config
    net = CRCNet(config)
    x = torch.rand(2, 7, 16, 16)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 3, 16, 16)
    # Skip from the image channels only: a fresh skip net is close to them, not to the extra maps.
    assert float((out - x[:, :3]).abs().max()) < 0.05
    with pytest.raises(ValueError, match="expects a tensor"):
        net(torch.rand(1, 3, 8, 8))


def test_features_lift_widens_every_unit():
    """features=F puts a 3x3 conv (C -> F) in front; units see F, 2F, ...; the output keeps C channels."""
    gray = CRCNetConfig(in_channels=1)
    wide = CRCNetConfig(in_channels=1, features=3)
    assert wide.unit_channels() == CRCNetConfig.paper(3).unit_channels() == [3, 6, 12, 24, 48, 96]
    assert wide.integrative_channels() == 192 and gray.integrative_channels() == 64
    net = CRCNet(wide)
    # The default RGB net (paper + 48 PReLU slopes) minus the IU's two extra output maps, plus the lift.
    lift = 1 * 3 * 9 + 3
    iu_out_difference = (3 - 1) * (48 * 49 + 1)
    assert net.n_parameters == 680_199 + 48 - iu_out_difference + lift
    out, residues = net(torch.rand(2, 1, 20, 24), return_residues=True)
    assert out.shape == (2, 1, 20, 24)
    assert [r.shape[1] for r in residues] == wide.unit_channels()
    # features equal to in_channels is the paper's plain network (no lift).
    assert CRCNet(CRCNetConfig(in_channels=3, features=3)).lift is None
    assert CRCNet(CRCNetConfig(in_channels=3, features=3)).n_parameters == CRCNet(CRCNetConfig()).n_parameters
    assert CRCNetConfig.from_dict(wide.to_dict()) == wide


def test_volumes():
    net = CRCNet(CRCNetConfig(in_channels=1, n_units=2, iu_channels=4, spatial_dims=3))
    x = torch.rand(1, 1, 6, 7, 8)
    out, residues = net(x, return_residues=True)
    assert out.shape == x.shape and [r.shape[1] for r in residues] == [1, 2]


def test_config_dict_round_trip_and_validation():
    config = CRCNetConfig(in_channels=1, n_units=4, iu_activation="relu", concatenate=False, input="blurred")
    assert CRCNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        CRCNetConfig.from_dict({**config.to_dict(), "depth": 3})
    for bad in (
        {"ru_activation": "tanh"},
        {"iu_activation": "gelu"},
        {"input": "sharp"},
        {"in_channels": 0},
        {"spatial_dims": 4},
        {"n_units": 2.5},
        {"features": 0},
        {"extra_inputs": ("noise", "noise")},
        {"extra_inputs": ("kernel",)},
        {"extra_inputs": "noise"},
    ):
        with pytest.raises(ValueError):
            CRCNetConfig(**bad)
    with pytest.raises(ValueError, match="expects a tensor"):
        CRCNet(CRCNetConfig.paper(3))(torch.rand(1, 1, 8, 8))


def test_network_input_is_the_same_for_numpy_and_torch():
    from napari_crcnet.models.crcnet import NOISE_MAP_SCALE, network_input

    config = CRCNetConfig(in_channels=3, extra_inputs=("noise", "blurred"))
    rng = np.random.default_rng(0)
    image, blurred = rng.random((2, 3, 5, 6), np.float32), rng.random((2, 3, 5, 6), np.float32)
    noise = np.array([0.01, 0.03], np.float32)
    from_numpy = network_input(config, image, blurred, noise)
    from_torch = network_input(config, torch.from_numpy(image), torch.from_numpy(blurred), torch.from_numpy(noise))
    assert from_numpy.shape == (2, 7, 5, 6) and from_numpy.dtype == np.float32
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, rtol=1e-6)
    np.testing.assert_allclose(from_numpy[1, 3], 0.03 / NOISE_MAP_SCALE, rtol=1e-6)
    np.testing.assert_array_equal(from_numpy[:, 4:], blurred)
    assert network_input(CRCNetConfig(), image) is image  # nothing to add: the image itself
    with pytest.raises(ValueError, match="noise"):
        network_input(config, image, blurred)
    with pytest.raises(ValueError, match="blurred"):
        network_input(CRCNetConfig(extra_inputs=("blurred",)), image, noise=0.01)


@pytest.mark.parametrize("extra", [(), ("noise",), ("noise", "blurred")])
def test_colour_to_gray_is_the_colour_model_on_equal_channels_averaged(extra):
    """gray_net(x) == mean_c colour_net([x, x, x]) exactly, for every extra input (random weights, float64)."""
    from napari_crcnet.models.crcnet import colour_to_gray

    torch.manual_seed(0)
    config = CRCNetConfig(in_channels=3, n_units=3, iu_channels=6, extra_inputs=extra, features=5)
    net = CRCNet(config).double()
    with torch.no_grad():
        for parameter in net.parameters():  # far from the near-identity init, so every layer matters
            parameter.normal_(0, 0.2)
    gray = colour_to_gray(net)
    assert gray.config.to_dict() == {**config.to_dict(), "in_channels": 1}
    x, b = torch.rand(2, 1, 20, 16, dtype=torch.float64), torch.rand(2, 1, 20, 16, dtype=torch.float64)
    colour_in = network_input(config, x.expand(-1, 3, -1, -1), blurred=b.expand(-1, 3, -1, -1), noise=[0.01, 0.03])
    expected = net(colour_in).mean(dim=1, keepdim=True)
    assert expected.std() > 1  # a real function of the input, not the skip alone
    torch.testing.assert_close(gray(network_input(gray.config, x, blurred=b, noise=[0.01, 0.03])), expected)
    for parameter in net.parameters():  # the source is left as it was
        assert parameter.dtype == torch.float64


def test_colour_to_gray_needs_a_lifted_colour_model():
    from napari_crcnet.models.crcnet import colour_to_gray

    for config in (CRCNetConfig(in_channels=3, n_units=2, iu_channels=4),
                   CRCNetConfig(in_channels=1, n_units=2, iu_channels=4, features=3)):
        with pytest.raises(ValueError, match="lift"):
            colour_to_gray(CRCNet(config))
