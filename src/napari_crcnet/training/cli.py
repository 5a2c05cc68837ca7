"""``crcnet train``: train a CRCNet for your kernel from a folder of clear images.

Example::

    crcnet train --kernel shake:21,seed=3 --images photos/ --val-images val/ --noise 0.01 \\
        --iterations 5000 -o my-model.safetensors
    crcnet train --kernel any --images photos/ --iterations 50000 -o any-kernel.safetensors
    crcnet train --kernel my_psf.tif --images cells/ --init any-kernel -o my-psf.safetensors

Where it goes: ``-o NAME`` (a bare file name, no folder) saves the model in your models folder
(``$NAPARI_CRCNET_MODELS``, default ``~/.napari-crcnet/models``), with its checkpoint and log beside it, so
``crcnet models``, ``crcnet deblur --model NAME`` and the Deblur widget's list find it; ``-o folder/NAME`` (or
``./NAME``) saves exactly there instead. ``-o`` is checked before any work: a folder that cannot be written is
refused, and an existing model (a finished training) or checkpoint is never replaced unless ``--resume``
(continue it) or ``--overwrite`` (start again) says so.

Progress (bar, loss, steps/s, ETA) and validation lines go to stderr as plain text; a summary is printed at
the end. Bad input: one line on stderr, exit code 2. Ctrl-C writes the checkpoint (exit 130); rerun with
``--resume`` to continue from it. Resuming with other settings (e.g. more ``--iterations``) says at the start
what changes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print the usage too)
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``crcnet train`` argument parser."""
    from ..cli import HelpFormatter

    p = _Parser(
        prog="crcnet train",
        formatter_class=HelpFormatter,
        description="Train a CRCNet deblurring model for one blur kernel and noise level (or, with --kernel any, "
        "for a family of kernels and noise levels) on clear images: pairs are made on the fly (random crops, "
        "'valid' blur with the kernel, Gaussian noise). -o NAME saves into your models folder "
        "($NAPARI_CRCNET_MODELS, default ~/.napari-crcnet/models) where `crcnet models`, --model NAME and "
        "the Deblur widget find it; -o folder/NAME saves there.",
    )
    p.add_argument("--kernel", required=True, help="kernel file (PNG/TIFF/NPY/MAT) or spec, e.g. gaussian:2, "
                   "motion:15,30, shake:21,seed=3; or 'any' for one model over random kernels and noise levels")
    p.add_argument("--images", required=True, nargs="+", help="folder(s) or files of clear training images")
    p.add_argument("--val-images", nargs="+", default=None,
                   help="held-out validation images (default: 4 training images are held out; with fewer than "
                   "8 images validation is on training images, and the start says so)")
    p.add_argument("-o", "--output", required=True,
                   help="model to write (.safetensors, card .json beside): a bare NAME goes to your models "
                   "folder, a path with a folder (or ./NAME) is used as given")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing model and checkpoint at -o and train from scratch")
    p.add_argument("--noise", type=float, default=0.01, help="Gaussian noise std, image in [0,1] (default 0.01)")
    p.add_argument("--noise-range", type=float, nargs=2, default=(0.005, 0.05), metavar=("LOW", "HIGH"),
                   help="with --kernel any: noise std range, log-uniform per crop (default 0.005 0.05)")
    p.add_argument("--max-kernel", type=int, default=31, help="with --kernel any: largest kernel side (default 31)")
    p.add_argument("--init", default=None,
                   help="start from this model's weights (file or name, e.g. a shipped model); its architecture "
                   "is used unless --config paper (default: random initialisation)")
    p.add_argument("--gray-fraction", type=float, default=0.0,
                   help="RGB models: fraction of training crops made gray, noise still per channel "
                   "(default 0; the any-kernel recipe uses 0.25; for gray images train a gray model)")
    p.add_argument("--photons", type=float, default=None,
                   help="also Poisson noise: photons at intensity 1 (default: none, Gaussian noise only)")
    p.add_argument("--channels", choices=("auto", "1", "3"), default="auto",
                   help="1 = gray model, 3 = RGB model; auto: from the first training image")
    p.add_argument("--config", choices=("default", "paper"), default="default",
                   help="architecture: default (PReLU, MMSE input, skip) or the exact paper network")
    p.add_argument("--iterations", type=int, default=5000,
                   help="training steps in total (with --resume: the step to train up to)")
    p.add_argument("--batch", type=int, default=8, help="crops per step")
    p.add_argument("--crop", type=int, default=64, help="training crop size in pixels (default 64)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-4; paper config 1e-3)")
    p.add_argument("--mmse-sigma", type=float, default=None,
                   help="sigma of the MMSE input (default: searched on the validation pairs)")
    p.add_argument("--seed", type=int, default=0, help="random seed (crops, noise, held-out images)")
    p.add_argument("--val-every", type=int, default=250, help="validate every N iterations (0: only at the end)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: OUTPUT.ckpt.safetensors)")
    p.add_argument("--checkpoint-every", type=float, default=120.0, help="seconds between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    p.add_argument("--log", default=None, help="JSON-lines log (default: OUTPUT.train.jsonl)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--amp", choices=("auto", "bf16", "off"), default="auto",
                   help="bfloat16 autocast (auto: on for CPUs and GPUs that support it)")
    p.add_argument("--name", default=None, help="model name in the card (default: output file stem)")
    return p


