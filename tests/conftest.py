"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (tiny training runs: deterministic and no slower), then restored."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def any_kernel_model(tmp_path, monkeypatch):
    """A tiny untrained stand-in for the default model: ``any-kernel`` in a temporary user models folder
    (an RGB family model fed the MMSE estimate and a noise map, lifted to 3 features, like the shipped one).
    The shipped models are hidden, so that only the stand-ins are defaults. Returns its path."""
    import torch

    from napari_crcnet.models import CRCNet, CRCNetConfig, save_model, store
    from napari_crcnet.models.store import DEFAULT_MODEL

    folder = tmp_path / "default-models"
    monkeypatch.setenv("NAPARI_CRCNET_MODELS", str(folder))
    monkeypatch.setattr(store, "shipped_dir", lambda: tmp_path / "no-shipped-models")
    torch.manual_seed(0)
    net = CRCNet(CRCNetConfig(in_channels=3, n_units=2, iu_channels=4, input="mmse", extra_inputs=("noise",),
                              features=3))
    card = {"name": DEFAULT_MODEL, "kernel": None, "mmse_sigma": "suggest", "noise": [0.005, 0.05],
            "kernel_family": {"max_kernel": 31}}
    save_model(folder / f"{DEFAULT_MODEL}.safetensors", net, card)
    return folder / f"{DEFAULT_MODEL}.safetensors"


@pytest.fixture
def any_kernel_gray_model(any_kernel_model):
    """A tiny untrained stand-in for the gray default ``any-kernel-gray`` (1 channel), next to
    ``any_kernel_model`` in the temporary user models folder. Returns its path."""
    import torch

    from napari_crcnet.models import CRCNet, CRCNetConfig, save_model
    from napari_crcnet.models.store import DEFAULT_GRAY_MODEL

    torch.manual_seed(1)
    net = CRCNet(CRCNetConfig(in_channels=1, n_units=2, iu_channels=4, input="mmse", extra_inputs=("noise",),
                              features=3))
    card = {"name": DEFAULT_GRAY_MODEL, "kernel": None, "mmse_sigma": "suggest", "noise": [0.005, 0.05],
            "kernel_family": {"max_kernel": 31}}
    path = any_kernel_model.with_name(f"{DEFAULT_GRAY_MODEL}.safetensors")
    save_model(path, net, card)
    return path


@pytest.fixture
def notes(monkeypatch):
    """Record napari notifications instead of showing them: ``{"error": [...], "info": [...], "warning": [...]}``
    (the widget tests)."""
    from napari.utils import notifications

    seen: dict[str, list[str]] = {"error": [], "info": [], "warning": []}
    for kind in seen:
        monkeypatch.setattr(notifications, f"show_{kind}", lambda message, _k=kind: seen[_k].append(str(message)))
    return seen
