"""Tests of training/run_recipe.py: every committed recipe builds a config; a tiny recipe trains in two
resumed runs to the same weights as one, ships its model and card, and exports a run in progress."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data, io

from napari_crcnet.models.store import load_model
from napari_crcnet.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import run_recipe  # noqa: E402

TINY_RECIPE = {
    "name": "tiny", "description": "a test recipe", "kernel": "gaussian:1.2", "noise": 0.01, "channels": 1,
    "images": ["train"], "val_images": ["val/val.png"], "model": {"n_units": 2, "iu_channels": 4},
    "iterations": 6, "batch": 2, "crop": 32, "val_every": 0, "val_size": 32, "seed": 1, "amp": "off",
    "log_every": 1,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """run_recipe pointed at a temporary training/ folder holding ``recipes/tiny.json``, a temporary weights
    folder and a data root of four 64x64 camera tiles (three to train on, one held out)."""
    cam = data.camera()[::4, ::4]
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "val").mkdir()
    for i, tile in enumerate((cam[:64, :64], cam[64:, :64], cam[:64, 64:])):
        io.imsave(tmp_path / "data" / "train" / f"{i}.png", tile, check_contrast=False)
    io.imsave(tmp_path / "data" / "val" / "val.png", cam[64:, 64:], check_contrast=False)
    training = tmp_path / "training"
    (training / "recipes").mkdir(parents=True)
    (training / "recipes" / "tiny.json").write_text(json.dumps(TINY_RECIPE))
    monkeypatch.setenv("CRCNET_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(run_recipe, "TRAINING", training)
    monkeypatch.setattr(run_recipe, "WEIGHTS", tmp_path / "weights")
    return tmp_path


@pytest.mark.parametrize("path", sorted((ROOT / "training" / "recipes").glob("*.json")), ids=lambda p: p.stem)
def test_every_committed_recipe_builds_its_config(path):
    recipe = run_recipe.load_recipe(path.stem)
    config = run_recipe.recipe_config(recipe)
    assert isinstance(config, TrainConfig)
    assert recipe["name"] == path.stem
    assert config.iterations == recipe["iterations"] and config.seed == recipe["seed"]
    assert config.resume and Path(config.checkpoint).name == f"{path.stem}.ckpt.safetensors"
    if recipe["images"] is None:  # all content synthetic (the fluorescence recipe)
        assert config.images is None and recipe["degradation"] == "fluorescence"
    else:
        assert all(Path(p).is_relative_to(run_recipe.data_root()) for p in config.images)
    config.validate()


def test_a_recipe_with_init_commit_starts_from_the_model_as_it_was_then():
    """any-kernel-gray's recipe fine-tunes the model it replaced: its init is read from git at init_commit."""
    recipe = run_recipe.load_recipe("any-kernel-gray")
    config = run_recipe.recipe_config(recipe)
    assert Path(config.init).name == "any-kernel-gray.safetensors" and not Path(config.init).is_relative_to(ROOT)
    before, card = load_model(config.init, device="cpu")
    now, _ = load_model("any-kernel-gray", device="cpu")
    assert "data_step" not in card  # the previous model had none
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), now.state_dict().values()))


def test_an_unknown_init_commit_is_a_clear_error():
    with pytest.raises(ValueError, match="init_commit needs the git history"):
        run_recipe.init_at_commit("src/napari_crcnet/weights/any-kernel.safetensors", "0" * 40)


def test_an_unknown_recipe_is_refused_with_the_known_ones(capsys):
    assert run_recipe.main(["no-such-recipe"]) == 2
    assert "no recipe 'no-such-recipe'" in capsys.readouterr().err


