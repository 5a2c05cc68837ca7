"""Held-out score table of a shipped model vs the classical methods, written into its cards.

Usage::

    python training/evaluate.py NAME [--model PATH] [--limit N] [--no-write]

Test set: Kodak24 (RGB models) or Set12 (gray models), never used for training. Each image's centre
``256 x 256`` crop (smaller where the image is too small) is blurred with the model's kernel as a 'valid'
convolution (the crop plus the kernel radius is blurred and the centre kept, so the blurred border holds
real content, as in a photo) and 1 % Gaussian noise is added with a fixed seed (image index). Methods, each
at its best setting on the whole set (an oracle choice that favours the baselines):

- CRCNet (the model, through ``inference.apply_model``),
- MMSE (Wiener) at the best sigma of a 15-point grid,
- IRD (closed form) at the best N in {10, 30, 100, 300, 1000} and sigma in {1e-4, best MMSE sigma},
- hyper-Laplacian (alpha 2/3) at the best lam in {300, 1000, 3000, 10000}.

PSNR on all channels, SSIM on the Y channel for RGB (``metrics.ssim``), outputs clipped to [0, 1].
Results go into ``metrics.heldout`` of ``src/napari_crcnet/weights/NAME.json`` (and the weights' metadata
copy) and the table into ``training/cards/NAME.md`` (:func:`write_heldout`; an any-kernel model has no one
kernel: ``benchmarks/any_kernel.py --write-card`` fills its cards instead).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_recipe import TRAINING, WEIGHTS, card_markdown, data_root

SIZE = 256
NOISE = 0.01


def test_set(channels: int, limit: int | None = None) -> tuple[str, list[np.ndarray]]:
    """(name, clear images as float (Y, X) or (Y, X, 3) in [0, 1])."""
    from napari_crcnet._arrays import as_float_image
    from napari_crcnet.io import read_image

    if channels == 3:
        name, files = "kodak24", sorted((data_root() / "kodak24").glob("*.png"))
    else:
        name, files = "set12", sorted((data_root() / "set12").glob("*.png"))
    files = files[:limit] if limit else files
    return name, [as_float_image(read_image(f), np.float64) for f in files]


def degrade(image: np.ndarray, kernel: np.ndarray, seed: int, noise: float = NOISE) -> tuple[np.ndarray, np.ndarray]:
    """(clear centre crop, its 'valid' blur + Gaussian noise of std ``noise``, 1 % by default), channel last
    for RGB."""
    import torch

    from napari_crcnet.operators import BlurOperator

    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    h = min(SIZE, image.shape[0] - 2 * ry)
    w = min(SIZE, image.shape[1] - 2 * rx)
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    big = image[y0 - ry : y0 + h + ry, x0 - rx : x0 + w + rx]
    planes = big[None] if big.ndim == 2 else np.moveaxis(big, -1, 0)
    op = BlurOperator(kernel, boundary="periodic", device="cpu", dtype=torch.float64)
    blurred = op.forward(torch.from_numpy(np.ascontiguousarray(planes))).numpy()[:, ry : ry + h, rx : rx + w]
    blurred = blurred + noise * np.random.default_rng(seed).standard_normal(blurred.shape)
    clear = planes[:, ry : ry + h, rx : rx + w]
    if big.ndim == 2:
        return clear[0], blurred[0]
    return np.moveaxis(clear, 0, -1), np.moveaxis(blurred, 0, -1)


def score(pairs, outputs, axis) -> tuple[float, float]:
    from napari_crcnet.metrics import psnr, ssim

    p = [psnr(c, np.clip(o, 0, 1), channel_axis=axis) for (c, _), o in zip(pairs, outputs)]
    s = [ssim(c, np.clip(o, 0, 1), channel_axis=axis) for (c, _), o in zip(pairs, outputs)]
    return float(np.mean(p)), float(np.mean(s))


def run_method(pairs, method: str, setting: str, fn, axis) -> dict:
    """Score ``fn(blurred)`` on every pair: a table row with mean PSNR, SSIM and seconds."""
    start = time.perf_counter()
    outputs = [fn(b) for _, b in pairs]
    p, s = score(pairs, outputs, axis)
    row = {"method": method, "setting": setting, "psnr": round(p, 3), "ssim": round(s, 4),
           "seconds": round(time.perf_counter() - start, 1)}
    print(row, flush=True)
    return row


def classical_rows(pairs, kernel: np.ndarray, axis, richardson_lucy: bool = False) -> tuple[list[dict], dict]:
    """Best row of each classical method over its grid (on the whole set), and the grids.

    MMSE: sigma in 15 log-spaced values 1e-4..0.32; IRD: N in {10, 30, 100, 300, 1000} x sigma in {1e-4,
    MMSE's best}; hyper-Laplacian: lam in {300, 1000, 3000, 10000}; optionally skimage's Richardson-Lucy
    per channel, iterations in {10, 30, 100} (zero-padded 'same' convolution, as users call it).
    """
    from napari_crcnet.deconv import ird, mmse
    from napari_crcnet.hyperlaplacian import hyper_laplacian

    def run(method, setting, fn):
        return run_method(pairs, method, setting, fn, axis)

    mmse_rows = [run("MMSE", f"sigma {s:.3g}", lambda b, s=s: mmse(b, kernel, s, channel_axis=axis, device="cpu"))
                 for s in 10.0 ** np.linspace(-4, -0.5, 15)]
    best_mmse = max(mmse_rows, key=lambda r: r["psnr"])
    sigma_best = float(best_mmse["setting"].split()[1])
    ird_rows = [run("IRD", f"N {n}, sigma {s:.3g}",
                    lambda b, n=n, s=s: ird(b, kernel, s, n, channel_axis=axis, device="cpu"))
                for s in (1e-4, sigma_best) for n in (10, 30, 100, 300, 1000)]
    hl_rows = [run("hyper-Laplacian", f"lam {lam:g}, alpha 2/3",
                   lambda b, lam=lam: hyper_laplacian(b, kernel, lam, channel_axis=axis, device="cpu"))
               for lam in (300, 1000, 3000, 10000)]
    grids = {"mmse": mmse_rows, "ird": ird_rows, "hyper_laplacian": hl_rows}
    if richardson_lucy:
        from skimage.restoration import richardson_lucy as rl

        def rl_image(b, n):
            planes = b[..., None] if axis is None else b
            out = np.stack([rl(np.clip(planes[..., c], 0, None), kernel, num_iter=n, clip=False)
                            for c in range(planes.shape[-1])], axis=-1)
            return out[..., 0] if axis is None else out

        grids["richardson_lucy"] = [run("Richardson-Lucy", f"{n} iterations", lambda b, n=n: rl_image(b, n))
                                    for n in (10, 30, 100)]
    best = [max(rows, key=lambda r: r["psnr"]) for rows in grids.values()]
    return best, grids


def evaluate(name: str, model_path: Path | None = None, limit: int | None = None) -> dict:
    import torch

    from napari_crcnet.inference import apply_model
    from napari_crcnet.models.store import load_model

    model, card = load_model(model_path or (WEIGHTS / f"{name}.safetensors"), device="cpu")
    if card.get("kernel") is None:
        raise SystemExit(f"{name} has no single kernel (an any-kernel model?): use benchmarks/any_kernel.py")
    kernel = np.asarray(card["kernel"], dtype=np.float64)
    channels = model.config.in_channels
    axis = -1 if channels == 3 else None
    set_name, images = test_set(channels, limit)
    pairs = [degrade(im, kernel, seed) for seed, im in enumerate(images)]
    with torch.no_grad():
        table = [run_method(pairs, "CRCNet", f"mmse_sigma {card.get('mmse_sigma', 0):.3g}",
                            lambda b: apply_model(model, card, b, channel_axis=axis, device="cpu"), axis)]
    best, grids = classical_rows(pairs, kernel, axis)
    table += best
    return {
        "set": set_name,
        "protocol": (f"{len(pairs)} images of {set_name}, centre {SIZE}x{SIZE} crops (or smaller), 'valid' blur "
                     f"with the model's kernel + {NOISE:g} Gaussian noise (seed = image index); every method at its "
                     "best setting over the set; PSNR on all channels, SSIM on Y for RGB; outputs clipped to [0, 1]."),
        "table": table,
        "grid": grids,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("--model", type=Path, default=None, help="model file (default: the shipped NAME)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update the cards")
    args = parser.parse_args(argv)
    result = evaluate(args.name, args.model, args.limit)
    if not args.no_write:
        write_heldout(args.model or (WEIGHTS / f"{args.name}.safetensors"), result)
    return 0


def write_heldout(path: Path, result: dict) -> None:
    """Store ``result`` as ``metrics.heldout`` in the card of the model at ``path`` (JSON and weights'
    metadata copy); a shipped model (in the package's weights folder) also gets ``training/cards/NAME.md``."""
    from napari_crcnet.models.store import load_model, save_model

    path = Path(path)
    model, card = load_model(path, device="cpu")
    card.setdefault("metrics", {})["heldout"] = result
    card = save_model(path, model, card)
    written = [str(path.with_suffix(".json"))]
    if path.resolve().parent == WEIGHTS.resolve():
        (TRAINING / "cards").mkdir(parents=True, exist_ok=True)
        (TRAINING / "cards" / f"{card['name']}.md").write_text(card_markdown(card))
        written.append(f"training/cards/{card['name']}.md")
    print(f"wrote metrics.heldout into {' and '.join(written)}")


if __name__ == "__main__":
    raise SystemExit(main())
