"""How long a user waits: a per-kernel CRCNet fit from scratch, validation gain over MMSE against wall time.

Trains the default configuration (the shipped recipe's settings: RGB, ``shake:21,seed=3``, 1 % noise,
BSDS500 train images, batch 8 of 64 px crops, lr 3e-4, bf16 + channels-last) from scratch (and, with
``--init``, a second time starting from a trained model such as ``any-kernel``) for a fixed
wall-clock budget and validates every ``--val-every`` steps on the recipe's 4 held-out BSDS500 test crops
(128 px), against the MMSE estimate at the searched sigma. Reports when the gain first reaches +1.5, +3
and +4 dB (the issue's targets: 3, 10 and 30 minutes) and the curve.

    python benchmarks/fit_time.py --minutes 12 --threads 2      # writes benchmarks/results/fit_time.md
    python benchmarks/fit_time.py --minutes 10 --init any-kernel # also a fit started from the any-kernel
                                                                # model (results/fit_time_init.md)
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


def fit_curve(recipe: dict, minutes: float, threads: int, val_every: int, init: str | None):
    """Train for ``minutes`` (from scratch or from ``init``); returns ([(minutes, step, gain)], steps)."""
    from napari_crcnet.training import TrainConfig, train

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
        val_every=val_every, val_size=recipe["val_size"], threads=threads, time_limit_s=minutes * 60,
        log_every=10**6, init=init,
    )
    return curve, train(config, log=log).steps


def first_reached(curve: list[tuple[float, int, float]], gain: float) -> float | None:
    return next((t for t, _, g in curve if g >= gain), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget per fit (default 12)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--val-every", type=int, default=25, help="validate every N steps (default 25)")
    parser.add_argument("--init", default=None,
                        help="also fit starting from this model (e.g. any-kernel), right after the scratch fit")
    parser.add_argument("--quick", action="store_true", help="1 minute")
    args = parser.parse_args()
    minutes = 1.0 if args.quick else args.minutes

    recipe = json.loads(RECIPE.read_text())
    starts = {"scratch": None} | ({f"from {args.init}": args.init} if args.init else {})
    curves, steps = {}, {}
    for label, init in starts.items():
        print(f"fit {label}", flush=True)
        curves[label], steps[label] = fit_curve(recipe, minutes, args.threads, args.val_every, init)

    rows = []
    for gain, target in TARGETS:
        row = [f"+{gain} dB", f"{target:g} min"]
        for label in starts:
            reached = first_reached(curves[label], gain)
            status = "not reached" if reached is None else ("met" if reached <= target else "missed")
            row.append("not reached" if reached is None else f"{reached:.1f} min ({status})")
        rows.append(row)
    curve_rows = []
    for label in starts:
        curve = curves[label]
        shown = sorted({*range(0, len(curve), max(1, len(curve) // 12)), len(curve) - 1} - {-1})
        curve_rows += [[label, f"{curve[i][0]:.1f}", curve[i][1], curve[i][2]] for i in shown]
    fits = " and ".join(f"{label} ({steps[label]} steps)" for label in starts)
    body = (
        f"Default configuration, recipe `training/recipes/shake21-rgb.json` settings, {minutes:g} minutes per "
        f"fit: {fits}; {args.threads} torch threads, validation every {args.val_every} steps on 4 held-out "
        "BSDS500 crops (time includes validation). A fit from a model takes that model's architecture.\n\n"
        + markdown_table(["gain over MMSE", "target", *(f"first reached, {label}" for label in starts)], rows)
        + "\nCurves:\n\n"
        + markdown_table(["fit", "minutes", "step", "gain (dB)"], curve_rows)
        + run_note()
    )
    name = "fit_time" + ("_init" if args.init else "") + ("_quick" if args.quick else "")
    write_results(name, "Per-kernel fit: time to a gain over MMSE", body)


if __name__ == "__main__":
    main()
