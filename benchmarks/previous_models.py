"""Install earlier shipped models in the user model folder, so the benchmarks can compare them by name.

In session 9 ``any-kernel-gray`` and ``any-psf-fluorescence`` were replaced by their fine-tunes with the data
step, and ``any-kernel`` got the data step on its card (same weights); the earlier models are in the git
history (commits 54206a3 and f164577). This script reads them from there (``training/run_recipe.py``'s
:func:`init_at_commit`) and saves them as ``any-kernel-v1``, ``any-kernel-gray-v1`` and
``any-psf-fluorescence-v1`` in the user model folder (``napari_crcnet.models.store.user_dir()``), where
``crcnet()``, the CLI, the widget and every benchmark find them by name:

    python benchmarks/previous_models.py
    python benchmarks/real_data.py --model any-kernel-gray --model any-kernel-gray-v1
"""

from __future__ import annotations

import sys

from _common import ROOT

sys.path.insert(0, str(ROOT / "training"))
from run_recipe import init_at_commit

#: model name -> the commit whose shipped weights it was (the last commit before its replacement).
PREVIOUS = {"any-kernel-v1": ("any-kernel", "54206a3"), "any-kernel-gray-v1": ("any-kernel-gray", "54206a3"),
            "any-psf-fluorescence-v1": ("any-psf-fluorescence", "f164577")}


def main() -> int:
    from napari_crcnet.models.store import load_model, save_model, user_dir

    folder = user_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, (shipped, commit) in PREVIOUS.items():
        source = init_at_commit(f"src/napari_crcnet/weights/{shipped}.safetensors", commit)
        model, card = load_model(source, device="cpu")
        card = {key: value for key, value in card.items() if key not in ("path", "source")}
        card["name"] = name
        card["description"] = f"(shipped as {shipped} until commit {commit}) " + card.get("description", "")
        save_model(folder / f"{name}.safetensors", model, card)
        print(f"installed {name} (the {shipped} of commit {commit}) in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
