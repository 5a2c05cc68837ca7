"""MMSE, IRD (closed form vs the literal Algorithm 1), residues, noise estimation, layouts and errors."""

import itertools

import numpy as np
import pytest
import torch

from napari_crcnet.deconv import (
    blur,
    estimate_noise,
    ird,
    ird_residues,
    iter_ird_residues,
    mmse,
    suggest_sigma,
)
from napari_crcnet.metrics import psnr
from napari_crcnet.operators import BOUNDARIES, BlurOperator

F64 = {"dtype": np.float64, "device": "cpu"}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small arrays: one thread avoids OpenMP spin-waits on a shared, oversubscribed CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian(sigma: float, radius: int, ndim: int = 2) -> np.ndarray:
    grid = np.mgrid[(slice(-radius, radius + 1),) * ndim]
    kernel = np.exp(-sum(g**2 for g in grid) / (2 * sigma**2))
    return kernel / kernel.sum()


def motion(length: int = 9) -> np.ndarray:
    kernel = np.zeros((length, length))
    kernel[np.arange(length), np.arange(length)] = 1.0
    kernel[length // 2, :] += 0.5
    return kernel / kernel.sum()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.camera()[120:248, 160:288].astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    return np.random.default_rng(0).random((24, 30))


# ---------------------------------------------------------------- IRD: closed form == Algorithm 1
def literal_algorithm_1(b, kernel, sigma, n, fx=None):
    """Algorithm 1 written out with spatial convolutions (periodic), independent of deconv.py."""
    op = BlurOperator(kernel, boundary="periodic", device="cpu", dtype=torch.float64)
    fx_op = None if fx is None else BlurOperator(fx, boundary="periodic", device="cpu", dtype=torch.float64)
    prior = (lambda t: t) if fx_op is None else fx_op.forward
    b = torch.as_tensor(b)
    r, s = b.clone(), b.clone()
    for _ in range(n):
        r = (1 - sigma) * r - op.forward(prior(op.adjoint(r)))
        s = s + r
    return prior(op.adjoint(s)).numpy()


def test_closed_form_equals_literal_loop_n_1_to_50(small):
    kernel = motion(7)
    b = blur(small, kernel, noise=0.02, seed=1, boundary="periodic", **F64)
    op = BlurOperator(kernel, boundary="periodic", device="cpu", dtype=torch.float64)
    r, s = torch.as_tensor(b), torch.as_tensor(b).clone()
    sigma = 0.03
    for n in range(1, 51):  # one literal loop, compared at every N
        r = (1 - sigma) * r - op.forward(op.adjoint(r))
        s = s + r
        literal = op.adjoint(s).numpy()
        closed = ird(b, kernel, sigma, n, boundary="periodic", **F64)
        assert np.abs(closed - literal).max() <= 1e-8 * np.abs(literal).max(), n


@pytest.mark.parametrize("n", [0, 1, 7, 30])
def test_iterative_method_and_fx_match_closed_form(small, n):
    kernel = gaussian(1.0, 3)
    fx = np.array([[0.0, 0.1, 0.0], [0.1, 0.6, 0.1], [0.0, 0.1, 0.0]])
    b = blur(small, kernel, boundary="periodic", **F64)
    for patch in (None, fx):
        closed = ird(b, kernel, 0.05, n, fx=patch, boundary="periodic", **F64)
        loop = ird(b, kernel, 0.05, n, fx=patch, method="iterative", boundary="periodic", **F64)
        reference = literal_algorithm_1(b, kernel, 0.05, n, patch)
        np.testing.assert_allclose(loop, reference, rtol=0, atol=1e-12)
        assert np.abs(closed - loop).max() <= 1e-8 * np.abs(loop).max()


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_ird_converges_to_mmse(photo, boundary):
    kernel = gaussian(1.5, 4)
    b = blur(photo, kernel, noise=0.01, seed=0, **F64)
    target = mmse(b, kernel, 0.02, boundary=boundary, **F64)
    errors = [np.abs(ird(b, kernel, 0.02, n, boundary=boundary, **F64) - target).max() for n in (10, 100, 1000)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-6


def test_tiny_sigma_float32_geometric_series_is_stable(photo):
    kernel = gaussian(1.5, 4)
    b = blur(photo, kernel, boundary="periodic")
    x32 = ird(b, kernel, 1e-7, 1000, boundary="periodic")
    x64 = ird(b, kernel, 1e-7, 1000, boundary="periodic", **F64)
    assert np.isfinite(x32).all()
    assert np.abs(x32 - x64).max() < 1e-3


def test_response_cache_never_returns_stale_filters(small):
    from napari_crcnet import operators

    kernel = gaussian(1.0, 2)
    first = ird(small, kernel, 0.05, 10, **F64)
    np.testing.assert_array_equal(ird(small, kernel, 0.05, 10, **F64), first)  # cached response, same result
    assert not np.allclose(ird(small, kernel, 0.05, 11, **F64), first)
    assert not np.allclose(ird(small, kernel, 0.06, 10, **F64), first)
    assert not np.allclose(mmse(small, kernel, 0.05, prior="laplacian", **F64), mmse(small, kernel, 0.05, **F64))
    operators._OPERATOR_CACHE.clear()  # a new operator object: rebuilt, same values
    np.testing.assert_allclose(ird(small, kernel, 0.05, 10, **F64), first, atol=1e-14)
    assert not np.allclose(ird(small, motion(5), 0.05, 10, **F64), first)


# --------------------------------------------------------------------------------- residues
def test_residues_match_definition_and_sum_to_ird(small):
    kernel = motion(5)
    sigma = 0.1
    b = blur(small, kernel, noise=0.01, seed=2, boundary="periodic", **F64)
    op = BlurOperator(kernel, boundary="periodic", device="cpu", dtype=torch.float64)
    residues, partials = ird_residues(b, kernel, sigma, [0, 1, 2, 3, 4, 2], boundary="periodic", **F64)
    assert residues.shape == (6, *b.shape)
    np.testing.assert_array_equal(residues[5], residues[2])  # order kept, duplicates allowed
    power = torch.as_tensor(b)  # (sigma' I - H H^T)^n b, built with the operator
    for n in range(5):
        definition = op.adjoint(power).numpy()
        np.testing.assert_allclose(residues[n], definition, atol=1e-12)
        power = (1 - sigma) * power - op.forward(op.adjoint(power))
    np.testing.assert_allclose(partials[:5], np.cumsum(residues[:5], axis=0), atol=1e-12)
    for n in range(5):
        np.testing.assert_allclose(partials[n], ird(b, kernel, sigma, n, boundary="periodic", **F64), atol=1e-12)


def test_partial_sums_include_every_term_and_progress(photo):
    kernel = gaussian(1.2, 3)
    b = blur(photo, kernel, noise=0.01, seed=0, **F64)
    calls = []
    got = list(iter_ird_residues(b, kernel, 0.05, [50, 3], progress=lambda d, t: calls.append((d, t)), **F64))
    assert [n for n, _, _ in got] == [50, 3]
    assert calls == [(1, 2), (2, 2)]
    np.testing.assert_allclose(got[0][2], ird(b, kernel, 0.05, 50, **F64), atol=1e-10)
    assert got[0][1].dtype == np.float64
    _, residue, partial = next(iter_ird_residues(b, kernel, 0.05, [2]))
    assert residue.dtype == np.float32 and partial.shape == b.shape
    _, _, auto = next(iter_ird_residues(b, kernel, None, [7], **F64))  # sigma None: the noise-aware default
    np.testing.assert_allclose(auto, ird(b, kernel, None, 7, **F64), atol=1e-12)


# -------------------------------------------------------------------------------- adjointness
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize(
    ("shape", "kernel"),
    [((19, 23), gaussian(1.0, 2)), ((2, 3, 17, 20), motion(5)), ((9, 12, 11), gaussian(1.0, 1, ndim=3))],
    ids=["2d", "batched", "3d"],
)
def test_adjointness(boundary, shape, kernel):
    rng = np.random.default_rng(3)
    op = BlurOperator(kernel, boundary=boundary, device="cpu", dtype=torch.float64)
    x = torch.as_tensor(rng.standard_normal(shape))
    y = torch.as_tensor(rng.standard_normal(shape))
    lhs = float((op.forward(x) * y).sum())
    rhs = float((x * op.adjoint(y)).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0)


# ------------------------------------------------------------------------------- recovery
def test_noise_free_periodic_recovery_above_40_db(photo):
    kernel = gaussian(0.8, 2)
    b = blur(photo, kernel, boundary="periodic", **F64)
    restored = mmse(b, kernel, 1e-9, boundary="periodic", **F64)
    assert psnr(photo, restored) > 40
    assert psnr(photo, ird(b, kernel, 1e-6, 2000, boundary="periodic", **F64)) > 40


def test_taper_and_reflect_beat_periodic_on_a_photo():
    from skimage import data

    x = data.camera()[::2, ::2].astype(np.float64) / 255
    kernel = motion(9)
    b = blur(x, kernel, noise=0.002, seed=0, boundary="reflect", **F64)
    scores = {mode: psnr(x, np.clip(mmse(b, kernel, 2e-3, boundary=mode, **F64), 0, 1)) for mode in BOUNDARIES}
    assert scores["taper"] > scores["periodic"] + 1
    assert scores["reflect"] > scores["periodic"] + 1


def test_laplacian_prior_runs_and_keeps_the_mean(photo):
    kernel = gaussian(1.5, 4)
    b = blur(photo, kernel, noise=0.01, seed=0, boundary="periodic", **F64)
    restored = mmse(b, kernel, 0.01, prior="laplacian", boundary="periodic", **F64)
    assert abs(restored.mean() - b.mean()) < 1e-10
    assert psnr(photo, restored) > psnr(photo, b)


def test_blur_reflect_equals_scipy_convolve(photo):
    from scipy import ndimage

    kernel = motion(7)
    expected = ndimage.convolve(photo, kernel, mode="reflect")
    np.testing.assert_allclose(blur(photo, kernel, **F64), expected, atol=1e-12)
    noisy = blur(photo, kernel, noise=0.05, seed=4, **F64)
    assert abs(np.std(noisy - expected) - 0.05) < 0.003
    np.testing.assert_array_equal(noisy, blur(photo, kernel, noise=0.05, seed=4, **F64))


# --------------------------------------------------------------------------- layouts, dtypes
def test_rgb_uint8_uint16_round_trips():
    rng = np.random.default_rng(5)
    kernel = gaussian(1.0, 2)
    rgb8 = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    copy = rgb8.copy()
    out = mmse(rgb8, kernel, 0.01, channel_axis=-1)
    assert out.dtype == np.float32 and out.shape == rgb8.shape
    np.testing.assert_array_equal(rgb8, copy)
    for c in range(3):  # channels are independent images
        single = mmse(rgb8[..., c], kernel, 0.01)
        np.testing.assert_allclose(out[..., c], single, atol=1e-6)
    gray16 = (rng.random((30, 30)) * 65535).astype(np.uint16)
    out16 = ird(gray16, kernel, 0.05, 10)
    np.testing.assert_allclose(out16, ird(gray16 / 65535.0, kernel, 0.05, 10), atol=1e-5)
    assert out16.dtype == np.float32 and out16.shape == gray16.shape
    assert blur(rgb8, kernel, channel_axis=-1).dtype == np.float32


def test_time_series_equals_per_frame():
    rng = np.random.default_rng(6)
    stack = rng.random((4, 26, 28)).astype(np.float32)
    kernel = motion(5)
    together = ird(stack, kernel, 0.05, 20)
    for t in range(4):
        np.testing.assert_allclose(together[t], ird(stack[t], kernel, 0.05, 20), atol=1e-6)


def test_3d_kernel_on_a_volume():
    rng = np.random.default_rng(7)
    volume = np.zeros((16, 20, 20))
    volume[4:12, 5:15, 6:14] = 1.0
    volume += 0.1 * rng.random(volume.shape)
    kernel = gaussian(0.8, 1, ndim=3)
    b = blur(volume, kernel, boundary="periodic", **F64)
    restored = mmse(b, kernel, 1e-8, boundary="periodic", **F64)
    assert restored.shape == volume.shape
    assert psnr(volume, restored, data_range=1.1) > 40
    # a 2D kernel on the same volume works slice by slice
    flat = mmse(b, gaussian(1.0, 2), 0.01, **F64)
    np.testing.assert_allclose(flat[3], mmse(b[3], gaussian(1.0, 2), 0.01, **F64), atol=1e-12)


def test_progress_and_cancel(small):
    from napari_crcnet._progress import Cancelled

    kernel = gaussian(1.0, 2)
    calls = []
    ird(small, kernel, 0.1, 5, method="iterative", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (5, 5) and len(calls) == 5

    def stop(done, total):
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        ird(small, kernel, 0.1, 5, method="iterative", progress=stop)


# ------------------------------------------------------------------------------------- errors
def test_bad_inputs_raise_and_leave_input_unchanged(small):
    kernel = gaussian(1.0, 2)
    image = small.copy()
    nan_image = small.copy()
    nan_image[3, 4] = np.nan
    nan_copy = nan_image.copy()
    cases = [
        lambda: mmse(nan_image, kernel, 0.01),
        lambda: ird(image, kernel, 0.0, 10),
        lambda: ird(image, kernel, 1.5, 10),
        lambda: ird(image, kernel, float("nan"), 10),
        lambda: ird(image, kernel, 0.1, -1),
        lambda: ird(image, kernel, 0.1, 2.5),
        lambda: ird(image, kernel, 0.1, 10, method="loop"),
        lambda: mmse(image, kernel, -0.1),
        lambda: mmse(image, kernel, 0.1, prior="tv"),
        lambda: mmse(image, np.ones((31, 31)), 0.1),
        lambda: mmse(image, np.ones(5), 0.1),
        lambda: mmse(image, gaussian(1.0, 1, ndim=3), 0.1),
        lambda: ird_residues(image, kernel, 0.1, [-1]),
        lambda: ird_residues(image, kernel, 0.1, []),
        lambda: blur(image, kernel, noise=-1),
        lambda: ird(image, kernel, 0.1, 3, fx=np.ones((2, 2))),
    ]
    for case in cases:
        with pytest.raises(ValueError):
            case()
    np.testing.assert_array_equal(image, small)
    np.testing.assert_array_equal(nan_image, nan_copy)


@pytest.mark.parametrize("boundary", ["periodic", "reflect", "taper"])
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_by_every_method(small, boundary, bad_value):
    """The float32 fast path shares the input and finds non-finite pixels on the spectrum instead."""
    from napari_crcnet.hyperlaplacian import hyper_laplacian

    image = np.stack([small, small]).astype(np.float32)
    image[1, 5, 7] = bad_value  # only in the second image of the batch
    before = image.copy()
    kernel = gaussian(1.0, 2)
    for run in (
        lambda: mmse(image, kernel, 0.01, boundary=boundary),
        lambda: ird(image, kernel, 0.01, 5, boundary=boundary),
        lambda: ird(image, kernel, 0.01, 2, method="iterative", boundary=boundary),
        lambda: ird_residues(image, kernel, 0.01, [0, 3], boundary=boundary),
        lambda: blur(image, kernel, boundary=boundary),
        lambda: hyper_laplacian(image, kernel, 100.0, boundary=boundary, beta_max=8.0),
    ):
        with pytest.raises(ValueError, match="NaN or infinite"):
            run()
    np.testing.assert_array_equal(image, before)


def test_input_never_modified(small):
    image = small.astype(np.float32)
    before = image.copy()
    kernel = gaussian(1.0, 2)
    for f in (
        lambda: mmse(image, kernel, 0.01),
        lambda: ird(image, kernel, 0.1, 5, method="iterative"),
        lambda: blur(image, kernel, noise=0.1),
        lambda: ird_residues(image, kernel, 0.1, [1, 2])[1],
    ):
        out = f()
        out[...] = 0  # results never alias the input
        np.testing.assert_array_equal(image, before)


# ----------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("std", [0.005, 0.02, 0.05])
def test_estimate_noise_on_synthetic_noise(photo, std):
    kernel = gaussian(1.5, 4)
    b = blur(photo, kernel, noise=std, seed=11, **F64)
    assert abs(estimate_noise(b) - std) < 0.12 * std + 0.001


def test_estimate_noise_skips_flat_and_saturated_background():
    rng = np.random.default_rng(8)
    image = np.zeros((96, 96))
    image[24:72, 24:72] = 0.5 + 0.03 * rng.standard_normal((48, 48))
    assert abs(estimate_noise(image) - 0.03) < 0.005  # without skipping, the black 75 % would give ~0
    clipped = np.clip(0.95 + 0.03 * rng.standard_normal((96, 96)), 0, 1)
    assert abs(estimate_noise(clipped) - 0.03) < 0.006
    assert estimate_noise(np.full((10, 10), 0.3)) == 0.0
    rgb = np.stack([image] * 3, axis=-1)
    assert abs(estimate_noise(rgb, channel_axis=-1) - 0.03) < 0.005


def test_suggest_sigma_is_monotone_and_used_by_default(photo):
    values = [suggest_sigma(s) for s in (0.0, 0.001, 0.01, 0.03, 0.1)]
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert all(0 < v <= 1 for v in values)
    kernel = gaussian(1.5, 4)
    b = blur(photo, kernel, noise=0.02, seed=0)
    np.testing.assert_allclose(mmse(b, kernel), mmse(b, kernel, suggest_sigma(estimate_noise(b))))
    with pytest.raises(ValueError):
        suggest_sigma(-1)


def test_default_sigma_and_lambda_have_a_model_error_floor(photo):
    """Below the floor the noise level no longer lowers sigma / raises lam; above it the pure rule holds."""
    from napari_crcnet.deconv import SIGMA_NOISE_FLOOR
    from napari_crcnet.hyperlaplacian import LAMBDA_NOISE_FLOOR, suggest_lambda

    assert 0 < SIGMA_NOISE_FLOOR < 0.01 and 0 < LAMBDA_NOISE_FLOOR < 0.01  # the 1 % cases stay as they were
    assert suggest_sigma(0.0005) == suggest_sigma(SIGMA_NOISE_FLOOR) > suggest_sigma(0.0005, floor=0)
    assert suggest_sigma(0.0005, floor=0) == pytest.approx(1.652 * 0.0005**1.006)
    assert suggest_sigma(0.02) == suggest_sigma(0.02, floor=0)
    assert suggest_lambda(0.0005) == suggest_lambda(LAMBDA_NOISE_FLOOR) < suggest_lambda(0.0005, floor=0)
    assert suggest_lambda(0.02) == suggest_lambda(0.02, floor=0)
    # A clean image (8-bit, estimated noise far below the floor): the default uses the floor.
    kernel = np.ones((5, 5)) / 25
    b = np.round(blur(photo, kernel, boundary="reflect") * 255) / 255
    assert estimate_noise(b) < SIGMA_NOISE_FLOOR
    np.testing.assert_allclose(mmse(b, kernel), mmse(b, kernel, suggest_sigma(SIGMA_NOISE_FLOOR, floor=0)))
