"""Time per megapixel of every method on an RGB photo, CPU, measured side by side in one run.

A kodak24 photo resized to 1024x1024 RGB (bilinear; only the timing matters) is blurred with the shipped
model's kernel; each method runs at its default parameters in interleaved rounds; the median seconds are
reported per megapixel of RGB image and as a ratio to MMSE.

    python benchmarks/time_per_megapixel.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from _common import DATA, markdown_table, run_note, write_results
from napari_crcnet import deconv, io
from napari_crcnet.hyperlaplacian import hyper_laplacian
from napari_crcnet.inference import crcnet
from napari_crcnet.models.store import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256, 2 rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch
    from skimage.restoration import richardson_lucy, wiener
    from skimage.transform import resize

    torch.set_num_threads(args.threads)
    size = 256 if args.quick else 1024
    rounds = 2 if args.quick else args.rounds
    photo = io.read_image(DATA / "kodak24" / "kodim05.png").astype(np.float32) / 255
    photo = resize(photo, (size, size, 3), order=1).astype(np.float32)
    model, card = load_model("shake21-rgb", device="cpu")
    kernel = np.asarray(card["kernel"])
    blurred = deconv.blur(photo, kernel, noise=0.01, seed=0, channel_axis=-1)
    sigma = deconv.suggest_sigma(0.01)

    cases = {
        "MMSE (taper)": lambda: deconv.mmse(blurred, kernel, sigma, channel_axis=-1),
        "IRD N=100 (taper)": lambda: deconv.ird(blurred, kernel, sigma, 100, channel_axis=-1),
        "hyper-Laplacian (alpha 2/3)": lambda: hyper_laplacian(blurred, kernel, channel_axis=-1),
        "CRCNet shake21-rgb (tiles 256)": lambda: crcnet(blurred, (model, card), kernel, channel_axis=-1),
        "skimage wiener (per channel)": lambda: np.stack(
            [wiener(blurred[..., c], kernel, sigma, clip=False) for c in range(3)], axis=-1),
        "skimage Richardson-Lucy, 10 iterations": lambda: richardson_lucy(
            np.clip(blurred, 0, None), kernel[..., None], num_iter=10, clip=False),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(rounds + 1):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            if round_:  # round 0 warms caches
                times[name].append(time.perf_counter() - start)
    megapixels = size * size / 1e6
    mmse = statistics.median(times["MMSE (taper)"])
    rows = []
    for name, values in times.items():
        seconds = statistics.median(values)
        rows.append([name, seconds, seconds / megapixels, seconds / mmse])
    body = (
        f"kodim05 resized to {size}x{size} RGB, blurred with the shake21-rgb kernel + 1 % noise; default "
        f"parameters; {args.threads} torch thread(s); median of {rounds} interleaved rounds after a warm-up.\n\n"
        + markdown_table(["method", "seconds", "seconds per RGB megapixel", "x MMSE"], rows)
        + run_note()
    )
    write_results("time_per_megapixel" + ("_quick" if args.quick else ""), "Time per megapixel, CPU", body)


if __name__ == "__main__":
    main()
