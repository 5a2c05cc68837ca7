"""Training speed and early quality of CRCNet variants, at a fixed wall-clock budget each.

Every variant trains from the same seed on BSDS500 train images (RGB, 21x21 camera-shake kernel
``shake:21,seed=3``, 1 % noise) for the same number of minutes, then reports steps/second and the PSNR
gain of the model over the MMSE estimate (at the searched sigma) on 4 held-out BSDS500 test crops (128 px).
Ratios are relative to the first variant, measured in the same run (the machine is shared: absolute
steps/s vary with its load, ratios much less).

Usage::

    python benchmarks/training_speed.py --quick          # ~45 s per variant
    python benchmarks/training_speed.py --minutes 5      # the numbers quoted in the training README

Writes ``benchmarks/results/training_speed.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, markdown_table, write_results

VARIANTS = [
    ("default, lr 3e-4, batch 8 x 64 px, bf16", {}),
    ("default, lr 1e-3", {"lr": 1e-3}),
    ("default, fp32 (no autocast)", {"amp": "off"}),
    ("default, bf16 + channels_last", {"channels_last": True}),
    ("default, batch 4 x 96 px", {"batch": 4, "crop": 96}),
    ("paper config (ReLU IU, blurred input, no skip), lr 1e-3", {"model": "paper", "lr": 1e-3}),
    ("paper config + PReLU IU, lr 1e-3", {"model": {"preset": "paper", "iu_activation": "prelu"}, "lr": 1e-3}),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="45 seconds per variant")
    parser.add_argument("--minutes", type=float, default=3.0, help="budget per variant (default 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", type=int, nargs="*", default=None, help="indices of variants to run")
    args = parser.parse_args(argv)
    import torch

    from napari_crcnet.training import TrainConfig, train

    torch.set_num_threads(args.threads)
    seconds = 45.0 if args.quick else args.minutes * 60
    train_dir = DATA / "bsds500" / "train"
    test = sorted((DATA / "bsds500" / "test").glob("*.jpg"))[:4]
    rows = []
    base_rate = None
    for index, (label, overrides) in enumerate(VARIANTS):
        if args.only is not None and index not in args.only:
            continue
        options = dict(
            kernel="shake:21,seed=3", images=train_dir, val_images=test, channels=3, noise=0.01,
            iterations=10**6, batch=8, crop=64, lr=3e-4, warmup=20, val_every=0, val_size=128, seed=0,
            log_every=10, time_limit_s=seconds, device="cpu",
        )
        options.update(overrides)
        config = TrainConfig(**options)
        started = time.perf_counter()
        result = train(config)
        wall = time.perf_counter() - started
        rate = result.steps / max(result.elapsed_s, 1e-9)
        base_rate = rate if base_rate is None else base_rate
        v = result.metrics["validation"]
        rows.append([label, result.steps, rate, rate / base_rate, v["mmse_psnr"], v["model_psnr"], v["gain_psnr"],
                     v["iu_dead"]])
        print(f"{label}: {result.steps} steps in {result.elapsed_s:.0f} s ({rate:.3f}/s), "
              f"gain {v['gain_psnr']:+.2f} dB, {v['iu_dead']}  (wall {wall:.0f} s incl. setup)", flush=True)
    header = ["variant", "steps", "steps/s", "speed ratio", "MMSE PSNR", "model PSNR", "gain (dB)", "IU dead"]
    body = (f"Budget: {seconds / 60:.2f} min of training per variant, torch threads = {args.threads}, CPU; "
            "RGB, kernel shake:21,seed=3, noise 0.01, BSDS500 train images, validation on 4 BSDS500 test "
            "crops (128 px); warm-up 20 iterations; seed 0. The machine is shared with other jobs, so compare "
            "ratios within this table, not absolute speeds across runs.\n\n" + markdown_table(header, rows))
    write_results("training_speed", "Training speed and early quality of CRCNet variants", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
