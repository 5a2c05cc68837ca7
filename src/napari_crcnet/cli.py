"""The ``crcnet`` command: deblur images, write kernels, list models, train, and run the demo.

Examples::

    crcnet deblur blurred.tif --kernel psf.tif --method mmse -o sharp.tif
    crcnet deblur photo.png --kernel motion:15,30 --method ird --iterations 200 --residues 0,1,5 -o out.png
    crcnet deblur photo.png --method crcnet --model shake21-rgb -o out.png
    crcnet deblur cells.tif --kernel gaussian:1.5 --method richardson-lucy --iterations 50 -o out.tif
    crcnet kernel shake:21,seed=3 -o k.png
    crcnet demo -o demo-output
    crcnet train --kernel k.png --images clear_photos/ -o my-model.safetensors
    crcnet deblur photo.png --method crcnet --model my-model -o out.png
    crcnet deblur raw/ 'more/*.png' stack.tif movie.zarr --kernel gaussian:2 -o sharp/ --cluster local:2

Bad input ends with one line on stderr and exit code 2, never a traceback; messages and warnings name the
command's options (``--force``, ``--device cpu``), not the Python keywords behind them. A batch (several
inputs, a folder, a glob, a ``.zarr`` store or ``-o OUTDIR/``; see :mod:`napari_crcnet.batch`) exits with 0 when
every file was written or skipped, 1 when any file failed (each reported on one line), 2 when nothing was done
(bad options, missing inputs, no scheduler at the ``--cluster`` address).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

METHODS = ("mmse", "ird", "hyper-laplacian", "richardson-lucy", "crcnet")
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Fail(Exception):
    """A user error: printed as one line, exit code 2."""


DESCRIPTION = (
    "Non-blind deblurring of images blurred by a known kernel, with five methods: MMSE (closed-form Wiener "
    "estimate), IRD (the CRCNet paper's Iterative Residual Deconvolution, with its residues), hyper-Laplacian "
    "(Krishnan & Fergus 2009, sparse-gradient prior), Richardson-Lucy (the microscopy classic, for photon noise) "
    "and CRCNet (trained networks, shipped or your own: crcnet train)."
)

EPILOG = """examples:
  crcnet deblur blurred.tif --kernel psf.tif --method mmse -o sharp.tif
  crcnet deblur photo.png --kernel motion:15,30 --method ird --iterations 200 --residues 0-5,10 -o out.png
  crcnet deblur photo.png --kernel gaussian:2 --method hyper-laplacian -o out.png
  crcnet deblur cells.tif --kernel psf.tif --method richardson-lucy --iterations 50 --tv 0.002 -o out.tif
  crcnet deblur photo.png --method crcnet --kernel psf.tif --noise 0.01 -o out.png
  crcnet kernel shake:21,seed=3 -o k.png
  crcnet train --kernel k.png --images clear_photos/ -o my-model     # saved in your models folder
  crcnet models
  crcnet demo -o demo-output

Each command has its own help: crcnet deblur --help, crcnet train --help. Bad input ends with one line on
stderr and exit code 2."""

#: Python keywords in messages from the library, and the option that says the same on the command line.
_CLI_WORDS = (
    (re.compile(r"\bforce=True\b"), "--force"),
    (re.compile(r"\bdevice=['\"]?([\w:]+)['\"]?"), r"--device \1"),
    (re.compile(r"\bkernel=(\.\.\.)?(?=[\s),;]|$)"), "--kernel"),
    (re.compile(r"\bnoise=(?=[\s)]|$)"), "--noise"),
    (re.compile(r"\bchannel_axis="), "--channel-axis "),
    (re.compile(r"\bn_iter\b"), "--iterations"),
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default: written out by the help text itself when it says
    "default", appended otherwise (``off`` for flags)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if action.nargs == 0:
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def cli_words(message: str) -> str:
    """``message`` with the library's keyword advice (``force=True``, ``device='cpu'``) in option form."""
    for pattern, option in _CLI_WORDS:
        message = pattern.sub(option, message)
    return message


