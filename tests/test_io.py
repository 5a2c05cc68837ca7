"""Tests of napari_crcnet.io: image read/write round trips, dtype rules and error messages."""

from __future__ import annotations

import numpy as np
import pytest

from napari_crcnet.io import read_image, write_image


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(17, 23), (17, 23, 3), (17, 23, 4)])
def test_png_uint8_round_trip_exact(tmp_path, rng, shape):
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    out = read_image(write_image(tmp_path / "a.png", image))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, image)


def test_png_uint16_kept(tmp_path, rng):
    image = rng.integers(0, 65536, size=(9, 11), dtype=np.uint16)
    out = read_image(write_image(tmp_path / "a.png", image))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, image)


def test_png_float_clipped_and_scaled(tmp_path):
    image = np.array([[-0.5, 0.0, 0.2], [0.5, 1.0, 3.0]], dtype=np.float32)
    before = image.copy()
    out = read_image(write_image(tmp_path / "f.png", image))
    np.testing.assert_array_equal(image, before)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 51], [128, 255, 255]])


def test_png_other_inputs(tmp_path):
    mask = np.eye(4, dtype=bool)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "m.png", mask)), mask * 255)
    small = np.arange(12, dtype=np.int64).reshape(3, 4)
    out = read_image(write_image(tmp_path / "i.png", small))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, small)
    single = np.full((5, 6, 1), 0.5)
    assert read_image(write_image(tmp_path / "s.png", single)).shape == (5, 6)


def test_jpeg_approximate_and_uint8(tmp_path):
    y, x = np.mgrid[0:32, 0:48]
    image = (0.5 + 0.4 * np.sin(x / 6.0) * np.cos(y / 5.0)).astype(np.float64)
    out = read_image(write_image(tmp_path / "photo.jpg", image))
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.abs(out / 255.0 - image).mean() < 0.02
    wide = np.full((8, 8), 65535, dtype=np.uint16)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "w.jpeg", wide)), 255)


@pytest.mark.parametrize("suffix", [".tif", ".tiff"])
@pytest.mark.parametrize("shape", [(19, 21), (5, 19, 21), (19, 21, 3), (2, 4, 19, 21)])
def test_tiff_float32_round_trip_exact(tmp_path, rng, suffix, shape):
    image = rng.random(shape).astype(np.float32)
    out = read_image(write_image(tmp_path / f"a{suffix}", image))
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_array_equal(out, image)


def test_tiff_dtypes(tmp_path, rng):
    as64 = rng.random((6, 7))
    out = read_image(write_image(tmp_path / "d.tif", as64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, as64, rtol=1e-7)
    u16 = rng.integers(0, 65536, size=(3, 6, 7), dtype=np.uint16)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "u.tif", u16)), u16)
    rgb8 = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "rgb.tif", rgb8)), rgb8)
    mask = rng.random((6, 7)) > 0.5
    out = read_image(write_image(tmp_path / "b.tif", mask))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, mask)


def test_npy_and_npz(tmp_path, rng):
    image = rng.random((4, 5, 6))
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "a.npy", image)), image)
    np.savez(tmp_path / "b.npz", first=image, second=image[0])
    np.testing.assert_array_equal(read_image(tmp_path / "b.npz"), image)
    np.testing.assert_array_equal(read_image(tmp_path / "b.npz", key="second"), image[0])
    with pytest.raises(ValueError, match="no array named 'third'"):
        read_image(tmp_path / "b.npz", key="third")


def test_write_creates_parent_dirs(tmp_path):
    path = tmp_path / "deep" / "er" / "x.png"
    assert write_image(path, np.zeros((3, 3))) == path
    assert path.is_file()


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_image(tmp_path / "missing.tif")
    with pytest.raises(ValueError, match=r"unsupported image format '\.gif'"):
        read_image(tmp_path / "a.gif")
    with pytest.raises(ValueError, match="no extension"):
        read_image(tmp_path / "README")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG this is not really a png")
    with pytest.raises(ValueError, match=r"could not read broken\.png"):
        read_image(tmp_path / "broken.png")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match=r"could not read broken\.tif"):
        read_image(tmp_path / "broken.tif")


def test_never_unpickles(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"could not read obj\.npy"):
        read_image(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"could not read obj\.npz"):
        read_image(tmp_path / "obj.npz")


@pytest.mark.parametrize(
    ("name", "array", "match"),
    [
        ("a.gif", np.zeros((3, 3)), r"unsupported image format '\.gif'"),
        ("a.png", np.zeros((3, 4, 5)), "save stacks and volumes as .tif"),
        ("a.jpg", np.zeros((3, 4, 4)), "colour image"),
        ("a.png", np.full((3, 3), np.nan), "NaN"),
        ("a.png", np.full((3, 3), 70000), "do not fit"),
        ("a.png", np.full((3, 3), -1), "do not fit"),
        ("a.tif", np.zeros((3, 3), dtype=complex), "unsupported dtype"),
        ("a.tif", np.zeros((0, 3)), "empty"),
    ],
)
def test_write_errors(tmp_path, name, array, match):
    before = array.copy()
    with pytest.raises(ValueError, match=match):
        write_image(tmp_path / name, array)
    np.testing.assert_array_equal(array, before)
    assert not (tmp_path / name).exists()
