"""``crcnet train`` around the loop: where the model goes (the user models folder for a bare name), -o checked
first, no finished training replaced without --overwrite, what --resume does, and what validation is on."""

from __future__ import annotations

import pytest
from skimage import data

from napari_crcnet.cli import main
from napari_crcnet.training.cli import train_main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ["--kernel", "gaussian:1", "--iterations", "2", "--batch", "2", "--crop", "32", "--val-every", "0",
        "--threads", "1", "--device", "cpu", "--amp", "off"]


@pytest.fixture
def images(tmp_path):
    """Four 64x64 gray tiles: too few to hold any out."""
    import imageio.v3 as iio

    folder = tmp_path / "train"
    folder.mkdir()
    cam = data.camera()[::4, ::4]
    for i, tile in enumerate((cam[:64, :64], cam[64:, :64], cam[:64, 64:], cam[64:, 64:])):
        iio.imwrite(folder / f"img{i}.png", tile)
    return str(folder)


@pytest.fixture
def models_folder(tmp_path, monkeypatch):
    folder = tmp_path / "user-models"
    monkeypatch.setenv("NAPARI_CRCNET_MODELS", str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


def test_a_bare_name_is_saved_where_models_and_the_widget_look(tmp_path, images, models_folder, capsys):
    import warnings

    from napari_crcnet.models.store import list_models, load_model

    assert train_main([*FAST, "--images", images, "-o", "my-model.safetensors"]) == 0
    err = capsys.readouterr().err
    assert (models_folder / "my-model.safetensors").exists() and not (tmp_path / "my-model.safetensors").exists()
    assert (models_folder / "my-model.ckpt.safetensors").exists()
    assert "your models folder" in err and "--model my-model " in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checkpoint beside it is no model: no warning about it
        names = [card["name"] for card in list_models()]  # what the widget's list shows
    assert names.count("my-model") == 1 and not any("ckpt" in name for name in names)
    assert main(["models"]) == 0
    captured = capsys.readouterr()
    assert "my-model:" in captured.out and "ckpt" not in captured.out and captured.err == ""
    assert load_model("my-model", device="cpu")[1]["name"] == "my-model"
    # A path with a folder (./NAME too) is used as given.
    assert train_main([*FAST, "--images", images, "-o", "./here.safetensors"]) == 0
    assert (tmp_path / "here.safetensors").exists() and not (models_folder / "here.safetensors").exists()


def test_a_finished_training_is_not_replaced_without_overwrite(tmp_path, images, models_folder, capsys):
    out = tmp_path / "m.safetensors"
    assert train_main([*FAST, "--images", images, "-o", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert train_main([*FAST, "--images", images, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "exists" in err and "--overwrite" in err and "--resume" in err
    assert out.read_bytes() == before
    # An unfinished training (a checkpoint, no model yet) is not started over silently either.
    out.unlink()
    assert train_main([*FAST, "--images", images, "-o", str(out)]) == 2
    assert "checkpoint of an unfinished training" in capsys.readouterr().err
    assert train_main([*FAST, "--images", images, "--resume", "--overwrite", "-o", str(out)]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert train_main([*FAST, "--seed", "1", "--images", images, "--overwrite", "-o", str(out)]) == 0
    assert "--overwrite: training from scratch" in capsys.readouterr().err
    assert out.exists() and out.read_bytes() != before


@pytest.mark.parametrize("where", ["file", "directory", "checkpoint-name"])
def test_output_is_checked_before_any_work(tmp_path, models_folder, capsys, where):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    output = {"file": str(tmp_path / "a-file" / "m"), "directory": str(tmp_path / "a-folder"),
              "checkpoint-name": "m.ckpt"}[where]
    # The images do not exist: had -o been checked after them, the message would be about the images.
    assert train_main([*FAST, "--images", str(tmp_path / "no-images"), "-o", output]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "-o" in err and "no-images" not in err


def test_resuming_with_other_iterations_says_what_it_does(tmp_path, images, models_folder, capsys):
    from napari_crcnet.models.store import load_model

    out = str(tmp_path / "r.safetensors")
    assert train_main([*FAST, "--images", images, "-o", out]) == 0
    capsys.readouterr()
    assert train_main([*FAST, "--iterations", "3", "--batch", "3", "--images", images, "--resume", "-o", out]) == 0
    err = capsys.readouterr().err
    assert "continuing from step 2" in err and "--iterations 3 (the checkpoint was started for 2)" in err
    assert "batch 2 -> 3" in err
    assert load_model(out, device="cpu")[1]["training"]["iterations"] == 3
    assert train_main([*FAST, "--iterations", "1", "--images", images, "--resume", "-o", out]) == 0
    assert "already at step 3 >= --iterations 1: no training steps" in capsys.readouterr().err
    assert train_main([*FAST, "--images", images, "--resume", "-o", str(tmp_path / "new.safetensors")]) == 0
    assert "no checkpoint at" in capsys.readouterr().err


def test_validation_on_training_images_is_said_at_the_start(tmp_path, images, models_folder, capsys):
    assert train_main([*FAST, "--images", images, "-o", str(tmp_path / "v.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "validation on the training images" in err
    assert err.index("validation on the training images") < err.index("done:")
    assert err.index("validation on the training images") < err.index("2/2")
