"""Tests of the realistic degradation model (training/degradation.py) and its synthesizer and training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from napari_crcnet import kernels
from napari_crcnet.training import TrainConfig, train
from napari_crcnet.training.content import dead_leaves, downscale2, fluorescence
from napari_crcnet.training.data import RealisticSynthesizer
from napari_crcnet.training.degradation import Camera, Degradation, KernelError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUIET = {"poisson": 0.0, "response": 0.0, "clip": 0.0, "quantise": 0.0, "jpeg": 0.0}


def _valid_kernel(k: np.ndarray) -> bool:
    return k.ndim == 2 and all(n % 2 == 1 for n in k.shape) and k.min() >= 0 and abs(k.sum() - 1) < 1e-12


def test_a_kernel_error_of_zero_size_gives_the_kernel_back_exactly():
    kernel = kernels.random_motion_kernel(15, seed=4)
    none = KernelError(exact=0.0, shift=0, rotation=0, scale=0, width=0, support_noise=0, tail=0)
    out = none.perturb(kernel, np.random.default_rng(0))
    pad = (out.shape[0] - kernel.shape[0]) // 2
    assert np.allclose(np.pad(kernel, pad) if pad >= 0 else kernel[-pad:pad, -pad:pad], out, atol=1e-15)


def test_perturbed_kernels_are_valid_differ_and_are_reproducible_by_seed():
    kernel = kernels.random_motion_kernel(21, seed=3)
    error = KernelError(exact=0.0)
    draws = [error.perturb(kernel, np.random.default_rng(s)) for s in range(20)]
    assert all(_valid_kernel(k) for k in draws)
    assert np.array_equal(draws[0], error.perturb(kernel, np.random.default_rng(0)))
    # Each differs from the true kernel (same support, padded), and by a bounded amount: a kernel, not noise.
    for k in draws:
        size = max(k.shape[0], kernel.shape[0])
        a = np.pad(k, (size - k.shape[0]) // 2)
        b = np.pad(kernel, (size - kernel.shape[0]) // 2)
        assert 0.02 < np.abs(a - b).sum() < 1.9
    assert KernelError(exact=1.0).perturb(kernel, np.random.default_rng(0)) is not None
    assert np.array_equal(KernelError(exact=1.0).perturb(kernel, np.random.default_rng(0)), kernel)


def test_a_quiet_camera_gives_the_blur_back_and_gaussian_noise_has_its_std():
    rng = np.random.default_rng(0)
    y = rng.random((1, 200, 200))
    camera = Camera(**QUIET)
    settings = {**camera.draw(rng), "noise": 0.0}
    b, target, rms = camera.capture(y, y, settings, rng)
    assert np.allclose(b, y, atol=1e-6) and rms == pytest.approx(0.0, abs=1e-7)
    settings["noise"] = 0.02
    b, target, rms = camera.capture(y, y, settings, rng)
    assert np.std(b - y) == pytest.approx(0.02, rel=0.03) and rms == pytest.approx(0.02, rel=0.03)
    assert np.allclose(target, y, atol=1e-6)


def test_camera_curve_clipping_quantisation_and_jpeg():
    rng = np.random.default_rng(1)
    x = data.camera()[:128, :128][None] / 255.0
    camera = Camera()
    base = {"gamma": 2.2, "exposure": 1.5, "photons": None, "read": None, "noise": 1e-9, "jpeg": None,
            "quantise": False}
    linear = camera.linear(x, base)
    assert linear.max() > 1  # over-exposed
    b, target, _ = camera.capture(linear, linear, base, rng)
    assert b.max() <= 1 + 1e-6 and target.max() <= 1 + 1e-6
    # No blur, no noise: the capture is the clipped exposure through the curve, and so is the target.
    expected = np.minimum(1.5 * x**2.2, 1) ** (1 / 2.2)
    assert np.allclose(target, expected, atol=1e-5) and np.allclose(b, expected, atol=1e-5)
    b, _, quantised = camera.capture(linear, linear, {**base, "quantise": True}, rng)
    assert np.allclose(b * 255, np.round(b * 255), atol=1e-4) and 0 < quantised < 1 / 255
    b, _, compressed = camera.capture(linear, linear, {**base, "jpeg": 75}, rng)
    assert np.allclose(b * 255, np.round(b * 255), atol=1e-4) and quantised < compressed < 0.05


def test_poisson_gaussian_noise_keeps_the_mean_and_grows_with_fewer_photons():
    rng = np.random.default_rng(2)
    y = np.full((1, 200, 200), 0.25)
    camera = Camera(**QUIET)
    spreads = []
    for photons in (20.0, 2000.0):
        settings = {**camera.draw(rng), "photons": photons, "read": 0.001, "noise": None}
        b, _, rms = camera.capture(y, y, settings, rng)
        assert b.mean() == pytest.approx(0.25, abs=0.01)
        assert rms == pytest.approx(np.sqrt(0.25 / photons + 0.001**2), rel=0.05)
        spreads.append(rms)
    assert spreads[0] > 5 * spreads[1]


def test_dead_leaves_have_flat_regions_and_strong_edges():
    image = dead_leaves(64, 3, np.random.default_rng(0))
    assert image.shape == (3, 64, 64) and 0 <= image.min() and image.max() <= 1
    flat = np.mean(np.abs(np.diff(image, axis=-1)).max(axis=0) < 1e-6)
    strong = np.mean(np.abs(np.diff(image, axis=-1)).max(axis=0) > 0.2)
    assert flat > 0.5 and strong > 0.01
    assert np.array_equal(downscale2(np.arange(16.0).reshape(1, 4, 4)), [[[2.5, 4.5], [10.5, 12.5]]])


def test_degradation_settings_from_a_spec_and_bad_ones():
    assert Degradation.from_spec("realistic") == Degradation()
    spec = {"camera": {"jpeg": 0.0, "noise": [0.002, 0.02], "poisson": 0.0}, "kernel_error": {"exact": 1.0},
            "dead_leaves": 0.0}
    custom = Degradation.from_spec(spec)
    assert custom.camera.jpeg == 0 and custom.noise_range == (0.002, 0.02) and custom.kernel_error.exact == 1
    assert Degradation.fluorescence().noise_range == pytest.approx((0.0005, 1 / np.sqrt(10)))
    assert Degradation.from_spec(custom.to_dict()) == custom
    for bad in ("photo", {"blur": 1}, {"camera": {"jpeg": 2.0}}, {"camera": {"noise": [0.1, 0.01]}},
                {"kernel_error": {"rotation": -1}}, {"camera": {"colour": 1}}, {"dead_leaves": 0.8, "downscaled": 0.5}):
        with pytest.raises(ValueError):
            Degradation.from_spec(bad)


def _synthesizer(seed: int = 0) -> RealisticSynthesizer:
    cam = data.camera()
    return RealisticSynthesizer([cam[:200, :200], cam[200:, 200:]], channels=1, crop=32, max_kernel=9, seed=seed)


def test_realistic_pairs_have_a_given_kernel_per_crop_and_replay_from_the_saved_state():
    synth = _synthesizer()
    blurred, target, given, noise = synth.sample_degraded(6)
    assert blurred.shape == target.shape == (6, 1, 32, 32) and len(given) == 6 and noise.shape == (6,)
    assert all(_valid_kernel(k) for k in given) and bool((noise > 0).all())
    state = synth.state_dict()
    again = synth.sample_degraded(3)
    synth.load_state_dict(state)
    replay = synth.sample_degraded(3)
    assert all(torch.equal(a, b) for a, b in zip(again[:2], replay[:2]))
    assert all(np.array_equal(a, b) for a, b in zip(again[2], replay[2]))
    pairs = synth.validation_pairs([data.camera()[100:200, 100:200]], size=48, seed=5)
    same = synth.validation_pairs([data.camera()[100:200, 100:200]], size=48, seed=5)
    assert torch.equal(pairs[0][0], same[0][0]) and pairs[0][0].shape == (1, 1, 48, 48)


def test_training_under_the_degradation_model_records_it_and_inference_uses_its_sigma_floor(tmp_path):
    from napari_crcnet.deconv import mmse, suggest_sigma
    from napari_crcnet.inference import _mmse_planes
    from napari_crcnet.models.store import load_model

    cam = data.camera()
    config = TrainConfig(kernel="any", images=[cam[:256, :256], cam[256:, 256:]], val_images=[cam[:128, 256:384]],
                         channels=1, crop=32, batch=2, max_kernel=9, iterations=2, val_every=0, val_size=48,
                         model={"n_units": 2, "iu_channels": 8, "extra_inputs": ["noise"]},
                         degradation={"camera": {"jpeg": 0.5}}, mmse_noise_floor=0.006,
                         output=tmp_path / "real.safetensors", device="cpu")
    result = train(config)
    card = result.card
    assert card["mmse_noise_floor"] == 0.006 and card["training"]["degradation"]["camera"]["jpeg"] == 0.5
    # Gaussian 0.1-5 % or Poisson-Gaussian: from the read noise (0.05 %) to the shot noise of 200 photons
    assert card["noise"] == pytest.approx([0.0005, 1 / np.sqrt(200)])
    _, loaded = load_model(tmp_path / "real.safetensors", device="cpu")
    kernel = np.ones((3, 3)) / 9
    image = cam[:40, :40][None, None] / 255.0
    got = _mmse_planes(image.astype(np.float32), loaded, kernel, 2, torch.device("cpu"), noise=0.001)
    expected = mmse(image[0, 0].astype(np.float32), kernel, suggest_sigma(0.006, floor=0), device="cpu")
    assert np.allclose(got[0, 0], expected, atol=1e-6)
    # Without the floor in the card (older models) the noise alone sets sigma.
    got = _mmse_planes(image.astype(np.float32), {**loaded, "mmse_noise_floor": None}, kernel, 2,
                       torch.device("cpu"), noise=0.001)
    assert np.allclose(got[0, 0], mmse(image[0, 0].astype(np.float32), kernel, suggest_sigma(0.001, floor=0),
                                                device="cpu"),
                       atol=1e-6)


def test_degradation_options_need_an_any_kernel_run():
    cam = data.camera()
    for bad in ({"kernel": "gaussian:1", "degradation": "realistic"},
                {"kernel": "gaussian:1", "mmse_noise_floor": 0.01},
                {"kernel": "any", "degradation": "studio"}, {"kernel": "any", "mmse_noise_floor": -1.0},
                {"kernel": "any", "degradation": "realistic", "channels": 3, "gray_fraction": 0.5}):
        with pytest.raises(ValueError):
            TrainConfig(images=[cam], **bad).validate()


def test_fluorescence_content_is_sparse_and_bright_on_a_dark_background():
    rng = np.random.default_rng(3)
    for _ in range(5):
        image = fluorescence(96, rng)
        assert image.shape == (1, 96, 96) and image.min() >= 0 and image.max() <= 1
        background = np.percentile(image, 50)
        assert background < 0.35 * image.max()  # most pixels are dark
        assert np.mean(image > background + 0.5 * (image.max() - background)) < 0.2  # structures are sparse


def test_microscope_psfs_are_valid_and_varied():
    rng = np.random.default_rng(4)
    psfs = [kernels.random_psf(rng, 21) for _ in range(40)]
    assert all(_valid_kernel(k) and k.shape[0] <= 21 for k in psfs)
    widths = [np.sqrt((k * (np.arange(k.shape[0]) - k.shape[0] // 2)[:, None] ** 2).sum()) for k in psfs]
    assert min(widths) < 1.0 < 2.0 < max(widths)
    with pytest.raises(ValueError):
        kernels.random_psf(rng, 8)


def test_the_fluorescence_preset_needs_no_images_and_draws_psfs_and_photon_noise():
    synth = RealisticSynthesizer(None, channels=1, crop=32, max_kernel=15, degradation="fluorescence", seed=1)
    assert len(synth) == 0 and synth.degradation == Degradation.fluorescence()
    blurred, target, given, noise = synth.sample_degraded(4)
    assert blurred.shape == target.shape == (4, 1, 32, 32) and all(_valid_kernel(k) for k in given)
    assert float(target.mean()) < 0.5 and bool((noise > 0).all())
    with pytest.raises(ValueError):
        Degradation(content="painting")
    with pytest.raises(ValueError):
        Degradation(kernels="zoom")


def test_float_microscopy_images_in_arbitrary_units_are_rescaled_for_training():
    from napari_crcnet.training.data import _expand, load_images

    raw = np.random.default_rng(5).uniform(185, 6207, (40, 40)).astype(np.float32)
    (stored,), _ = load_images([raw], channels=1)
    image = _expand(stored)
    assert image.min() == 0 and image.max() == 1
    np.testing.assert_allclose(image[0], (raw - raw.min()) / (raw.max() - raw.min()), atol=2e-5)


def test_downscaled_crops_are_a_2x_window_averaged_then_augmented_like_any_crop():
    """The 'downscaled' content: a window twice the crop size, 2x2-averaged, then rotated/flipped as the other
    crops are (one crop routine for both)."""
    ramp = np.add.outer(np.arange(100.0), 100 * np.arange(100.0)) / 1e4  # in [0, 1]; orientations all differ
    synth = RealisticSynthesizer([ramp], channels=1, crop=16, max_kernel=9, seed=0,
                                 degradation={"dead_leaves": 0.0, "downscaled": 1.0})
    h, w = synth.big
    orientations = set()
    for _ in range(12):
        crop = synth._random_crop()[0]
        assert crop.shape == (h, w)
        step_y, step_x = crop[1, 0] - crop[0, 0], crop[0, 1] - crop[0, 0]
        # A 2x2-averaged ramp steps by 2 rows (2e-4) and 2 columns (2e-2) of the image, whatever the rotation
        # or flip (to the stored images' 16-bit quantisation).
        steps = sorted([abs(float(step_y)), abs(float(step_x))])
        np.testing.assert_allclose(steps, [2e-4, 2e-2], rtol=0.05)
        orientations.add((np.sign(step_y), np.sign(step_x), abs(step_y) < abs(step_x)))
    assert len(orientations) > 2  # augmented: not always the image's own orientation


def test_one_validation_image_gets_several_degradations_and_four_images_one_each():
    cam = (data.camera() / 255.0).astype(np.float32)[None]  # stored layout: (C, Y, X)
    synth = RealisticSynthesizer(None, channels=1, crop=32, max_kernel=15, degradation="fluorescence", seed=1)
    single = synth.validation_pairs([cam[:, :96, :96]], size=48, seed=5, stored=True)
    assert len(single) == 4
    assert len({p[2][0].tobytes() for p in single}) == 4  # a different kernel (and noise) per draw
    assert all(p[1].shape == single[0][1].shape for p in single)  # ...of the same crop
    tiles = [cam[:, :96, :96], cam[:, 96:192, :96], cam[:, :96, 96:192], cam[:, 96:192, 96:192]]
    four = _synthesizer().validation_pairs(tiles, size=48, seed=5, stored=True)
    assert len(four) == 4
