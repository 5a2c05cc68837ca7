"""The classical network inputs (CRCNetConfig.input "hyper-laplacian", "richardson-lucy") and start_from_input:
training builds the input exactly as inference does, and a fine-tune can start from its input's quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from napari_crcnet.hyperlaplacian import hyper_laplacian, suggest_lambda
from napari_crcnet.models.crcnet import NOISE_MAP_SCALE, CRCNet, CRCNetConfig
from napari_crcnet.richardsonlucy import richardson_lucy
from napari_crcnet.training import TrainConfig, train
from napari_crcnet.training.inputs import NetworkInputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_HL = {"n_units": 2, "iu_channels": 8, "extra_inputs": ["noise"], "input": "hyper-laplacian"}


def _kernel() -> np.ndarray:
    k = np.zeros((7, 7))
    k[3, 1:6] = 1.0
    k[2, 5] = 0.5  # asymmetric: a flipped kernel would not match
    return k / k.sum()


def _images() -> tuple[list[np.ndarray], list[np.ndarray]]:
    cam = data.camera()[::4, ::4]
    return [cam[:64, :64], cam[64:, :64], cam[:64, 64:]], [cam[32:96, 32:96]]


def _any_config(**overrides) -> TrainConfig:
    train_images, val_images = _images()
    options = dict(kernel="any", images=train_images, val_images=val_images, channels=1, model=dict(TINY_HL),
                   iterations=2, batch=2, crop=32, val_every=0, val_size=32, seed=3, log_every=1, amp="off",
                   max_kernel=9, noise_range=(0.01, 0.04))
    options.update(overrides)
    return TrainConfig(**options)


def test_training_input_is_each_crops_hyper_laplacian_estimate_with_its_own_kernel_and_noise():
    config = CRCNetConfig(in_channels=1, **TINY_HL)
    inputs = NetworkInputs(config, torch.device("cpu"), "taper", classical={"hl_noise_floor": 0.008})
    rng = np.random.default_rng(0)
    blurred = torch.as_tensor(rng.random((2, 1, 40, 40)), dtype=torch.float32)
    kernels = [_kernel(), np.ones((3, 5)) / 15]
    noise = torch.tensor([0.002, 0.03])
    net_input, _ = inputs(blurred, kernels, noise)
    assert net_input.shape == (2, 2, 40, 40)
    for i in range(2):
        lam = suggest_lambda(float(noise[i]), floor=0.008)
        expected = hyper_laplacian(blurred[i, 0].numpy(), kernels[i], lam, boundary="taper", device="cpu")
        np.testing.assert_allclose(net_input[i, 0].numpy(), expected, atol=1e-6)
        np.testing.assert_allclose(net_input[i, 1].numpy(), float(noise[i]) / NOISE_MAP_SCALE, rtol=1e-6)
    # The floor matters: 0.2 % noise is raised to 0.8 %, so the input is smoother than the pure noise rule's.
    unfloored = hyper_laplacian(blurred[0, 0].numpy(), kernels[0], suggest_lambda(0.002, floor=0.0), device="cpu")
    assert np.abs(net_input[0, 0].numpy() - unfloored).max() > 1e-3


def test_richardson_lucy_input_is_each_crops_estimate_with_its_own_kernel():
    config = CRCNetConfig(in_channels=1, **{**TINY_HL, "input": "richardson-lucy"})
    inputs = NetworkInputs(config, torch.device("cpu"), "reflect", classical={"rl_iterations": 7})
    rng = np.random.default_rng(1)
    blurred = torch.as_tensor(rng.random((2, 1, 40, 40)), dtype=torch.float32)
    kernels = [_kernel(), np.ones((3, 5)) / 15]
    net_input, _ = inputs(blurred, kernels, torch.tensor([0.01, 0.02]))
    for i in range(2):
        expected = richardson_lucy(blurred[i, 0].numpy(), kernels[i], 7, boundary="reflect", device="cpu")
        np.testing.assert_allclose(net_input[i, 0].numpy(), expected, atol=1e-6)
    other = richardson_lucy(blurred[0, 0].numpy(), kernels[0], 10, boundary="reflect", device="cpu")
    assert np.abs(net_input[0, 0].numpy() - other).max() > 1e-3  # the card's iteration count is used


def test_a_richardson_lucy_input_model_records_its_iterations_and_applies_to_that_estimate(tmp_path):
    import napari_crcnet as nc
    from napari_crcnet.models.store import load_model

    result = train(_any_config(model={**TINY_HL, "input": "richardson-lucy"}, output=tmp_path / "rl.safetensors"))
    assert result.card["rl_iterations"] == 10 and "hl_lambda" not in result.card
    net, loaded = load_model(tmp_path / "rl.safetensors", device="cpu")
    image = data.camera()[100:148, 80:136] / 255.0
    out = nc.crcnet(image, (net, loaded), _kernel(), noise=0.01, device="cpu", fast=False)
    estimate = richardson_lucy(image, _kernel(), 10, device="cpu")
    x = torch.as_tensor(np.stack([estimate, np.full(image.shape, 0.01 / NOISE_MAP_SCALE)])[None], dtype=torch.float32)
    with torch.no_grad():
        expected = net(x)[0, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_a_trained_hyper_laplacian_model_applies_to_the_estimate_inference_computes(tmp_path):
    """Inference feeds the network hyper_laplacian(b, k, suggest_lambda(noise, card floor)) and the noise map."""
    import napari_crcnet as nc
    from napari_crcnet.models.store import load_model

    result = train(_any_config(output=tmp_path / "hl.safetensors"))
    card = result.card
    assert card["hl_lambda"] == "suggest" and card["hl_noise_floor"] == pytest.approx(0.008)
    net, loaded = load_model(tmp_path / "hl.safetensors", device="cpu")
    image = data.camera()[100:148, 80:136] / 255.0
    before = image.copy()
    out = nc.crcnet(image, (net, loaded), _kernel(), noise=0.01, device="cpu", fast=False)
    np.testing.assert_array_equal(image, before)  # input untouched
    estimate = hyper_laplacian(image, _kernel(), suggest_lambda(0.01, floor=0.008), device="cpu")
    x = torch.as_tensor(np.stack([estimate, np.full(image.shape, 0.01 / NOISE_MAP_SCALE)])[None], dtype=torch.float32)
    with torch.no_grad():
        expected = net(x)[0, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_start_from_input_makes_a_trained_network_return_its_input():
    torch.manual_seed(0)
    net = CRCNet(CRCNetConfig(in_channels=1, n_units=2, iu_channels=8))
    with torch.no_grad():  # a "trained" last layer: far from the identity
        net.integrate.conv2.weight.normal_(0, 0.1)
        net.integrate.conv2.bias.fill_(0.2)
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        residual = net(x) - x
        assert residual.abs().max() > 0.1
        net.start_from_input()  # the residual is the last convolution's output: scaled by 1e-3, bias removed
        torch.testing.assert_close(net(x) - x, 1e-3 * (residual - 0.2), atol=1e-6, rtol=1e-4)


def test_a_run_may_change_the_init_models_input_and_start_from_it(tmp_path):
    """Weights of an MMSE-input model load into a hyper-Laplacian-input run (same shapes); with
    start_from_input the last convolution is scaled by 1e-3 and nothing else changes."""
    mmse_model = {**TINY_HL, "input": "mmse"}
    source = train(_any_config(model=mmse_model, output=tmp_path / "mmse.safetensors"))
    tuned = train(_any_config(iterations=1, lr=1e-12, warmup=1, init=tmp_path / "mmse.safetensors",
                              model={"input": "hyper-laplacian"}, start_from_input=True))
    assert tuned.model.config.input == "hyper-laplacian"
    for (name, a), b in zip(source.model.state_dict().items(), tuned.model.state_dict().values()):
        expected = a * 1e-3 if name == "integrate.conv2.weight" else 0 * a if name == "integrate.conv2.bias" else a
        assert torch.allclose(expected, b, atol=1e-8), name


def test_hyper_laplacian_input_is_refused_for_a_per_kernel_fit():
    train_images, val_images = _images()
    config = TrainConfig(kernel=_kernel(), images=train_images, val_images=val_images, channels=1,
                         model=dict(TINY_HL), iterations=1, batch=2, crop=32, val_every=0, val_size=32, amp="off")
    with pytest.raises(ValueError, match="hyper-laplacian input is for kernel"):
        train(config)
