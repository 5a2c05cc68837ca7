"""Edge ringing: how each boundary mode handles a real (non-periodic) photo.

A kodak24 photo with strong borders is blurred the way a camera blurs (no wrap-around: scipy-style mirror
convolution, then cropped inside so the border content is real), with 1 % noise, and deconvolved by MMSE
and IRD at a fixed sigma and by hyper-Laplacian at a fixed lam, with each boundary mode. PSNR is reported
on the whole image, on the 24-pixel border band and on the interior; the figure shows the absolute error
maps.

    python benchmarks/edge_ringing.py            # writes benchmarks/results/edge_ringing.md and .png
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import DATA, RESULTS, markdown_table, write_results
from napari_crcnet import deconv, hyperlaplacian, io, kernels
from napari_crcnet.metrics import psnr
from napari_crcnet.operators import BOUNDARIES

BAND = 24


def band_masks(shape: tuple[int, int], band: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the border band and of the interior."""
    border = np.ones(shape, dtype=bool)
    border[band:-band, band:-band] = False
    return border, ~border


def realistic_blur(sharp: np.ndarray, kernel: np.ndarray, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Blur a larger field of view and crop, so the image borders hold real (not wrapped) content."""
    pad = kernel.shape[0]
    blurred = deconv.blur(sharp, kernel, channel_axis=-1, boundary="reflect", noise=noise, seed=seed)
    return sharp[pad:-pad, pad:-pad], blurred[pad:-pad, pad:-pad]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="kodim01.png", help="a kodak24 file name")
    parser.add_argument("--quick", action="store_true", help="smaller image")
    args = parser.parse_args()

    sharp = io.read_image(DATA / "kodak24" / args.image).astype(np.float32) / 255.0
    if args.quick:
        sharp = sharp[:200, :200]
    kernel = kernels.random_motion_kernel(21, seed=4)
    sharp, blurred = realistic_blur(sharp, kernel, 0.01, seed=0)
    border, interior = band_masks(sharp.shape[:2], BAND)
    sigma = deconv.suggest_sigma(0.01)
    lam = hyperlaplacian.suggest_lambda(0.01)

    rows, errors = [], {}
    methods = {
        "MMSE": lambda boundary: deconv.mmse(blurred, kernel, sigma, channel_axis=-1, boundary=boundary),
        "IRD N=100": lambda boundary: deconv.ird(blurred, kernel, sigma, 100, channel_axis=-1, boundary=boundary),
        "hyper-Laplacian": lambda boundary: hyperlaplacian.hyper_laplacian(blurred, kernel, lam, channel_axis=-1,
                                                                          boundary=boundary),
    }
    for method, run in methods.items():
        for boundary in BOUNDARIES:
            result = run(boundary)
            error = np.abs(np.clip(result, 0, 1) - sharp).mean(axis=-1)
            errors[(method, boundary)] = error
            rows.append([
                method, boundary,
                psnr(sharp, np.clip(result, 0, 1), channel_axis=-1),
                psnr(sharp[border], np.clip(result, 0, 1)[border]),
                psnr(sharp[interior], np.clip(result, 0, 1)[interior]),
            ])
    rows.append(["blurred input", "-", psnr(sharp, blurred, channel_axis=-1), psnr(sharp[border], blurred[border]),
                 psnr(sharp[interior], blurred[interior])])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("MMSE", "hyper-Laplacian")
    fig, grid = plt.subplots(len(shown), 1 + len(BOUNDARIES), figsize=(3.2 * (1 + len(BOUNDARIES)), 3.4 * len(shown)),
                             dpi=60)
    for axes, method in zip(grid, shown):
        axes[0].imshow(np.clip(blurred, 0, 1))
        axes[0].set_title("blurred input", fontsize=9)
        for ax, boundary in zip(axes[1:], BOUNDARIES):
            ax.imshow(errors[(method, boundary)], cmap="magma", vmin=0, vmax=0.15)
            ax.set_title(f"{method} |error|, boundary={boundary}", fontsize=9)
        for ax in axes:
            ax.axis("off")
    fig.tight_layout()
    name = "edge_ringing" + ("_quick" if args.quick else "")
    figure = RESULTS / f"{name}.png"
    fig.savefig(figure)
    plt.close(fig)

    body = (
        f"{args.image}{' (200x200 crop)' if args.quick else ''}, random shake kernel 21x21 (seed 4), "
        f"1 % noise, blurred without wrap-around; sigma = suggest_sigma(0.01) = {sigma:.4g}, "
        f"lam = suggest_lambda(0.01) = {lam:.4g}. "
        f"PSNR in dB over the whole image, the {BAND}-pixel border band and the interior.\n\n"
        + markdown_table(["method", "boundary", "PSNR all", "PSNR border", "PSNR interior"], rows)
        + f"\n![error maps]({figure.name})\n"
    )
    write_results(name, "Edge ringing: boundary modes on a real photo", body)


if __name__ == "__main__":
    main()
