"""The ``crcnet`` command: deblur images, write kernels, list models, train, and run the demo.

Examples::

    crcnet deblur blurred.tif --kernel psf.tif --method mmse -o sharp.tif
    crcnet deblur photo.png --kernel motion:15,30 --method ird --iterations 200 --residues 0,1,5 -o out.png
    crcnet deblur photo.png --method crcnet --model shake21-rgb -o out.png
    crcnet kernel shake:21,seed=3 -o k.png
    crcnet demo -o demo-output
    crcnet train --kernel k.png --images clear_photos/ -o my-model.safetensors

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("mmse", "ird", "hyper-laplacian", "crcnet")
EXIT_USAGE = 2


class _Fail(Exception):
    """A user error: printed as one line, exit code 2."""


def _guess_channel_axis(image: np.ndarray, channel_axis: str) -> int | None:
    """``auto``: the last axis is colour when it has 3 or 4 entries (RGB/RGBA) and the image is 3D or more."""
    if channel_axis == "none":
        return None
    if channel_axis != "auto":
        return int(channel_axis)
    return -1 if image.ndim >= 3 and image.shape[-1] in (3, 4) else None


def _progress_printer(label: str):
    """A progress callback that draws ``label [#####.....] 12/40  ETA 3s`` on stderr."""
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if total <= 0 or not sys.stderr.isatty():
            return
        elapsed = time.perf_counter() - start
        eta = elapsed / done * (total - done) if done else 0.0
        filled = int(30 * done / total)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}  ETA {eta:4.0f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return progress


def _load_kernel_arg(spec: str, correlation: bool) -> np.ndarray:
    from . import kernels

    kernel = kernels.kernel_from_spec(spec)
    return kernels.from_correlation(kernel) if correlation else kernel


def _deblur(args: argparse.Namespace) -> int:
    from . import deconv, io

    image = io.read_image(args.input)
    channel_axis = _guess_channel_axis(image, args.channel_axis)
    if channel_axis is not None and image.shape[channel_axis] == 4:
        image = np.take(image, [0, 1, 2], axis=channel_axis)  # RGBA: the alpha channel is not blurred
    common: dict[str, Any] = {"channel_axis": channel_axis, "device": args.device}

    if args.method == "crcnet":
        from .inference import crcnet

        kernel = _load_kernel_arg(args.kernel, args.correlation) if args.kernel else None
        result = crcnet(
            image, args.model, kernel, force=args.force, noise=args.noise,
            progress=_progress_printer("crcnet"), **common,
        )
    else:
        if not args.kernel:
            raise _Fail(f"--kernel is required for --method {args.method}")
        kernel = _load_kernel_arg(args.kernel, args.correlation)
        common["boundary"] = args.boundary
        if args.method == "mmse":
            result = deconv.mmse(image, kernel, args.sigma, prior=args.prior, **common)
        elif args.method == "ird":
            result = deconv.ird(image, kernel, args.sigma, args.iterations, **common)
        else:
            from .hyperlaplacian import hyper_laplacian

            result = hyper_laplacian(
                image, kernel, args.lam, args.alpha, progress=_progress_printer("hyper-laplacian"), **common
            )
        if args.residues:
            ns = [int(n) for n in args.residues.split(",")]
            residues, sums = deconv.ird_residues(image, kernel, args.sigma, ns, **common)
            stem = Path(args.output)
            io.write_image(stem.with_name(stem.stem + "_residues.tif"), residues)
            io.write_image(stem.with_name(stem.stem + "_partial_sums.tif"), sums)
    io.write_image(args.output, result)
    print(f"wrote {args.output} ({args.method}, shape {'x'.join(map(str, result.shape))})")
    return 0


def _kernel(args: argparse.Namespace) -> int:
    from . import kernels

    kernel = kernels.kernel_from_spec(args.spec)
    kernels.save_kernel(args.output, kernel)
    print(f"wrote {args.output} ({'x'.join(map(str, kernel.shape))} kernel, sum 1)")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .models.store import kernel_label, list_models

    cards = list_models()
    if not cards:
        print("no models found")
    for card in cards:
        shape = kernel_label(card)
        gain = card.get("metrics", {}).get("gain_over_mmse_db")
        gain_text = f", +{gain:.2f} dB over MMSE" if isinstance(gain, (int, float)) else ""
        print(f"{card['name']}: {card.get('description', '')} (kernel {shape}{gain_text}) [{card['path']}]")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.output), size=args.size, use_crcnet=not args.no_crcnet, progress=print)
    return 0


