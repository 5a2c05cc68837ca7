"""CRCNet on the CPU: ``nc.crcnet`` (fast=True: channels-last + bf16 where native) against one eager fp32 forward.

Speed (interleaved rounds, median): a 1024x1024 RGB photo (Kodak kodim01, reflect-padded), blurred by a
21x21 shake kernel with 1 % noise, the shipped default model (``any-kernel``):

- ``eager fp32``: the network's input (MMSE estimate + noise map, built as inference builds it) through one
  plain float32 forward of the whole image under ``torch.inference_mode`` (the reference of issue 17);
- ``crcnet fast=False``: the whole ``nc.crcnet`` call in plain float32 (tiles of 256 px);
- ``crcnet fast=True``: the default (channels-last; bfloat16 autocast when ``cpu_has_bf16()``).

Quality: the PSNR of ``fast=True`` minus that of ``fast=False`` on real data, per image: levin09-real
(16 real captures, the gray default model) and the kernel-error Kodak case (12 images, RGB), from
``real_data.py``.

    python benchmarks/cpu_speedup.py [--threads 2] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from _common import DATA, markdown_table, run_note, write_results


def photo(size: int) -> np.ndarray:
    from napari_crcnet import io
    from napari_crcnet._arrays import as_float_image

    image = as_float_image(io.read_image(DATA / "kodak24" / "kodim01.png"), np.float32)
    pad = [(0, max(0, size - image.shape[0])), (0, max(0, size - image.shape[1])), (0, 0)]
    return np.pad(image, pad, mode="reflect")[:size, :size]


def eager_forward(model, card, blurred: np.ndarray, kernel: np.ndarray, noise: float):
    """A callable running one plain fp32 forward of the whole image on the precomputed network input."""
    import torch

    from napari_crcnet.deconv import mmse, suggest_sigma
    from napari_crcnet.models.crcnet import network_input

    sigma = suggest_sigma(noise, floor=float(card.get("mmse_noise_floor") or 0.0))
    estimate = np.moveaxis(mmse(blurred, kernel, sigma, channel_axis=-1), -1, 0)[None].astype(np.float32)
    x = torch.from_numpy(network_input(model.config, estimate, None, noise)).contiguous()

    def run():
        with torch.inference_mode():
            return model(x)

    return run


def quality_rows(quick: bool) -> tuple[list[list], str]:
    import napari_crcnet as nc
    from real_data import kernel_error_cases, levin_real_case

    rows, notes = [], []
    for case in (levin_real_case(), kernel_error_cases()[2]):
        items = case.items[:2] if quick else case.items
        delta = []
        for _, clear, blurred, kernel in items:
            scores = [case.score(clear, nc.crcnet(blurred, kernel=kernel, channel_axis=case.axis, device="cpu",
                                                  fast=fast)) for fast in (False, True)]
            delta.append(scores[1] - scores[0])
        rows.append([case.name, len(items), float(np.mean(delta)), float(np.max(np.abs(delta)))])
        notes.append(f"{case.name}: " + ", ".join(f"{d:+.3f}" for d in delta))
    return rows, "\n".join(f"- {n}" for n in notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true", help="256 px, 1 round, 2 images per quality case")
    args = parser.parse_args(argv)
    import torch

    import napari_crcnet as nc
    from napari_crcnet.inference import cpu_has_bf16
    from napari_crcnet.models.store import load_model

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    size, repeats = (256, 1) if args.quick else (1024, args.repeats)
    kernel = nc.random_motion_kernel(21, seed=3)
    blurred = nc.blur(photo(size), kernel, noise=0.01, seed=0, channel_axis=-1, boundary="reflect")
    model, card = load_model("any-kernel", device="cpu")
    runs = {
        "eager fp32 (one forward, whole image)": eager_forward(model, card, blurred, kernel, 0.01),
        "crcnet fast=False": lambda: nc.crcnet(blurred, (model, card), kernel, channel_axis=-1, noise=0.01,
                                               device="cpu", fast=False),
        "crcnet fast=True": lambda: nc.crcnet(blurred, (model, card), kernel, channel_axis=-1, noise=0.01,
                                              device="cpu", fast=True),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for label, run in runs.items():
            start = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - start)
    fast = float(np.median(times["crcnet fast=True"]))
    speed = [[label, float(np.median(t)), float(np.median(t)) / fast] for label, t in times.items()]
    quality, per_image = quality_rows(args.quick)
    body = (__doc__.split("\n\n", 1)[1].split("    python")[0]
            + f"CPU computes bf16 natively (cpu_has_bf16): {cpu_has_bf16()}; {size}x{size} RGB, {args.threads} "
            f"thread(s), {repeats} round(s).\n\n"
            + markdown_table(["variant", "median time (s)", "time / crcnet fast=True"], speed)
            + "\nPSNR change of fast=True against fast=False (dB):\n\n"
            + markdown_table(["case", "images", "mean change", "largest |change|"], quality)
            + "\nPer image:\n\n" + per_image + "\n" + run_note())
    write_results("cpu_speedup" + ("_quick" if args.quick else ""), "CRCNet CPU speed-up and its PSNR cost", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