def _channel_axis(image: np.ndarray, channel_axis: str) -> int | None:
    """``--channel-axis``: ``auto`` (the last axis is colour when it has 3 or 4 entries, RGB/RGBA, and the image
    is 3D or more), ``none``, or an axis number within the image's axes."""
    from .batch import channel_axis_for

    try:
        return channel_axis_for(image.shape, channel_axis)
    except ValueError as error:
        raise _Fail(str(error)) from None


def _check_paths(args: argparse.Namespace) -> None:
    """Input a file, output a file name of a format that can be written, both before any work."""
    from .io import IMAGE_EXTENSIONS, checked_suffix

    source, target = Path(args.input), Path(args.output)
    if source.is_dir():
        raise _Fail(f"{source} is a directory; crcnet deblur takes one image file ({', '.join(IMAGE_EXTENSIONS)})")
    if target.is_dir():
        raise _Fail(f"-o {target} is a directory; give a file name, e.g. -o {target / (source.stem + '.tif')}, "
                    f"or -o {target}{os.sep} to write {target / (source.stem + '.tif')} as a batch")
    try:
        checked_suffix(target, (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".npy"), "output",
                       "supported for writing")
    except ValueError as error:
        raise _Fail(f"-o: {error}") from None


def _residue_indices(args: argparse.Namespace) -> list[int]:
    """``--residues``: IRD only; parsed with the Deblur widget's rules (lists and ranges such as ``0-20``)."""
    if not args.residues:
        return []
    if args.method != "ird":
        raise _Fail(f"--residues is for --method ird (the IRD residues n); --method {args.method} has none")
    from .deconv import parse_indices

    try:
        return parse_indices(args.residues)
    except ValueError as error:
        raise _Fail(f"--residues: {error}") from None


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

    try:
        kernel = kernels.kernel_from_spec(spec)
    except (ValueError, OSError) as error:
        raise _Fail(f"--kernel: {error}") from None
    return kernels.from_correlation(kernel) if correlation else kernel


def _settings(args: argparse.Namespace):
    """The deblurring options of ``args`` as :class:`~napari_crcnet.batch.Settings`."""
    from .batch import Settings

    if args.method != "crcnet" and not args.kernel:
        raise _Fail(f"--kernel is required for --method {args.method}")
    kernel = _load_kernel_arg(args.kernel, args.correlation) if args.kernel else None
    return Settings(method=args.method, kernel=kernel, sigma=args.sigma, prior=args.prior, iterations=args.iterations,
                    tv=args.tv, tol=args.tol, lam=args.lam, alpha=args.alpha, model=args.model, force=args.force,
                    noise=args.noise, boundary=args.boundary, channel_axis=args.channel_axis, device=args.device)


def _is_batch(args: argparse.Namespace) -> bool:
    """Several inputs, a folder, a glob pattern, a ``.zarr`` store, or ``-o`` ending with a slash."""
    from .batch import ZARR, is_pattern

    if len(args.input) > 1 or args.output.endswith(("/", os.sep)):
        return True
    text = args.input[0]
    path = Path(text)
    return is_pattern(text) or path.suffix.lower() == ZARR or path.is_dir()


def _deblur(args: argparse.Namespace) -> int:
    if _is_batch(args):
        return _deblur_batch(args)
    if args.cluster:
        raise _Fail("--cluster is for batches: several inputs, a folder or a glob, with -o OUTDIR/")
    from . import deconv, io
    from .batch import deblur_array, prepare

    args.input = args.input[0]
    _check_paths(args)
    ns = _residue_indices(args)
    settings = _settings(args)
    image = io.read_image(args.input)
    _channel_axis(image, args.channel_axis)  # a bad --channel-axis in the CLI's words
    image, channel_axis = prepare(image, args.channel_axis)  # RGBA: the alpha channel is not blurred
    result = deblur_array(image, channel_axis, settings, progress=_progress_printer)
    if ns:
        common = {"channel_axis": channel_axis, "device": args.device, "boundary": args.boundary}
        residues, sums = deconv.ird_residues(image, settings.kernel, args.sigma, ns, **common)
        stem = Path(args.output)
        io.write_image(stem.with_name(stem.stem + "_residues.tif"), residues)
        io.write_image(stem.with_name(stem.stem + "_partial_sums.tif"), sums)
    io.write_image(args.output, result)
    print(f"wrote {args.output} ({args.method}, shape {'x'.join(map(str, result.shape))})")
    return 0


