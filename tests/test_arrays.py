"""Layout and dtype plumbing: channels, batches, integer scaling, devices."""

import numpy as np
import pytest

from napari_crcnet._arrays import Layout, as_float_image, prepare, resolve_device


@pytest.mark.parametrize(
    ("shape", "channel_axis", "ndim", "batch", "channels", "spatial"),
    [
        ((20, 30), None, 2, 1, 1, (20, 30)),
        ((20, 30, 3), -1, 2, 1, 3, (20, 30)),
        ((5, 20, 30, 3), -1, 2, 5, 3, (20, 30)),
        ((3, 20, 30), 0, 2, 1, 3, (20, 30)),
        ((4, 6, 20, 30), None, 2, 24, 1, (20, 30)),
        ((4, 6, 20, 30), None, 3, 4, 1, (6, 20, 30)),
        ((2, 4, 6, 20, 30), 1, 3, 2, 4, (6, 20, 30)),
    ],
)
def test_layout_round_trip(shape, channel_axis, ndim, batch, channels, spatial):
    image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    layout = Layout.of(shape, channel_axis, ndim)
    stacked = layout.to_batch(image)
    assert stacked.shape == (batch, channels, *spatial)
    np.testing.assert_array_equal(layout.from_batch(stacked), image)


def test_rgb_channels_land_on_the_channel_axis():
    image = np.zeros((4, 5, 3))
    image[..., 1] = 1
    batch, _ = prepare(image, channel_axis=-1)
    assert batch[0, 1].min() == 1 and batch[0, 0].max() == 0


def test_layout_errors():
    with pytest.raises(ValueError, match="spatial axes"):
        Layout.of((20,), None, 2)
    with pytest.raises(ValueError, match="out of range"):
        Layout.of((20, 30), 4, 2)
    with pytest.raises(ValueError, match="between the spatial axes"):
        Layout.of((20, 3, 30), 1, 2)


def test_integer_scaling_and_no_mutation():
    u8 = np.array([[0, 128, 255]], dtype=np.uint8)
    u16 = np.array([[0, 65535]], dtype=np.uint16)
    assert as_float_image(u8).dtype == np.float32
    np.testing.assert_allclose(as_float_image(u8), [[0, 128 / 255, 1]])
    np.testing.assert_allclose(as_float_image(u16), [[0, 1]])
    f = np.ones((2, 2))
    out = as_float_image(f)
    out += 1
    assert f.max() == 1


@pytest.mark.parametrize(
    "bad",
    [np.zeros((0, 3)), np.array([[np.nan, 1.0]]), np.array([[1.0, -np.inf]], np.float32), np.ones((2, 2), complex)],
)
def test_bad_images(bad):
    with pytest.raises(ValueError):
        as_float_image(bad)


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError):
        resolve_device("nonsense-device")
