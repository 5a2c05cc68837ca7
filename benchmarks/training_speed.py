"""Training speed and early quality of CRCNet variants, at a fixed wall-clock budget each.

Every variant trains from the same seed on BSDS500 train images (RGB, 21x21 camera-shake kernel
``shake:21,seed=3``, 1 % noise; or with ``--problem gray`` gray images and a Gaussian kernel of sigma 2)
for the same number of minutes, then reports steps/second and the PSNR
gain of the model over the MMSE estimate (at the searched sigma) on 4 held-out BSDS500 test crops (128 px).
Ratios are relative to the first variant, measured in the same run (the machine is shared: absolute
steps/s vary with its load, ratios much less). Speed is measured separately, in interleaved rounds (each
round runs a few steps of every variant in turn, on 12 images, MMSE sigma fixed), and reported as the
median over rounds, so a change of machine load affects all variants alike.

Usage::

    python benchmarks/training_speed.py --quick          # ~45 s per variant
    python benchmarks/training_speed.py --minutes 5      # the numbers quoted in the training README
    python benchmarks/training_speed.py --problem gray --minutes 5 --name training_gray   # gray widths
    python benchmarks/training_speed.py --problem any --minutes 10 --name training_any    # any-kernel inputs

Writes ``benchmarks/results/training_speed.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, markdown_table, write_results

VARIANTS = [
    ("default (bf16 + channels_last), lr 3e-4, batch 8 x 64 px", {}),
    ("default, lr 1e-3", {"lr": 1e-3}),
    ("default without channels_last", {"channels_last": False}),
    ("default, fp32 (no autocast), no channels_last", {"amp": "off", "channels_last": False}),
    ("default, batch 4 x 96 px", {"batch": 4, "crop": 96}),
    ("paper config (ReLU IU, blurred input, no skip), lr 1e-3", {"model": "paper", "lr": 1e-3}),
    ("paper config + PReLU IU, lr 1e-3", {"model": {"preset": "paper", "iu_activation": "prelu"}, "lr": 1e-3}),
    # the paper's ablations (section 4.3), on the default configuration
    ("ablation: ReLU instead of sigmoid in the RUs", {"model": {"ru_activation": "relu"}}),
    ("ablation: no concatenation (each RU sees only the previous output)", {"model": {"concatenate": False}}),
]

# Gray images, Gaussian blur (the microscopy model's problem): how to widen the paper's narrow gray network.
GRAY_VARIANTS = [
    ("gray default (features 1: units 1..32 channels), lr 3e-4", {}),
    ("gray, ReLU in the RUs", {"model": {"ru_activation": "relu"}}),
    ("gray, features 3 (lift to the RGB widths)", {"model": {"features": 3}}),
    ("gray, features 3 + ReLU in the RUs", {"model": {"features": 3, "ru_activation": "relu"}}),
]
# One model for any kernel and noise level (issue: the any-kernel CRCNet): which inputs train best per minute.
ANY_VARIANTS = [  # all at the RGB unit widths (features 3: a 3x3 lift when there are extra input maps)
    ("any kernel: MMSE + noise map", {"model": {"extra_inputs": ["noise"], "features": 3}}),
    ("any kernel: MMSE only", {"model": {"extra_inputs": [], "features": 3}}),
    ("any kernel: MMSE + noise map + blurred image", {"model": {"extra_inputs": ["noise", "blurred"], "features": 3}}),
    ("any kernel: MMSE + noise map, ReLU in the RUs (the default since)", {}),
]
PROBLEMS = {
    "rgb": ("RGB, kernel shake:21,seed=3", dict(kernel="shake:21,seed=3", channels=3), VARIANTS),
    "gray": ("gray (BT.601 luma), kernel gaussian:2", dict(kernel="gaussian:2", channels=1), GRAY_VARIANTS),
    "any": ("RGB, a random kernel (kernels.random_kernel_spec, up to 31 px) and noise std (0.5-5 %, log-uniform) "
            "per crop; validation crops each with their own draw", dict(kernel="any", channels=3), ANY_VARIANTS),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="45 seconds per variant")
    parser.add_argument("--minutes", type=float, default=3.0, help="budget per variant (default 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", type=int, nargs="*", default=None, help="indices of variants to run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved speed rounds (default 3)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant and round")
    parser.add_argument("--speed-only", action="store_true", help="skip the fixed-budget quality runs")
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="rgb", help="variant set (default rgb)")
    parser.add_argument("--name", default="training_speed", help="results file name (benchmarks/results/NAME.md)")
    args = parser.parse_args(argv)
    import torch

    from napari_crcnet.training import TrainConfig, train

    torch.set_num_threads(args.threads)
    seconds = 45.0 if args.quick else args.minutes * 60
    train_dir = DATA / "bsds500" / "train"
    test = sorted((DATA / "bsds500" / "test").glob("*.jpg"))[:4]
    problem_label, problem, variants = PROBLEMS[args.problem]
    chosen = [(i, label, o) for i, (label, o) in enumerate(variants) if args.only is None or i in args.only]
    base = dict(**problem, images=train_dir, val_images=test, noise=0.01,
                iterations=10**6, batch=8, crop=64, lr=3e-4, warmup=20, val_every=0, val_size=128, seed=0,
                log_every=10, device="cpu")

    # 1. speed: interleaved rounds, median steps/s per variant
    small = sorted(train_dir.glob("*.jpg"))[:12]
    rates: dict[int, list[float]] = {i: [] for i, _, _ in chosen}
    for round_index in range(args.rounds):
        for index, label, overrides in chosen:
            stamps: list[float] = []

            def log(record, stamps=stamps):
                if record["event"] == "train":
                    stamps.append(time.perf_counter())

            options = {**base, **overrides, "images": small, "val_images": test[:1], "val_size": 32,
                       "iterations": args.steps + 1, "log_every": 1}
            if args.problem != "any":  # any-kernel runs take sigma from each crop's noise
                options["mmse_sigma"] = 0.03
            train(TrainConfig(**options), log=log)
            rates[index].append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
            print(f"round {round_index}: {label}: {rates[index][-1]:.3f} steps/s", flush=True)
    speed = {i: float(np.median(r)) for i, r in rates.items()}
    base_rate = speed[chosen[0][0]]

    # 2. quality after a fixed wall-clock budget, one variant after the other
    rows = []
    for index, label, overrides in chosen:
        if args.speed_only:
            rows.append([label, speed[index], speed[index] / base_rate, "", "", "", "", ""])
            continue
        result = train(TrainConfig(**{**base, **overrides, "time_limit_s": seconds}))
        v = result.metrics["validation"]
        rows.append([label, speed[index], speed[index] / base_rate, result.steps, v["mmse_psnr"], v["model_psnr"],
                     v["gain_psnr"], v["iu_dead"]])
        print(f"{label}: {result.steps} steps in {result.elapsed_s:.0f} s, gain {v['gain_psnr']:+.2f} dB, "
              f"IU dead {v['iu_dead']}", flush=True)
    header = ["variant", "steps/s (median)", "speed ratio", "steps in budget", "MMSE PSNR", "model PSNR",
              "gain (dB)", "IU dead"]
    budget = "speed only" if args.speed_only else f"{seconds / 60:.2f} min of training per variant"
    body = (f"Speed: median of {args.rounds} interleaved rounds of {args.steps} steps. Quality budget: {budget}; "
            f"torch threads = {args.threads}, CPU; "
            f"{problem_label}{'' if args.problem == 'any' else ', noise 0.01'}, BSDS500 train images, "
            "validation on 4 BSDS500 test "
            "crops (128 px); warm-up 20 iterations; seed 0. The machine is shared with other jobs, so compare "
            "ratios within this table, not absolute speeds across runs.\n\n" + markdown_table(header, rows))
    write_results(args.name, "Training speed and early quality of CRCNet variants", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
