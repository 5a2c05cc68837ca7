"""CRCNet inference speed on the CPU (fp32 vs channels_last vs bfloat16) and peak memory of tiled inference.

What it measures
----------------
1. Speed: :func:`napari_crcnet.inference.apply_model` (default tiles of 256 px, overlap 24) on an RGB
   photo (a Kodak crop, reflect-padded to 1024x1024; a synthetic image when the data is absent) at
   256x256 and 1024x1024, for each way of running the network:

   * ``fp32``: plain float32, contiguous (NCHW) tensors (``fast=False``);
   * ``channels_last``: tiles and weights in channels-last (NHWC) memory format (``fast=True``);
   * ``bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)``;
   * ``bf16+channels_last``;
   * ``channels_last, tile 512`` (1024 px only): larger tiles, fewer overlapping seams.

   (An earlier run also timed channels-last tiles with NCHW weights: no faster than fp32.)

   Variants are timed interleaved (round-robin, so machine load drifts hit all alike); the table gives
   the median time, the median of the per-round ratios to ``fp32`` and the max abs difference of the
   output from ``fp32`` (image in [0, 1] units). ``fast=True`` enables only what stays within 1e-3.
2. Peak memory: a fresh subprocess runs tiled inference of the default configuration (MMSE input,
   21x21 kernel) on a uint8 RGB image of 4096x4096 (2048 with ``--quick``) and reports its peak resident
   set size (``VmHWM`` of ``/proc/self/status``; ``ru_maxrss`` would include the parent's, inherited across
   fork+exec), next to the peak before the image existed (imports, model, warm-up).

The network is the paper configuration with random weights unless ``--model`` names a trained one
(speed does not depend on the weights; the differences do a little).

Usage::

    python benchmarks/inference_speed.py            # 256 + 1024 px, memory at 4096 (about 20 min, 1 thread)
    python benchmarks/inference_speed.py --quick    # 256 px only, memory at 2048
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, markdown_table, write_results

VARIANTS = {
    # name: (channels_last tiles and weights, bfloat16 autocast, tile)
    "fp32": (False, False, 256),
    "channels_last": (True, False, 256),
    "bf16": (False, True, 256),
    "bf16+channels_last": (True, True, 256),
    "channels_last, tile 512": (True, False, 512),
}


HEADER = [
    "image",
    "variant",
    "median s",
    "min s",
    "Mpx/s (min)",
    "time / fp32 (median of rounds)",
    "min / min fp32",
    "max abs diff vs fp32",
]
SPEED_HEADER = "## Speed"
MEMORY_HEADER = "## Peak memory of tiled inference"


def photo(size: int) -> np.ndarray:
    """An RGB photo in [0, 1] of ``size`` x ``size`` (Kodak crop, reflect-padded when larger)."""
    path = DATA / "kodak24" / "kodim05.png"
    if path.exists():
        import imageio.v3 as iio

        image = iio.imread(path)[..., :3].astype(np.float32) / 255
    else:
        rng = np.random.default_rng(0)
        image = rng.random((500, 500, 3)).astype(np.float32)
    if size > min(image.shape[:2]):
        pad = size - min(image.shape[:2])
        image = np.pad(image, ((0, pad), (0, pad), (0, 0)), mode="reflect")
    return np.ascontiguousarray(image[:size, :size])


def speed(model_name: str | None, sizes: list[int], rounds: dict[int, int]) -> tuple[str, dict]:
    import torch

    from napari_crcnet import inference
    from napari_crcnet.models import CRCNet, CRCNetConfig, load_model

    if model_name:
        net, card = load_model(model_name, device="cpu", force=True)
    else:
        torch.manual_seed(0)
        net, card = CRCNet(CRCNetConfig.paper(3)).eval(), {}
    if net.config.input == "mmse":  # time the network only: feed the MMSE input as a blurred-input model
        net = copy.deepcopy(net)
        net.config.input = "blurred"

    def run(name: str, image: np.ndarray) -> np.ndarray:
        channels_last, bf16, tile = VARIANTS[name]
        inference.FAST_CHANNELS_LAST, inference.FAST_BFLOAT16 = channels_last, bf16
        return inference.apply_model(net, card, image, channel_axis=-1, device="cpu", tile=tile)

    rows, raw = [], {}
    saved = inference.FAST_CHANNELS_LAST, inference.FAST_BFLOAT16
    try:
        for size in sizes:
            image = photo(size)
            names = [n for n in VARIANTS if size > 256 or VARIANTS[n][2] == 256]  # tile 512 = 256 on 256 px
            outputs = {name: run(name, image) for name in names}  # warm-up, and the outputs compared
            times: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(rounds[size]):
                for name in names:
                    start = time.perf_counter()
                    run(name, image)
                    times[name].append(time.perf_counter() - start)
            for name in names:
                ratio = float(np.median(np.array(times[name]) / np.array(times["fp32"])))
                best_ratio = min(times[name]) / min(times["fp32"])
                diff = float(np.max(np.abs(outputs[name] - outputs["fp32"])))
                seconds = float(np.median(times[name]))
                rows.append(
                    [
                        f"{size}x{size}",
                        name,
                        seconds,
                        min(times[name]),
                        size * size / min(times[name]) / 1e6,
                        ratio,
                        best_ratio,
                        f"{diff:.1e}",
                    ]
                )
                raw[f"{size}/{name}"] = {"times": times[name], "max_abs_diff": diff}
            print(markdown_table(HEADER, rows[-len(names) :]))
    finally:
        inference.FAST_CHANNELS_LAST, inference.FAST_BFLOAT16 = saved
    table = markdown_table(HEADER, rows)
    return table, raw


MEMORY_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[2]))
from napari_crcnet.inference import apply_model
from napari_crcnet.models import CRCNet, CRCNetConfig
size = int(sys.argv[1])
r = np.arange(21) - 10
kernel = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 2.0 ** 2)); kernel /= kernel.sum()
net = CRCNet(CRCNetConfig(in_channels=3)).eval()
card = {"kernel": kernel.tolist(), "mmse_sigma": 1e-3}
apply_model(net, card, np.zeros((64, 64, 3), np.uint8), channel_axis=-1, device="cpu")  # warm-up
def peak_mb():
    # VmHWM: high-water RSS of this process's own address space. ru_maxrss is NOT usable here: Linux
    # carries the parent's high-water mark into a fork+exec'd child.
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = peak_mb()
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
start = time.perf_counter()
out = apply_model(net, card, image, channel_axis=-1, device="cpu")
seconds = time.perf_counter() - start
peak = peak_mb()
print(json.dumps({"size": size, "rss_before_mb": before, "peak_rss_mb": peak, "seconds": seconds,
                  "output_mb": out.nbytes / 2**20}))
"""


