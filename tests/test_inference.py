"""Applying a CRCNet: tiles equal the untiled network, layouts, residues, MMSE input, progress, OOM fallback."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from napari_crcnet import inference
from napari_crcnet._progress import Cancelled
from napari_crcnet.inference import apply_model, crcnet
from napari_crcnet.metrics import psnr
from napari_crcnet.models import CRCNet, CRCNetConfig, save_model

torch.set_num_threads(1)


def small_net(c: int = 3, n_units: int = 3, seed: int = 0, **kw) -> CRCNet:
    """A random small network; the IU bias/weights are scaled up so the output is far from the input."""
    torch.manual_seed(seed)
    kw.setdefault("input", "blurred")
    kw.setdefault("skip", False)
    return CRCNet(CRCNetConfig(in_channels=c, n_units=n_units, iu_channels=6, **kw)).eval()


def untiled(net: CRCNet, planes: np.ndarray, residues: bool = False):
    """The network on whole planes ``(N, C, Y, X)`` (reference, float64 arithmetic to be safe)."""
    with torch.no_grad():
        return net(torch.from_numpy(np.asarray(planes, np.float32)), return_residues=residues)


def gaussian(sigma: float = 1.2, size: int = 7) -> np.ndarray:
    r = np.arange(size) - size // 2
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


def fallback_mmse(image, kernel, sigma, **_):
    """Periodic-boundary MMSE (test-only stand-in while napari_crcnet.deconv is not there)."""
    kernel = np.asarray(kernel, np.float64)
    grid = np.zeros(image.shape)
    grid[: kernel.shape[0], : kernel.shape[1]] = kernel
    grid = np.roll(grid, (-(kernel.shape[0] // 2), -(kernel.shape[1] // 2)), (0, 1))
    K = np.fft.rfft2(grid)
    return np.fft.irfft2(np.conj(K) / (np.abs(K) ** 2 + sigma) * np.fft.rfft2(image), s=image.shape).astype(np.float32)


@pytest.fixture
def mmse_function(monkeypatch):
    """napari_crcnet.deconv.mmse when it exists, else a fallback module providing it."""
    try:
        from napari_crcnet.deconv import mmse
    except ImportError:
        module = types.ModuleType("napari_crcnet.deconv")
        module.mmse = fallback_mmse
        monkeypatch.setitem(sys.modules, "napari_crcnet.deconv", module)
        return fallback_mmse
    return mmse


@pytest.mark.parametrize(("c", "features"), [(1, None), (3, None), (1, 2)])
def test_tiled_equals_untiled(c, features):
    net = small_net(c, features=features)
    radius = net.receptive_radius
    rng = np.random.default_rng(c)
    image = rng.random((100, 130, c)).astype(np.float32) if c == 3 else rng.random((100, 130), np.float32)
    axis = -1 if c == 3 else None
    tiled = apply_model(net, None, image, channel_axis=axis, tile=48, overlap=radius, device="cpu")
    reference = untiled(net, np.moveaxis(image, -1, 0)[None] if c == 3 else image[None, None])[0].numpy()
    reference = np.moveaxis(reference, 0, -1) if c == 3 else reference[0]
    assert tiled.shape == image.shape and tiled.dtype == np.float32
    interior = (slice(radius, -radius), slice(radius, -radius))
    assert np.max(np.abs(tiled[interior] - reference[interior])) < 1e-4
    # The window is clipped where the image ends, so even the borders match.
    assert np.max(np.abs(tiled - reference)) < 1e-4
    # Too little overlap shows seams (and warns).
    with pytest.warns(UserWarning, match="receptive radius"):
        seamy = apply_model(net, None, image, channel_axis=axis, tile=48, overlap=2, device="cpu")
    assert np.max(np.abs(seamy - reference)) > 1e-3


@pytest.fixture(autouse=True)
def _no_bf16(monkeypatch):
    """Tiling and layout tests compare with float32 to 1e-4: bf16 (on where the CPU has it) is tested apart."""
    from napari_crcnet import inference

    monkeypatch.setattr(inference, "FAST_BFLOAT16", False)


def test_fast_paths_match_plain_fp32():
    """Channels-last alone (bf16 off, as on CPUs without native bf16) changes nothing but round-off."""
    net = small_net(3)
    image = np.random.default_rng(1).random((40, 50, 3), np.float32)
    fast = apply_model(net, None, image, channel_axis=-1, device="cpu", fast=True)
    plain = apply_model(net, None, image, channel_axis=-1, device="cpu", fast=False)
    assert np.max(np.abs(fast - plain)) < 1e-5
    assert all(p.is_contiguous() for p in net.parameters())  # the caller's model keeps its memory format


def test_bf16_is_used_where_the_cpu_has_it_and_moves_the_psnr_by_little(monkeypatch):
    """Judged as a user sees it: the shipped gray model on a blurred photo, PSNR with and without bf16."""
    import napari_crcnet as nc
    from napari_crcnet import inference

    monkeypatch.setattr(inference, "FAST_BFLOAT16", "auto")
    runner = inference._Runner(small_net(1), torch.device("cpu"), 64, 8, True, False, None)
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: False)
    assert runner._flags() == (True, False)
    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: True)  # autocast runs (emulated) on any CPU
    assert runner._flags() == (True, True)
    assert inference._Runner(small_net(1), torch.device("cpu"), 64, 8, False, False, None)._flags() == (False, False)
    clear = np.asarray(__import__("skimage").data.camera()[96:224, 160:288], np.float32) / 255
    kernel = nc.random_motion_kernel(13, seed=5)
    blurred = nc.blur(clear, kernel, noise=0.01, seed=0)
    fast = nc.crcnet(blurred, "any-kernel-gray", kernel=kernel, noise=0.01, device="cpu", fast=True)
    plain = nc.crcnet(blurred, "any-kernel-gray", kernel=kernel, noise=0.01, device="cpu", fast=False)
    assert 0 < np.max(np.abs(fast - plain)) < 2e-2  # bf16 did run
    assert abs(psnr(clear, np.clip(fast, 0, 1)) - psnr(clear, np.clip(plain, 0, 1))) < 0.05


def test_layouts_time_series_and_channel_first():
    rng = np.random.default_rng(2)
    rgb = small_net(3)
    series = rng.random((2, 30, 40, 3), np.float32)  # (T, Y, X, C)
    out = apply_model(rgb, None, series, channel_axis=-1, device="cpu")
    for t in range(2):
        frame = apply_model(rgb, None, series[t], channel_axis=-1, device="cpu")
        np.testing.assert_allclose(out[t], frame, atol=1e-6)
    first = apply_model(rgb, None, np.moveaxis(series[0], -1, 0), channel_axis=0, device="cpu")
    np.testing.assert_allclose(np.moveaxis(first, 0, -1), out[0], atol=1e-6)

    gray = small_net(1)
    stack = rng.random((3, 30, 40), np.float32)  # (T, Y, X) slice-wise
    out = apply_model(gray, None, stack, device="cpu")
    np.testing.assert_allclose(out[1], apply_model(gray, None, stack[1], device="cpu"), atol=1e-6)
    # Gray model on an RGB image: each channel separately.
    out = apply_model(gray, None, series[0], channel_axis=-1, device="cpu")
    for ch in range(3):
        np.testing.assert_allclose(out[..., ch], apply_model(gray, None, series[0][..., ch], device="cpu"), atol=1e-6)
    # RGB model on a gray image: the image as three equal channels, the mean of the three outputs.
    out = apply_model(rgb, None, stack, device="cpu")
    equal = np.repeat(stack[..., None], 3, axis=-1)
    expected = apply_model(rgb, None, equal, channel_axis=-1, device="cpu").mean(axis=-1)
    assert out.shape == stack.shape
    np.testing.assert_allclose(out, expected, atol=1e-6)
    units = apply_model(rgb, None, stack[0], device="cpu", return_residues=True)[1]
    assert [u.shape for u in units] == [(c, 30, 40) for c in rgb.config.unit_channels()]
    # ...but other channel counts are refused, and an RGB image without its channel axis gets a hint.
    with pytest.raises(ValueError, match="takes 3 channels, the image has 2"):
        apply_model(rgb, None, series[0][..., :2], channel_axis=-1, device="cpu")
    with pytest.raises(ValueError, match="channel_axis=-1"):
        apply_model(rgb, None, series[0], device="cpu")


def test_uint8_input_and_input_unchanged():
    net = small_net(3)
    image = np.random.default_rng(3).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    copy = image.copy()
    out = apply_model(net, None, image, channel_axis=-1, device="cpu")
    np.testing.assert_array_equal(image, copy)
    ref = apply_model(net, None, image.astype(np.float32) / 255, channel_axis=-1, device="cpu")
    np.testing.assert_allclose(out, ref, atol=1e-6)
    floats = image.astype(np.float32) / 255
    before = floats.copy()
    apply_model(net, None, floats, channel_axis=-1, device="cpu")
    np.testing.assert_array_equal(floats, before)


def test_residue_layouts():
    rng = np.random.default_rng(4)
    rgb = small_net(3)
    image = rng.random((50, 60, 3), np.float32)
    out, residues = apply_model(
        rgb, None, image, channel_axis=-1, tile=40, overlap=12, device="cpu", return_residues=True
    )
    assert [r.shape for r in residues] == [(50, 60, 3), (50, 60, 6), (50, 60, 12)]
    ref_out, ref_res = untiled(rgb, np.moveaxis(image, -1, 0)[None], residues=True)
    for r, ref in zip(residues, ref_res):
        np.testing.assert_allclose(r, np.moveaxis(ref[0].numpy(), 0, -1), atol=1e-4)
    assert np.max(np.abs(out - np.moveaxis(ref_out[0].numpy(), 0, -1))) < 1e-4

    series = rng.random((2, 20, 30, 3), np.float32)
    _, residues = apply_model(rgb, None, series, channel_axis=-1, device="cpu", return_residues=True)
    assert [r.shape for r in residues] == [(2, 20, 30, c) for c in (3, 6, 12)]

    gray = small_net(1)
    _, residues = apply_model(gray, None, image[..., 0], device="cpu", return_residues=True)
    assert [r.shape for r in residues] == [(c, 50, 60) for c in (1, 2, 4)]
    ref = untiled(gray, image[None, None, :, :, 0], residues=True)[1]
    np.testing.assert_allclose(residues[2], ref[2][0].numpy(), atol=1e-5)
    _, residues = apply_model(gray, None, image, channel_axis=-1, device="cpu", return_residues=True)
    assert [r.shape for r in residues] == [(c, 50, 60, 3) for c in (1, 2, 4)]
    ref = untiled(gray, image[None, None, :, :, 1], residues=True)[1]
    np.testing.assert_allclose(residues[1][..., 1], ref[1][0].numpy(), atol=1e-5)


def test_mmse_input_uses_card_kernel_and_sigma(mmse_function):
    net = small_net(1, input="mmse", skip=True)
    kernel = gaussian()
    card = {"kernel": kernel.tolist(), "mmse_sigma": 0.01}
    image = np.random.default_rng(5).random((2, 40, 50), np.float32)
    out = apply_model(net, card, image, device="cpu")
    m = np.stack([mmse_function(frame, kernel, 0.01, boundary=inference.DEFAULT_BOUNDARY) for frame in image])
    expected = untiled(net, m[:, None])[:, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4)
    with pytest.raises(ValueError, match="mmse_sigma"):
        apply_model(net, {"kernel": kernel.tolist()}, image, device="cpu")
    with pytest.raises(ValueError, match="kernel"):
        apply_model(net, {"mmse_sigma": 0.01}, image, device="cpu")


@pytest.mark.parametrize("channels", [1, 3])
def test_extra_inputs_noise_map_and_blurred(channels):
    """A conditioned model gets [MMSE(b, k, suggest_sigma(noise)), noise / scale, b]; output keeps C channels."""
    from napari_crcnet.deconv import estimate_noise, mmse, suggest_sigma
    from napari_crcnet.models.crcnet import NOISE_MAP_SCALE

    net = small_net(1, input="mmse", skip=True, extra_inputs=("noise", "blurred"), features=4)
    assert net.config.input_channels == 3
    kernel = gaussian()
    card = {"kernel": kernel.tolist(), "mmse_sigma": "suggest", "noise": [0.005, 0.05]}
    rng = np.random.default_rng(7)
    image = rng.random((48, 56, channels), np.float32) if channels == 3 else rng.random((48, 56), np.float32)
    axis = -1 if channels == 3 else None
    seen = []
    hook = net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    with pytest.warns(UserWarning, match="trained for noise"):  # uniform noise is far above the range
        out = apply_model(net, card, image, channel_axis=axis, device="cpu", tile=256, fast=False)
    hook.remove()
    assert out.shape == image.shape
    noise = estimate_noise(image, channel_axis=axis)  # the card's noise is a range: estimated
    first_plane = image[..., 0] if channels == 3 else image
    x = seen[0][0].numpy()
    np.testing.assert_allclose(x[0], mmse(first_plane, kernel, suggest_sigma(noise, floor=0)), atol=1e-5)
    np.testing.assert_allclose(x[1], noise / NOISE_MAP_SCALE, rtol=1e-6)
    np.testing.assert_allclose(x[2], first_plane, atol=1e-7)
    # An explicit noise level wins; tiles still equal the untiled network (the maps are per-pixel inputs).
    tiled = apply_model(net, card, image, channel_axis=axis, device="cpu", noise=0.02, tile=40,
                        overlap=net.receptive_radius)
    whole = apply_model(net, card, image, channel_axis=axis, device="cpu", noise=0.02, tile=256)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    assert np.max(np.abs(whole - out)) > 1e-4  # the noise level does reach the network
    for bad in (-0.01, float("nan"), "0.01"):
        with pytest.raises(ValueError, match="noise"):
            apply_model(net, card, image, channel_axis=axis, device="cpu", noise=bad)


def test_card_noise_is_used_when_it_is_one_number():
    net = small_net(1, input="blurred", extra_inputs=("noise",))
    image = np.random.default_rng(8).random((30, 30), np.float32)
    with_card = apply_model(net, {"noise": 0.03}, image, device="cpu")
    explicit = apply_model(net, None, image, device="cpu", noise=0.03)
    np.testing.assert_array_equal(with_card, explicit)


def test_progress_per_tile_and_cancel():
    net = small_net(1, n_units=2)
    image = np.random.default_rng(6).random((2, 60, 60), np.float32)
    calls = []
    apply_model(net, None, image, tile=40, overlap=10, device="cpu", progress=lambda d, t: calls.append((d, t)))
    # 60 px with cores of 20 -> 3 x 3 tiles per frame, 2 frames.
    assert calls == [(i, 18) for i in range(1, 19)]

    def cancel(done, total):
        if done == 4:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        apply_model(net, None, image, tile=40, overlap=10, device="cpu", progress=cancel)


def test_bad_tiling_arguments():
    net = small_net(1)
    with pytest.raises(ValueError, match="twice the overlap"):
        apply_model(net, None, np.zeros((20, 20)), tile=20, overlap=10, device="cpu")
    with pytest.raises(TypeError):
        apply_model(torch.nn.Identity(), None, np.zeros((20, 20)))


def fake_oom(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")


def test_oom_halves_the_tile(monkeypatch):
    net = small_net(1, n_units=2)  # radius 10
    image = np.random.default_rng(7).random((90, 100), np.float32)
    expected = apply_model(net, None, image, device="cpu", overlap=10)
    real = inference._forward
    sizes = []

    def limited(model, x, *args):
        sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 64:
            fake_oom()
        return real(model, x, *args)

    monkeypatch.setattr(inference, "_forward", limited)
    with pytest.warns(UserWarning, match="tiles of 64"):
        out = apply_model(net, None, image, device="cpu", tile=128, overlap=10)
    assert sizes[0] == 100 and max(sizes[1:]) <= 64
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_oom_falls_back_to_cpu(monkeypatch):
    """A device that always runs out of memory: the tile is halved to the minimum, then the CPU takes over.

    The 'meta' device stands in for a GPU (tensors without storage), so this runs on any machine.
    """
    net = small_net(1, n_units=2)
    image = np.random.default_rng(8).random((70, 80), np.float32)
    expected = apply_model(net, None, image, device="cpu", overlap=10)
    real = inference._forward
    devices = []

    def gpu_oom(model, x, *args):
        devices.append(x.device.type)
        if x.device.type != "cpu":
            fake_oom()
        return real(model, x, *args)

    monkeypatch.setattr(inference, "_forward", gpu_oom)
    monkeypatch.setattr(inference, "resolve_device", lambda device: torch.device("meta"))
    with pytest.warns(UserWarning) as record:
        out = apply_model(net, None, image, device="cuda", tile=256, overlap=10)
    messages = [str(w.message) for w in record]
    assert any("tiles of 128" in m for m in messages) and "running on the CPU" in messages[-1]
    assert devices[0] == "meta" and devices[-1] == "cpu"
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert next(net.parameters()).device.type == "cpu"  # the caller's model was not moved

    # Out of memory on the CPU with the smallest tile: the error propagates.
    monkeypatch.setattr(inference, "resolve_device", lambda device: torch.device("cpu"))
    monkeypatch.setattr(inference, "_forward", lambda *a: fake_oom())
    with pytest.warns(UserWarning), pytest.raises(torch.cuda.OutOfMemoryError):
        apply_model(net, None, image, device="cpu", tile=256, overlap=10)


def test_crcnet_high_level(tmp_path, monkeypatch, mmse_function):
    monkeypatch.setenv("NAPARI_CRCNET_MODELS", str(tmp_path))
    net = small_net(3, input="mmse", skip=True)
    kernel = gaussian()
    save_model(tmp_path / "tiny", net, {"kernel": kernel, "mmse_sigma": 0.02})
    image = np.random.default_rng(9).random((30, 40, 3), np.float32)
    by_name = crcnet(image, "tiny", kernel, channel_axis=-1, device="cpu")
    by_path = crcnet(image, tmp_path / "tiny.safetensors", channel_axis=-1, device="cpu")
    by_pair = crcnet(
        image, (net, {"kernel": kernel.tolist(), "mmse_sigma": 0.02}), kernel, channel_axis=-1, device="cpu"
    )
    np.testing.assert_allclose(by_name, by_path, atol=1e-6)
    np.testing.assert_allclose(by_name, by_pair, atol=1e-6)
    other = gaussian(2.5, 9)
    with pytest.raises(ValueError, match="force=True"):
        crcnet(image, "tiny", other, channel_axis=-1, device="cpu")
    with pytest.raises(ValueError, match="force=True"):
        crcnet(image, (net, {"kernel": kernel.tolist(), "mmse_sigma": 0.02}), other, channel_axis=-1)
    forced = crcnet(image, "tiny", other, channel_axis=-1, device="cpu", force=True)
    assert forced.shape == image.shape
    gray = crcnet(image[..., 0], "tiny", kernel, device="cpu")  # as three equal channels
    equal = np.repeat(image[..., :1], 3, axis=-1)
    np.testing.assert_allclose(gray, crcnet(equal, "tiny", kernel, channel_axis=-1, device="cpu").mean(-1),
                               atol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        crcnet(image[..., :2], "tiny", kernel, channel_axis=-1, device="cpu")
    with pytest.raises(ValueError, match="3 channels"):
        crcnet(image[..., :2], (net, {"kernel": kernel.tolist(), "mmse_sigma": 0.02}), kernel, channel_axis=-1)


def test_volume_model_tiles_in_3d():
    torch.manual_seed(1)
    net = CRCNet(CRCNetConfig(in_channels=1, n_units=1, iu_channels=2, input="blurred", skip=False, spatial_dims=3))
    volume = np.random.default_rng(10).random((2, 20, 26, 30), np.float32)  # (T, Z, Y, X)
    out = apply_model(net, None, volume, tile=24, overlap=net.receptive_radius, device="cpu")
    expected = untiled(net, volume[:, None])[:, 0].numpy()
    assert out.shape == volume.shape
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_noise_outside_the_trained_range_warns():
    """A family model (card noise = [low, high]) warns when the given or estimated level is outside it."""
    import warnings

    net = small_net(1, input="blurred", extra_inputs=("noise",))
    card = {"name": "fam", "noise": [0.005, 0.05]}
    image = np.random.default_rng(9).random((30, 30), np.float32)
    with pytest.warns(UserWarning, match=r"0\.5-5 % of the image range; this image's \(given\) is 10 %"):
        apply_model(net, card, image, device="cpu", noise=0.1)
    with pytest.warns(UserWarning, match=r"\(estimated\).*pass noise="):
        apply_model(net, card, image, device="cpu")  # uniform noise: std about 0.3, far above the range
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_model(net, card, image, device="cpu", noise=0.02)
        apply_model(net, {"noise": 0.3}, image, device="cpu")  # one trained level: no range to be outside


def test_crcnet_default_model_is_the_any_kernel_model(any_kernel_model):
    from napari_crcnet.models import load_model

    image = np.random.default_rng(10).random((24, 20, 3), np.float32)
    kernel = gaussian()
    default = crcnet(image, kernel=kernel, channel_axis=-1, noise=0.01, device="cpu")
    named = crcnet(image, load_model(any_kernel_model), kernel, channel_axis=-1, noise=0.01, device="cpu")
    np.testing.assert_array_equal(default, named)
    with pytest.raises(ValueError, match="kernel"):  # a family model has no kernel of its own to assume
        crcnet(image, channel_axis=-1, noise=0.01, device="cpu")


def test_crcnet_default_for_a_gray_image_is_the_gray_any_kernel_model_when_installed(any_kernel_model):
    from napari_crcnet.models import load_model
    from napari_crcnet.models.store import DEFAULT_MODEL, default_model

    gray = np.random.default_rng(11).random((24, 20), np.float32)
    kernel = gaussian()
    assert default_model(1) == default_model(3) == DEFAULT_MODEL  # no gray model yet: the RGB one serves
    np.testing.assert_array_equal(
        crcnet(gray, kernel=kernel, noise=0.01, device="cpu"),
        crcnet(gray, load_model(any_kernel_model), kernel, noise=0.01, device="cpu"),
    )


def test_crcnet_uses_the_gray_default_for_gray_images_and_the_rgb_one_for_colour(any_kernel_gray_model):
    from napari_crcnet.models import load_model
    from napari_crcnet.models.store import DEFAULT_GRAY_MODEL, DEFAULT_MODEL, default_model

    assert (default_model(1), default_model(3)) == (DEFAULT_GRAY_MODEL, DEFAULT_MODEL)
    kernel = gaussian()
    stack = np.random.default_rng(12).random((2, 24, 20), np.float32)  # a gray Z stack
    gray_net = load_model(any_kernel_gray_model)
    np.testing.assert_array_equal(
        crcnet(stack, kernel=kernel, noise=0.01, device="cpu"),
        crcnet(stack, gray_net, kernel, noise=0.01, device="cpu"),
    )
    rgb = np.random.default_rng(13).random((24, 20, 3), np.float32)
    rgb_net = load_model(any_kernel_gray_model.with_name(f"{DEFAULT_MODEL}.safetensors"))
    np.testing.assert_array_equal(
        crcnet(rgb, kernel=kernel, channel_axis=-1, noise=0.01, device="cpu"),
        crcnet(rgb, rgb_net, kernel, channel_axis=-1, noise=0.01, device="cpu"),
    )
