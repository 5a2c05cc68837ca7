"""The data step after the network (napari_crcnet.datastep): its closed form against the literal minimiser,
the mu rule, card checks, and that inference and training apply the same step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage import data

from napari_crcnet.datastep import apply_data_step, check_rule, data_step, data_step_mu, rule_stages
from napari_crcnet.operators import BlurOperator
from napari_crcnet.training import TrainConfig, train
from napari_crcnet.training.inputs import NetworkInputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RULE = {"mu": 0.05, "power": 1.5, "noise_floor": 0.004}
TINY = {"n_units": 2, "iu_channels": 8, "extra_inputs": ["noise"]}


def _kernel() -> np.ndarray:
    k = np.zeros((7, 7))
    k[3, 1:6] = 1.0
    k[2, 5] = 0.5  # asymmetric: a flipped kernel would not match
    return k / k.sum()


def _periodic_blur(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Literal circular convolution (sum over the kernel's taps), independent of the FFT code."""
    out = np.zeros_like(x)
    c = k.shape[0] // 2, k.shape[1] // 2
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            out += k[i, j] * np.roll(x, (i - c[0], j - c[1]), axis=(0, 1))
    return out


def test_data_step_is_the_minimiser_of_the_data_term_plus_distance_to_the_estimate():
    """Periodic: x = argmin ||Hx - b||^2 + mu ||x - z||^2, i.e. (H^T H + mu I) x = H^T b + mu z, solved
    densely with H built tap by tap."""
    rng = np.random.default_rng(0)
    n, k, mu = 12, _kernel(), 0.03
    b, z = rng.random((n, n)), rng.random((n, n))
    columns = [_periodic_blur(e.reshape(n, n), k).ravel() for e in np.eye(n * n)]
    H = np.stack(columns, axis=1)
    expected = np.linalg.solve(H.T @ H + mu * np.eye(n * n), H.T @ b.ravel() + mu * z.ravel()).reshape(n, n)
    op = BlurOperator(k, boundary="periodic", device="cpu", dtype=torch.float64)
    x = data_step(op, torch.as_tensor(b), torch.as_tensor(z), mu).numpy()
    np.testing.assert_allclose(x, expected, atol=1e-10)


@pytest.mark.parametrize("boundary", ["taper", "reflect"])
def test_data_step_keeps_a_consistent_estimate_and_returns_the_estimate_for_large_mu(boundary):
    rng = np.random.default_rng(1)
    op = BlurOperator(_kernel(), boundary=boundary, device="cpu", dtype=torch.float64)
    x = torch.as_tensor(rng.random((2, 30, 34)))
    # b = H x exactly: the residual is zero and x is kept, whatever mu
    torch.testing.assert_close(data_step(op, op.forward(x), x, 1e-3), x, atol=1e-12, rtol=0)
    z = torch.as_tensor(rng.random((2, 30, 34)))
    far = data_step(op, op.forward(x), z, 1e9)
    torch.testing.assert_close(far, z, atol=1e-8, rtol=0)


def test_a_small_mu_recovers_the_image_from_noise_free_data_where_the_estimate_is_wrong():
    image = data.camera()[::8, ::8].astype(np.float64) / 255
    k = np.exp(-((np.arange(5) - 2.0) ** 2) / 2)
    k = np.outer(k, k) / np.outer(k, k).sum()  # a Gaussian: no zero in its transfer function
    op = BlurOperator(k, boundary="periodic", device="cpu", dtype=torch.float64)
    b = op.forward(torch.as_tensor(image))
    z = torch.zeros_like(b) + image.mean()  # a flat guess
    x = data_step(op, b, z, 1e-9).numpy()
    assert np.abs(x - image).max() < 1e-3
    assert np.abs(z.numpy() - image).max() > 0.3


def test_mu_rule():
    assert data_step_mu(0.01, RULE) == pytest.approx(0.05)
    assert data_step_mu(0.04, RULE) == pytest.approx(0.05 * 4**1.5)
    assert data_step_mu(0.001, RULE) == pytest.approx(0.05 * 0.4**1.5)  # the floor 0.4 %
    assert data_step_mu(0.0, {**RULE, "noise_floor": 0.0}) > 0  # never zero