def output_path(text: str) -> Path:
    """The model file of ``-o``: ``.safetensors`` appended when missing; a bare file name (no folder, as
    ``crcnet deblur --model NAME`` takes) is placed in the user models folder
    (:func:`~napari_crcnet.models.store.user_dir`), anything with a folder (``./NAME`` too) is used as given."""
    from ..models.store import SUFFIX, user_dir

    path = Path(text).expanduser()
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    bare = "/" not in text and os.sep not in text and not text.startswith("~")
    return user_dir() / path.name if bare else path


def _check_output(output: Path, checkpoint: Path, args: argparse.Namespace) -> None:
    """``-o`` before any work: a file name in a folder we can write, and no finished training or checkpoint
    replaced unless ``--resume`` or ``--overwrite`` says so."""
    from ..models.store import CHECKPOINT_SUFFIX

    if args.resume and args.overwrite:
        raise ValueError("--resume continues a training and --overwrite starts it again: give one of them")
    if output.name.endswith(CHECKPOINT_SUFFIX):
        raise ValueError(f"-o {output.name}: names ending in {CHECKPOINT_SUFFIX} are kept for checkpoints")
    for path in (Path(args.output).expanduser(), output):
        if path.is_dir():
            raise ValueError(f"-o {path} is a directory; give a model file name, e.g. {path / 'my-model'}")
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"-o {output}: cannot write in {folder} (not a writable folder)")
    if args.resume or args.overwrite:
        return
    if output.exists():
        raise ValueError(
            f"-o {output} exists (a finished training): --resume continues it (e.g. with more --iterations), "
            "--overwrite trains a new one in its place, or choose another -o"
        )
    if checkpoint.exists():
        raise ValueError(
            f"a checkpoint of an unfinished training is at {checkpoint}: --resume continues it, "
            "--overwrite starts again"
        )


#: Settings compared with the checkpoint's when resuming (the kernel and architecture must match: fit refuses).
_RESUME_SETTINGS = ("iterations", "batch", "crop", "lr", "noise", "photons", "noise_range", "gray_fraction",
                    "seed", "val_every")


