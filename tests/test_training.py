"""Tests of napari_crcnet.training: pairs, loss, fit loop, checkpoints (atomic, resume), stop, CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from napari_crcnet._progress import Cancelled
from napari_crcnet.training import PairSynthesizer, TrainConfig, crcnet_loss, load_checkpoint, train
from napari_crcnet.training import checkpoint as checkpoint_module
from napari_crcnet.training import fit as fit_module
from napari_crcnet.training import optim as optim_module
from napari_crcnet.training.cli import train_main
from napari_crcnet.training.data import LUMA, to_channels

TINY = {"n_units": 2, "iu_channels": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images() -> list[np.ndarray]:
    """Four 64x64 uint8 tiles of the camera man (natural image content), one for validation."""
    cam = data.camera()[::4, ::4]
    return [cam[:64, :64], cam[64:, :64], cam[:64, 64:], cam[64:, 64:]], [cam[32:96, 32:96]]


def _kernel() -> np.ndarray:
    y, x = np.mgrid[-3:4, -3:4]
    k = np.exp(-(x**2 + 0.5 * y**2) / (2 * 1.3**2))
    k[3, 5] += 0.3  # asymmetric: catches a flipped (correlation) blur
    return k / k.sum()


def _config(tmp_path: Path | None = None, **overrides) -> TrainConfig:
    train_images, val_images = _images()
    options = dict(
        kernel=_kernel(), images=train_images, val_images=val_images, channels=1, model=dict(TINY),
        iterations=6, batch=2, crop=32, val_every=0, val_size=32, seed=3, log_every=1, amp="off",
    )
    if tmp_path is not None:
        options["checkpoint"] = tmp_path / "run.ckpt.safetensors"
    options.update(overrides)
    return TrainConfig(**options)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------- loss
def test_loss_matches_the_paper_formula_with_means():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 11, generator=gen)
    x_hat = x + 0.3 * torch.randn(2, 3, 9, 11, generator=gen)
    d = (x_hat - x).numpy().astype(np.float64)
    smooth = np.where(np.abs(d) < 1, 0.5 * d**2, np.abs(d) - 0.5).mean()
    dh = np.diff(x_hat.numpy(), axis=-1) - np.diff(x.numpy(), axis=-1)
    dv = np.diff(x_hat.numpy(), axis=-2) - np.diff(x.numpy(), axis=-2)
    expected = 5000 * smooth + 100 * ((dh**2).mean() + (dv**2).mean())
    loss, content, _edge = crcnet_loss(x_hat, x, return_parts=True)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(content) == pytest.approx(smooth, rel=1e-5)
    assert float(crcnet_loss(x, x)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        crcnet_loss(x, x[..., :-1])


# --------------------------------------------------------------------------------------------- pairs
def test_pairs_are_the_valid_blur_of_the_clear_crop():
    image = data.camera()[100:200, 100:200]
    kernel = _kernel()
    synth = PairSynthesizer([image], kernel, channels=1, crop=40, noise=0.0, augment=False)
    big = torch.from_numpy(image[None, None, :46, :46].astype(np.float32) / 255)
    blurred, clear = synth.degrade(big)
    reference = ndimage.convolve(big[0, 0].numpy().astype(np.float64), kernel, mode="wrap")[3:-3, 3:-3]
    np.testing.assert_allclose(blurred[0, 0].numpy(), reference, atol=2e-6)
    np.testing.assert_array_equal(clear[0, 0].numpy(), big[0, 0, 3:-3, 3:-3].numpy())
    # the sampled batch: centre of a random crop of the image, blurred the same way
    blurred, clear = synth.sample(3)
    assert blurred.shape == clear.shape == (3, 1, 40, 40)
    assert blurred.dtype == torch.float32


def test_noise_has_the_requested_std_and_the_input_is_not_modified():
    flat = np.full((80, 80), 0.5, dtype=np.float32)
    before = flat.copy()
    synth = PairSynthesizer([flat], _kernel(), channels=1, crop=64, noise=0.05, augment=True, seed=1)
    blurred, clear = synth.sample(4)
    residual = (blurred - clear).numpy()
    assert residual.std() == pytest.approx(0.05, rel=0.03)
    assert abs(residual.mean()) < 0.003
    np.testing.assert_array_equal(flat, before)
    poisson = PairSynthesizer([flat], _kernel(), channels=1, crop=64, noise=0.0, photons=100.0, seed=1)
    counts_blurred, counts_clear = poisson.sample(4)
    # Poisson(100 * 0.5) / 100: mean 0.5, std sqrt(50) / 100
    assert float(counts_blurred.mean()) == pytest.approx(0.5, abs=0.005)
    assert float((counts_blurred - counts_clear).std()) == pytest.approx(np.sqrt(50) / 100, rel=0.05)


def test_rgb_images_become_luma_for_gray_models_and_gray_is_repeated_for_rgb():
    rgb = data.astronaut()[:50, :60]
    gray = to_channels(rgb, 1)
    np.testing.assert_allclose(gray[0], (rgb / 255.0) @ LUMA, atol=1e-6)
    repeated = to_channels(rgb[..., 0], 3)
    assert repeated.shape == (3, 50, 60)
    np.testing.assert_array_equal(repeated[0], repeated[2])
    with pytest.raises(ValueError, match="expected"):
        to_channels(np.zeros((4, 5, 6, 7)), 3)


def test_synthesizer_is_deterministic_by_seed_and_restores_its_state():
    images, _ = _images()
    a = PairSynthesizer(images, _kernel(), channels=1, crop=32, seed=5)
    b = PairSynthesizer(images, _kernel(), channels=1, crop=32, seed=5)
    state = a.state_dict()
    first = a.sample(2)
    second = a.sample(2)
    assert all(torch.equal(x, y) for x, y in zip(first, b.sample(2)))
    a.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(first, a.sample(2)))
    assert not torch.equal(first[0], second[0])


def test_family_synthesizer_gives_each_crop_its_own_valid_blur_and_noise():
    from napari_crcnet.kernels import kernel_from_spec
    from napari_crcnet.training.data import FamilySynthesizer

    images, _ = _images()
    synth = FamilySynthesizer([data.camera()[:100, :100]], channels=1, crop=24, max_kernel=15, augment=False)
    big = torch.from_numpy(data.camera()[None, None, 100:138, 100:138].astype(np.float32) / 255)  # 24 + 2 * 7
    kernel = kernel_from_spec("motion:9,30")  # 9x9 or so, smaller than max_kernel: still exact
    blurred, clear = synth.degrade_with(big, kernel, 1e-12)
    r, rk = 7, kernel.shape[0] // 2
    valid = ndimage.convolve(big[0, 0].numpy().astype(np.float64), kernel, mode="wrap")[r:-r, r:-r]
    np.testing.assert_allclose(blurred[0, 0].numpy(), valid, atol=2e-6)
    assert rk <= r and clear.shape == blurred.shape == (1, 1, 24, 24)
    # Batches: one kernel (within max_kernel) and one noise level (within the range) per crop, seeded.
    a = FamilySynthesizer(images, channels=1, crop=16, max_kernel=15, noise_range=(0.01, 0.03), seed=2)
    b = FamilySynthesizer(images, channels=1, crop=16, max_kernel=15, noise_range=(0.01, 0.03), seed=2)
    state = a.state_dict()
    blurred, clear, kernels, noise = a.sample_degraded(6)
    assert blurred.shape == clear.shape == (6, 1, 16, 16) and len(kernels) == 6 and noise.shape == (6,)
    assert all(max(k.shape) <= 15 for k in kernels) and float(noise.min()) >= 0.01 and float(noise.max()) <= 0.03
    assert len({k.tobytes() for k in kernels}) > 1
    again = b.sample_degraded(6)
    assert torch.equal(again[0], blurred) and torch.equal(again[3], noise)
    a.load_state_dict(state)
    assert torch.equal(a.sample_degraded(6)[0], blurred)
    for bad in ({"noise_range": (0.0, 0.1)}, {"noise_range": (0.2, 0.1)}, {"max_kernel": 10}):
        with pytest.raises(ValueError):
            FamilySynthesizer(images, channels=1, crop=16, **bad)


def test_gray_fraction_makes_that_share_of_rgb_crops_gray_and_adds_gray_validation():
    from napari_crcnet.training.data import FamilySynthesizer

    photo = data.astronaut()[::4, ::4]
    kernel = _kernel()
    plain = PairSynthesizer([photo], kernel, channels=3, crop=16, seed=4)
    unset = PairSynthesizer([photo], kernel, channels=3, crop=16, seed=4, gray_fraction=0.0)
    assert torch.equal(plain.sample(5)[1], unset.sample(5)[1])  # 0 draws nothing: old recipes unchanged
    half = PairSynthesizer([photo], kernel, channels=3, crop=16, seed=4, gray_fraction=0.5)
    clear = half.sample(200)[1]
    gray = (clear[:, 0] == clear[:, 1]).flatten(1).all(1) & (clear[:, 1] == clear[:, 2]).flatten(1).all(1)
    assert 70 < int(gray.sum()) < 130
    pairs = half.validation_pairs([photo[:60, :60]], size=32, seed=1)
    assert len(pairs) == 2 and not torch.equal(pairs[0][1][:, 0], pairs[0][1][:, 1])
    luma = np.tensordot(LUMA, pairs[0][1][0].double().numpy(), axes=(0, 0))
    np.testing.assert_allclose(pairs[1][1][0, 0].numpy(), luma, atol=1e-5)
    family = FamilySynthesizer([photo], channels=3, crop=16, max_kernel=9, gray_fraction=1.0)
    clear = family.sample_degraded(3)[1]
    assert torch.equal(clear[:, 0], clear[:, 1]) and torch.equal(clear[:, 1], clear[:, 2])
    for bad in ({"gray_fraction": 1.5}, {"gray_fraction": 0.5, "channels": 1}):
        with pytest.raises(ValueError, match="gray_fraction"):
            PairSynthesizer([photo], kernel, crop=16, **{"channels": 3, **bad})
        with pytest.raises(ValueError, match="gray_fraction"):
            train(_config(**{"channels": 3, **bad}))


# ---------------------------------------------------------------------------------------------- train
def test_loss_decreases_over_a_short_run():
    losses = []
    config = _config(
        model={"preset": "paper", "iu_activation": "prelu", **TINY}, iterations=40, batch=4, lr=3e-3, warmup=1
    )
    train(config, log=lambda r: losses.append(r["loss"]) if r["event"] == "train" else None)
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_same_seed_same_weights_other_seed_other_weights():
    a = train(_config(iterations=3))
    b = train(_config(iterations=3))
    c = train(_config(iterations=3, seed=4))
    assert _same_weights(a.model, b.model)
    assert not _same_weights(a.model, c.model)


def test_resume_is_bit_for_bit(tmp_path):
    straight = train(_config(tmp_path / "a", iterations=6))
    first = train(_config(tmp_path / "b", iterations=3))
    assert first.steps == 3 and not first.stopped
    resumed = train(_config(tmp_path / "b", iterations=6, resume=True))
    assert resumed.steps == 6
    assert _same_weights(straight.model, resumed.model)
    _, document = load_checkpoint(tmp_path / "b" / "run.ckpt.safetensors")
    assert document["step"] == 6
    readable = json.loads((tmp_path / "b" / "run.ckpt.json").read_text())
    assert readable["step"] == 6 and readable["mmse_sigma"] == document["mmse_sigma"]


def test_gradient_clip_bounds_a_burst_relative_to_the_running_mean():
    from napari_crcnet.training.fit import CLIP_WARMUP, GradientClip

    weight = torch.nn.Parameter(torch.zeros(4))

    def step(clipper, norm):
        weight.grad = torch.full((4,), norm / 2.0)  # ||g|| = norm
        result = clipper([weight])
        return result, float(weight.grad.norm())

    clipper = GradientClip(absolute=1000.0, factor=4.0)
    for _ in range(CLIP_WARMUP - 1):  # warming up: only the absolute bound
        assert step(clipper, 1.0) == ((pytest.approx(1.0), False), pytest.approx(1.0))
    assert step(clipper, 50.0) == ((pytest.approx(50.0), False), pytest.approx(50.0))  # not warm yet
    mean = clipper.total / (1 - fit_module.CLIP_MOMENTUM**clipper.count)
    (norm, clipped), after = step(clipper, 500.0)
    assert clipped and norm == pytest.approx(500.0) and after == pytest.approx(4.0 * mean)
    assert step(GradientClip(absolute=10.0), 500.0)[1] == pytest.approx(10.0)  # fixed bound only
    assert step(GradientClip(), 500.0)[1] == pytest.approx(500.0)  # no bound
    copy = GradientClip(1000.0, 4.0)
    copy.load_state_dict(clipper.state_dict())
    assert copy.limit() == clipper.limit() < 1000.0
    with pytest.raises(ValueError, match="clip_factor"):
        TrainConfig(kernel=_kernel(), images=_images(), clip_factor=0.5).validate()


def test_resume_restores_the_clipping_state(tmp_path, monkeypatch):
    """With clipping active on every step, 3 + resume + 3 steps still equal 6 in one go."""
    monkeypatch.setattr(optim_module, "CLIP_WARMUP", 1)
    options = {"clip_factor": 1.01, "log_every": 1}
    clipped = []
    straight = train(_config(tmp_path / "a", iterations=6, **options),
                     log=lambda r: clipped.append(r["clipped"]) if r["event"] == "train" else None)
    assert sum(clipped[3:]) >= 1  # clipping acts after the resume point
    train(_config(tmp_path / "b", iterations=3, **options))
    resumed = train(_config(tmp_path / "b", iterations=6, resume=True, **options))
    assert _same_weights(straight.model, resumed.model)


def _any_config(tmp_path: Path | None = None, **overrides) -> TrainConfig:
    options = {"kernel": "any", "max_kernel": 9, "noise_range": (0.01, 0.04),
               "model": {**TINY, "extra_inputs": ["noise"]}}
    return _config(tmp_path, **{**options, **overrides})


def test_any_kernel_training_resumes_bit_for_bit_and_saves_a_family_card(tmp_path):
    """kernel='any': every crop its own kernel and noise; the card names the family, not one kernel."""
    from napari_crcnet.inference import crcnet
    from napari_crcnet.models.store import load_model

    straight = train(_any_config(tmp_path / "a", iterations=4, val_every=2))
    first = train(_any_config(tmp_path / "b", iterations=2))
    resumed = train(_any_config(tmp_path / "b", iterations=4, resume=True, output=tmp_path / "any.safetensors"))
    assert _same_weights(straight.model, resumed.model)
    assert first.steps == 2 and resumed.steps == 4
    card = resumed.card
    assert card["kernel"] is None and card["mmse_sigma"] == "suggest" and card["noise"] == [0.01, 0.04]
    assert card["kernel_family"]["max_kernel"] == 9
    assert np.isfinite(straight.metrics["validation"]["mmse_psnr"])
    # Any kernel is accepted; one wider than the family warns.
    net, loaded = load_model(tmp_path / "any.safetensors", kernel=np.ones((5, 5)) / 25, device="cpu")
    image = data.camera()[:40, :48]
    out = crcnet(image, (net, loaded), np.ones((3, 3)) / 9, device="cpu", noise=0.02)
    assert out.shape == image.shape and np.isfinite(out).all()
    with pytest.warns(UserWarning, match="up to 9 px"):
        load_model(tmp_path / "any.safetensors", kernel=np.ones((11, 11)) / 121, device="cpu")
    # A checkpoint of the family problem is refused for a per-kernel run (and the other way round).
    with pytest.raises(ValueError, match="another kernel"):
        train(_config(tmp_path / "b", iterations=5, resume=True, model={**TINY, "extra_inputs": ["noise"]}))


def test_init_starts_a_fit_from_another_models_weights(tmp_path):
    source = train(_any_config(iterations=2, output=tmp_path / "any.safetensors"))
    tuned = train(_config(iterations=1, lr=1e-12, warmup=1, init=tmp_path / "any.safetensors",
                          model={**TINY, "extra_inputs": ["noise"]}))
    for (name, a), b in zip(source.model.state_dict().items(), tuned.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    with pytest.raises(ValueError, match="architecture"):
        train(_config(iterations=1, init=tmp_path / "any.safetensors"))


def test_a_gray_run_can_start_from_a_lifted_colour_model_as_its_exact_gray_equivalent(tmp_path):
    from napari_crcnet.models.crcnet import colour_to_gray
    from napari_crcnet.models.store import load_model

    lifted = {**TINY, "extra_inputs": ["noise"], "features": 3}
    train(_any_config(iterations=2, channels=3, model=lifted, output=tmp_path / "rgb.safetensors"))
    gray = train(_any_config(iterations=1, lr=1e-12, warmup=1, model="default", init=tmp_path / "rgb.safetensors"))
    assert gray.model.config.in_channels == 1
    expected = colour_to_gray(load_model(tmp_path / "rgb.safetensors", device="cpu")[0])
    for (name, a), b in zip(expected.state_dict().items(), gray.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    train(_any_config(iterations=2, channels=3, output=tmp_path / "unlifted.safetensors"))
    with pytest.raises(ValueError, match="3-channel"):  # no lift: its units read the colour channels
        train(_any_config(iterations=1, model="default", init=tmp_path / "unlifted.safetensors"))


def test_a_fit_from_an_any_kernel_model_keeps_its_mmse_input(tmp_path):
    """The init model learned on MMSE inputs with suggest_sigma(noise): the fit keeps that sigma as its input;
    from scratch, or with mmse_sigma given, it does not."""
    from napari_crcnet.deconv import suggest_sigma

    train(_any_config(iterations=2, output=tmp_path / "any.safetensors"))
    noisy = {"model": {**TINY, "extra_inputs": ["noise"]}, "iterations": 1, "noise": 0.03}
    tuned = train(_config(init=tmp_path / "any.safetensors", **noisy))
    assert tuned.card["mmse_sigma"] == pytest.approx(suggest_sigma(0.03))
    searched = train(_config(**noisy))
    assert searched.card["mmse_sigma"] != pytest.approx(suggest_sigma(0.03))
    assert searched.card["training"]["mmse_sigma_search"]  # the 31-point search ran
    given = train(_config(init=tmp_path / "any.safetensors", mmse_sigma=0.1, **noisy))
    assert given.card["mmse_sigma"] == 0.1
    # ...but both are scored against the best MMSE, not the input's weaker one, and that survives a resume.
    assert tuned.card["training"]["baseline_mmse_sigma"] == searched.card["mmse_sigma"]
    best = searched.metrics["validation"]["mmse_psnr"]
    assert tuned.metrics["validation"]["mmse_psnr"] == best
    first = train(_config(tmp_path / "r", init=tmp_path / "any.safetensors", **noisy))
    resumed = train(_config(tmp_path / "r", init=tmp_path / "any.safetensors", resume=True,
                            **{**noisy, "iterations": 2}))
    assert first.card["mmse_sigma"] == resumed.card["mmse_sigma"] == pytest.approx(suggest_sigma(0.03))
    assert resumed.metrics["validation"]["mmse_psnr"] == best


def test_any_kernel_config_errors():
    for bad, match in (({"noise_range": (0.0, 0.1)}, "noise_range"), ({"max_kernel": 12}, "max_kernel"),
                       ({"photons": 100.0}, "photons"), ({"mmse_sigma": 0.01}, "mmse_sigma")):
        with pytest.raises(ValueError, match=match):
            train(_any_config(**bad))


def test_resume_refuses_a_checkpoint_for_another_kernel(tmp_path):
    train(_config(tmp_path, iterations=2))
    other = np.zeros((5, 5))
    other[2, 2] = 1
    other[2, 3] = 1
    with pytest.raises(ValueError, match="another kernel"):
        train(_config(tmp_path, iterations=4, resume=True, kernel=other / 2))


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    result = train(_config(tmp_path, iterations=3))
    path = tmp_path / "run.ckpt.safetensors"
    before = path.read_bytes()
    _, document = load_checkpoint(path)

    def crash(tensors, tmp, metadata):
        Path(tmp).write_bytes(b"half a file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_module, "_write_tensors", crash)
    synth = PairSynthesizer(_images()[0], _kernel(), channels=1, crop=32)
    optimizer = torch.optim.Adam(result.model.parameters())
    with pytest.raises(OSError, match="simulated"):
        fit_module.save_checkpoint(path, result.model, optimizer, synth, {"step": 99})
    assert path.read_bytes() == before
    _, still = load_checkpoint(path)
    assert still["step"] == document["step"] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_stop_event_from_another_thread_stops_within_a_step(tmp_path):
    from napari_crcnet.models.store import load_model

    stop = threading.Event()
    reached = threading.Event()
    done: dict = {}

    def progress(step, total):
        if step >= 2:
            reached.set()

    def worker():
        done["result"] = train(_config(tmp_path, iterations=10_000, output=tmp_path / "m.safetensors"),
                               progress=progress, stop_event=stop)

    thread = threading.Thread(target=worker)
    thread.start()
    assert reached.wait(60)
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    result = done["result"]
    assert result.stopped and 2 <= result.steps < 10_000
    _, document = load_checkpoint(tmp_path / "run.ckpt.safetensors")
    assert document["step"] == result.steps
    model, card = load_model(tmp_path / "m.safetensors", kernel=_kernel())
    assert card["training"]["iterations"] == result.steps and card["training"]["stopped_early"]
    assert _same_weights(model, result.model.cpu())


def test_a_progress_callback_raising_cancelled_stops_and_keeps_the_checkpoint(tmp_path):
    def progress(step, total):
        if step == 3:
            raise Cancelled

    result = train(_config(tmp_path, iterations=50), progress=progress)
    assert result.stopped and result.steps == 3
    assert load_checkpoint(tmp_path / "run.ckpt.safetensors")[1]["step"] == 3


def test_validation_log_reports_model_mmse_and_dead_units(tmp_path):
    records = []
    result = train(_config(iterations=4, val_every=2, log_path=tmp_path / "log.jsonl"), log=records.append)
    vals = [r for r in records if r["event"] == "val"]
    assert [r["step"] for r in vals] == [2, 4]
    for key in ("psnr", "ssim", "mmse_psnr", "mmse_ssim", "gain_psnr", "iu_dead"):
        assert key in vals[-1]
    assert 0.0 <= vals[-1]["iu_dead"] <= 1.0
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "end"
    assert result.metrics["validation"]["mmse_psnr"] == vals[-1]["mmse_psnr"]
    # a dead IU (pre-activation never positive) is reported as such
    with torch.no_grad():
        result.model.integrate.conv1.weight.zero_()
        result.model.integrate.conv1.bias.fill_(-1.0)
    synth = PairSynthesizer(_images()[0], _kernel(), channels=1, crop=32)
    pairs = synth.validation_pairs(_images()[1], size=32, seed=0)
    inputs = fit_module.NetworkInputs(result.model.config, torch.device("cpu"), "taper", _kernel(), 0.01)
    scores = fit_module.evaluate(result.model, pairs, inputs)
    assert scores["iu_dead"] == 1.0


def test_bad_config_values_raise_value_error():
    with pytest.raises(ValueError, match="iterations"):
        train(_config(iterations=0))
    with pytest.raises(ValueError, match="channels"):
        train(_config(channels=2))
    with pytest.raises(ValueError, match="preset"):
        train(_config(model="huge"))


# ------------------------------------------------------------------------------------------------ CLI
def _write_pngs(folder: Path, images) -> None:
    import imageio.v3 as iio

    folder.mkdir()
    for i, image in enumerate(images):
        iio.imwrite(folder / f"img{i}.png", image)


def test_cli_end_to_end_writes_a_loadable_model_and_card(tmp_path, capsys):
    from napari_crcnet.kernels import kernel_from_spec
    from napari_crcnet.models.store import load_model

    train_images, val_images = _images()
    _write_pngs(tmp_path / "train", train_images)
    _write_pngs(tmp_path / "val", val_images)
    out = tmp_path / "model.safetensors"
    code = train_main([
        "--kernel", "gaussian:1", "--images", str(tmp_path / "train"), "--val-images", str(tmp_path / "val"),
        "--iterations", "3", "--batch", "2", "--crop", "32", "--val-every", "2", "--threads", "1",
        "-o", str(out),
    ])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "validation @ 2" in err and "done: 3 iterations" in err and "3/3" in err
    model, card = load_model(out, kernel=kernel_from_spec("gaussian:1"))
    assert model.config.in_channels == 1
    assert card["training"]["iterations"] == 3 and card["noise"] == 0.01
    assert card["mmse_sigma"] > 0 and card["metrics"]["validation"]["mmse_psnr"] > 0
    assert (tmp_path / "model.ckpt.safetensors").exists() and (tmp_path / "model.train.jsonl").exists()


def test_cli_any_kernel_model_then_a_fit_that_starts_from_it(tmp_path, capsys):
    from napari_crcnet.models.store import load_model

    train_images, _ = _images()
    _write_pngs(tmp_path / "train", train_images)
    common = ["--images", str(tmp_path / "train"), "--iterations", "2", "--batch", "2", "--crop", "32",
              "--val-every", "0", "--threads", "1"]
    code = train_main(["--kernel", "any", "--max-kernel", "9", "--noise-range", "0.01", "0.03", *common,
                       "-o", str(tmp_path / "any.safetensors")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "per image, from its noise" in err
    net, card = load_model(tmp_path / "any.safetensors")
    assert net.config.extra_inputs == ("noise",) and card["kernel_family"]["max_kernel"] == 9
    code = train_main(["--kernel", "gaussian:1", "--init", str(tmp_path / "any.safetensors"), *common,
                       "-o", str(tmp_path / "tuned.safetensors")])
    assert code == 0, capsys.readouterr().err
    tuned, tuned_card = load_model(tmp_path / "tuned.safetensors")
    assert tuned.config == net.config and tuned_card["noise"] == 0.01
    assert train_main(["--kernel", "gaussian:1", "--init", str(tmp_path / "none.safetensors"), *common,
                       "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "no model" in capsys.readouterr().err
    assert train_main(["--kernel", "any", "--gray-fraction", "0.5", *common, "-o", str(tmp_path / "g")]) == 2
    assert "gray_fraction" in capsys.readouterr().err  # gray training images: a gray model, nothing to mix


@pytest.mark.parametrize(
    "argv",
    [
        ["--kernel", "gaussian:1", "--images", "/no/such/folder", "-o", "m.safetensors"],
        ["--kernel", "gaussian:1", "--images", "IMAGES", "--iterations", "-3", "-o", "m.safetensors"],
        ["--kernel", "nonsense:1", "--images", "IMAGES", "-o", "m.safetensors"],
        ["--kernel", "gaussian:1", "--images", "IMAGES", "--bogus", "-o", "m.safetensors"],
        ["--images", "IMAGES", "-o", "m.safetensors"],
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv):
    _write_pngs(tmp_path / "imgs", _images()[0])
    argv = [str(tmp_path / "imgs") if a == "IMAGES" else a for a in argv]
    argv = [str(tmp_path / a) if a == "m.safetensors" else a for a in argv]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("crcnet train: error:")