@pytest.mark.parametrize("rule", [None, {"mu": 0.1}, {**RULE, "mu": 0}, {**RULE, "noise_floor": -1},
                                  {**RULE, "power": float("nan")}, {**RULE, "extra": 1}, {**RULE, "mu": "a"},
                                  {**RULE, "stages": 0}, {**RULE, "stages": 9}, {**RULE, "stages": 1.5},
                                  {**RULE, "stages": True}, {**RULE, "stages": "2"}])
def test_malformed_rules_are_refused(rule):
    with pytest.raises(ValueError, match="data_step"):
        check_rule(rule)


def test_stages_default_to_one():
    assert rule_stages(None) == 1
    assert rule_stages(RULE) == 1
    assert rule_stages({**RULE, "stages": 3}) == 3
    assert check_rule({**RULE, "stages": 2})["stages"] == 2


def test_data_step_refuses_a_non_positive_mu():
    op = BlurOperator(_kernel(), device="cpu")
    with pytest.raises(ValueError, match="mu must be"):
        data_step(op, torch.zeros(8, 8), torch.zeros(8, 8), 0.0)


def _tiny_model(tmp_path, rule):
    from napari_crcnet.models.crcnet import CRCNet, CRCNetConfig
    from napari_crcnet.models.store import save_model

    torch.manual_seed(0)
    net = CRCNet(CRCNetConfig(in_channels=1, **TINY))
    with torch.no_grad():
        net.integrate.conv2.weight.normal_(0, 0.05)  # not the identity: the step has something to correct
    card = {"name": "tiny", "kernel": None, "mmse_sigma": "suggest", "mmse_boundary": "taper",
            "kernel_family": {"max_kernel": 15}}
    if rule is not None:
        card["data_step"] = rule
    return save_model(tmp_path / "tiny.safetensors", net, card), net


def test_inference_applies_the_cards_data_step_after_the_network(tmp_path):
    import napari_crcnet as nc
    from napari_crcnet.inference import apply_model
    from napari_crcnet.models.store import load_model

    _tiny_model(tmp_path, RULE)
    net, card = load_model(tmp_path / "tiny.safetensors", device="cpu")
    image = (data.camera()[100:164, 80:140] / 255.0).astype(np.float32)
    before = image.copy()
    out = nc.crcnet(image, (net, card), _kernel(), noise=0.01, device="cpu", fast=False)
    np.testing.assert_array_equal(image, before)
    plain = {key: value for key, value in card.items() if key != "data_step"}
    z = apply_model(net, plain, image, kernel=_kernel(), noise=0.01, device="cpu", fast=False)
    expected = apply_data_step(z[None, None], image[None, None], _kernel(), 0.05, "taper")[0, 0]
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.abs(out - z).max() > 1e-3  # the step changed the output


def test_inference_unrolls_the_rules_stages_feeding_each_step_output_to_the_network(tmp_path):
    import napari_crcnet as nc
    from napari_crcnet.inference import _tiles, apply_model
    from napari_crcnet.models.store import load_model

    _tiny_model(tmp_path, {**RULE, "stages": 2})
    net, card = load_model(tmp_path / "tiny.safetensors", device="cpu")
    image = (data.camera()[100:164, 80:140] / 255.0).astype(np.float32)
    out = nc.crcnet(image, (net, card), _kernel(), noise=0.01, device="cpu", fast=False)
    one = apply_model(net, {**card, "data_step": RULE}, image, kernel=_kernel(), noise=0.01, device="cpu", fast=False)
    # The second stage by hand: the network on the first step's output (with its noise map), then the step.
    with torch.no_grad():
        noise_map = torch.full((1, 1, *image.shape), 0.01 / 0.05)
        z = net(torch.cat([torch.as_tensor(one)[None, None], noise_map], dim=1))[0, 0].numpy()
    expected = apply_data_step(z[None, None], image[None, None], _kernel(), 0.05, "taper")[0, 0]
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert np.abs(out - one).max() > 1e-3  # the second stage changed the output
    calls = []
    nc.crcnet(image, (net, card), _kernel(), noise=0.01, device="cpu", fast=False, tile=32, overlap=10,
              progress=lambda done, total: calls.append((done, total)))
    tiles = len(_tiles(image.shape, 32, 10))
    assert tiles > 1 and calls == [(i, 2 * tiles) for i in range(1, 2 * tiles + 1)]  # both stages, in order


