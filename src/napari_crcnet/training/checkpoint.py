"""Training checkpoints: one safetensors file (model weights, Adam moments, torch RNG states) whose metadata
holds a JSON document (step, NumPy generator state, model configuration, mmse_sigma, elapsed time,
validation history), and a readable ``.json`` copy beside it. Both are written atomically (temporary file in
the same folder, then ``os.replace``): a crash while writing leaves the previous checkpoint. Nothing is
pickled."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import torch

from ..models.store import atomic_write
from .data import PairSynthesizer

CHECKPOINT_FORMAT = 1
_META_KEY = "napari_crcnet_checkpoint"


def checkpoint_json_path(path: Any) -> Path:
    """The readable JSON copy written beside a checkpoint (``x.ckpt.safetensors`` -> ``x.ckpt.json``)."""
    path = Path(path)
    return path.with_suffix(".json") if path.suffix == ".safetensors" else path.with_name(path.name + ".json")


def _write_tensors(tensors: dict[str, torch.Tensor], tmp: str, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, tmp, metadata=metadata)


def save_checkpoint(
    path: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    synthesizer: PairSynthesizer,
    meta: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically (see the module docstring); ``meta`` must be JSON-able."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        tensors[f"model.{key}"] = value.detach().cpu().contiguous().clone()
    state = optimizer.state_dict()
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous().clone()
    rng = synthesizer.state_dict()
    tensors["rng.noise"] = rng["torch"]
    tensors["rng.global"] = torch.get_rng_state()
    document = dict(meta)
    document.update(
        format=CHECKPOINT_FORMAT,
        numpy_rng=rng["numpy"],
        param_groups=state["param_groups"],
        saved=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    text = json.dumps(document, allow_nan=True)
    atomic_write(path, lambda tmp: _write_tensors(tensors, tmp, {_META_KEY: text}))

    def write_json(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, allow_nan=True)

    atomic_write(checkpoint_json_path(path), write_json)
    return path


def load_checkpoint(path: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint: ``(tensors, metadata document)``. Never unpickles. ValueError if unreadable."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:
        raise ValueError(f"{path}: not a readable training checkpoint ({error})") from error
    if _META_KEY not in metadata:
        raise ValueError(f"{path}: a safetensors file, but not a napari-crcnet training checkpoint")
    return tensors, json.loads(metadata[_META_KEY])


def restore_checkpoint(
    tensors: dict[str, torch.Tensor],
    document: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    synthesizer: PairSynthesizer,
) -> None:
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=True)
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    groups = []
    for group in document["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    optimizer.load_state_dict({"state": slots, "param_groups": groups})
    synthesizer.load_state_dict({"numpy": document["numpy_rng"], "torch": tensors["rng.noise"]})
    torch.set_rng_state(tensors["rng.global"])


