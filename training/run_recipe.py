"""Run a training recipe (``training/recipes/NAME.json``) with resume, and ship the model when done.

Usage::

    python training/run_recipe.py NAME [--minutes M] [--ship] [--threads T] [--device D]

Checkpoint: ``training/checkpoints/NAME.ckpt.safetensors`` (+ ``.json``), written every ~2 minutes, on
stop and at the end; every run resumes from it, so repeated ``--minutes`` runs add up to the recipe's
iterations bit-for-bit as one long run would (same machine and threads). Log (JSON lines, appended):
``training/logs/NAME.jsonl``. SIGTERM or Ctrl-C stop after the current step with a checkpoint.

When the recipe's iterations are reached (or with ``--ship``) the model is written to
``src/napari_crcnet/weights/NAME.safetensors`` + ``.json`` card, and ``training/cards/NAME.md``; run
``training/evaluate.py NAME`` afterwards for the held-out score table (it updates both cards).

``--export PATH`` writes the model of the latest checkpoint to PATH without training and without touching
the recipe's checkpoint or log (safe while the run goes on), e.g. to benchmark a run in progress.

Data paths in recipes are relative to the shared data folder (``../shared/data`` next to the repository,
or ``$CRCNET_DATA``). ``init`` is a model name or a repository path; with ``init_commit`` the file as it was
at that git commit (a shipped model later replaced by a newer one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT / "training"
WEIGHTS = ROOT / "src" / "napari_crcnet" / "weights"


def data_root() -> Path:
    """The shared data folder: ``$CRCNET_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("CRCNET_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def load_recipe(name: str) -> dict[str, Any]:
    """Read ``training/recipes/NAME.json``; ValueError listing the recipes when it does not exist."""
    path = TRAINING / "recipes" / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in (TRAINING / "recipes").glob("*.json"))
        raise ValueError(f"no recipe {name!r}; known: {', '.join(known)}")
    return json.loads(path.read_text())


def init_at_commit(path: str, commit: str) -> Path:
    """The model file ``path`` (repository-relative ``.safetensors``) and its ``.json`` card as they were at git
    ``commit``, extracted to a new temporary folder; returns the weights' path there.

    A recipe names ``init_commit`` when its init model was later replaced in the package (by this recipe's own
    result, say): the run still starts from the weights it started from. Needs the repository's history
    (not a shallow clone); ValueError otherwise.
    """
    import atexit
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="crcnet-init-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    weights = Path(path)
    for part in (weights, weights.with_suffix(".json")):
        done = subprocess.run(["git", "show", f"{commit}:{part.as_posix()}"], cwd=ROOT, capture_output=True)
        if done.returncode != 0 and part == weights:
            raise ValueError(f"cannot read {part} at commit {commit}: {done.stderr.decode().strip()} "
                             "(the recipe's init_commit needs the git history)")
        if done.returncode == 0:
            (folder / part.name).write_bytes(done.stdout)
    return folder / weights.name