def _deblur_batch(args: argparse.Namespace) -> int:
    """``crcnet deblur IN... -o OUTDIR/``: every input to ``OUTDIR/<stem>.tif`` (``.zarr`` for zarr stores)."""
    from .batch import collect_inputs, parse_cluster, plan_jobs, run_batch

    outdir = Path(args.output)
    if not (outdir.is_dir() or args.output.endswith(("/", os.sep)) or not outdir.suffix):
        folders = [text for text in args.input if Path(text).is_dir() and Path(text).suffix.lower() != ".zarr"]
        what = f"{folders[0]} is a directory, so" if folders else "with several inputs, a glob or a .zarr store"
        raise _Fail(f"{what} -o names a folder: -o {outdir}{os.sep} writes {outdir / '<input name>.tif'}")
    if outdir.exists() and not outdir.is_dir():
        raise _Fail(f"-o {outdir} is a file; give a folder for several inputs")
    if args.residues:
        raise _Fail("--residues is for one input file, not a batch")
    try:
        cluster = parse_cluster(args.cluster) if args.cluster else None
    except ValueError as error:
        raise _Fail(str(error)) from None
    if args.cluster_timeout <= 0:
        raise _Fail(f"--cluster-timeout must be > 0 seconds, not {args.cluster_timeout:g}")
    settings = _settings(args)
    jobs = plan_jobs(collect_inputs(args.input), outdir)
    bar = _progress_printer(f"deblur {len(jobs)} files")

    def failure(source: Path, reason: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write("\r\x1b[K")  # clear the progress bar's line
        print(f"crcnet deblur: failed: {source}: {cli_words(reason)}", file=sys.stderr)

    summary = run_batch(jobs, settings, cluster=cluster, overwrite=args.overwrite,
                        connect_timeout=args.cluster_timeout, progress=bar, report=print, report_failure=failure)
    print(f"{summary.line()} ({args.method}, into {outdir})")
    return EXIT_FAILED if summary.failed else 0


def _kernel(args: argparse.Namespace) -> int:
    from . import kernels

    kernel = kernels.kernel_from_spec(args.spec)
    kernels.save_kernel(args.output, kernel)
    print(f"wrote {args.output} ({'x'.join(map(str, kernel.shape))} kernel, sum 1)")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .models.store import kernel_label, list_models, user_dir

    cards = list_models()
    if not cards:
        print("no models found")
    for card in cards:
        shape = kernel_label(card)
        gain = card.get("metrics", {}).get("gain_over_mmse_db")
        gain_text = f", +{gain:.2f} dB over MMSE" if isinstance(gain, (int, float)) else ""
        print(f"{card['name']}: {card.get('description', '')} (kernel {shape}{gain_text}) [{card['path']}]")
    print(f"(your models folder: {user_dir()}; `crcnet train -o NAME` saves there)")
    return 0


def _specialise(args: argparse.Namespace) -> int:
    from .specialisation import specialise

    kernel = _load_kernel_arg(args.kernel, args.correlation)
    if not 0 < args.noise < 1:
        raise _Fail(f"--noise must be a standard deviation in (0, 1), e.g. 0.01 for 1 %, not {args.noise}")
    channels = {"rgb": 3, "gray": 1}[args.channels]
    result = specialise(kernel, noise=args.noise, channels=channels, minutes=args.minutes, base=args.base,
                        images=args.images or None, fluorescence=args.fluorescence, device=args.device,
                        progress=_progress_printer("specialise (seconds)"))
    val = result.metrics.get("validation", {})
    gain = f", validation {val['gain_psnr']:+.2f} dB over MMSE" if val.get("gain_psnr") is not None else ""
    print(f"wrote {result.model_path} ({result.steps} iterations in {result.elapsed_s / 60:.1f} min{gain}); "
          f"crcnet deblur IMAGE --method crcnet --kernel {args.kernel} now uses it")
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
    from .kernels import KERNEL_SPEC_HELP
    from .operators import BOUNDARIES, DEFAULT_BOUNDARY

    parser = argparse.ArgumentParser(prog="crcnet", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("deblur", help="deblur an image with a known kernel (MMSE, IRD, hyper-Laplacian, "
                       "Richardson-Lucy, CRCNet)",
                       description=DESCRIPTION, epilog=KERNEL_SPEC_HELP, formatter_class=HelpFormatter)
    p.add_argument("input", nargs="+",
                   help="image file (TIFF, PNG, JPG, BMP, NPY, NPZ); several files, folders (their image files, "
                   "not recursive), quoted globs such as 'raw/*.tif', TIFF stacks and .zarr stores make a batch")
    p.add_argument("-o", "--output", required=True,
                   help="output file: .tif keeps float32; .png/.jpg/.bmp are 8-bit; .npy as computed. A batch "
                   "writes OUTDIR/<input name>.tif (float32; .zarr for a zarr store): give -o OUTDIR/")
    p.add_argument("--kernel",
                   help="kernel file or spec, e.g. psf.tif, gaussian:2, motion:15,30, shake:21,seed=3 (see below); "
                   "required except for --method crcnet (default: none)")
    p.add_argument("--correlation", action="store_true", help="the kernel file is correlation-oriented: flip it")
    p.add_argument("--method", choices=METHODS, default="mmse", help="deblurring method")
    p.add_argument("--sigma", type=float, default=None,
                   help="MMSE/IRD noise balance in (0, 1] (default: from the image's estimated noise)")
    p.add_argument("--prior", choices=("laplacian",), default=None,
                   help="MMSE smoothness prior (default: none, the plain Wiener filter)")
    p.add_argument("--iterations", type=int, default=None,
                   help="IRD iterations N (default: 100); Richardson-Lucy's largest number of iterations (default: 10)")
    p.add_argument("--tv", type=float, default=0.0,
                   help="Richardson-Lucy total-variation weight, e.g. 0.002 (default: 0, plain Richardson-Lucy)")
    p.add_argument("--tol", type=float, default=None,
                   help="Richardson-Lucy: stop once an iteration changes the image by less than this relative "
                   "amount (default: run all --iterations)")
    p.add_argument("--residues", default="",
                   help="--method ird: also write the residues n and partial sums to OUTPUT_residues.tif and "
                   "OUTPUT_partial_sums.tif, e.g. 0,1,2,5,10 or 0-20 (default: none)")
    p.add_argument("--lam", type=float, default=None,
                   help="hyper-Laplacian data weight > 0 (default: from the image's estimated noise)")
    p.add_argument("--alpha", type=float, default=2 / 3, help="hyper-Laplacian exponent in (0, 2] (default: 2/3)")
    p.add_argument("--model", default=None,
                   help="CRCNet model: a shipped or user model name or a .safetensors file (default: the shipped "
                   "any-kernel model, for any kernel up to 31x31, or any-kernel-gray for a gray image when "
                   "installed; see `crcnet models`)")
    p.add_argument("--force", action="store_true", help="use a CRCNet model trained for another kernel")
    p.add_argument("--noise", type=float, default=None,
                   help="noise std of the image in [0, 1] units, for CRCNet models that take it (default: the "
                   "model card's, else estimated)")
    p.add_argument("--boundary", choices=BOUNDARIES, default=DEFAULT_BOUNDARY,
                   help="how the image is extended beyond its edges before the FFT")
    p.add_argument("--channel-axis", default="auto",
                   help="colour axis: auto (the last axis when it has 3 or 4 entries), none, or an axis number")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N")
    p.add_argument("--overwrite", action="store_true",
                   help="batch: redo outputs that already exist (by default they are skipped, so an interrupted "
                   "batch resumes)")
    p.add_argument("--cluster", default=None,
                   help="batch on a dask.distributed cluster: local:N (N worker processes here) or the address "
                   "of a running scheduler, tcp://HOST:PORT (default: none, files one after another here; needs "
                   'pip install "napari-crcnet[distributed]")')
    p.add_argument("--cluster-timeout", type=float, default=30.0,
                   help="seconds to wait for the --cluster scheduler and its first worker")
    p.set_defaults(run=_deblur)

    p = sub.add_parser("kernel", help="write a generated kernel to a file", epilog=KERNEL_SPEC_HELP,
                       formatter_class=HelpFormatter)
    p.add_argument("spec", help="e.g. gaussian:2, disk:4, motion:15,30, shake:21,seed=3, gaussian3d:1.5,3")
    p.add_argument("-o", "--output", required=True, help="kernel file: .tif, .png (16-bit), .npy, .npz or .mat")
    p.set_defaults(run=_kernel)

    p = sub.add_parser("models", help="list shipped and user CRCNet models", formatter_class=HelpFormatter,
                       description="List the CRCNet models that --model NAME finds: your models folder "
                       "($NAPARI_CRCNET_MODELS, default ~/.napari-crcnet/models; `crcnet train -o NAME` saves "
                       "there), then the shipped ones.")
    p.set_defaults(run=_models)

    p = sub.add_parser("demo", help="blur a sample photo and deblur it with every method",
                       formatter_class=HelpFormatter)
    p.add_argument("-o", "--output", default="demo-output", help="folder for images, figure and table")
    p.add_argument("--size", type=int, default=256, help="side of the centre crop of the photo, in pixels")
    p.add_argument("--no-crcnet", action="store_true", help="skip the CRCNet model")
    p.set_defaults(run=_demo)

    p = sub.add_parser("specialise", help="fine-tune the shipped CRCNet to your kernel in minutes, no data needed",
                       formatter_class=HelpFormatter, epilog=KERNEL_SPEC_HELP,
                       description="Fine-tune the shipped CRCNet to one kernel and noise level for a few minutes, "
                       "on scikit-image's sample photos (or synthetic fluorescence images with --fluorescence), and "
                       "save it in your models folder under the kernel's hash: `crcnet deblur --method crcnet "
                       "--kernel K` (and the Deblur widget) then use it for that kernel with no --model.")
    p.add_argument("--kernel", required=True, help="kernel file or spec, e.g. psf.tif, gaussian:2, shake:21,seed=3")
    p.add_argument("--correlation", action="store_true", help="the kernel file is correlation-oriented: flip it")
    p.add_argument("--noise", type=float, default=0.01, help="noise std of your images in [0, 1] units")
    p.add_argument("--minutes", type=float, default=3.0, help="training time in minutes")
    p.add_argument("--channels", choices=("rgb", "gray"), default="rgb", help="your images: colour or gray")
    p.add_argument("--images", nargs="+", default=None,
                   help="your clear training images (folders or files; default: scikit-image's sample photos)")
    p.add_argument("--fluorescence", action="store_true",
                   help="fluorescence microscopy: synthetic fluorescence content, Poisson noise, the fluorescence "
                   "model as the start (gray)")
    p.add_argument("--base", default=None, help="model to start from (default: the shipped default for the images)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N")
    p.set_defaults(run=_specialise)

    sub.add_parser("train", help="fit a CRCNet to your kernel (crcnet train --help)", add_help=False)
    return parser


def _one_line_warnings(command: str):
    """A ``warnings.showwarning`` that prints ``crcnet COMMAND: warning: ...`` on one line, in the CLI's words."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message).splitlines()[0] if str(message) else category.__name__
        print(f"crcnet {command}: warning: {cli_words(text)}", file=sys.stderr if file is None else file)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crcnet`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        return _train(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._progress import Cancelled

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command)
            return args.run(args)
    except (_Fail, ValueError, FileNotFoundError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        print(f"crcnet {args.command}: error: {cli_words(message)}", file=sys.stderr)
        return EXIT_USAGE
    except (Cancelled, KeyboardInterrupt):
        print(f"crcnet {args.command}: stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
