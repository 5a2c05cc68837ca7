"""Microscopy: 2D C. elegans with a Gaussian PSF, and a 3D volume with a measured PSF.

2D: ``celegans.tif`` (Airyscan confocal, from sdeconv) is taken as the sharp reference, blurred with
Gaussian PSFs (sigma 1.5 px, the one sdeconv's tests use, and 2.5 px) plus Poisson-Gaussian noise at two
photon levels, and restored by every method at its best setting (MMSE, with and without the Laplacian
prior, IRD, hyper-Laplacian, ``nc.richardson_lucy`` plain and with TV, scikit-image's Richardson-Lucy) and
at its defaults (noise estimated; Richardson-Lucy 30 iterations), and by CRCNet models (noise estimated):
the default gray model and any given with ``--model``. PSNR/SSIM against the reference; a figure of the
defaults on the hardest case.

3D: RedLionfish's synthetic volume (160^3, blurred with their measured 61x32x32 PSF plus Poisson noise; the
ground truth is not in the snapshot) restored in 3D by MMSE and IRD (one FFT pass each), by
``nc.richardson_lucy`` and by scikit-image's 3D Richardson-Lucy; wall time for each and a
max-intensity-projection figure.

    python benchmarks/microscopy.py [--model NAME_OR_PATH ...] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import napari_crcnet as nc
from _common import DATA, RESULTS, markdown_table, write_results
from napari_crcnet import deconv, io, kernels
from napari_crcnet.hyperlaplacian import hyper_laplacian
from napari_crcnet.metrics import psnr, ssim
from napari_crcnet.richardsonlucy import richardson_lucy as our_richardson_lucy


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


def celegans_2d(quick: bool, models: list[str]) -> str:
    raw = io.read_image(DATA / "microscopy-sdeconv" / "celegans.tif").astype(np.float64)
    sharp = ((raw - raw.min()) / (raw.max() - raw.min())).astype(np.float32)
    if quick:
        sharp = sharp[:160, :160]
    text, hardest = "", None
    for psf_sigma in (1.5, 2.5):
        psf = kernels.gaussian_kernel(psf_sigma)
        for photons in (2000.0, 200.0):
            rng = np.random.default_rng(0)
            blurred = deconv.blur(sharp, psf, boundary="reflect")
            blurred = rng.poisson(np.clip(blurred, 0, None) * photons) / photons + rng.normal(0, 0.002, blurred.shape)
            rows, outputs = celegans_case(sharp, blurred.astype(np.float32), psf, models, quick)
            if psf_sigma == 2.5 and photons == 200.0:
                hardest = {"blurred": blurred, **outputs, "sharp": sharp}
            text += (
                f"### 2D: C. elegans {sharp.shape[0]}x{sharp.shape[1]}, Gaussian PSF sigma {psf_sigma:g} px, "
                f"Poisson noise ({photons:g} photons at intensity 1) + Gaussian (0.2 %)\n\nBest parameter "
                "(sigma, lam or iterations) by PSNR against the reference, then every method at its defaults "
                "(noise estimated); time of one run.\n\n"
                + markdown_table(["method", "parameter", "PSNR (dB)", "SSIM", "time (s)"], rows) + "\n"
            )
    figure = _figure(hardest, "microscopy_2d" + ("_quick" if quick else "") + ".png")
    return text + f"Defaults on the hardest case (sigma 2.5 px, 200 photons): ![2D]({figure})\n"


def celegans_case(sharp, blurred, psf, models: list[str], quick: bool) -> tuple[list[list], dict[str, np.ndarray]]:
    """Rows (every method at its best setting, then at its defaults) and the outputs at the defaults."""
    from skimage.restoration import richardson_lucy

    sigmas = np.geomspace(1e-4, 1.0, 9 if quick else 17)
    iterations = (1, 2, 5, 10, 20) if quick else (1, 2, 3, 5, 10, 20, 40)
    rows = [["blurred input", "-", psnr(sharp, blurred), ssim(sharp, blurred), 0.0]]
    for name, run, settings in (
        ("MMSE", lambda s: deconv.mmse(blurred, psf, s), sigmas),
        ("MMSE + Laplacian prior", lambda s: deconv.mmse(blurred, psf, s, prior="laplacian"), sigmas * 30),
        ("IRD N=50", lambda s: deconv.ird(blurred, psf, s, 50), sigmas),
        ("hyper-Laplacian", lambda lam: hyper_laplacian(blurred, psf, lam), (100, 300, 1000, 3000, 10000)),
        ("Richardson-Lucy (iterations)", lambda n: our_richardson_lucy(blurred, psf, n), iterations),
        ("Richardson-Lucy + TV 0.005 (iterations)", lambda n: our_richardson_lucy(blurred, psf, n, tv=0.005),
         iterations),
        ("skimage Richardson-Lucy (iterations)",
         lambda n: richardson_lucy(np.clip(blurred, 0, None), psf, num_iter=n, clip=False), iterations),
    ):
        setting, *scores = best_of(sharp, run, settings)
        rows.append([f"{name}, best", f"{setting:.3g}", *scores])
    defaults = {"MMSE, defaults": lambda: nc.mmse(blurred, psf),
                "hyper-Laplacian, defaults": lambda: nc.hyper_laplacian(blurred, psf),
                "Richardson-Lucy, defaults (10)": lambda: nc.richardson_lucy(blurred, psf)}
    defaults.update({f"CRCNet {m}": (lambda m=m: nc.crcnet(blurred, m, psf)) for m in models})
    outputs = {}
    for name, run in defaults.items():
        outputs[name], seconds = timed(run)
        rows.append([name, "-", psnr(sharp, np.clip(outputs[name], 0, 1)), ssim(sharp, np.clip(outputs[name], 0, 1)),
                     seconds])
    return rows, outputs


def _figure(panels: dict[str, np.ndarray], name: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.8), dpi=90)
    for ax, (label, image) in zip(axes, panels.items()):
        ax.imshow(np.clip(image, 0, 1), cmap="magma", vmin=0, vmax=0.6)
        ax.set_title(label, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(RESULTS / name)
    plt.close(fig)
    return name


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
        ("Richardson-Lucy 3D (ours), 10 iterations", lambda: our_richardson_lucy(volume, psf, 10)),
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
    parser.add_argument("--model", action="append", default=None,
                        help="CRCNet model name or path (repeatable; default: the shipped gray default)")
    args = parser.parse_args()
    from napari_crcnet.models.store import default_model

    body = celegans_2d(args.quick, args.model or [default_model(1)]) + "\n" + volume_3d(args.quick)
    write_results("microscopy" + ("_quick" if args.quick else ""), "Microscopy: 2D and 3D", body)


if __name__ == "__main__":
    main()
