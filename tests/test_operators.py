"""The blur operator: convolution convention, exact adjoints, caching, shapes and errors."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from napari_crcnet.operators import BOUNDARIES, BlurOperator, fast_fft_length, get_operator

RNG = np.random.default_rng(7)


def random_kernel(shape):
    k = RNG.random(shape)
    return k / k.sum()


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize(
    ("kernel_shape", "image_shape"),
    [
        ((5, 7), (2, 40, 33)),
        ((3, 5, 5), (1, 12, 20, 21)),
        ((9, 9), (3, 2, 17, 30)),
        ((15, 15), (1, 16, 20)),  # pads wider than the image: the gather path
    ],
)
def test_adjoint_is_exact(boundary, kernel_shape, image_shape):
    op = BlurOperator(random_kernel(kernel_shape), boundary=boundary, device="cpu", dtype=torch.float64)
    x = torch.from_numpy(RNG.standard_normal(image_shape))
    y = torch.from_numpy(RNG.standard_normal(image_shape))
    lhs = float((op.forward(x) * y).sum())
    rhs = float((x * op.adjoint(y)).sum())
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize(
    ("kernel_shape", "image_shape"),
    [
        ((5, 7), (2, 40, 33)),
        ((4, 6), (3, 21, 30)),  # even sizes: the centre is off the middle
        ((3, 4, 5), (2, 12, 20, 21)),
        ((1, 5, 5), (12, 20, 21)),  # no reach along an axis, no batch axis
        ((16, 15), (1, 16, 20)),  # kernel as tall as the image
    ],
)
def test_compact_grid_computes_the_same_forward_and_adjoint(boundary, kernel_shape, image_shape):
    op = BlurOperator(random_kernel(kernel_shape), boundary=boundary, device="cpu", dtype=torch.float64)
    compact = op.compact(image_shape[-len(kernel_shape) :])
    assert all(g <= p for g, p in zip(compact.grid, op.padded_shape(compact.shape)))
    for _ in range(2):  # the second round reuses the buffers: what the first left there must not leak
        x = torch.from_numpy(RNG.standard_normal(image_shape))
        y = torch.from_numpy(RNG.standard_normal(image_shape))
        np.testing.assert_allclose(compact.forward(x).numpy(), op.forward(x).numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(compact.adjoint(y).numpy(), op.adjoint(y).numpy(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="spatial shape"):
        compact.forward(torch.zeros(3, 3))


def test_periodic_forward_is_circular_convolution_not_correlation():
    kernel = random_kernel((5, 7))  # asymmetric: convolution and correlation differ
    x = RNG.random((31, 40))
    op = BlurOperator(kernel, boundary="periodic", device="cpu", dtype=torch.float64)
    ours = op.forward(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, ndi.convolve(x, kernel, mode="wrap"), atol=1e-12)
    assert not np.allclose(ours, ndi.correlate(x, kernel, mode="wrap"), atol=1e-6)


def test_reflect_forward_matches_mirror_convolution():
    kernel = random_kernel((7, 5))
    x = RNG.random((30, 26))
    op = BlurOperator(kernel, boundary="reflect", device="cpu", dtype=torch.float64)
    np.testing.assert_allclose(op.forward(torch.from_numpy(x)).numpy(), ndi.convolve(x, kernel, mode="reflect"),
                               atol=1e-12)


def test_3d_forward_matches_scipy():
    kernel = random_kernel((3, 5, 3))
    x = RNG.random((9, 16, 14))
    op = BlurOperator(kernel, boundary="periodic", device="cpu", dtype=torch.float64)
    np.testing.assert_allclose(op.forward(torch.from_numpy(x)).numpy(), ndi.convolve(x, kernel, mode="wrap"),
                               atol=1e-12)


def test_taper_extension_is_smooth_and_keeps_the_image():
    op = BlurOperator(random_kernel((9, 9)), boundary="taper", device="cpu", dtype=torch.float64)
    x = torch.from_numpy(RNG.random((1, 40, 50)))
    padded = op.pad(x)
    (top, _), (left, _) = op.pad_widths((40, 50))
    np.testing.assert_array_equal(padded[0, top : top + 40, left : left + 50].numpy(), x[0].numpy())
    # The periodic continuation has no jump: opposite grid edges meet near the image mean.
    mean = float(x.mean())
    for edge in (padded[0, 0], padded[0, -1], padded[0, :, 0], padded[0, :, -1]):
        assert np.abs(edge.numpy() - mean).max() < 0.05


def test_transfer_function_is_cached_and_grid_sizes_are_fast():
    op = BlurOperator(random_kernel((5, 5)), boundary="reflect", device="cpu")
    grid = op.padded_shape((100, 101))
    assert all(fast_fft_length(n) == n for n in grid)
    assert op.transfer(grid) is op.transfer(grid)
    assert get_operator(op.kernel, "reflect", "cpu") is get_operator(op.kernel.copy(), "reflect", "cpu")


@pytest.mark.parametrize("n", [1, 2, 7, 11, 97, 1000, 1025])
def test_fast_fft_length(n):
    m = fast_fft_length(n)
    assert m >= n
    for p in (2, 3, 5):
        while m % p == 0:
            m //= p
    assert m == 1


def test_errors():
    with pytest.raises(ValueError, match="boundary"):
        BlurOperator(np.ones((3, 3)), boundary="wrap")
    with pytest.raises(ValueError, match="2D or 3D"):
        BlurOperator(np.ones(3))
    op = BlurOperator(np.ones((9, 9)) / 81, device="cpu")
    with pytest.raises(ValueError, match="larger than the image"):
        op.forward(torch.zeros(5, 20))
