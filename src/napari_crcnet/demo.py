"""``crcnet demo``: blur a sample photo with a shipped kernel, deblur it with every method, compare.

The photo is scikit-image's astronaut (ships with scikit-image, works offline). The kernel is the one the
shipped RGB CRCNet model was trained for (its model card holds it), so every method, the network included,
is scored on the same problem: 1 % Gaussian noise, default parameters, as a newcomer would run them.
Writes ``blurred.png``, one PNG per method, ``kernel.png``, ``comparison.png`` and ``results.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEMO_NOISE = 0.01
DEMO_SEED = 0
FALLBACK_KERNEL_SEED = 1


def demo_problem(size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict | None]:
    """The demo's (sharp, blurred, kernel, model card or None): astronaut centre crop, shipped kernel, 1% noise."""
    from skimage import data

    from .deconv import blur
    from .kernels import random_motion_kernel
    from .models.store import list_models

    photo = data.astronaut().astype(np.float32) / 255.0
    if not 32 <= size <= min(photo.shape[:2]):
        raise ValueError(f"--size must be between 32 and {min(photo.shape[:2])} pixels, not {size}")
    top, left = (photo.shape[0] - size) // 2, (photo.shape[1] - size) // 2
    sharp = photo[top : top + size, left : left + size]
    # A per-kernel RGB model brings its own kernel and noise level: the demo deblurs that problem.
    cards = [c for c in list_models() if c.get("config", {}).get("in_channels") == 3 and c.get("kernel") is not None]
    card = cards[0] if cards else None
    kernel = np.asarray(card["kernel"]) if card else random_motion_kernel(21, seed=FALLBACK_KERNEL_SEED)
    noise = float(card.get("noise", DEMO_NOISE)) if card else DEMO_NOISE
    blurred = blur(sharp, kernel, noise=noise, seed=DEMO_SEED, channel_axis=-1, boundary="reflect")
    return sharp, np.clip(blurred, 0, 1), kernel, card


def run_demo(
    output: Path, size: int = 256, use_crcnet: bool = True, progress: Callable[[str], None] | None = print
) -> list[dict]:
    """Run the demo and write its files to ``output``; returns one row per method (name, PSNR, SSIM, seconds)."""
    from . import deconv, io
    from .hyperlaplacian import hyper_laplacian
    from .metrics import psnr, ssim

    say = progress or (lambda _message: None)
    output.mkdir(parents=True, exist_ok=True)
    sharp, blurred, kernel, card = demo_problem(size)
    methods: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("MMSE", lambda: deconv.mmse(blurred, kernel, channel_axis=-1)),
        ("IRD (N=100)", lambda: deconv.ird(blurred, kernel, n_iter=100, channel_axis=-1)),
        ("hyper-Laplacian", lambda: hyper_laplacian(blurred, kernel, channel_axis=-1)),
    ]
    if use_crcnet:
        methods += _crcnet_methods(blurred, kernel, card, say)

    rows = [{"method": "blurred", "image": blurred, "seconds": 0.0}]
    for name, run in methods:
        say(f"deblurring with {name} ...")
        start = time.perf_counter()
        result = np.clip(run(), 0, 1)
        rows.append({"method": name, "image": result, "seconds": time.perf_counter() - start})
    for row in rows:
        row["psnr"] = psnr(sharp, row["image"], channel_axis=-1)
        row["ssim"] = ssim(sharp, row["image"], channel_axis=-1)
        name = row["method"]
        slug = (name.replace(" (", "-").rstrip(")") if name.startswith("CRCNet") else name.split(" (")[0])
        slug = slug.lower().replace(" ", "-")  # crcnet-any-kernel.png, ird.png, ...
        io.write_image(output / f"{slug}.png", row["image"])
    io.write_image(output / "sharp.png", sharp)
    io.write_image(output / "kernel.png", kernel / kernel.max())

    lines = [
        f"Demo: astronaut {size}x{size}, kernel {kernel.shape[0]}x{kernel.shape[1]}, noise {DEMO_NOISE:.0%}",
        "",
        "| method | PSNR (dB) | SSIM (Y) | time (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.2f} |" for r in rows]
    (output / "results.md").write_text("\n".join(lines) + "\n")
    _comparison_figure(output / "comparison.png", sharp, kernel, rows)
    say("\n".join(lines))
    say(f"wrote {output}/comparison.png and one PNG per method")
    return [{k: v for k, v in r.items() if k != "image"} for r in rows]


def _crcnet_methods(blurred: np.ndarray, kernel: np.ndarray, card: dict | None, say: Callable[[str], None]):
    """The demo's CRCNet rows: the shipped per-kernel model for its kernel (``card``), and the model for any
    kernel, given the demo's kernel and noise level with no training for them; each only when installed."""
    from .inference import crcnet
    from .models.store import DEFAULT_MODEL, resolve_model_path

    methods = []
    if card is not None:
        methods.append((f"CRCNet ({card['name']})", lambda: crcnet(blurred, card["path"], kernel, channel_axis=-1)))
    else:
        say("no shipped per-kernel RGB CRCNet model found: skipping it")
    try:
        resolve_model_path(DEFAULT_MODEL)
    except FileNotFoundError:
        say(f"no {DEFAULT_MODEL} model found: skipping it")
    else:
        noise = float(card["noise"]) if card is not None else DEMO_NOISE
        methods.append((f"CRCNet ({DEFAULT_MODEL})",
                        lambda: crcnet(blurred, DEFAULT_MODEL, kernel, channel_axis=-1, noise=noise)))
    return methods


def _comparison_figure(path: Path, sharp: np.ndarray, kernel: np.ndarray, rows: list[dict]) -> None:
    """Side-by-side panels: sharp, each result with its PSNR/SSIM, and the kernel inset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("sharp", sharp, "")] + [
        (r["method"], r["image"], f"{r['psnr']:.2f} dB / {r['ssim']:.3f}") for r in rows
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), dpi=100)
    for ax, (title, image, subtitle) in zip(axes, panels):
        ax.imshow(np.clip(image, 0, 1))
        ax.set_title(f"{title}\n{subtitle}", fontsize=8)
        ax.axis("off")
    inset = axes[1].inset_axes([0.0, 0.0, 0.3, 0.3])
    inset.imshow(kernel, cmap="gray")
    inset.set_xticks([])
    inset.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
