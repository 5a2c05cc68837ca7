"""PSNR and SSIM: known values, skimage agreement, YCbCr luma, crop, integer scaling."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_crcnet.metrics import psnr, rgb_to_y, ssim


@pytest.fixture(scope="module")
def pair():
    from skimage import data

    x = data.astronaut()[:96, :128].astype(np.float64) / 255
    noisy = np.clip(x + 0.05 * np.random.default_rng(0).standard_normal(x.shape), 0, 1)
    return x, noisy


def test_psnr_known_values():
    x = np.full((16, 16), 0.5)
    assert psnr(x, x + 0.01) == pytest.approx(40.0)
    assert psnr(x, x + 0.1) == pytest.approx(20.0)
    assert psnr(x * 255, x * 255 + 2.55, data_range=255) == pytest.approx(40.0)
    assert psnr(x, x) == np.inf


def test_psnr_and_ssim_agree_with_skimage(pair):
    x, noisy = pair
    gray, gray_noisy = x[..., 0], noisy[..., 0]
    assert psnr(x, noisy, channel_axis=-1) == pytest.approx(peak_signal_noise_ratio(x, noisy, data_range=1))
    expected = structural_similarity(
        gray, gray_noisy, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(gray, gray_noisy) == pytest.approx(expected)
    assert ssim(gray, gray) == pytest.approx(1.0)


def test_rgb_ssim_is_on_the_bt601_luma(pair):
    x, noisy = pair
    y = rgb_to_y(x)
    np.testing.assert_allclose(rgb_to_y(np.ones((2, 2, 3))), 235 / 255)
    np.testing.assert_allclose(rgb_to_y(np.zeros((2, 2, 3))), 16 / 255)
    np.testing.assert_allclose(rgb_to_y((x * 255).round().astype(np.uint8)), rgb_to_y((x * 255).round() / 255))
    expected = structural_similarity(
        y, rgb_to_y(noisy), data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(x, noisy, channel_axis=-1) == pytest.approx(expected)
    channel_first = np.moveaxis(x, -1, 0), np.moveaxis(noisy, -1, 0)
    assert ssim(*channel_first, channel_axis=0) == pytest.approx(expected)


def test_crop_integer_scaling_and_stacks(pair):
    x, noisy = pair
    gray, gray_noisy = x[..., 1], noisy[..., 1]
    assert psnr(gray, gray_noisy, crop=10) == pytest.approx(
        peak_signal_noise_ratio(gray[10:-10, 10:-10], gray_noisy[10:-10, 10:-10], data_range=1)
    )
    assert ssim(x, noisy, channel_axis=-1, crop=5) == pytest.approx(ssim(x[5:-5, 5:-5], noisy[5:-5, 5:-5], -1))
    u8 = (gray * 255).round().astype(np.uint8)
    assert psnr(u8, u8.astype(np.float64) / 255) == np.inf
    stack = np.stack([gray, gray_noisy])
    assert ssim(stack, np.stack([gray, gray])) == pytest.approx((1 + ssim(gray_noisy, gray)) / 2)


def test_errors(pair):
    x, noisy = pair
    with pytest.raises(ValueError):
        psnr(x, noisy[:-1])
    with pytest.raises(ValueError):
        psnr(x[..., 0], noisy[..., 0], crop=60)
    with pytest.raises(ValueError):
        rgb_to_y(x[..., :2])
