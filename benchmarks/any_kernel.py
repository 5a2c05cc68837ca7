"""An any-kernel CRCNet on kernels it never saw, against the classical methods (and per-kernel fits).

Cases (all 1 % Gaussian noise, 'valid' blur of centre 256x256 crops as in ``training/evaluate.py``):

- ``levin-set12``: the 8 Levin et al. 2009 kernels on the 12 Set12 images (gray);
- ``shake-kodak``: 10 new camera-shake kernels ``random_motion_kernel(21, seed)``, seeds 201-210 (not the
  paper-table or shipped ones), on the first 10 Kodak24 images (RGB);
- ``gaussian-celegans``: Gaussian PSFs (sigma 1, 1.5, 2.5 px and an anisotropic 2 x 1 px at 30 degrees) on
  4 crops of the C. elegans image (gray);
- ``paper-kodak``: the 10 kernels of the paper-table benchmark (``results/paper_kernels/``) on the same 10
  Kodak24 crops, so the per-kernel CRCNets that ``paper_table.py`` trained for exactly these kernels and
  pairs (800 iterations from scratch, about 9 minutes each) stand in the table too, read from
  ``results/paper_table/kNN.json``.

Rows, per kernel: MMSE, IRD and hyper-Laplacian at their best setting for that kernel (an oracle that
favours them; ``training/evaluate.py``'s grids), then the any-kernel model with the true noise level and
with the level estimated from the image. An RGB model runs on gray images as three equal channels
(output averaged, ``inference.apply_model``); a gray model runs on RGB channel by channel. With
``--gray-model`` the gray cases also get the rows of that (1-channel) model, which ``crcnet()`` uses for
gray images when it is installed. With
``--fit-minutes M`` the first ``--fit-kernels K`` kernels of each case also get two per-kernel fits of M
minutes: from scratch and started from the any-kernel model (``init``), each scored the same way.

The classical rows depend only on the kernel and the images, so they are kept in
``results/any_kernel_classical.json`` and reused by later runs (``--classical-only`` just fills that
file, with no model needed).

    python benchmarks/any_kernel.py --model any-kernel [--fit-minutes 10 --fit-kernels 2] [--threads 2]
    python benchmarks/any_kernel.py --model any-kernel --write-card   # also the means into its model card
    python benchmarks/any_kernel.py --gray-model any-kernel-gray --write-card   # + the gray model's rows
    python benchmarks/any_kernel.py --classical-only   # the baselines alone, cached for later runs
    python benchmarks/any_kernel.py --quick      # smoke test: a 20-step model trained on the spot
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import DATA, RESULTS, ROOT, markdown_table, write_results

sys.path.insert(0, str(ROOT / "training"))
from evaluate import classical_rows, degrade, run_method, write_heldout
from quality_levin import levin_kernels


def cases(quick: bool) -> dict[str, tuple[list[tuple[str, np.ndarray]], list[np.ndarray], int]]:
    """name -> ([(kernel label, kernel)], clear images in [0, 1], channels)."""
    from napari_crcnet import io, kernels
    from napari_crcnet._arrays import as_float_image

    def load(files):
        return [as_float_image(io.read_image(f), np.float64) for f in files]

    set12 = load(sorted((DATA / "set12").glob("*.png")))
    kodak = load(sorted((DATA / "kodak24").glob("*.png"))[:10])
    worm = as_float_image(io.read_image(DATA / "microscopy-sdeconv" / "celegans.tif"), np.float64)
    worm = (worm - worm.min()) / (worm.max() - worm.min())
    h, w = worm.shape
    worm_crops = [worm[y : y + 300, x : x + 300] for y in (0, h - 300) for x in (0, w - 300)]
    paper_kernels = [(f"paper k{i}", np.load(RESULTS / "paper_kernels" / f"kernel_{i:02d}.npy")) for i in range(1, 11)]
    result = {
        "levin-set12": ([(f"Levin {i + 1}", k) for i, k in enumerate(levin_kernels())], set12, 1),
        "shake-kodak": ([(f"shake seed {s}", kernels.random_motion_kernel(21, seed=s)) for s in range(201, 211)],
                        kodak, 3),
        "gaussian-celegans": ([(f"gaussian {s:g}", kernels.gaussian_kernel(s)) for s in (1.0, 1.5, 2.5)]
                              + [("gaussian 2 x 1, 30 deg", kernels.gaussian_kernel((2.0, 1.0), angle=30))],
                              worm_crops, 1),
        "paper-kodak": (paper_kernels, kodak, 3),
    }
    if quick:
        result = {name: (ks[:1], images[:2], c) for name, (ks, images, c) in result.items()}
    return result


def paper_table_row(label: str, kernel: np.ndarray, n_images: int) -> list[dict]:
    """The per-kernel CRCNet row that ``paper_table.py`` measured for paper-table kernel ``label`` ("paper kN")
    on the same pairs; empty when that kernel is not done or was scored on another number of images."""
    path = RESULTS / "paper_table" / f"k{int(label.split('k')[-1]):02d}.json"
    if not path.exists():
        return []
    result = json.loads(path.read_text())
    saved = np.load(RESULTS / "paper_kernels" / f"kernel_{result['kernel']:02d}.npy")
    if result["test_images"] != n_images or not np.array_equal(saved, kernel):
        return []
    row = next(r for r in result["rows"] if r["method"] == "CRCNet (default)")
    minutes = result["training"]["default"]["minutes"]
    return [{**row, "method": "CRCNet per-kernel (paper table, from scratch)",
             "setting": f"{row['setting']}, {minutes} min, {result['threads']} thread(s)"}]


def model_runner(model, card, channels: int, noise: float | None):
    """``blurred -> restored`` with the model (an RGB model runs on gray images as equal channels)."""
    from napari_crcnet.inference import apply_model

    def run(blurred, kernel):
        axis = -1 if channels == 3 else None
        return apply_model(model, card, blurred, kernel=kernel, channel_axis=axis, device="cpu", noise=noise)

    return run


def cache_key(case: str, label: str, kernel, images) -> str:
    """Which classical rows a cache entry holds: the case, the kernel (label and hash), the image count."""
    from napari_crcnet.models.store import kernel_sha256

    return f"{case}|{label}|{kernel_sha256(kernel)[:12]}|{len(images)}"


def cached_classical_rows(cache: dict, cache_path: Path, key: str, pairs, kernel, axis) -> list[dict]:
    """The best MMSE, IRD and hyper-Laplacian rows for ``pairs`` (``evaluate.classical_rows``), taken from
    ``cache`` (the JSON file at ``cache_path``, read once by the caller) under ``key`` when there, else
    computed, added to ``cache`` and written back."""
    if key not in cache:
        cache[key] = classical_rows(pairs, kernel, axis)[0]
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
        tmp.replace(cache_path)  # atomic: an interrupted run keeps every kernel done so far
    return [dict(row) for row in cache[key]]


def fit(kernel, channels: int, minutes: float, threads: int, init=None):
    """A per-kernel model trained for ``minutes`` (from scratch, or from ``init``); returns (model, card)."""
    from napari_crcnet.training import TrainConfig, train

    test_dir = DATA / "bsds500" / "test"
    images = [DATA / "bsds500" / "train", test_dir] + ([DATA / "train400"] if channels == 1 else [])
    config = TrainConfig(
        kernel=kernel, images=images, val_images=[test_dir / f for f in ("100007.jpg", "101027.jpg")],
        channels=channels, noise=0.01, iterations=10**6, time_limit_s=minutes * 60, val_every=0, seed=0,
        device="cpu", threads=threads, init=init,
    )
    result = train(config)
    return result.model, result.card


def main(argv: list[str] | None = None) -> int:
    import torch

    from napari_crcnet.models.store import load_model, resolve_model_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="any-kernel", help="the any-kernel model (name or file)")
    parser.add_argument("--gray-model", default=None,
                        help="also a gray (1-channel) any-kernel model on the gray cases (name or file; "
                        "with --quick the smoke-test model's exact gray equivalent stands in)")
    parser.add_argument("--fit-minutes", type=float, default=0.0, help="per-kernel fits of this many minutes")
    parser.add_argument("--fit-kernels", type=int, default=2, help="kernels per case that get the fits")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 kernel and 2 images per case, a tiny model")
    parser.add_argument("--write-card", action="store_true",
                        help="store the per-case means in the model's card (metrics.heldout; training/cards too "
                        "for the shipped model)")
    parser.add_argument("--classical-only", action="store_true",
                        help="only compute (and cache) the classical rows; no model needed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cache_path = RESULTS / ("any_kernel_quick_classical.json" if args.quick else "any_kernel_classical.json")
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    model_path, model, card = args.model, None, {}
    if args.quick and not args.classical_only:  # no shipped any-kernel model needed: a tiny one, 20 steps
        from napari_crcnet.training import TrainConfig, train

        model_path = Path(tempfile.mkdtemp()) / "any-quick.safetensors"
        train(TrainConfig(kernel="any", images=DATA / "bsds500" / "train", channels=3, iterations=20, batch=2,
                          crop=32, max_kernel=31, val_every=0, device="cpu", output=model_path,
                          model={"extra_inputs": ["noise"], "features": 3, "n_units": 2, "iu_channels": 8}))
    gray_path = args.gray_model
    if args.quick and gray_path and not args.classical_only:  # the tiny model's exact gray equivalent
        from napari_crcnet.models import save_model
        from napari_crcnet.models.crcnet import colour_to_gray

        quick_model, quick_card = load_model(model_path, device="cpu")
        gray_path = model_path.with_name("any-gray-quick.safetensors")
        save_model(gray_path, colour_to_gray(quick_model), {**quick_card, "name": "any-gray-quick"})
    models = {}  # row label -> (model, card); the gray model runs on the gray cases only
    if not args.classical_only:
        models["any-kernel"] = load_model(model_path, device="cpu")
        if gray_path:
            models["any-kernel-gray"] = load_model(gray_path, device="cpu")
        model, card = models["any-kernel"]

    sections, summary, gray_cases = [], [], set()
    for name, (kernel_list, images, channels) in cases(args.quick).items():
        if channels == 1:
            gray_cases.add(name)
        axis = -1 if channels == 3 else None
        per_kernel, means = [], {}
        for index, (label, kernel) in enumerate(kernel_list):
            pairs = [degrade(im, kernel, seed) for seed, im in enumerate(images)]
            key = cache_key(name, label, kernel, images)
            rows = cached_classical_rows(cache, cache_path, key, pairs, kernel, axis)
            if args.classical_only:
                print(f"classical rows: {key}", flush=True)
                continue
            with torch.no_grad():
                for model_label, (net, net_card) in models.items():
                    if model_label == "any-kernel-gray" and channels != 1:
                        continue
                    for noise_label, noise in (("noise given", 0.01), ("noise estimated", None)):
                        run = model_runner(net, net_card, channels, noise)
                        rows.append(run_method(pairs, f"CRCNet {model_label} ({noise_label})", "-",
                                               lambda b, run=run, k=kernel: run(b, k), axis))
            if name == "paper-kodak":
                rows += paper_table_row(label, kernel, len(images))
            if args.fit_minutes > 0 and index < args.fit_kernels:
                for fit_label, init in (("scratch", None), ("from any-kernel", model_path)):
                    fitted, fitted_card = fit(kernel, channels, args.fit_minutes, args.threads, init)
                    with torch.no_grad():
                        rows.append(run_method(
                            pairs, f"CRCNet per-kernel, {args.fit_minutes:g} min ({fit_label})", "-",
                            lambda b, m=fitted, c=fitted_card, k=kernel, n=channels: model_runner(m, c, n, 0.01)(b, k),
                            axis))
            for row in rows:
                means.setdefault(row["method"], []).append((row["psnr"], row["ssim"]))
                per_kernel.append([label, row["method"], row["setting"], row["psnr"], row["ssim"]])
        if args.classical_only:
            continue
        table = [[method, *np.mean(values, axis=0).tolist(), len(values)] for method, values in means.items()]
        summary += [[name, *row] for row in table]
        sections.append(f"## {name}\n\n" + markdown_table(["kernel", "method", "setting", "PSNR", "SSIM"], per_kernel))
    if args.classical_only:
        return 0
    gray_note = ""
    if gray_path:
        shown = args.gray_model if not args.quick else "its exact gray equivalent"
        gray_note = (f" Gray model (gray cases only): `{shown}` "
                     f"({models['any-kernel-gray'][0].n_parameters:,} parameters).")
    body = (
        f"Model: `{args.model if not args.quick else 'a 20-step smoke-test model'}` "
        f"({model.n_parameters:,} parameters, trained on kernels up to "
        f"{card.get('kernel_family', {}).get('max_kernel', '?')} px).{gray_note} Protocol: see the docstring of "
        "`benchmarks/any_kernel.py`.\n\n## Mean PSNR per case (dB)\n\n"
        + markdown_table(["case", "method", "mean PSNR", "mean SSIM", "kernels"], summary) + "\n"
        + "\n".join(sections)
    )
    write_results("any_kernel" + ("_quick" if args.quick else ""), "Any-kernel CRCNet on unseen kernels", body)
    if args.write_card:  # with --quick: the cards of the temporary smoke-test models
        write_heldout(resolve_model_path(model_path), heldout_result(summary, skip="CRCNet any-kernel-gray"))
        if gray_path:
            gray_summary = [row for row in summary if row[0] in gray_cases]
            write_heldout(resolve_model_path(gray_path), heldout_result(gray_summary, skip="CRCNet any-kernel ("))
    return 0


def heldout_result(summary: list[list], skip: str | None = None) -> dict:
    """The per-case means as a model card's ``metrics.heldout`` (rows: method, setting, psnr, ssim), leaving
    out the methods that start with ``skip`` (the other model's rows)."""
    if skip:
        summary = [row for row in summary if not row[1].startswith(skip)]
    return {
        "set": "unseen kernels: " + ", ".join(dict.fromkeys(case for case, *_ in summary)),
        "protocol": ("benchmarks/any_kernel.py: per case, the mean over its kernels of each method's PSNR (all "
                     "channels) and SSIM (Y for RGB); classical methods at their best setting per kernel, the "
                     "model with the true noise level or with the level estimated from the image; 1 % noise, "
                     "'valid' blur. Full tables: benchmarks/results/any_kernel.md."),
        "table": [{"method": method, "setting": f"{case}, mean of {n} kernels", "psnr": round(psnr, 2),
                   "ssim": round(ssim, 4)} for case, method, psnr, ssim, n in summary],
    }


if __name__ == "__main__":
    raise SystemExit(main())