def memory(size: int, threads: int) -> tuple[str, dict]:
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(size), str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    rows = [
        [
            f"{size}x{size}x3 uint8",
            f"{data['rss_before_mb']:.0f}",
            f"{data['peak_rss_mb']:.0f}",
            f"{data['peak_rss_mb'] - data['rss_before_mb']:.0f}",
            f"{data['output_mb']:.0f}",
            f"{data['seconds']:.0f}",
        ]
    ]
    table = markdown_table(
        ["image", "peak RSS before the image (MB)", "peak RSS (MB)", "peak - before (MB)", "output (MB)", "time (s)"],
        rows,
    )
    print(table)
    return table, data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 px only; memory at 2048 px")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    parser.add_argument("--model", default=None, help="a trained model name or path (default: random paper net)")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the memory run (keeps that section of the last results)"
    )
    parser.add_argument(
        "--no-speed", action="store_true", help="skip the timings (keeps that section of the last results)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        nargs=2,
        default=(6, 3),
        metavar=("R256", "R1024"),
        help="interleaved timing rounds at 256 and 1024 px (default 6 3)",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    name = "inference_speed" + ("_quick" if args.quick else "")
    previous = RESULTS / f"{name}.md"
    previous_text = previous.read_text() if previous.exists() else ""
    sections = []
    if not args.no_speed:
        sizes = [256] if args.quick else [256, 1024]
        rounds = {256: 3 if args.quick else args.rounds[0], 1024: args.rounds[1]}
        speed_table, _ = speed(args.model, sizes, rounds)
        model = "model " + args.model if args.model else "paper RGB configuration, random weights"
        sections.append(
            f"{SPEED_HEADER}\n\nNetwork: {model}; `apply_model` with default tiles (256 px, overlap 24), CPU. "
            f"Variants timed interleaved ({', '.join(f'{rounds[s]} rounds at {s} px' for s in sizes)}); "
            "median time, min time, median per-round ratio to fp32, ratio of min times, max abs difference "
            "of the output from fp32 (image in [0, 1]).\n\n" + speed_table
        )
    else:
        sections.append(_kept(previous_text, SPEED_HEADER))
    if not args.no_memory:
        size = 2048 if args.quick else 4096
        memory_table, _ = memory(size, args.threads)
        sections.append(
            f"{MEMORY_HEADER}\n\nDefault configuration (MMSE input, 21x21 Gaussian kernel; "
            "the MMSE estimate is computed one whole plane at a time, then the network runs on 256 px "
            "tiles), fresh subprocess, peak RSS = `VmHWM`. Target: < 2 GB at 4096x4096.\n\n" + memory_table
        )
    else:
        sections.append(_kept(previous_text, MEMORY_HEADER))
    write_results(name, "CRCNet inference speed and memory", "\n".join(s for s in sections if s))


def _kept(text: str, header: str) -> str:
    """The ``header`` section of a previous results file (a skipped part), marked with that run's date."""
    if header not in text:
        return ""
    start = text.index(header)
    end = min(
        (text.index(h, start + 1) for h in (SPEED_HEADER, MEMORY_HEADER) if h in text[start + 1 :]), default=len(text)
    )
    kept = text[start:end].rstrip() + "\n"
    if "(Kept from" not in kept:
        dated = next((line for line in text.splitlines() if line.startswith("Date:")), "Date: ?").strip()
        kept = kept.replace(header, f"{header}\n\n(Kept from a previous run, {dated})", 1)
    return kept


if __name__ == "__main__":
    main()
