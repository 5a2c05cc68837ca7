"""How long a user waits: a per-kernel CRCNet fit from scratch, validation gain over MMSE against wall time.

Trains the default configuration (the shipped recipe's settings: RGB, ``shake:21,seed=3``, 1 % noise,
BSDS500 train images, batch 8 of 64 px crops, lr 3e-4, bf16 + channels-last) from scratch for a fixed
wall-clock budget and validates every ``--val-every`` steps on the recipe's 4 held-out BSDS500 test crops
(128 px), against the MMSE estimate at the searched sigma. Reports when the gain first reaches +1.5, +3
and +4 dB (the issue's targets: 3, 10 and 30 minutes) and the curve.

    python benchmarks/fit_time.py --minutes 12 --threads 2      # writes benchmarks/results/fit_time.md
    python benchmarks/fit_time.py --quick                       # 1 minute smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import DATA, markdown_table, run_note, write_results

RECIPE = Path(__file__).resolve().parents[1] / "training" / "recipes" / "shake21-rgb.json"
TARGETS = ((1.5, 3.0), (3.0, 10.0), (4.0, 30.0))  # (gain in dB, target minutes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget (default 12)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--val-every", type=int, default=25, help="validate every N steps (default 25)")
    parser.add_argument("--quick", action="store_true", help="1 minute")
    args = parser.parse_args()
    minutes = 1.0 if args.quick else args.minutes

    from napari_crcnet.training import TrainConfig, train

    recipe = json.loads(RECIPE.read_text())
    curve: list[tuple[float, int, float]] = []
    start = time.perf_counter()

    def log(record: dict) -> None:
        if record.get("event") == "val":
            curve.append(((time.perf_counter() - start) / 60, record["step"], record["gain_psnr"]))
            print(f"{curve[-1][0]:5.1f} min  step {record['step']:5d}  gain {record['gain_psnr']:+.2f} dB",
                  flush=True)

    config = TrainConfig(
        kernel=recipe["kernel"], images=[DATA / p for p in recipe["images"]],
        val_images=[DATA / p for p in recipe["val_images"]], channels=recipe["channels"], noise=recipe["noise"],
        iterations=10**6, batch=recipe["batch"], crop=recipe["crop"], lr=recipe["lr"], seed=recipe["seed"],
        val_every=args.val_every, val_size=recipe["val_size"], threads=args.threads, time_limit_s=minutes * 60,
        log_every=10**6,
    )
    result = train(config, log=log)

    rows = []
    for gain, target in TARGETS:
        reached = next((t for t, _, g in curve if g >= gain), None)
        status = "not reached" if reached is None else ("met" if reached <= target else "missed")
        rows.append([f"+{gain} dB", f"{target:g} min", "-" if reached is None else f"{reached:.1f} min", status])
    samples = [row for i, row in enumerate(curve) if i % max(1, len(curve) // 12) == 0 or i == len(curve) - 1]
    body = (
        f"Default configuration from scratch, recipe `training/recipes/shake21-rgb.json` settings, {minutes:g} "
        f"minutes budget, {args.threads} torch threads, validation every {args.val_every} steps on 4 held-out "
        f"BSDS500 crops (time includes validation). {result.steps} steps in all.\n\n"
        + markdown_table(["gain over MMSE", "target", "first reached", "status"], rows)
        + "\nCurve:\n\n"
        + markdown_table(["minutes", "step", "gain (dB)"], [[f"{t:.1f}", s, g] for t, s, g in samples])
        + run_note()
    )
    write_results("fit_time" + ("_quick" if args.quick else ""), "Per-kernel fit: time to a gain over MMSE", body)


if __name__ == "__main__":
    main()
