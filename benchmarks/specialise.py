"""Specialising the shipped model to one kernel: the gain against the time spent.

For each kernel, ``nc.specialise`` (scikit-image's sample photos only, the kernel exact, 1 % noise) runs for
each budget of ``--minutes`` (each from the shipped model, separately), and the result is scored on 10
centre crops never trained on ('valid' blur with that kernel + 1 % noise) against hyper-Laplacian and MMSE
at their defaults and the shipped model: Kodak24 for an RGB shake kernel, Set12 for Levin's kernel 2 (gray,
the gray model specialised), whose two real captures in ``levin09-real`` are scored too: there the blur
model is not exact. CRCNet models run as by default: the shipped ones with the noise estimated, the
specialised ones with their card's (1 %).

    python benchmarks/specialise.py [--minutes 1 3 10] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

import numpy as np

from _common import DATA, ROOT, markdown_table, run_note, write_results

sys.path.insert(0, str(ROOT / "training"))
from evaluate import degrade
from real_data import levin_kernels, levin_real_case


def test_pairs(kernel: np.ndarray, channels: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Kodak24 (RGB) or Set12 (gray) centre crops, 'valid' blur by ``kernel`` + 1 % noise."""
    from napari_crcnet import io
    from napari_crcnet._arrays import as_float_image

    folder = DATA / ("kodak24" if channels == 3 else "set12")
    files = sorted(folder.glob("*.png"))[:count]
    return [degrade(as_float_image(io.read_image(f), np.float64), kernel, seed=i) for i, f in enumerate(files)]


def mean_psnr(pairs, kernel, run, axis) -> float:
    from napari_crcnet.metrics import psnr

    return float(np.mean([psnr(c, np.clip(run(b, kernel, axis), 0, 1), channel_axis=axis) for c, b in pairs]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0, 10.0], help="budgets")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="one 0.1-minute budget, 2 images")
    args = parser.parse_args(argv)
    import torch

    import napari_crcnet as nc
    from napari_crcnet.specialisation import specialised_path

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    os.environ["NAPARI_CRCNET_MODELS"] = tempfile.mkdtemp(prefix="specialise-bench-")  # leave the user's alone
    budgets = [0.1] if args.quick else args.minutes
    count = 2 if args.quick else 10
    levin = levin_real_case()
    cases = {"shake:21,seed=201": (nc.kernel_from_spec("shake:21,seed=201"), 3),
             "Levin kernel 2": (levin_kernels()[1], 1)}
    rows = []
    for label, (kernel, channels) in cases.items():
        axis = -1 if channels == 3 else None
        pairs = test_pairs(kernel, channels, count)
        real = [item for item in levin.items if item[0].endswith("kernel2")] if channels == 1 else []
        runs = {"hyper-Laplacian (defaults)": lambda b, k, a: nc.hyper_laplacian(b, k, channel_axis=a),
                "MMSE (defaults)": lambda b, k, a: nc.mmse(b, k, channel_axis=a),
                "shipped model": lambda b, k, a: nc.crcnet(b, "any-kernel" if a is not None else "any-kernel-gray", k,
                                                           channel_axis=a)}
        for minutes in budgets:  # each budget from the shipped model, its file kept apart (same kernel: same path)
            specialised_path(kernel, channels).unlink(missing_ok=True)
            result = nc.specialise(kernel, noise=0.01, channels=channels, minutes=minutes, device="cpu")
            kept = result.model_path.with_name(f"budget-{minutes:g}-{result.model_path.name}")
            result.model_path.replace(kept)
            result.model_path.with_suffix(".json").replace(kept.with_suffix(".json"))
            runs[f"specialised {minutes:g} min ({result.steps} steps)"] = (
                lambda b, k, a, p=kept: nc.crcnet(b, p, k, channel_axis=a))
        for name, run in runs.items():
            real_score = float(np.mean([levin.score(c, run(b, k, None)) for _, c, b, k in real])) if real else None
            rows.append([label, name, mean_psnr(pairs, kernel, run, axis), real_score])
            print(rows[-1], flush=True)
    header = ["kernel", "method", "Kodak (RGB) / Set12 (gray) PSNR (dB)", "levin09-real, its 2 captures (dB)"]
    write_results("specialise" + ("_quick" if args.quick else ""), "Specialising to one kernel: gain against time",
                  __doc__.split("\n\n", 1)[1].split("    python")[0] + markdown_table(header, rows) + run_note())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