def recipe_config(recipe: dict[str, Any], **overrides: Any):
    """A :class:`TrainConfig` for a recipe, with data paths resolved and the fixed checkpoint/log paths."""
    from napari_crcnet.training import TrainConfig

    root = data_root()
    name = recipe["name"]
    skip = {"name", "description", "evaluate", "images", "val_images", "notes", "init_commit"}
    fields = {k: v for k, v in recipe.items() if k not in skip}
    if fields.get("init") and recipe.get("init_commit"):  # a shipped model since replaced (by this recipe's own)
        fields["init"] = init_at_commit(str(fields["init"]), recipe["init_commit"])
    elif fields.get("init") and "/" in str(fields["init"]):  # a file in the repository, e.g. a shipped model
        fields["init"] = ROOT / fields["init"]
    config = TrainConfig(
        images=[root / p for p in recipe["images"]] if recipe.get("images") else None,
        val_images=[root / p for p in recipe["val_images"]] if recipe.get("val_images") else None,
        name=name,
        description=recipe.get("description", ""),
        checkpoint=TRAINING / "checkpoints" / f"{name}.ckpt.safetensors",
        resume=True,
        checkpoint_every_s=120.0,
        log_path=TRAINING / "logs" / f"{name}.jsonl",
        card={"training": {"recipe": f"training/recipes/{name}.json", "kernel_spec": recipe["kernel"],
                           "data_root": "../shared/data", "images": recipe["images"],
                           "val_images": recipe.get("val_images")}},
        **fields,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable model card (``training/cards/NAME.md``)."""
    t = card.get("training", {})
    v = card.get("metrics", {}).get("validation", {})
    cfg = card.get("config", {})
    family = card.get("kernel_family")
    if family:
        kernel_row = (f"| kernel | any: {json.dumps(family.get('types'))}, up to {family.get('max_kernel')} px, "
                      f"drawn per crop by `{family.get('sampler')}` |")
        floor = card.get("mmse_noise_floor")
        sigma_row = ("| MMSE input sigma | per image: `deconv.suggest_sigma(noise"
                     + (f", floor={floor}" if floor else ", floor=0") + f")`, boundary {card.get('mmse_boundary')} |")
        noise = card.get("noise") or ["?", "?"]
        noise_row = f"| noise | Gaussian, std log-uniform in [{noise[0]}, {noise[1]}] per crop (image in [0, 1]) |"
        degradation = t.get("degradation")
        if degradation:
            camera = degradation["camera"]
            noise_row = (f"| noise | the degradation model's camera: Gaussian {camera['noise']} or (with probability "
                         f"{camera['poisson']}) Poisson of {camera['photons']} photons + read noise "
                         f"{camera['read_noise']}; 8-bit {camera['quantise']}, JPEG {camera['jpeg']}; the network is "
                         f"told the noise rms, about {noise[0]:.3g}-{noise[1]:.3g} |")
        mmse_label = "MMSE (sigma from each image's noise)"
    else:
        kernel_row = (f"| kernel | `{t.get('kernel_spec', '?')}`, {len(card['kernel'])}x{len(card['kernel'][0])}, "
                      f"sha256 `{card.get('kernel_sha256', '')[:16]}...` |")
        sigma_row = (f"| MMSE input sigma | {card.get('mmse_sigma'):.4g} (best validation PSNR of a 31-point "
                     f"search), boundary {card.get('mmse_boundary')} |")
        noise_row = (f"| noise | Gaussian, std {card.get('noise')} (image in [0, 1])"
                     + (f", Poisson {card['photons']} photons" if card.get("photons") else "") + " |")
        mmse_label = f"MMSE (sigma {card.get('mmse_sigma'):.3g})"
    lines = [
        f"# Model card: {card.get('name')}",
        "",
        card.get("description", ""),
        "",
        "| field | value |",
        "|---|---|",
        kernel_row,
        noise_row,
        sigma_row,
        f"| architecture | CRCNet {json.dumps(cfg)}, {card.get('n_parameters', '?'):,} parameters |",
        (f"| data | {t.get('images')} ({t.get('n_train_images')} images, channels {t.get('channels')}"
         + (", RGB converted to gray (BT.601 luma)" if t.get("channels") == 1 else "") + ") |")
        if t.get("images") else "| data | synthetic content only (`training/content.py`), no image files |",
        f"| pairs | {t.get('pairs')}; {t.get('crop')}x{t.get('crop')} crops, batch {t.get('batch')}, "
        f"flips/rot90: {t.get('augment')} |",
        f"| loss | {t.get('loss')} |",
        f"| schedule | Adam lr {t.get('lr')}, x{t.get('lr_decay')} every {t.get('decay_every')} iterations, "
        f"warm-up {t.get('warmup')}, grad clip {t.get('grad_clip')} |",
        f"| iterations | {t.get('iterations')} of {t.get('target_iterations')}"
        + (" (stopped early)" if t.get("stopped_early") else "") + " |",
        f"| wall time | {t.get('wall_time_s', 0) / 60:.1f} min on {t.get('device')} ({t.get('threads')} threads, "
        f"amp {t.get('amp')}), torch {t.get('torch')} |",
        f"| recipe | `{t.get('recipe', '')}` (seed {t.get('seed')}) |",
        *([f"| data step | after the network, `napari_crcnet.datastep`: mu = {card['data_step']['mu']:g} * "
           f"(max(n, {card['data_step']['noise_floor']:g}) / 0.01) ** {card['data_step']['power']:g}"
           + (f"; network and step unrolled in {card['data_step']['stages']} stages"
              if card['data_step'].get('stages', 1) > 1 else "") + " |"]
          if card.get("data_step") else []),
        "",
        "## Validation (held-out crops, same degradation as training)",
        "",
        f"{len(v.get('images', []))} images ({v.get('note')}), centre {v.get('crop')} px crops, "
        "clipped to [0, 1]; SSIM on the Y channel for RGB.",
        "",
        "| method | PSNR (dB) | SSIM |",
        "|---|---|---|",
        f"| {mmse_label} | {v.get('mmse_psnr')} | {v.get('mmse_ssim')} |",
        f"| CRCNet | {v.get('model_psnr')} | {v.get('model_ssim')} |",
        f"| gain | {v.get('gain_psnr')} | {v.get('gain_ssim')} |",
        "",
        f"IU dead-unit fraction at the end: {v.get('iu_dead')}.",
    ]
    held = card.get("metrics", {}).get("heldout")
    if held:
        lines += ["", f"## Held-out test set: {held.get('set')}", "", held.get("protocol", ""), "",
                  "| method | setting | PSNR (dB) | SSIM (Y) |", "|---|---|---|---|"]
        for row in held.get("table", []):
            lines.append(f"| {row['method']} | {row['setting']} | {row['psnr']:.2f} | {row['ssim']:.4f} |")
    if card.get("limitations"):
        lines += ["", "## Where it loses", "", card["limitations"]]
    return "\n".join(lines) + "\n"


def ship(result, recipe: dict[str, Any]) -> Path:
    """Write the weights + JSON card into the package and the markdown card into training/cards."""
    from napari_crcnet.models.store import save_model

    name = recipe["name"]
    path = WEIGHTS / f"{name}.safetensors"
    card = save_model(path, result.model.cpu(), result.card)
    (TRAINING / "cards").mkdir(parents=True, exist_ok=True)
    (TRAINING / "cards" / f"{name}.md").write_text(card_markdown(card))
    return path


def export(recipe: dict[str, Any], path: Path, device: str = "auto"):
    """Write the model of the recipe's latest checkpoint to ``path`` (+ JSON card); returns the TrainResult.

    The checkpoint is copied first and ``train`` resumes the copy with its stop flag already set: no step is
    taken, the held-out validation runs once, and the card says ``iterations`` (the checkpoint's step) of
    ``target_iterations`` with ``stopped_early``. The recipe's own checkpoint and log stay as they are, so a
    run in progress is not disturbed.
    """
    from napari_crcnet.training import train
    from napari_crcnet.training.fit import checkpoint_json_path

    source = recipe_config(recipe).checkpoint
    if not Path(source).exists():
        raise ValueError(f"no checkpoint of {recipe['name']!r} yet ({source})")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / Path(source).name
        shutil.copyfile(source, copy)
        if checkpoint_json_path(source).exists():
            shutil.copyfile(checkpoint_json_path(source), checkpoint_json_path(copy))
        config = recipe_config(recipe, device=device, checkpoint=copy, log_path=Path(tmp) / "log.jsonl",
                               output=Path(path))
        stop = threading.Event()
        stop.set()
        return train(config, stop_event=stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="recipe name (training/recipes/NAME.json)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (resumable)")
    parser.add_argument("--ship", action="store_true", help="write the model even if not finished")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--export", type=Path, default=None, metavar="PATH",
                        help="only write the model of the latest checkpoint to PATH (no training)")
    args = parser.parse_args(argv)
    import torch

    from napari_crcnet.training import train

    try:
        recipe = load_recipe(args.name)
    except ValueError as error:
        print(f"run_recipe: error: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export is not None:
        try:
            result = export(recipe, args.export, args.device)
        except ValueError as error:
            print(f"run_recipe: error: {error}", file=sys.stderr)
            return 2
        print(f"exported {result.model_path} (step {result.steps} of {recipe['iterations']}); validation "
              f"{result.metrics.get('validation')}", flush=True)
        return 0
    config = recipe_config(recipe, device=args.device,
                           time_limit_s=args.minutes * 60 if args.minutes is not None else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def echo(record: dict) -> None:
        if record["event"] in ("start", "val", "checkpoint", "end"):
            brief = {k: v for k, v in record.items() if k not in ("config", "model_config")}
            print(json.dumps(brief), flush=True)

    result = train(config, stop_event=stop, log=echo)  # echo to stdout; the JSONL file is config.log_path
    done = result.steps >= config.iterations
    print(f"{args.name}: {result.steps}/{config.iterations} iterations, {result.elapsed_s / 60:.1f} min in total; "
          f"validation {result.metrics.get('validation')}", flush=True)
    if done or args.ship:
        path = ship(result, recipe)
        print(f"shipped {path} and training/cards/{args.name}.md; next: python training/evaluate.py {args.name}")
    else:
        print(f"not finished: rerun `python training/run_recipe.py {args.name}` to resume")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
