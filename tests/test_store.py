"""Model files: safetensors + JSON card, atomic saves, no unpickling, kernel checks, lookup by name."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from napari_crcnet.models import CRCNet, CRCNetConfig, kernel_sha256, list_models, load_model, save_model

torch.set_num_threads(1)


def gaussian(sigma: float, size: int = 9) -> np.ndarray:
    r = np.arange(size) - size // 2
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


def small_model(c: int = 3, seed: int = 0) -> CRCNet:
    torch.manual_seed(seed)
    return CRCNet(CRCNetConfig(in_channels=c, n_units=2, iu_channels=4))


@pytest.fixture(autouse=True)
def isolated_user_dir(tmp_path, monkeypatch):
    folder = tmp_path / "user-models"
    monkeypatch.setenv("NAPARI_CRCNET_MODELS", str(folder))
    return folder


def test_round_trip_weights_and_card(tmp_path):
    model = small_model()
    card = {
        "name": "g15",
        "kernel": gaussian(1.5),
        "noise": 0.01,
        "mmse_sigma": 3e-3,
        "training": {"iterations": 10},
        "metrics": {"psnr": 30.5},
    }
    written = save_model(tmp_path / "g15", model, card)
    assert (tmp_path / "g15.safetensors").exists() and (tmp_path / "g15.json").exists()
    assert written["kernel_sha256"] == kernel_sha256(gaussian(1.5))
    assert written["config"] == model.config.to_dict()
    loaded, loaded_card = load_model(tmp_path / "g15.safetensors", device="cpu")
    assert loaded.config == model.config
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    assert {k: v for k, v in loaded_card.items() if k != "path"} == written
    assert json.loads((tmp_path / "g15.json").read_text()) == written
    assert not loaded.training
    # Same path without suffix, or the card's path, load the same model.
    assert load_model(tmp_path / "g15", device="cpu")[1]["name"] == "g15"
    assert load_model(tmp_path / "g15.json", device="cpu")[1]["name"] == "g15"


def test_card_copy_in_metadata_used_when_json_missing(tmp_path):
    save_model(tmp_path / "m.safetensors", small_model(), {"kernel": gaussian(1.0)})
    os.remove(tmp_path / "m.json")
    _, card = load_model(tmp_path / "m.safetensors", device="cpu")
    assert card["kernel_sha256"] == kernel_sha256(gaussian(1.0))


def test_atomic_save_keeps_old_files_when_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_model(path, small_model(seed=1), {"description": "old"})
    before_w, before_c = path.read_bytes(), path.with_suffix(".json").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        save_model(path, small_model(seed=2), {"description": "new"})
    monkeypatch.undo()
    assert path.read_bytes() == before_w and path.with_suffix(".json").read_bytes() == before_c
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temporaries left
    assert load_model(path, device="cpu")[1]["description"] == "old"


def test_pickles_are_refused_and_never_unpickled(tmp_path, monkeypatch):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    def no_unpickling(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    fake = tmp_path / "evil.safetensors"
    fake.write_bytes(pickle.dumps(Boom()))
    fake.with_suffix(".json").write_text(json.dumps({"name": "evil", "config": CRCNetConfig().to_dict()}))
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_model(fake, device="cpu")
    # A torch.save zip archive under a safetensors name is refused too.
    torch.save(small_model().state_dict(), tmp_path / "zip.safetensors")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_model(tmp_path / "zip.safetensors", device="cpu")
    # Pickle-based suffixes are refused by name, before anything is read.
    (tmp_path / "model.pt").write_bytes(b"whatever")
    with pytest.raises(ValueError, match="pickle"):
        load_model(tmp_path / "model.pt", device="cpu")
    with pytest.raises(ValueError, match="pickle"):
        save_model(tmp_path / "model.pth", small_model())


def test_mismatched_kernel_refused_unless_forced(tmp_path):
    save_model(tmp_path / "g", small_model(), {"kernel": gaussian(1.5)})
    with pytest.raises(ValueError) as info:
        load_model(tmp_path / "g", kernel=gaussian(2.0, size=11), device="cpu")
    message = str(info.value)
    assert "\n" not in message and "9x9" in message and "11x11" in message and "force=True" in message
    assert kernel_sha256(gaussian(1.5))[:12] in message and kernel_sha256(gaussian(2.0, 11))[:12] in message
    model, _ = load_model(tmp_path / "g", kernel=gaussian(2.0, size=11), force=True, device="cpu")
    assert isinstance(model, CRCNet)
    # The same kernel scaled, zero-padded, in float32 or with tiny round-off is accepted.
    k = gaussian(1.5)
    for same in (3 * k, np.pad(k, 2), k.astype(np.float32), k + 1e-9 * np.random.default_rng(0).random(k.shape)):
        load_model(tmp_path / "g", kernel=same, device="cpu")


def test_kernel_hash_properties():
    k = gaussian(1.2)
    assert kernel_sha256(k) == kernel_sha256(k * 7) == kernel_sha256(np.pad(k, 3))
    assert kernel_sha256(k) == kernel_sha256(k.tolist())
    assert kernel_sha256(k) != kernel_sha256(gaussian(1.3))
    assert kernel_sha256(k) != kernel_sha256(np.pad(k, ((0, 2), (2, 0))))  # shifted: a different kernel
    quantised = np.round(k / k.max() * 255)  # what an 8-bit PNG stores
    assert kernel_sha256(k) != kernel_sha256(quantised)
    with pytest.raises(ValueError):
        kernel_sha256(np.zeros((3, 3)))


def test_channel_check(tmp_path):
    save_model(tmp_path / "rgb", small_model(3))
    save_model(tmp_path / "gray", small_model(1))
    with pytest.raises(ValueError, match="takes 3 channels, the image has 2"):
        load_model(tmp_path / "rgb", channels=2, device="cpu")
    load_model(tmp_path / "rgb", channels=1, device="cpu")  # a gray image runs as three equal channels
    load_model(tmp_path / "gray", channels=3, device="cpu")  # gray runs channel by channel


def test_lookup_by_name_and_listing(tmp_path, isolated_user_dir):
    save_model(isolated_user_dir / "mine", small_model(), {"kernel": gaussian(1.0), "description": "user"})
    extra = tmp_path / "extra"
    save_model(extra / "other", small_model(1), {"description": "extra"})
    _, card = load_model("mine", device="cpu")
    assert card["description"] == "user"
    assert load_model("other", extra_dirs=[extra], device="cpu")[1]["description"] == "extra"
    with pytest.raises(FileNotFoundError, match="mine"):
        load_model("nonexistent", device="cpu")
    cards = {c["name"]: c for c in list_models(extra_dirs=[extra])}
    assert cards["mine"]["source"] == "user" and cards["mine"]["kernel_shape"] == [9, 9]
    assert cards["other"]["source"] == "extra" and cards["other"]["kernel_shape"] is None
    assert cards["mine"]["path"].endswith("mine.safetensors")
    # A broken file is skipped with a warning, not an exception.
    (isolated_user_dir / "broken.safetensors").write_bytes(b"junk")
    with pytest.warns(UserWarning, match="broken"):
        names = [c["name"] for c in list_models()]
    assert "mine" in names and "broken" not in names


def test_shipped_models_load():
    for card in list_models():
        if card["source"] == "shipped":
            model, loaded = load_model(card["path"], device="cpu")
            assert loaded["name"] == card["name"]
            assert model.config == CRCNetConfig.from_dict(card["config"])


@pytest.mark.parametrize(("channels", "kernel_spec"), [(1, "motion:15,30"), (3, "shake:21,seed=1234")])
def test_the_shipped_default_beats_mmse_with_a_kernel_it_never_saw(isolated_user_dir, channels, kernel_spec):
    """The shipped any-kernel models (gray for gray images): no training for the kernel, and still well above
    the best of several MMSE sigmas on a photo crop (1 % noise, blur away from the borders)."""
    from scipy import ndimage
    from skimage import data

    from napari_crcnet import crcnet, kernel_from_spec, mmse
    from napari_crcnet.metrics import psnr
    from napari_crcnet.models.store import DEFAULT_GRAY_MODEL, DEFAULT_MODEL, default_model

    assert default_model(channels) == (DEFAULT_GRAY_MODEL if channels == 1 else DEFAULT_MODEL)
    _, card = load_model(default_model(channels), device="cpu")
    low, high = card["noise"]  # trained at least over 0.5-5 % noise
    assert card["kernel_family"]["max_kernel"] == 31 and low <= 0.005 and high >= 0.05
    kernel = kernel_from_spec(kernel_spec)
    image = (data.camera()[None] if channels == 1 else np.moveaxis(data.astronaut(), -1, 0)) / 255.0
    blurred = np.stack([ndimage.convolve(plane, kernel, mode="reflect") for plane in image])
    clear, blurred = image[:, 100:228, 180:308], blurred[:, 100:228, 180:308]
    blurred = blurred + 0.01 * np.random.default_rng(0).standard_normal(blurred.shape)
    axis = None if channels == 1 else 0
    clear, blurred = (clear[0], blurred[0]) if channels == 1 else (clear, blurred)
    with torch.no_grad():
        restored = crcnet(blurred, kernel=kernel, noise=0.01, channel_axis=axis, device="cpu")
    best_mmse = max(psnr(clear, np.clip(mmse(blurred, kernel, sigma, channel_axis=axis), 0, 1), channel_axis=axis)
                    for sigma in (0.003, 0.01, 0.03, 0.1))
    assert psnr(clear, np.clip(restored, 0, 1), channel_axis=axis) > best_mmse + 0.5


def test_weights_not_matching_config_are_refused(tmp_path):
    save_model(tmp_path / "m", small_model())
    card = json.loads((tmp_path / "m.json").read_text())
    card["config"]["n_units"] = 3
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="do not fit"):
        load_model(tmp_path / "m", device="cpu")


def test_saved_card_holds_no_machine_specific_path(tmp_path):
    from napari_crcnet.models.crcnet import CRCNet, CRCNetConfig
    from napari_crcnet.models.store import load_model, save_model

    model = CRCNet(CRCNetConfig(in_channels=1, n_units=2))
    save_model(tmp_path / "m.safetensors", model, {"kernel": np.ones((3, 3)) / 9})
    _, card = load_model(tmp_path / "m.safetensors", device="cpu")
    assert card["path"]  # the loader tells the caller where the file is ...
    save_model(tmp_path / "copy.safetensors", model, card)  # ... but a re-saved card does not keep it
    written = json.loads((tmp_path / "copy.json").read_text())
    assert not {"path", "source", "kernel_shape"} & set(written)


def test_kernel_label_names_the_kernel_or_the_family():
    from napari_crcnet.models.store import kernel_label

    assert kernel_label({"kernel": np.ones((5, 7)).tolist()}) == "5x7"
    assert kernel_label({"kernel_shape": [17, 17]}) == "17x17"
    assert kernel_label({"kernel": None, "kernel_family": {"max_kernel": 31}}) == "any up to 31x31"
    assert kernel_label({}) == "?"


# ------------------------------------------------------------------------------ audit: validation holes
def _damaged_copy(tmp_path, folder, name="damaged"):
    """A model file whose header length and JSON start look right but whose tensor data is cut off."""
    save_model(tmp_path / "whole", small_model())
    data = (tmp_path / "whole.safetensors").read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.safetensors").write_bytes(data[: len(data) // 2])  # no .json beside: the header is read
    return folder / f"{name}.safetensors"


def test_a_damaged_model_file_in_the_user_folder_is_skipped_with_one_warning(tmp_path, isolated_user_dir):
    save_model(isolated_user_dir / "good", small_model())
    _damaged_copy(tmp_path, isolated_user_dir)
    with pytest.warns(UserWarning, match="skipping model .*damaged") as record:
        names = [c["name"] for c in list_models()]
    assert "good" in names and "damaged" not in names
    assert len(record) == 1 and len(str(record[0].message).splitlines()) == 1
    with pytest.raises(ValueError, match=r"damaged\.safetensors"):
        load_model("damaged", device="cpu")


def test_training_checkpoints_are_neither_listed_nor_warned_about(isolated_user_dir):
    import warnings

    save_model(isolated_user_dir / "mine", small_model())
    # What crcnet train leaves beside a model: a checkpoint and its JSON document (no 'config': not a card).
    from safetensors.torch import save_file

    document = json.dumps({"step": 3})
    save_file({"model.w": torch.zeros(2)}, str(isolated_user_dir / "mine.ckpt.safetensors"),
              metadata={"napari_crcnet_checkpoint": document})
    (isolated_user_dir / "mine.ckpt.json").write_text(document)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        names = [c["name"] for c in list_models()]
    assert names.count("mine") == 1 and not any("ckpt" in n for n in names)


def test_non_finite_weights_are_refused_at_load(tmp_path):
    model = small_model()
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    save_model(tmp_path / "nan", model)
    with pytest.raises(ValueError, match="NaN or infinite weights"):
        load_model(tmp_path / "nan", device="cpu")


@pytest.mark.parametrize("kernel", ["/etc/passwd.npy", "gaussian:2", {"path": "k.npy"}, [["a", "b"]], [1, 2, 3]])
def test_a_card_kernel_is_inline_numbers_only(tmp_path, monkeypatch, kernel):
    from napari_crcnet import kernels

    save_model(tmp_path / "m", small_model(), {"kernel": gaussian(1.0)})
    card = json.loads((tmp_path / "m.json").read_text())
    card["kernel"] = kernel
    (tmp_path / "m.json").write_text(json.dumps(card))
    monkeypatch.setattr(kernels, "load_kernel", lambda *a, **k: pytest.fail("a card made the loader read a file"))
    with pytest.raises(ValueError, match="kernel"):
        load_model(tmp_path / "m", device="cpu")
    with pytest.raises(ValueError, match="kernel"):
        load_model(tmp_path / "m", kernel=gaussian(1.0), device="cpu")


@pytest.mark.parametrize("n_units", [14, 40])
def test_the_card_config_is_checked_against_the_tensors_before_anything_is_built(tmp_path, monkeypatch, n_units):
    from napari_crcnet.models import store

    save_model(tmp_path / "m", small_model())
    card = json.loads((tmp_path / "m.json").read_text())
    card["config"]["n_units"] = n_units  # 14 units of doubling widths would take gigabytes
    (tmp_path / "m.json").write_text(json.dumps(card))
    devices = []
    real = store.CRCNet

    def spy(config):
        devices.append(torch.empty(0).device.type)  # the default device where it is built
        return real(config)

    monkeypatch.setattr(store, "CRCNet", spy)
    with pytest.raises(ValueError, match=r"do not fit|cannot be built"):
        load_model(tmp_path / "m", device="cpu")
    assert set(devices) <= {"meta"}  # laid out without memory, never allocated


@pytest.mark.parametrize("family", ["any", ["max_kernel", 31], 31, {"max_kernel": "31"}])
def test_a_kernel_family_of_the_wrong_type_is_a_value_error(tmp_path, family):
    from napari_crcnet.models.store import check_kernel

    with pytest.raises(ValueError, match="kernel_family"):
        check_kernel({"name": "m", "kernel_family": family}, gaussian(1.0))
    save_model(tmp_path / "m", small_model())
    card = json.loads((tmp_path / "m.json").read_text())
    card["kernel_family"] = family
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="kernel_family"):
        load_model(tmp_path / "m", kernel=gaussian(1.0), device="cpu")


def test_temporary_files_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    from napari_crcnet.models.store import STALE_TMP_S

    stale = tmp_path / ".m.safetensors.k1ll3d.tmp"  # what a SIGKILL during atomic_write leaves
    fresh = tmp_path / ".m.safetensors.wr1t1ng.tmp"  # a write still running elsewhere
    other = tmp_path / ".other.safetensors.k1ll3d.tmp"  # another target's: not ours to judge
    for path in (stale, fresh, other):
        path.write_bytes(b"x" * 1000)
    old = os.stat(stale).st_mtime - 2 * STALE_TMP_S
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save_model(tmp_path / "m", small_model())
    assert not stale.exists() and fresh.exists() and other.exists()
    assert (tmp_path / "m.safetensors").exists()
