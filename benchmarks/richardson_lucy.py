"""Richardson-Lucy: ``nc.richardson_lucy`` against ``skimage.restoration.richardson_lucy``, side by side.

Same data, same number of iterations (30), timed in interleaved rounds (median of ``--repeats``):

- ``2d``: a 512x512 fluorescence-like image (sparse blobs and filaments on a dark background) blurred by a
  Gaussian PSF (sigma 2 px) with Poisson noise (300 photons at intensity 1);
- ``3d``: a 64x256x256 volume of blobs blurred by a 3D Gaussian PSF (sigma 1.5 px in XY, 3 in Z), Poisson.

scikit-image runs as users call it (``clip=False``, its ``filter_epsilon`` default), on float32 input;
ours with its defaults (taper boundary, float32). PSNR against the clear data is reported for both: the
boundaries differ (scikit-image convolves with zero padding, which darkens the borders).

    python benchmarks/richardson_lucy.py [--threads 2] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import markdown_table, run_note, write_results


def fluorescence(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Sparse Gaussian blobs (and, in 2D, a few bright lines) on a dark background, in [0, 1]."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.float32)
    count = int(np.prod(shape) / 400)
    image[tuple(rng.integers(0, n, count) for n in shape)] = rng.uniform(0.5, 1, count)
    if len(shape) == 2:
        for _ in range(12):
            y0, x0, y1, x1 = rng.integers(0, shape[0], 4)
            t = np.linspace(0, 1, 400)
            image[(y0 + t * (y1 - y0)).astype(int) % shape[0], (x0 + t * (x1 - x0)).astype(int) % shape[1]] = 0.7
    image = ndimage.gaussian_filter(image, 1.0)
    return (0.02 + image / image.max()).astype(np.float32) / 1.02


def case(name: str, quick: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clear, blurred, psf) of a case."""
    import napari_crcnet as nc

    if name == "2d":
        shape, psf = ((128, 128) if quick else (512, 512)), nc.gaussian_kernel(2.0)
    else:
        shape, psf = ((32, 64, 64) if quick else (64, 256, 256)), nc.gaussian_psf_3d(1.5, 3.0)
    clear = fluorescence(shape, seed=0)
    blurred = nc.blur(clear, psf, boundary="reflect")
    noisy = np.random.default_rng(1).poisson(np.clip(blurred, 0, None) * 300) / 300
    return clear, noisy.astype(np.float32), psf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median time)")
    parser.add_argument("--quick", action="store_true", help="smoke test: small data, 1 round")
    args = parser.parse_args(argv)
    import torch
    from skimage.restoration import richardson_lucy as skimage_rl

    import napari_crcnet as nc
    from napari_crcnet.metrics import psnr

    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    n_iter = 30
    rows = []
    for name in ("2d", "3d"):
        clear, blurred, psf = case(name, args.quick)
        runs = {"napari-crcnet": lambda b=blurred, k=psf: nc.richardson_lucy(b, k, n_iter, device="cpu"),
                "scikit-image": lambda b=blurred, k=psf: skimage_rl(b, k.astype(np.float32), num_iter=n_iter,
                                                                     clip=False)}
        times: dict[str, list[float]] = {k: [] for k in runs}
        outputs = {}
        for _ in range(repeats):
            for label, run in runs.items():
                start = time.perf_counter()
                outputs[label] = run()
                times[label].append(time.perf_counter() - start)
        ours, theirs = (float(np.median(times[k])) for k in runs)
        rows.append([name, "x".join(map(str, blurred.shape)), ours, theirs, theirs / ours,
                     psnr(clear, np.clip(outputs["napari-crcnet"], 0, 1)),
                     psnr(clear, np.clip(outputs["scikit-image"], 0, 1))])
        print(rows[-1], flush=True)
    header = ["case", "shape", "ours (s)", "scikit-image (s)", "speed-up", "ours PSNR", "scikit-image PSNR"]
    write_results("richardson_lucy" + ("_quick" if args.quick else ""), "Richardson-Lucy against scikit-image",
                  __doc__.split("\n\n", 1)[1].split("    python")[0] + markdown_table(header, rows) + run_note())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
