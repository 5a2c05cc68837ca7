"""Microscopy: 2D C. elegans with a Gaussian PSF, and a 3D volume with a measured PSF.

2D: ``celegans.tif`` (Airyscan confocal, from sdeconv) is taken as the sharp reference, blurred with the
Gaussian PSF sdeconv's tests use (sigma 1.5 px) plus Poisson-Gaussian noise, and restored by MMSE, IRD,
hyper-Laplacian and scikit-image's Richardson-Lucy (best iteration count). PSNR/SSIM against the reference.

3D: RedLionfish's synthetic volume (160^3, blurred with their measured 61x32x32 PSF plus Poisson noise; the
ground truth is not in the snapshot) restored in 3D by MMSE and IRD (one FFT pass each) and by
scikit-image's 3D Richardson-Lucy; wall time for each and a max-intensity-projection figure.

    python benchmarks/microscopy.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import DATA, RESULTS, markdown_table, write_results
from napari_crcnet import deconv, io, kernels
from napari_crcnet.hyperlaplacian import hyper_laplacian
from napari_crcnet.metrics import psnr, ssim


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def best_of(sharp: np.ndarray, run, settings) -> list:
    """[setting, PSNR, SSIM, seconds] of ``run(setting)`` at the setting with the best PSNR."""
    scored = [(psnr(sharp, np.clip(run(s), 0, 1)), s) for s in settings]
    best_psnr, best_setting = max(scored, key=lambda pair: pair[0])
    result, seconds = timed(run, best_setting)
    return [best_setting, best_psnr, ssim(sharp, np.clip(result, 0, 1)), seconds]


def celegans_2d(quick: bool) -> str:
    from skimage.restoration import richardson_lucy

    raw = io.read_image(DATA / "microscopy-sdeconv" / "celegans.tif").astype(np.float64)
    sharp = ((raw - raw.min()) / (raw.max() - raw.min())).astype(np.float32)
    if quick:
        sharp = sharp[:160, :160]
    psf = kernels.gaussian_kernel(1.5, size=13)
    sigmas = np.geomspace(1e-4, 1.0, 9 if quick else 17)
    lams = (100, 300, 1000, 3000, 10000)
    text = ""
    for photons in (2000.0, 200.0):
        rng = np.random.default_rng(0)
        blurred = deconv.blur(sharp, psf, boundary="reflect")
        blurred = rng.poisson(np.clip(blurred, 0, None) * photons) / photons + rng.normal(0, 0.002, blurred.shape)
        blurred = blurred.astype(np.float32)
        rows = [["blurred input", "-", psnr(sharp, blurred), ssim(sharp, blurred), 0.0]]
        for name, run, settings in (
            ("MMSE", lambda s, b=blurred: deconv.mmse(b, psf, s), sigmas),
            ("MMSE + Laplacian prior", lambda s, b=blurred: deconv.mmse(b, psf, s, prior="laplacian"),
             sigmas * 30),
            ("IRD N=50", lambda s, b=blurred: deconv.ird(b, psf, s, 50), sigmas),
            ("hyper-Laplacian", lambda lam, b=blurred: hyper_laplacian(b, psf, lam), lams),
            ("skimage Richardson-Lucy (iterations)",
             lambda n, b=blurred: richardson_lucy(np.clip(b, 0, None), psf, num_iter=n, clip=False),
             (1, 2, 5, 10, 20) if quick else (1, 2, 3, 5, 10, 20, 40)),
        ):
            setting, *scores = best_of(sharp, run, settings)
            rows.append([name, f"{setting:.3g}", *scores])
        text += (
            f"### 2D: C. elegans {sharp.shape[0]}x{sharp.shape[1]}, Gaussian PSF sigma 1.5 px, Poisson noise "
            f"({photons:g} photons at intensity 1) + Gaussian (0.2 %)\n\nBest parameter (sigma, lam or "
            "iterations) by PSNR against the reference; time of one run.\n\n"
            + markdown_table(["method", "parameter", "PSNR (dB)", "SSIM", "time (s)"], rows) + "\n"
        )
    return text + (
        "On this sparse fluorescence image the paper's MMSE (Cx = I, white prior) barely beats the blurred "
        "input: it amplifies the noise of the dark background. The same estimator with the Laplacian prior "
        "(`mmse(..., prior=\"laplacian\")`) is the best method here, ahead of hyper-Laplacian and "
        "Richardson-Lucy, at the cost of one FFT round trip. Use it for microscopy.\n"
    )


def volume_3d(quick: bool) -> str:
    from skimage.restoration import richardson_lucy

    volume = io.read_image(DATA / "microscopy-redlionfish" / "gendata_psfconv_poiss.tif").astype(np.float32) / 255
    psf = io.read_image(DATA / "microscopy-redlionfish" / "PSF_RFI_8bit.tif").astype(np.float64)
    psf = np.clip(psf - np.median(psf), 0, None)  # remove the camera offset around the PSF
    psf = kernels.validate_kernel(psf)
    if quick:
        volume = volume[40:120, 40:120, 40:120]
        psf = kernels.validate_kernel(psf[14:47, 6:27, 6:27])
    rows, images = [], {"input": volume}
    sigma = 1e-3
    for name, run in (
        ("MMSE 3D", lambda: deconv.mmse(volume, psf, sigma)),
        ("IRD 3D, N=100", lambda: deconv.ird(volume, psf, sigma, 100)),
        ("skimage Richardson-Lucy 3D, 10 iterations",
         lambda: richardson_lucy(volume, psf.astype(np.float32), num_iter=10, clip=False)),
    ):
        result, seconds = timed(run)
        images[name] = result
        rows.append([name, seconds])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(3.0 * len(images), 3.2), dpi=90)
    for ax, (name, image) in zip(axes, images.items()):
        ax.imshow(np.clip(image, 0, None).max(axis=1), cmap="gray")
        ax.set_title(f"{name}\n(MIP along Y)", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    figure = "microscopy_3d" + ("_quick" if quick else "") + ".png"
    fig.savefig(RESULTS / figure)
    plt.close(fig)
    shape = "x".join(map(str, volume.shape))
    return (
        f"### 3D: RedLionfish volume {shape}, measured PSF {'x'.join(map(str, psf.shape))}, sigma {sigma}\n\n"
        "No ground truth ships with this volume: compare times and the projections.\n\n"
        + markdown_table(["method", "time (s)"], rows)
        + f"\n![3D projections]({figure})\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="crops: runs in well under a minute")
    args = parser.parse_args()
    body = celegans_2d(args.quick) + "\n" + volume_3d(args.quick)
    write_results("microscopy" + ("_quick" if args.quick else ""), "Microscopy: 2D and 3D", body)


if __name__ == "__main__":
    main()
