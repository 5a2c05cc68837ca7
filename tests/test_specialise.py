"""Specialising the default model to one kernel: saved where it is found, used automatically, stoppable."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from skimage import data

import napari_crcnet as nc
from napari_crcnet.specialisation import find_specialised, offline_images, specialised_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images():
    cam = data.camera()
    return [cam[:96, :96], cam[96:192, :96], cam[:96, 96:192], cam[200:296, 200:296]]


def test_a_specialised_model_is_saved_found_and_used_for_its_kernel_only(any_kernel_gray_model):
    kernel = nc.random_motion_kernel(9, seed=2)
    result = nc.specialise(kernel, noise=0.02, channels=1, minutes=0.03, images=_images(), device="cpu")
    path = specialised_path(kernel, 1)
    assert result.model_path == path and path.exists() and find_specialised(kernel, 1) == path
    assert result.steps >= 1 and result.card["specialised"]["base"] == "any-kernel-gray"
    assert find_specialised(kernel, 3) is None and find_specialised(nc.gaussian_kernel(1.0), 1) is None
    assert str(path.stem) in {card["name"] for card in nc.list_models()}  # listed like any user model
    blurred = nc.blur(data.camera()[:48, :56] / 255.0, kernel, noise=0.02, seed=0)
    automatic = nc.crcnet(blurred, kernel=kernel, device="cpu", noise=0.02)
    np.testing.assert_allclose(automatic, nc.crcnet(blurred, path, kernel=kernel, device="cpu", noise=0.02))
    default = nc.crcnet(blurred, "any-kernel-gray", kernel=kernel, device="cpu", noise=0.02)
    assert not np.allclose(automatic, default)  # the specialised weights, not the default's


def test_stop_keeps_the_model_so_far_and_bad_options_are_refused(any_kernel_gray_model):
    stop = threading.Event()
    stop.set()
    kernel = nc.gaussian_kernel(1.3)
    result = nc.specialise(kernel, channels=1, minutes=5, images=_images(), stop_event=stop, device="cpu")
    assert result.stopped and result.steps == 0 and specialised_path(kernel, 1).exists()
    for minutes in (0, -1, 1e9, "3"):
        with pytest.raises(ValueError, match="minutes"):
            nc.specialise(kernel, channels=1, minutes=minutes, images=_images())


def test_offline_images_need_no_download():
    photos = offline_images()
    assert len(photos) >= 10 and all(min(p.shape[:2]) >= 170 for p in photos)
    cells = offline_images(fluorescence=True, count=3)
    assert len(cells) == 3 and cells[0].shape == (256, 256) and 0 <= cells[0].min() and cells[0].max() <= 1


def test_the_cli_specialises_and_deblur_then_uses_the_model_for_that_kernel(any_kernel_gray_model, tmp_path, capsys):
    from napari_crcnet.cli import main
    from napari_crcnet.io import read_image, write_image

    folder = tmp_path / "clear"
    folder.mkdir()
    for i, image in enumerate(_images()):
        write_image(folder / f"{i}.png", image)
    assert main(["specialise", "--kernel", "gaussian:1.4", "--minutes", "0.02", "--channels", "gray",
                 "--images", str(folder), "--device", "cpu"]) == 0
    path = specialised_path(nc.gaussian_kernel(1.4), 1)
    assert path.exists() and str(path) in capsys.readouterr().out
    blurred = tmp_path / "b.tif"
    write_image(blurred, nc.blur(data.camera()[:40, :48] / 255.0, nc.gaussian_kernel(1.4), noise=0.01, seed=0))
    for model in ([], ["--model", str(path)]):
        assert main(["deblur", str(blurred), "--method", "crcnet", "--kernel", "gaussian:1.4", "--noise", "0.01",
                     "--device", "cpu", *model, "-o", str(tmp_path / f"out{len(model)}.tif")]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "out0.tif"), read_image(tmp_path / "out2.tif"))
    assert main(["specialise", "--kernel", "gaussian:1.4", "--noise", "5"]) == 2
