"""Richardson-Lucy: the literal update, boundaries, 2D and 3D, TV, stopping rule, cancel, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import napari_crcnet as nc
from napari_crcnet._progress import Cancelled
from napari_crcnet.metrics import psnr
from napari_crcnet.richardsonlucy import richardson_lucy


def _literal(b: np.ndarray, kernel: np.ndarray, n_iter: int) -> np.ndarray:
    """x <- x * H^T(b / H x) / H^T 1 from the flat image at b's mean, with scipy's circular convolution (H)
    and correlation (H^T)."""
    b = np.clip(b, 0, None)
    x = np.full_like(b, max(b.mean(), 1e-6))
    ones = ndimage.correlate(np.ones_like(b), kernel, mode="wrap")
    for _ in range(n_iter):
        x = x * ndimage.correlate(b / np.maximum(ndimage.convolve(x, kernel, mode="wrap"), 1e-6), kernel,
                                  mode="wrap") / ones
    return x


@pytest.fixture
def cells() -> np.ndarray:
    """Sparse bright blobs on a dark background (fluorescence-like), 64 x 80."""
    rng = np.random.default_rng(0)
    image = np.full((64, 80), 0.02)
    image[rng.integers(4, 60, 40), rng.integers(4, 76, 40)] = 1.0
    return ndimage.gaussian_filter(image, 1.0) * 4


def test_equals_the_literal_update_to_round_off(cells):
    kernel = nc.gaussian_kernel((2.0, 1.2), angle=30)
    b = ndimage.convolve(cells, kernel, mode="wrap") + 0.01 * np.random.default_rng(1).standard_normal(cells.shape)
    ours = richardson_lucy(b, kernel, 12, boundary="periodic", dtype=np.float64, device="cpu")
    np.testing.assert_allclose(ours, _literal(b, nc.kernels.validate_kernel(kernel), 12), rtol=1e-9, atol=1e-12)


def test_3d_equals_the_literal_update_and_a_2d_kernel_works_slice_by_slice():
    rng = np.random.default_rng(2)
    volume = ndimage.gaussian_filter(rng.random((16, 20, 24)), 1.0)
    psf = nc.gaussian_psf_3d(1.0, 1.2)
    b = ndimage.convolve(volume, psf, mode="wrap")
    ours = richardson_lucy(b, psf, 5, boundary="periodic", dtype=np.float64, device="cpu")
    np.testing.assert_allclose(ours, _literal(b, nc.kernels.validate_kernel(psf), 5), rtol=1e-9, atol=1e-12)
    slices = richardson_lucy(b, nc.gaussian_kernel(1.0), 3, device="cpu")
    assert slices.shape == b.shape
    np.testing.assert_allclose(slices[4], richardson_lucy(b[4], nc.gaussian_kernel(1.0), 3, device="cpu"), atol=1e-6)


def test_restores_poisson_blurred_cells_keeps_non_negativity_and_does_not_modify_the_input(cells):
    kernel = nc.gaussian_kernel(1.5)
    rng = np.random.default_rng(3)
    b = rng.poisson(nc.blur(cells, kernel, boundary="reflect") * 300) / 300.0
    before = b.copy()
    for boundary in ("reflect", "taper", "periodic"):
        x = richardson_lucy(b, kernel, 20, boundary=boundary, device="cpu")
        assert x.dtype == np.float32 and x.min() >= 0
        assert psnr(cells, x, data_range=cells.max()) > psnr(cells, b, data_range=cells.max()) + 2
    np.testing.assert_array_equal(b, before)


def test_tv_smooths_noise_and_tol_stops_early(cells):
    kernel = nc.gaussian_kernel(1.5)
    b = nc.blur(cells, kernel, noise=0.05, seed=4)
    plain = richardson_lucy(b, kernel, 40, device="cpu")
    smooth = richardson_lucy(b, kernel, 40, tv=0.01, device="cpu")

    def total_variation(x):
        return np.abs(np.diff(x, axis=0)).sum() + np.abs(np.diff(x, axis=1)).sum()

    assert total_variation(smooth) < 0.9 * total_variation(plain)
    calls = []
    early = richardson_lucy(b, kernel, 500, tol=0.05, device="cpu", progress=lambda d, t: calls.append(d))
    assert len(calls) < 500
    np.testing.assert_allclose(early, richardson_lucy(b, kernel, len(calls), device="cpu"), atol=1e-6)


def test_cancel_and_bad_options(cells):
    kernel = nc.gaussian_kernel(1.0)

    def cancel(done, total):
        if done == 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        richardson_lucy(cells, kernel, 50, progress=cancel, device="cpu")
    for bad in ({"n_iter": 0}, {"n_iter": 2.5}, {"n_iter": True}, {"n_iter": 10**9}, {"tv": -0.1}, {"tv": 1.5},
                {"tv": "a"}, {"tol": 0.0}, {"tol": True}):
        with pytest.raises(ValueError):
            richardson_lucy(cells, kernel, **{"n_iter": 5, **bad})
    with pytest.raises(ValueError):
        richardson_lucy(cells, np.full((3, 3), np.nan))
