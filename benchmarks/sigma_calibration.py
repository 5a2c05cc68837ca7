"""Fit the noise-aware defaults: MMSE ``sigma`` (``suggest_sigma``) and hyper-Laplacian ``lam`` (``suggest_lambda``).

For each BSDS500 training image (gray, centre crop), random kernel (Chakrabarti-style shake and Gaussian)
and noise level, the best-PSNR MMSE sigma (taper boundary, ``prior=None``) is found by a log-grid search
refined by golden section, and the best hyper-Laplacian lam (alpha = 2/3) by a log-grid search. The rules
``sigma = c * noise^p`` and ``lam = c' * noise^-p'`` are least-squares fits in log-log space to the median
best value per noise level. The table also reports how many dB the fitted rule loses against the best
parameter, with the true noise and with the estimated noise (``estimate_noise``), which is what the
defaults use.

    nice -n 5 python benchmarks/sigma_calibration.py [--quick]   # writes results/sigma_calibration.md
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from _common import DATA, markdown_table, run_note, write_results
from napari_crcnet import deconv, hyperlaplacian, io, kernels
from napari_crcnet.metrics import psnr


def gray_crops(count: int, size: int) -> list[np.ndarray]:
    files = sorted((DATA / "bsds500" / "train").glob("*.jpg"))[:: max(1, 200 // count)][:count]
    crops = []
    for path in files:
        rgb = io.read_image(path).astype(np.float64) / 255.0
        gray = rgb @ np.array([0.299, 0.587, 0.114])
        h, w = gray.shape
        crops.append(gray[(h - size) // 2 : (h + size) // 2, (w - size) // 2 : (w + size) // 2])
    return crops


def random_kernels(count: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    out = []
    for i in range(count):
        if i % 2 == 0:
            seed = int(rng.integers(1 << 30))
            out.append((f"shake(seed={seed})", kernels.random_motion_kernel(21, seed=seed)))
        else:
            s = float(rng.uniform(1.0, 3.0))
            out.append((f"gaussian({s:.2f})", kernels.gaussian_kernel(s)))
    return out


def score(x: np.ndarray, y: np.ndarray) -> float:
    return psnr(x, np.clip(y, 0, 1))


def best_sigma(x: np.ndarray, b: np.ndarray, k: np.ndarray) -> tuple[float, float]:
    """Best-PSNR MMSE sigma: log grid, then golden-section search around the best grid point."""
    grid = np.geomspace(1e-5, 1.0, 26)
    values = [score(x, deconv.mmse(b, k, s)) for s in grid]
    i = int(np.argmax(values))
    lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])
    ratio = (math.sqrt(5) - 1) / 2

    def f(t: float) -> float:
        return score(x, deconv.mmse(b, k, math.exp(t)))

    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(10):
        if fc > fd:
            hi, d, fd = d, c, fc
            c = hi - ratio * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + ratio * (hi - lo)
            fd = f(d)
    t = c if fc > fd else d
    return math.exp(t), max(fc, fd, values[i])


def best_lambda(x: np.ndarray, b: np.ndarray, k: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    values = [score(x, hyperlaplacian.hyper_laplacian(b, k, lam)) for lam in grid]
    i = int(np.argmax(values))
    return float(grid[i]), float(values[i])


def fit_power_law(noise: np.ndarray, value: np.ndarray) -> tuple[float, float]:
    """``value = c * noise^p`` by least squares on logs; returns ``(c, p)``."""
    p, log_c = np.polyfit(np.log(noise), np.log(value), 1)
    return float(math.exp(log_c)), float(p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 images, 2 kernels, 3 noise levels")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    n_images, n_kernels, size = (2, 2, 128) if args.quick else (6, 4, 192)
    noises = [0.005, 0.01, 0.03] if args.quick else [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08]
    lam_grid = np.geomspace(30, 1e5, 8 if args.quick else 15)
    images = gray_crops(n_images, size)
    kernel_list = random_kernels(n_kernels, rng)

    records = []
    for noise in noises:
        for j, x in enumerate(images):
            for name, k in kernel_list:
                b = deconv.blur(x, k, noise=noise, seed=int(rng.integers(1 << 30)), dtype=np.float64)
                sigma, sigma_psnr = best_sigma(x, b, k)
                lam, lam_psnr = best_lambda(x, b, k, lam_grid)
                records.append(
                    {"noise": noise, "image": j, "kernel": name, "b": b, "x": x, "k": k, "sigma": sigma,
                     "sigma_psnr": sigma_psnr, "lam": lam, "lam_psnr": lam_psnr,
                     "estimate": deconv.estimate_noise(b)}
                )
        print(f"noise {noise}: done", flush=True)

    noise_arr = np.array(noises)
    med_sigma = np.array([np.median([r["sigma"] for r in records if r["noise"] == n]) for n in noises])
    med_lam = np.array([np.median([r["lam"] for r in records if r["noise"] == n]) for n in noises])
    c_sigma, p_sigma = fit_power_law(noise_arr, med_sigma)
    c_lam, p_lam = fit_power_law(noise_arr, med_lam)

    def rule_sigma(n: float) -> float:
        return min(max(c_sigma * n**p_sigma, 1e-4), 0.5)

    def rule_lam(n: float) -> float:
        return min(max(c_lam * n**p_lam, 10.0), 1e5)

    rows = []
    for i, n in enumerate(noises):
        group = [r for r in records if r["noise"] == n]
        loss_true = [r["sigma_psnr"] - score(r["x"], deconv.mmse(r["b"], r["k"], rule_sigma(n))) for r in group]
        loss_est = [
            r["sigma_psnr"] - score(r["x"], deconv.mmse(r["b"], r["k"], rule_sigma(r["estimate"]))) for r in group
        ]
        lam_loss = [
            r["lam_psnr"] - score(r["x"], hyperlaplacian.hyper_laplacian(r["b"], r["k"], rule_lam(r["estimate"])))
            for r in group
        ]
        rows.append([
            n, float(np.median([r["estimate"] for r in group])),
            float(med_sigma[i]), float(np.min([r["sigma"] for r in group])), float(np.max([r["sigma"] for r in group])),
            rule_sigma(n), float(np.mean(loss_true)), float(np.mean(loss_est)),
            float(np.mean([r["sigma_psnr"] for r in group])),
            float(med_lam[i]), rule_lam(n), float(np.mean(lam_loss)), float(np.mean([r["lam_psnr"] for r in group])),
        ])
    header = [
        "noise", "estimated (median)", "best sigma (median)", "min", "max", "rule sigma", "MMSE loss dB (true noise)",
        "MMSE loss dB (estimated)", "MMSE best PSNR", "best lam (median)", "rule lam", "HL loss dB (estimated)",
        "HL best PSNR",
    ]
    body = (
        f"{n_images} BSDS500 train images (gray, {size}x{size} centre crops), kernels: "
        f"{', '.join(name for name, _ in kernel_list)}; reflect-boundary blur plus Gaussian noise; deconvolution "
        "with the taper boundary. Best MMSE sigma: 26-point log grid on [1e-5, 1] then 10 golden-section steps; "
        f"best hyper-Laplacian lam (alpha 2/3): {len(lam_grid)}-point log grid on [30, 1e5]. PSNR of the clipped "
        "result on the whole image.\n\n"
        f"Fit (log-log least squares on the medians): **sigma = {c_sigma:.4g} * noise^{p_sigma:.4f}** "
        f"(clipped to [1e-4, 0.5]), **lam = {c_lam:.4g} * noise^{p_lam:.4f}** (clipped to [10, 1e5]).\n\n"
        "'loss' = mean PSNR lost against the per-image best parameter when the rule is fed the true or the "
        "estimated noise level.\n\n" + markdown_table(header, rows)
    )
    body += run_note()
    write_results("sigma_calibration" + ("_quick" if args.quick else ""), "Calibration of suggest_sigma and "
                  "suggest_lambda", body)


if __name__ == "__main__":
    main()