def test_a_malformed_data_step_in_a_card_is_a_clear_error(tmp_path):
    from napari_crcnet.models.store import load_model

    _tiny_model(tmp_path, RULE)
    path = tmp_path / "tiny.json"
    card = json.loads(path.read_text())
    card["data_step"] = {"mu": -1}
    path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="malformed 'data_step'"):
        load_model(tmp_path / "tiny.safetensors", device="cpu")


def test_training_applies_the_step_per_crop_with_its_own_kernel_and_noise():
    from napari_crcnet.models.crcnet import CRCNetConfig

    inputs = NetworkInputs(CRCNetConfig(in_channels=1, **TINY), torch.device("cpu"), "taper", data_step=RULE)
    rng = np.random.default_rng(2)
    blurred = torch.as_tensor(rng.random((2, 1, 40, 40)), dtype=torch.float32)
    out = torch.as_tensor(rng.random((2, 1, 40, 40)), dtype=torch.float32)
    kernels, noise = [_kernel(), np.ones((3, 5)) / 15], torch.tensor([0.002, 0.03])
    finished = inputs.finish(out, blurred, kernels, noise)
    for i in range(2):
        expected = apply_data_step(out[i : i + 1].numpy(), blurred[i : i + 1].numpy(), kernels[i],
                                   data_step_mu(float(noise[i]), RULE), "taper")
        np.testing.assert_allclose(finished[i : i + 1].numpy(), expected, atol=1e-6)
    plain = NetworkInputs(CRCNetConfig(in_channels=1, **TINY), torch.device("cpu"), "taper")
    assert plain.finish(out, blurred, kernels, noise) is out


def test_training_unrolls_the_stages_as_inference_does():
    from napari_crcnet.models.crcnet import CRCNet, CRCNetConfig, network_input

    config = CRCNetConfig(in_channels=1, **TINY)
    torch.manual_seed(1)
    net = CRCNet(config)
    with torch.no_grad():
        net.integrate.conv2.weight.normal_(0, 0.05)
    inputs = NetworkInputs(config, torch.device("cpu"), "taper", data_step={**RULE, "stages": 3})
    assert inputs.stages == 3
    rng = np.random.default_rng(4)
    blurred = torch.as_tensor(rng.random((2, 1, 40, 40)), dtype=torch.float32)
    kernels, noise = [_kernel(), np.ones((3, 5)) / 15], torch.tensor([0.002, 0.03])
    with torch.no_grad():
        net_input, _ = inputs(blurred, kernels, noise)
        out = inputs.unrolled(net, net_input, blurred, kernels, noise)
        expected = inputs.finish(net(net_input), blurred, kernels, noise)
        for _ in range(2):
            expected = inputs.finish(net(network_input(config, expected, blurred, noise)), blurred, kernels, noise)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-6)


def _any_config(tmp_path, **overrides) -> TrainConfig:
    cam = data.camera()[::4, ::4]
    options = dict(kernel="any", images=[cam[:64, :64], cam[64:, :64]], val_images=[cam[32:96, 32:96]], channels=1,
                   model=dict(TINY), iterations=2, batch=2, crop=32, val_every=0, val_size=32, seed=3, amp="off",
                   max_kernel=9, noise_range=(0.01, 0.04))
    options.update(overrides)
    return TrainConfig(**options)


def test_a_fine_tune_keeps_its_init_models_data_step_and_a_run_may_set_or_drop_it(tmp_path):
    _tiny_model(tmp_path, RULE)
    init = tmp_path / "tiny.safetensors"
    kept = train(_any_config(tmp_path, init=init, output=tmp_path / "kept.safetensors"))
    assert kept.card["data_step"] == RULE
    other = {**RULE, "mu": 0.2}
    assert train(_any_config(tmp_path, init=init, data_step=other)).card["data_step"] == other
    assert "data_step" not in train(_any_config(tmp_path, init=init, data_step=None)).card
    with pytest.raises(ValueError, match="data_step"):
        train(_any_config(tmp_path, data_step={"mu": 1}))
