"""Tests of napari_crcnet.kernels: generators, conventions, files, validation and text specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.ndimage as ndi

from napari_crcnet import kernels as K

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def centroid(kernel: np.ndarray) -> np.ndarray:
    """Centre of mass in array-index coordinates."""
    grids = np.indices(kernel.shape)
    return np.array([(g * kernel).sum() / kernel.sum() for g in grids])


def covariance_2d(kernel: np.ndarray) -> np.ndarray:
    """2x2 covariance (row, column) of a 2D kernel about its middle pixel, in px²."""
    rows, cols = np.indices(kernel.shape)
    d = np.stack([rows - kernel.shape[0] // 2, cols - kernel.shape[1] // 2]).reshape(2, -1)
    w = kernel.ravel() / kernel.sum()
    return (d * w) @ d.T


def direction(angle: float) -> np.ndarray:
    """(row, column) unit vector of ``angle`` degrees counter-clockwise on screen."""
    t = np.radians(angle)
    return np.array([-np.sin(t), np.cos(t)])


def assert_kernel_conventions(kernel: np.ndarray, ndim: int = 2, centred_tol: float = 1e-9) -> None:
    assert kernel.dtype == np.float64
    assert kernel.ndim == ndim
    assert all(n % 2 == 1 for n in kernel.shape)
    assert kernel.min() >= 0
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    middle = np.array([n // 2 for n in kernel.shape])
    np.testing.assert_allclose(centroid(kernel), middle, atol=centred_tol)


GENERATORS = {
    "gaussian iso": lambda: K.gaussian_kernel(2.0),
    "gaussian aniso": lambda: K.gaussian_kernel((3.0, 1.5), angle=30),
    "gaussian sized": lambda: K.gaussian_kernel(1.0, size=7),
    "gaussian delta": lambda: K.gaussian_kernel(0.0),
    "disk": lambda: K.disk_kernel(4.0),
    "disk fractional": lambda: K.disk_kernel(2.7),
    "disk zero": lambda: K.disk_kernel(0.0),
    "motion": lambda: K.motion_kernel(15, 30),
    "motion subpixel": lambda: K.motion_kernel(7.3, 112.5),
    "motion zero": lambda: K.motion_kernel(0.0),
    "motion sized": lambda: K.motion_kernel(9, 0, size=21),
    "shake": lambda: K.random_motion_kernel(21, seed=3),
    "shake small": lambda: K.random_motion_kernel(9, seed=0),
}


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_conventions(name):
    assert_kernel_conventions(GENERATORS[name]())


@pytest.mark.parametrize(
    ("sigma", "angle"), [((2.0, 2.0), 0.0), ((3.0, 1.5), 0.0), ((3.0, 1.5), 30.0), ((1.2, 2.5), -75.0)]
)
def test_gaussian_second_moments_along_rotated_axes(sigma, angle):
    sigma_y, sigma_x = sigma
    cov = covariance_2d(K.gaussian_kernel(sigma, angle=angle))
    u, v = direction(angle), direction(angle + 90)
    assert u @ cov @ u == pytest.approx(sigma_x**2, rel=5e-3)
    assert v @ cov @ v == pytest.approx(sigma_y**2, rel=5e-3)
    assert abs(u @ cov @ v) < 5e-3 * max(sigma) ** 2


def test_gaussian_default_size_and_symmetry():
    k = K.gaussian_kernel(1.5)
    assert k.shape == (13, 13)  # 2 * ceil(4 * 1.5) + 1
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
    # angle 0: sigma_x acts along columns
    wide = K.gaussian_kernel((1.0, 3.0))
    cov = covariance_2d(wide)
    assert cov[1, 1] > 5 * cov[0, 0]


def test_disk_area_and_symmetry():
    k = K.disk_kernel(4.0)
    assert k.shape == (9, 9)
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    np.testing.assert_allclose(k, k[::-1], atol=1e-15)
    coverage = k / k.max()  # interior pixels are fully covered
    assert coverage.sum() == pytest.approx(np.pi * 16, rel=5e-3)
    assert np.isclose(coverage[4, 4], 1.0) and 0 < coverage[4, 8] < 1  # rim pixel partially covered


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 90.0, 137.0])
@pytest.mark.parametrize("length", [6.0, 15.0, 10.5])
def test_motion_length_from_second_moment(length, angle):
    cov = covariance_2d(K.motion_kernel(length, angle))
    u, v = direction(angle), direction(angle + 90)
    # uniform segment: L²/12; bilinear splat adds on average 1/6 px² per axis (f(1-f) averaged over f)
    recovered = np.sqrt(12 * (u @ cov @ u - 1 / 6))
    assert recovered == pytest.approx(length, abs=0.15)
    assert v @ cov @ v <= 1 / 6 + 0.05


def test_motion_direction_on_screen():
    vertical = K.motion_kernel(9, 90)
    np.testing.assert_allclose(vertical.sum(axis=1)[1:-1] > 0, True)
    assert vertical[:, vertical.shape[1] // 2].sum() == pytest.approx(1.0)
    diag = K.motion_kernel(8, 45)
    n = diag.shape[0]
    # counter-clockwise on screen: up-right (small row, large column) and down-left carry the mass
    assert diag[1, n - 2] > 0 and diag[n - 2, 1] > 0
    assert diag[1, 1] == 0 and diag[n - 2, n - 2] == 0


def test_shake_reproducible_and_varied():
    a = K.random_motion_kernel(21, seed=3)
    b = K.random_motion_kernel(21, seed=3)
    c = K.random_motion_kernel(21, seed=4)
    assert a.shape == (21, 21)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(K.random_motion_kernel(seed=np.random.default_rng(5)), K.random_motion_kernel(seed=5))
    # a motion path, not a blob: most pixels are empty, yet it spans several pixels
    for seed in range(5):
        k = K.random_motion_kernel(seed=seed)
        assert (k > 0).sum() >= 5
        assert (k > 0).mean() < 0.5


@pytest.mark.parametrize("size", [20, 3, 0])
def test_shake_bad_size(size):
    with pytest.raises(ValueError, match="odd"):
        K.random_motion_kernel(size)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: K.gaussian_kernel(-1), "non-negative"),
        (lambda: K.gaussian_kernel((0, 2)), "both sigmas"),
        (lambda: K.gaussian_kernel(2, size=8), "odd"),
        (lambda: K.disk_kernel(-2), "non-negative"),
        (lambda: K.motion_kernel(np.nan), "non-negative"),
        (lambda: K.motion_kernel(5, size=(5, 6)), "odd"),
        (lambda: K.gaussian_psf_3d(0, 1), "positive"),
        (lambda: K.widefield_psf_3d(15, 9, na=1.6, refractive_index=1.5), "smaller than the refractive index"),
        (lambda: K.widefield_psf_3d(16, 9), "odd"),
    ],
)
def test_generator_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_gaussian_psf_3d_shape_centre_symmetry():
    psf = K.gaussian_psf_3d(1.5, 3.0)
    assert psf.shape == (25, 13, 13)
    assert_kernel_conventions(psf, ndim=3)
    assert np.unravel_index(psf.argmax(), psf.shape) == (12, 6, 6)
    for axes in [(0,), (1,), (2,)]:
        np.testing.assert_allclose(psf, np.flip(psf, axes), atol=1e-15)
    np.testing.assert_allclose(psf, psf.transpose(0, 2, 1), atol=1e-15)
    # separable Gaussian: axial variance sigma_z²
    z = np.arange(25) - 12
    assert (psf.sum(axis=(1, 2)) * z**2).sum() == pytest.approx(9.0, rel=5e-3)
    assert K.gaussian_psf_3d(1, 1, size=(5, 7, 9)).shape == (5, 7, 9)


def test_widefield_psf_3d_shape_centre_symmetry_airy():
    psf = K.widefield_psf_3d(31, 21, na=1.4, wavelength_um=0.52, pixel_um=0.05, z_step_um=0.2)
    assert psf.shape == (21, 31, 31)
    assert_kernel_conventions(psf, ndim=3)
    assert np.unravel_index(psf.argmax(), psf.shape) == (10, 15, 15)
    for axes in [(0,), (1,), (2,)]:
        np.testing.assert_allclose(psf, np.flip(psf, axes), atol=1e-12 * psf.max())
    # in focus it is an Airy pattern: first dark ring at 0.61 lambda / NA = 0.2266 µm = 4.5 px
    profile = psf[10, 15, 15:]
    first_min = int(np.argmin(profile[:8]))
    assert first_min in (4, 5)
    assert profile[first_min] < 0.05 * profile[0]
    # defocus spreads the light: the in-focus plane holds the sharpest peak
    peaks = psf.max(axis=(1, 2))
    assert peaks.argmax() == 10 and peaks[0] < 0.5 * peaks[10]
    assert K.airy_psf_3d is K.widefield_psf_3d


def test_widefield_warns_when_undersampled():
    with pytest.warns(UserWarning, match="undersamples"):
        K.widefield_psf_3d(9, 3, na=1.4, wavelength_um=0.5, pixel_um=0.3)


def test_from_correlation_flips_and_matches_correlate():
    rng = np.random.default_rng(0)
    k = rng.random((5, 7))
    flipped = K.from_correlation(k)
    np.testing.assert_array_equal(flipped, k[::-1, ::-1])
    np.testing.assert_array_equal(K.from_correlation(flipped), k)
    image = rng.random((32, 40))
    np.testing.assert_allclose(ndi.correlate(image, k, mode="wrap"), ndi.convolve(image, flipped, mode="wrap"))
    k3 = rng.random((3, 5, 7))
    np.testing.assert_array_equal(K.from_correlation(k3), k3[::-1, ::-1, ::-1])
    # even sizes: padded first so the n // 2 origin stays the middle
    even = rng.random((4, 4))
    out = K.from_correlation(even)
    assert out.shape == (5, 5)
    np.testing.assert_array_equal(out, np.pad(even, ((0, 1), (0, 1)))[::-1, ::-1])


def test_pad_to_odd_keeps_ndimage_origin():
    rng = np.random.default_rng(1)
    k = rng.random((4, 6))
    padded = K.pad_to_odd(k)
    assert padded.shape == (5, 7) and padded.dtype == np.float64
    image = rng.random((30, 30))
    np.testing.assert_allclose(ndi.convolve(image, k, mode="wrap"), ndi.convolve(image, padded, mode="wrap"))
    odd = rng.random((3, 5))
    np.testing.assert_array_equal(K.pad_to_odd(odd), odd)


def test_center_kernel_moves_centre_of_mass_to_middle():
    delta = np.zeros((9, 9))
    delta[1, 6] = 1.0
    centred = K.center_kernel(delta)
    assert centred.shape == (1, 1) and centred[0, 0] == 1.0  # zero margins trimmed symmetrically

    rng = np.random.default_rng(2)
    blob = np.zeros((15, 12))
    blob[1:5, 7:11] = rng.random((4, 4))
    before = blob.copy()
    out = K.center_kernel(blob)
    np.testing.assert_array_equal(blob, before)
    assert all(n % 2 == 1 for n in out.shape)
    middle = np.array([n // 2 for n in out.shape])
    com = centroid(out)
    np.testing.assert_array_equal(np.round(com), middle)
    assert np.all(np.abs(com - middle) <= 0.5)
    assert out.sum() == pytest.approx(blob.sum())  # values kept, not interpolated
    np.testing.assert_array_equal(np.sort(out[out > 0]), np.sort(blob[blob > 0]))

    k3 = np.zeros((5, 5, 5))
    k3[0, 4, 1] = 1.0
    assert K.center_kernel(k3).shape == (1, 1, 1)
    with pytest.raises(ValueError, match="sum"):
        K.center_kernel(np.zeros((3, 3)))


def test_normalize_kernel():
    k = np.array([[1, 2], [3, 4]])
    out = K.normalize_kernel(k)
    assert out.dtype == np.float64 and out.sum() == pytest.approx(1.0)
    assert k.sum() == 10
    with pytest.raises(ValueError, match="positive sum"):
        K.normalize_kernel(np.zeros((3, 3)))


# ---------------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------------
def test_validate_kernel_returns_normalised_odd_copy():
    k = np.array([[0.0, 2.0], [1.0, 1.0]], dtype=np.float32)
    before = k.copy()
    out = K.validate_kernel(k)
    np.testing.assert_array_equal(k, before)
    assert out.dtype == np.float64 and out.shape == (3, 3)
    assert out.sum() == pytest.approx(1.0)
    assert out is not k
    tiny = np.array([[0.0, -1e-9, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    tiny_before = tiny.copy()
    cleaned = K.validate_kernel(tiny)
    assert cleaned.min() == 0.0 and cleaned[1, 1] == 1.0
    np.testing.assert_array_equal(tiny, tiny_before)
    assert K.validate_kernel(np.ones((1, 5, 5)), ndim=2).shape == (5, 5)
    assert K.validate_kernel(np.ones((3, 5, 5))).shape == (3, 5, 5)
    assert K.validate_kernel(np.ones((5, 5)), image_shape=(2, 3, 5, 5)).shape == (5, 5)
    assert K.validate_kernel(np.ones((3, 3), dtype=bool)).sum() == pytest.approx(1.0)


def _with_nan():
    k = np.ones((3, 3))
    k[1, 1] = np.nan
    return k


def _with_negative():
    k = np.ones((3, 3))
    k[0, 0] = -0.2
    return k


@pytest.mark.parametrize(
    ("kernel", "kwargs", "match"),
    [
        (np.zeros((0, 5)), {}, r"empty"),
        (np.ones(5), {}, r"must be 2D \(images\) or 3D \(volumes\), got 1D"),
        (np.ones((3, 3, 3, 3)), {}, r"got 4D"),
        (np.ones((3, 3, 3)), {"ndim": 2}, r"must be 2D, got 3D"),
        (np.ones((3, 3)), {"ndim": 3}, r"must be 3D, got 2D"),
        (_with_nan(), {}, r"NaN or infinite"),
        (np.full((3, 3), np.inf), {}, r"NaN or infinite"),
        (_with_negative(), {}, r"negative values \(minimum -0.2, 20.00% of the maximum\)"),
        (-np.ones((3, 3)), {}, r"negative values"),
        (np.zeros((3, 3)), {}, r"sums to zero"),
        (np.ones((31, 31)), {"image_shape": (20, 40)}, r"kernel \(31x31\) is larger than the image \(20x40\)"),
        (np.ones((3, 5, 5)), {"image_shape": (2, 64, 64)}, r"larger than the image \(2x64x64\)"),
        (np.ones((3, 5, 5)), {"image_shape": (64, 64)}, r"at least 3 axes"),
        (np.ones((3, 3), dtype=complex), {}, r"real numbers"),
        (np.array([["a", "b"], ["c", "d"]]), {}, r"real numbers"),
    ],
)
def test_validate_kernel_errors(kernel, kwargs, match):
    before = kernel.copy()
    with pytest.raises(ValueError, match=match):
        K.validate_kernel(kernel, **kwargs)
    np.testing.assert_array_equal(kernel, before)


# ---------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("suffix", "atol"),
    [(".npy", 1e-15), (".npz", 1e-15), (".mat", 1e-15), (".tif", 1e-8), (".tiff", 1e-8), (".png", 1e-5)],
)
def test_save_load_round_trip(tmp_path, suffix, atol):
    kernel = K.random_motion_kernel(21, seed=7)
    before = kernel.copy()
    path = K.save_kernel(tmp_path / "sub" / f"k{suffix}", kernel)
    assert path.is_file()
    np.testing.assert_array_equal(kernel, before)
    loaded = K.load_kernel(path)
    assert loaded.dtype == np.float64 and loaded.shape == (21, 21)
    np.testing.assert_allclose(loaded, kernel, atol=atol * kernel.max())


def test_save_load_3d_psf(tmp_path):
    psf = K.gaussian_psf_3d(1.0, 2.0)
    for suffix in (".tif", ".npy"):
        loaded = K.load_kernel(K.save_kernel(tmp_path / f"psf{suffix}", psf))
        np.testing.assert_allclose(loaded, psf, rtol=1e-6, atol=1e-12)


def test_load_kernel_rgb_png_and_even_size(tmp_path):
    import imageio.v3 as iio

    gray = np.zeros((4, 4), np.uint8)
    gray[1:3, 1:3] = 200
    gray[1, 1] = 100
    iio.imwrite(tmp_path / "rgb.png", np.stack([gray] * 3, axis=-1))
    k = K.load_kernel(tmp_path / "rgb.png")
    assert k.shape == (5, 5)
    np.testing.assert_allclose(k[:4, :4], gray / gray.sum())
    assert K.load_kernel(tmp_path / "rgb.png", correlation=True)[3, 3] == pytest.approx(100 / 700)


def test_load_kernel_npz_key_and_mat_variants(tmp_path):
    a, b = K.gaussian_kernel(1.0), K.disk_kernel(2.0)
    np.savez(tmp_path / "two.npz", first=a, second=b)
    np.testing.assert_allclose(K.load_kernel(tmp_path / "two.npz"), a)
    np.testing.assert_allclose(K.load_kernel(tmp_path / "two.npz", key="second"), b)
    with pytest.raises(ValueError, match="no array named 'third'"):
        K.load_kernel(tmp_path / "two.npz", key="third")

    # first numeric 2D/3D variable; scalars, strings and 1 x N vectors are skipped
    scipy.io.savemat(tmp_path / "vars.mat", {"a_name": "blur", "b_sigma": 2.0, "c_angles": np.arange(5.0), "d_k": b})
    np.testing.assert_allclose(K.load_kernel(tmp_path / "vars.mat"), b)
    np.testing.assert_allclose(K.load_kernel(tmp_path / "vars.mat", key="d_k"), b)
    with pytest.raises(ValueError, match="no variable 'zz'"):
        K.load_kernel(tmp_path / "vars.mat", key="zz")

    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = a, b
    scipy.io.savemat(tmp_path / "cell.mat", {"kernels": cell})
    np.testing.assert_allclose(K.load_kernel(tmp_path / "cell.mat"), a)
    np.testing.assert_allclose(K.load_kernel(tmp_path / "cell.mat", index=1), b)
    with pytest.raises(ValueError, match="out of range"):
        K.load_kernel(tmp_path / "cell.mat", index=5)

    scipy.io.savemat(tmp_path / "empty.mat", {"name": "nothing"})
    with pytest.raises(ValueError, match="no numeric 2D or 3D array"):
        K.load_kernel(tmp_path / "empty.mat")


def test_load_kernel_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such kernel file"):
        K.load_kernel(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"unsupported kernel format '\.txt'"):
        K.load_kernel(tmp_path / "kernel.txt")
    np.save(tmp_path / "bad.npy", -np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"bad\.npy: the kernel has negative values"):
        K.load_kernel(tmp_path / "bad.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"could not read obj\.npy"):
        K.load_kernel(tmp_path / "obj.npy")  # never unpickled
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match=r"junk\.mat"):
        K.load_kernel(tmp_path / "junk.mat")
    with pytest.raises(ValueError, match="unsupported kernel format"):
        K.save_kernel(tmp_path / "k.jpg", np.ones((3, 3)))
    with pytest.raises(ValueError, match="PNG"):
        K.save_kernel(tmp_path / "k.png", -np.ones((3, 3)))


@pytest.mark.skipif(not (DATA / "kernels").is_dir(), reason="shared data not available")
def test_shared_kernel_files():
    levin = np.load(DATA / "kernels" / "Levin09_kernels_float64_from_mat.npz")
    raw = levin["kernel1"]
    loaded = K.load_kernel(DATA / "kernels" / "Levin09_kernels_float64_from_mat.npz", key="kernel1", correlation=True)
    np.testing.assert_allclose(loaded, raw[::-1, ::-1] / raw.sum())

    cell = scipy.io.loadmat(DATA / "kernels" / "kernels_12.mat")["kernels"]
    k3 = K.load_kernel(DATA / "kernels" / "kernels_12.mat", index=3)
    assert k3.shape == (25, 25)
    np.testing.assert_allclose(k3, cell[0, 3] / cell[0, 3].astype(np.float64).sum(), rtol=1e-6)

    big = K.load_kernel(DATA / "kernels" / "k_large_2.png")
    assert big.shape == (71, 71) and big.sum() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------------
# specs
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("gaussian:2", lambda: K.gaussian_kernel(2)),
        ("gaussian:3,1.5,30", lambda: K.gaussian_kernel((3, 1.5), angle=30)),
        ("gaussian:3,1.5,angle=30,size=31", lambda: K.gaussian_kernel((3, 1.5), angle=30, size=31)),
        (" Gaussian : 1.5 ", lambda: K.gaussian_kernel(1.5)),
        ("disk:4", lambda: K.disk_kernel(4)),
        ("motion:15,30", lambda: K.motion_kernel(15, 30)),
        ("motion:15", lambda: K.motion_kernel(15)),
        ("motion:15,30,size=31", lambda: K.motion_kernel(15, 30, size=31)),
        ("shake:21,seed=3", lambda: K.random_motion_kernel(21, seed=3)),
        ("shake:15,4", lambda: K.random_motion_kernel(15, seed=4)),
        ("gaussian3d:1.5,3", lambda: K.gaussian_psf_3d(1.5, 3)),
        ("widefield3d:15,9,na=1.2", lambda: K.widefield_psf_3d(15, 9, na=1.2)),
        ("airy3d:15,9", lambda: K.widefield_psf_3d(15, 9)),
    ],
)
def test_kernel_from_spec(spec, expected):
    np.testing.assert_array_equal(K.kernel_from_spec(spec), expected())


def test_kernel_from_spec_path(tmp_path):
    k = K.disk_kernel(3)
    path = K.save_kernel(tmp_path / "my kernel.npy", k)
    np.testing.assert_allclose(K.kernel_from_spec(str(path)), k)
    with pytest.raises(FileNotFoundError):
        K.kernel_from_spec(str(tmp_path / "nope.png"))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("blob:3", "unknown kernel 'blob:3'"),
        ("gaussian", "unknown kernel"),
        ("gaussian:", "needs a sigma"),
        ("gaussian:a", "'a' is not a number"),
        ("gaussian:1,2,3,4", "at most 3 values"),
        ("disk:", "disk needs radius"),
        ("motion:15,30,size=14", "odd"),
        ("motion:15,30,speed=2", "unknown option speed"),
        ("motion:length=5,30", "before KEY=VALUE"),
        ("motion:5,length=6", "length given twice"),
        ("shake:21,seed=1.5", "whole number"),
        ("gaussian3d:1.5", "gaussian3d needs sigma_xy, sigma_z"),
        ("disk:-1", "non-negative"),
    ],
)
def test_kernel_from_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        K.kernel_from_spec(spec)


def test_spec_help_mentions_every_form():
    for word in ("gaussian:", "disk:", "motion:", "shake:", "gaussian3d:", "widefield3d:", "PATH"):
        assert word in K.KERNEL_SPEC_HELP


def test_kernels_module_does_not_import_torch():
    code = "import sys, napari_crcnet.kernels, napari_crcnet.io; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_random_kernel_spec_family():
    from napari_crcnet.kernels import KERNEL_FAMILY, kernel_from_spec, random_kernel_spec

    specs = [random_kernel_spec(np.random.default_rng(5), 21) for _ in range(2)]
    assert specs[0] == specs[1]  # reproducible from the generator state
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(150):
        spec = random_kernel_spec(rng, max_size=21)
        kernel = kernel_from_spec(spec)
        kinds.add(spec.split(":")[0])
        assert max(kernel.shape) <= 21 and all(n % 2 == 1 for n in kernel.shape)
        assert kernel.min() >= 0 and abs(kernel.sum() - 1) < 1e-9
    assert kinds == set(KERNEL_FAMILY)
    for bad in (8, 10, 21.5):
        with pytest.raises(ValueError, match="max_size"):
            random_kernel_spec(rng, bad)


# ------------------------------------------------------------------------------ audit: validation holes
@pytest.mark.parametrize(
    "spec",
    ["disk:1e9", "gaussian:1e5", "motion:1e9,0", "gaussian:2,size=5001", "gaussian3d:1e5,1", "widefield3d:2049,3",
     "shake:99999"],
)
def test_generators_refuse_absurd_sizes_before_allocating(spec):
    with pytest.raises(ValueError, match=f"{K.MAX_KERNEL_SIDE}|limited to"):
        K.kernel_from_spec(spec)


def test_the_largest_supported_size_still_works():
    assert K.gaussian_kernel(1.0, size=K.MAX_KERNEL_SIDE).shape == (K.MAX_KERNEL_SIDE,) * 2


@pytest.mark.parametrize("value", [1e308, 1e-320])
def test_a_kernel_whose_sum_overflows_or_underflows_is_just_a_scaled_kernel(value):
    k = K.validate_kernel(np.full((3, 3), value))
    np.testing.assert_allclose(k, np.full((3, 3), 1 / 9))


def test_a_photo_given_as_a_kernel_is_recognised(tmp_path):
    from napari_crcnet.io import write_image

    rng = np.random.default_rng(0)
    smooth = ndi.gaussian_filter(rng.random((200, 300)), 8)
    photo = (255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)
    write_image(tmp_path / "gray.png", photo)
    with pytest.raises(ValueError, match=r"gray\.png looks like a photo"):
        K.load_kernel(tmp_path / "gray.png")
    colour = np.stack([photo, photo[::-1], photo[:, ::-1]], axis=-1)
    write_image(tmp_path / "colour.png", colour)
    with pytest.raises(ValueError, match=r"colour\.png is a colour picture"):
        K.load_kernel(tmp_path / "colour.png")
    np.save(tmp_path / "huge.npy", np.ones((2, K.MAX_KERNEL_SIDE + 2)))
    with pytest.raises(ValueError, match="too large for a blur kernel"):
        K.load_kernel(tmp_path / "huge.npy")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        K.load_kernel(tmp_path / "folder.png")
    # Large real kernels still load: a wide defocus disk and a long streak, saved as 16-bit PNG.
    for kernel in (K.disk_kernel(40), K.motion_kernel(90, 30)):
        K.save_kernel(tmp_path / "big.png", kernel)
        np.testing.assert_allclose(K.load_kernel(tmp_path / "big.png"), kernel, atol=1e-5 * kernel.max())