def _train(argv: Sequence[str]) -> int:
    from .training.cli import train_main

    return train_main(list(argv))


def build_parser() -> argparse.ArgumentParser:
    """The ``crcnet`` argument parser (subcommands deblur, kernel, models, demo, train)."""
    from .operators import BOUNDARIES, DEFAULT_BOUNDARY

    parser = argparse.ArgumentParser(prog="crcnet", description="Non-blind deblurring: MMSE, IRD, CRCNet.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("deblur", help="deblur an image with a known kernel")
    p.add_argument("input", help="image file (TIFF, PNG, JPG, NPY)")
    p.add_argument("-o", "--output", required=True, help="output file (TIFF keeps float32)")
    p.add_argument("--kernel", help="kernel file or spec, e.g. psf.tif, gaussian:2, motion:15,30, shake:21,seed=3")
    p.add_argument("--correlation", action="store_true", help="the kernel file is correlation-oriented: flip it")
    p.add_argument("--method", choices=METHODS, default="mmse")
    p.add_argument("--sigma", type=float, default=None, help="MMSE/IRD noise balance (default: estimated)")
    p.add_argument("--prior", choices=("laplacian",), default=None, help="MMSE smoothness prior")
    p.add_argument("--iterations", type=int, default=100, help="IRD iterations N")
    p.add_argument("--residues", default="", help="IRD residues to write too, e.g. 0,1,2,5,10")
    p.add_argument("--lam", type=float, default=None, help="hyper-Laplacian data weight (default: from noise)")
    p.add_argument("--alpha", type=float, default=2 / 3, help="hyper-Laplacian exponent")
    p.add_argument("--model", default=None,
                   help="CRCNet model: a shipped or user model name or a .safetensors file (default: the shipped "
                   "any-kernel model, for any kernel up to 31x31, or any-kernel-gray for a gray image when "
                   "installed; see `crcnet models`)")
    p.add_argument("--force", action="store_true", help="use a CRCNet model trained for another kernel")
    p.add_argument("--noise", type=float, default=None,
                   help="noise std of the image, for CRCNet models that take it (default: the card's or estimated)")
    p.add_argument("--boundary", choices=BOUNDARIES, default=DEFAULT_BOUNDARY)
    p.add_argument("--channel-axis", default="auto", help="auto (RGB if the last axis has 3/4), none, or N")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(run=_deblur)

    p = sub.add_parser("kernel", help="write a generated kernel to a file")
    p.add_argument("spec", help="e.g. gaussian:2, disk:4, motion:15,30, shake:21,seed=3, gaussian3d:1.5,3")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(run=_kernel)

    p = sub.add_parser("models", help="list shipped and user CRCNet models")
    p.set_defaults(run=_models)

    p = sub.add_parser("demo", help="blur a sample photo and deblur it with every method")
    p.add_argument("-o", "--output", default="demo-output", help="folder for images, figure and table")
    p.add_argument("--size", type=int, default=256, help="side of the centre crop of the photo, in pixels")
    p.add_argument("--no-crcnet", action="store_true", help="skip the CRCNet model")
    p.set_defaults(run=_demo)

    sub.add_parser("train", help="fit a CRCNet to your kernel (crcnet train --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crcnet`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        return _train(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._progress import Cancelled

    try:
        return args.run(args)
    except (_Fail, ValueError, FileNotFoundError, OSError) as error:
        message = str(error) or error.__class__.__name__
        print(f"crcnet {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except (Cancelled, KeyboardInterrupt):
        print(f"crcnet {args.command}: stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