def _resume_note(checkpoint: Path, config: Any) -> str:
    """What ``--resume`` will do, in words: from which step, to which, with which settings changed."""
    from .checkpoint import checkpoint_json_path

    if not checkpoint.exists():
        return f"--resume: no checkpoint at {checkpoint}; starting from step 0"
    try:
        document = json.loads(checkpoint_json_path(checkpoint).read_text(encoding="utf-8"))
        step, before = int(document["step"]), dict(document.get("train_config") or {})
    except (OSError, ValueError, KeyError, TypeError):
        return f"--resume: continuing from {checkpoint}"
    new = config.summary()
    lines = [f"--resume: continuing from step {step} of {checkpoint}"]
    if step >= config.iterations:
        lines.append(f"the checkpoint is already at step {step} >= --iterations {config.iterations}: no training "
                     f"steps; the model at step {step} is validated and saved")
    elif before.get("iterations") not in (None, config.iterations):
        lines.append(f"--iterations {config.iterations} (the checkpoint was started for {before['iterations']}): "
                     f"training goes on to step {config.iterations}; the learning rate depends on the step alone, "
                     f"so this is what one run of {config.iterations} iterations gives")
    changed = [f"{key} {_text(before[key])} -> {_text(new.get(key))}" for key in _RESUME_SETTINGS
               if key != "iterations" and key in before and _text(before[key]) != _text(new.get(key))]
    if changed:
        lines.append(f"settings that differ from the checkpoint's apply from step {step} on: {', '.join(changed)}")
    return "\n".join(lines)


def _text(value: Any) -> str:
    return str(list(value)) if isinstance(value, (list, tuple)) else str(value)


def _detect_channels(images: Sequence[str]) -> int:
    from .data import _read, find_images

    first = find_images(images)[0]
    array = _read(first)
    return 3 if array.ndim == 3 and array.shape[-1] in (3, 4) else 1