def test_two_resumed_runs_equal_one_and_the_model_is_shipped(tiny, monkeypatch):
    straight = tiny / "straight"
    monkeypatch.setattr(run_recipe, "WEIGHTS", straight)
    assert run_recipe.main(["tiny"]) == 0
    reference, _ = load_model(straight / "tiny.safetensors", device="cpu")
    (tiny / "training" / "checkpoints" / "tiny.ckpt.safetensors").unlink()
    (tiny / "training" / "logs" / "tiny.jsonl").unlink()

    monkeypatch.setattr(run_recipe, "WEIGHTS", tiny / "weights")
    original = run_recipe.recipe_config
    monkeypatch.setattr(run_recipe, "recipe_config",  # a first run that ends halfway, as --minutes would
                        lambda recipe, **overrides: original(recipe, **{"iterations": 3, **overrides}))
    assert run_recipe.main(["tiny"]) == 0
    monkeypatch.setattr(run_recipe, "recipe_config", original)
    assert run_recipe.main(["tiny"]) == 0  # resumes at step 3
    shipped, card = load_model(tiny / "weights" / "tiny.safetensors", device="cpu")
    assert card["training"]["iterations"] == 6
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), reference.state_dict().values()))
    markdown = (tiny / "training" / "cards" / "tiny.md").read_text()
    assert "# Model card: tiny" in markdown and "gaussian:1.2" in markdown
    starts = [json.loads(line) for line in (tiny / "training" / "logs" / "tiny.jsonl").open()]
    assert [(r["step"], r["resumed"]) for r in starts if r["event"] == "start"] == [(0, False), (3, True)]


def test_export_writes_the_checkpointed_model_and_leaves_the_run_alone(tiny, monkeypatch):
    out = tiny / "exported.safetensors"
    assert run_recipe.main(["tiny", "--export", str(out)]) == 2  # no checkpoint yet: a clear error, no model
    assert not out.exists()

    original = run_recipe.recipe_config
    monkeypatch.setattr(run_recipe, "recipe_config",
                        lambda recipe, **overrides: original(recipe, **{"iterations": 4, **overrides}))
    assert run_recipe.main(["tiny"]) == 0  # "finished" at 4 of the recipe's 6: shipped
    monkeypatch.setattr(run_recipe, "recipe_config", original)
    checkpoint = tiny / "training" / "checkpoints" / "tiny.ckpt.safetensors"
    log = tiny / "training" / "logs" / "tiny.jsonl"
    before = checkpoint.read_bytes(), log.read_bytes()

    assert run_recipe.main(["tiny", "--export", str(out)]) == 0
    assert (checkpoint.read_bytes(), log.read_bytes()) == before
    exported, card = load_model(out, device="cpu")
    shipped, _ = load_model(tiny / "weights" / "tiny.safetensors", device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(exported.state_dict().values(), shipped.state_dict().values()))
    assert card["training"]["iterations"] == 4 and card["training"]["target_iterations"] == 6
    assert card["training"]["stopped_early"] is True
    assert np.isfinite(card["metrics"]["validation"]["gain_psnr"])


@pytest.mark.parametrize("path", sorted((ROOT / "training" / "checkpoints").glob("*.ckpt.json")), ids=lambda p: p.stem)
def test_every_committed_checkpoint_still_resumes_under_its_recipe(path):
    """A checkpoint carried across sessions must match its recipe's identity (kernel or family hash and
    architecture), or the next session could not resume it."""
    from napari_crcnet.models.store import kernel_sha256
    from napari_crcnet.training.config import family_sha256, resolve_kernel, run_model_config
    from napari_crcnet.training.fit import _same_architecture

    document = json.loads(path.read_text())
    config = run_recipe.recipe_config(run_recipe.load_recipe(path.name.removesuffix(".ckpt.json")))
    sha = family_sha256(config) if config.any_kernel else kernel_sha256(resolve_kernel(config.kernel))
    assert document["kernel_sha256"] == sha
    assert _same_architecture(document["model_config"], run_model_config(config))


def test_the_markdown_card_shows_the_data_step_and_where_the_model_loses():
    _, card = load_model("any-kernel-gray", device="cpu")
    text = run_recipe.card_markdown(card)
    assert "| data step | after the network" in text and "## Where it loses" in text
    assert card["limitations"] in text
    plain = {k: v for k, v in card.items() if k not in ("limitations", "data_step")}
    text = run_recipe.card_markdown(plain)
    assert "## Where it loses" not in text and "| data step |" not in text