class _ProgressPrinter:
    """Plain-text progress on stderr: a redrawn bar on a terminal, a line every ~5 % otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.first: int | None = None
        self.loss: float | None = None
        self.last_line = -1

    def _write(self, text: str, newline: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if newline else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def progress(self, done: int, total: int) -> None:
        if self.first is None:
            self.first = done - 1
        elapsed = time.perf_counter() - self.start
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        filled = int(24 * done / max(total, 1))
        loss = f"  loss {self.loss:.4g}" if self.loss is not None else ""
        text = (f"[{'#' * filled}{'.' * (24 - filled)}] {done}/{total} {100 * done / max(total, 1):3.0f}%"
                f"{loss}  {rate:.2f} it/s  ETA {_clock(eta)}")
        if self.tty:
            self._write(text, done >= total)
        else:
            bucket = int(20 * done / max(total, 1))
            if bucket != self.last_line or done >= total:
                self.last_line = bucket
                self._write(text, True)

    def record(self, record: dict) -> None:
        event = record.get("event")
        if event == "train":
            self.loss = record.get("loss")
        elif event == "val":
            dead = record.get("iu_dead")
            dead_text = f" | IU dead {100 * dead:.0f}%" if dead is not None else ""
            self._write(
                f"validation @ {record['step']}: model {record['psnr']:.2f} dB / SSIM {record['ssim']:.4f}"
                f" | MMSE {record['mmse_psnr']:.2f} dB / {record['mmse_ssim']:.4f}"
                f" | gain {record['gain_psnr']:+.2f} dB{dead_text}",
                True,
            )
        elif event == "start":
            note = (record.get("validation") or {}).get("note", "")
            if note.startswith("training images"):
                self._write(f"validation on the training images ({len(record['validation']['images'])} of them; "
                            "too few to hold any out): its scores flatter the model; give --val-images for "
                            "held-out ones", True)
            resumed = f" (resumed at step {record['step']})" if record.get("resumed") else ""
            sigma = record["mmse_sigma"]
            sigma = f"{sigma:.3g}" if isinstance(sigma, (int, float)) else f"{sigma} (per image, from its noise)"
            self._write(
                f"training {record['n_parameters']:,} parameters on {record['n_train_images']} images, "
                f"{record['device']} ({record['threads']} threads, amp {record['amp']}), "
                f"MMSE sigma {sigma}{resumed}",
                True,
            )


def _start_notes(output: Path, checkpoint: Path, config: Any, args: argparse.Namespace) -> list[str]:
    """What to say once training has set up: where the model goes, and what --resume or --overwrite do.
    (Read before training: the resume note compares with the checkpoint as it is now.)"""
    from ..models.store import user_dir

    where = " (your models folder: `crcnet models` lists it, --model NAME finds it)" \
        if output.parent == user_dir() else ""
    notes = [f"model: {output}{where}"]
    if args.resume:
        notes += _resume_note(checkpoint, config).splitlines()
    elif args.overwrite and (output.exists() or checkpoint.exists()):
        notes.append(f"--overwrite: training from scratch; {output.name} and its checkpoint are replaced")
    return notes


def _model_argument(path: Path) -> str:
    """What ``--model`` takes for ``path``: its name when in the user models folder, else the path."""
    from ..models.store import user_dir

    return path.stem if path.parent == user_dir() else str(path)


def _remove_checkpoint(checkpoint: Path) -> None:
    """With --overwrite: the old checkpoint goes now, so that a later --resume cannot continue the old run."""
    from .checkpoint import checkpoint_json_path

    for path in (checkpoint, checkpoint_json_path(checkpoint)):
        path.unlink(missing_ok=True)


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def train_main(argv: Sequence[str] | None = None) -> int:
    """Run ``crcnet train`` with ``argv`` (without the ``train`` word); returns the exit code.

    0 on success (also after a stop), 2 for bad input (one line on stderr), 130 after Ctrl-C (the
    checkpoint is written first).
    """
    from .fit import TrainConfig, train

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        output = output_path(args.output)
        base = output.with_suffix("")
        checkpoint = Path(args.checkpoint) if args.checkpoint else base.with_name(f"{base.name}.ckpt.safetensors")
        _check_output(output, checkpoint, args)
        channels = _detect_channels(args.images) if args.channels == "auto" else int(args.channels)
        lr = args.lr if args.lr is not None else (1e-3 if args.config == "paper" else 3e-4)
        config = TrainConfig(
            kernel=args.kernel, images=args.images, val_images=args.val_images, channels=channels,
            model=args.config, noise=args.noise, photons=args.photons, mmse_sigma=args.mmse_sigma,
            iterations=args.iterations, batch=args.batch, crop=args.crop, lr=lr, seed=args.seed,
            val_every=args.val_every,
            checkpoint=checkpoint,
            checkpoint_every_s=args.checkpoint_every, resume=args.resume, output=output,
            name=args.name or output.stem,
            log_path=Path(args.log) if args.log else base.with_name(f"{base.name}.train.jsonl"),
            device=args.device, threads=args.threads, amp=args.amp, noise_range=tuple(args.noise_range),
            max_kernel=args.max_kernel, init=args.init, gray_fraction=args.gray_fraction,
        )
        config.validate()
        printer = _ProgressPrinter()
        notes = _start_notes(output, checkpoint, config, args)

        def log(record: dict) -> None:
            if record.get("event") == "start":  # the set-up went well: say what this run does
                printer.stream.write("".join(f"{line}\n" for line in notes))
                if args.overwrite:
                    _remove_checkpoint(checkpoint)
            printer.record(record)

        result = train(config, progress=printer.progress, log=log)
    except _UsageError as error:
        print(f"crcnet train: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"crcnet train: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ncrcnet train: interrupted; checkpoint written to {config.checkpoint}; "
              "rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    if result.model_path is None:  # under torchrun, a process other than rank 0: rank 0 reports and saves
        return 0
    val = result.metrics.get("validation", {})
    lines = [
        f"{'stopped' if result.stopped else 'done'}: {result.steps} iterations, {result.elapsed_s / 60:.1f} min",
    ]
    if val.get("model_psnr") is not None:
        lines.append(
            f"validation ({len(val.get('images', []))} images, {val.get('note')}): model {val['model_psnr']:.2f} dB"
            f" / SSIM {val['model_ssim']:.4f}, MMSE {val['mmse_psnr']:.2f} dB / {val['mmse_ssim']:.4f}"
            f" (gain {val['gain_psnr']:+.2f} dB)"
        )
    lines.append(f"model: {result.model_path} (+ card {result.model_path.with_suffix('.json')})")
    lines.append(f"checkpoint: {result.checkpoint_path} (resume with --resume); log: {config.log_path}")
    lines.append(f"use it: crcnet deblur IMAGE --method crcnet --model {_model_argument(result.model_path)} -o OUT")
    print("\n".join(lines), file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(train_main())
