"""Calibrate a model's data step (``napari_crcnet.datastep``) on held-out photos, never on the benchmark images.

The data step ``x = z + F^-1[conj(K) / (|K|^2 + mu) F(b - H z)]`` follows the network; its ``mu`` follows the
noise level by the rule ``mu = mu_ref * (max(n, noise_floor) / 0.01) ** power``. This script chooses the
rule for one model:

1. Calibration set: the first 12 CBSD68 photos, in gray for a gray model (BSDS300 test images: in no
   training set of this project, which DnCNN's train400 was cut to avoid, and in no benchmark case),
   centre 256x256 'valid' blur by a kernel of the any-kernel family (seed 5000 + index) at 5 Gaussian
   noise levels (0.2-4 %); odd images are deblurred with the kernel perturbed by the degradation model's
   ``KernelError`` (as a measured kernel is), even ones with the exact kernel. The network runs once per
   pair (noise estimated, as in use); the data step is then scored over a grid of ``mu``.
2. The rule is the (mu_ref, power, noise_floor) of a grid that maximises the mean PSNR over all pairs.

Writes ``results/data_step_<model>.md`` (the chosen rule, per noise level: network alone, with the data
step, MMSE at its defaults, the best single ``mu`` per level as an oracle) and prints the rule as JSON
for the model card. The test on data nobody tuned on is ``real_data.py`` with the model's card carrying
the rule.

    python benchmarks/data_step.py --model any-kernel-gray [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

from _common import DATA, ROOT, markdown_table, run_note, write_results
from real_data import BORDER, aligned_psnr

sys.path.insert(0, str(ROOT / "training"))
from evaluate import degrade

NOISES = (0.002, 0.005, 0.01, 0.02, 0.04)
MUS = np.geomspace(1e-3, 10.0, 33)
MU_REFS = np.geomspace(0.01, 3.0, 41)
POWERS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
FLOORS = (0.0, 0.002, 0.004)


def calibration_pairs(n_images: int, channels: int = 1) -> list[tuple[str, float, np.ndarray, np.ndarray, np.ndarray]]:
    """``(label, noise, clear, blurred, given kernel)`` for every image and noise level (module docstring);
    gray (BT.601 luma) or RGB (channel last)."""
    from napari_crcnet import io
    from napari_crcnet._arrays import as_float_image
    from napari_crcnet.kernels import kernel_from_spec, random_kernel_spec
    from napari_crcnet.training.degradation import KernelError

    error = KernelError(exact=0.0)
    pairs = []
    for index, path in enumerate(sorted((DATA / "cbsd68").glob("*.png"))[:n_images]):
        rgb = as_float_image(io.read_image(path), np.float64)
        image = rgb @ np.array([0.299, 0.587, 0.114]) if channels == 1 else rgb
        kernel = kernel_from_spec(random_kernel_spec(np.random.default_rng(5000 + index)))
        given = error.perturb(kernel, np.random.default_rng(6000 + index)) if index % 2 else kernel
        for level, noise in enumerate(NOISES):
            clear, blurred = degrade(image, kernel, seed=100 * index + level, noise=noise)
            pairs.append((f"{path.stem}{' (perturbed kernel)' if index % 2 else ''}", noise, clear, blurred, given))
    return pairs


def psnr(clear: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR of ``clip(estimate, 0, 1)`` ignoring a ``BORDER`` px band, as ``real_data.py`` scores (no shift)."""
    return aligned_psnr(clear, estimate, shift=0, border=BORDER)


def score_grid(model: str, pairs: list) -> dict[str, np.ndarray]:
    """Per pair: estimated noise, PSNR of the network alone, of MMSE at its defaults, and over ``MUS``."""
    import torch

    import napari_crcnet as nc
    from napari_crcnet.datastep import data_step
    from napari_crcnet.deconv import estimate_noise
    from napari_crcnet.inference import apply_model
    from napari_crcnet.models.store import load_model
    from napari_crcnet.operators import BlurOperator

    net, card = load_model(model, force=True, device="cpu")
    card = {key: value for key, value in card.items() if key != "data_step"}  # the network alone
    out = {"noise": [], "net": [], "mmse": [], "grid": []}
    for _, _, clear, blurred, kernel in pairs:
        axis = -1 if blurred.ndim == 3 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z = apply_model(net, card, blurred, kernel=kernel, channel_axis=axis, device="cpu")
        operator = BlurOperator(kernel, boundary=card.get("mmse_boundary") or "taper", device="cpu")
        b = torch.as_tensor(np.moveaxis(blurred, -1, 0) if axis else blurred, dtype=torch.float32)
        zt = torch.as_tensor(np.moveaxis(z, -1, 0) if axis else z)

        def stepped(mu: float, operator=operator, b=b, zt=zt, axis=axis) -> np.ndarray:
            x = data_step(operator, b, zt, mu).numpy()
            return np.moveaxis(x, 0, -1) if axis else x

        out["noise"].append(estimate_noise(blurred, channel_axis=axis))
        out["net"].append(psnr(clear, z))
        out["mmse"].append(psnr(clear, nc.mmse(blurred, kernel, channel_axis=axis)))
        out["grid"].append([psnr(clear, stepped(float(mu))) for mu in MUS])
    return {key: np.asarray(value) for key, value in out.items()}


def rule_scores(scores: dict[str, np.ndarray], mu_ref: float, power: float, floor: float) -> np.ndarray:
    """Per pair PSNR under a rule (linear interpolation of the grid in log mu)."""
    from napari_crcnet.datastep import data_step_mu

    rule = {"mu": mu_ref, "power": power, "noise_floor": floor}
    logs = np.log(MUS)
    return np.array([np.interp(np.log(data_step_mu(n, rule)), logs, row)
                     for n, row in zip(scores["noise"], scores["grid"])])


def choose_rule(scores: dict[str, np.ndarray]) -> dict[str, float]:
    best, best_mean = None, -np.inf
    for mu_ref in MU_REFS:
        for power in POWERS:
            for floor in FLOORS:
                mean = float(np.mean(rule_scores(scores, mu_ref, power, floor)))
                if mean > best_mean:
                    best, best_mean = {"mu": float(f"{mu_ref:.3g}"), "power": power, "noise_floor": floor}, mean
    return best


def report(model: str, pairs: list, scores: dict[str, np.ndarray], rule: dict[str, float]) -> str:
    with_step = rule_scores(scores, rule["mu"], rule["power"], rule["noise_floor"])
    rows = []
    for noise in NOISES:
        for perturbed in (False, True):
            sel = np.array([(p[1] == noise) and (("perturbed" in p[0]) == perturbed) for p in pairs])
            if not sel.any():
                continue
            oracle = MUS[int(np.argmax(scores["grid"][sel].mean(axis=0)))]
            rows.append([f"{100 * noise:g} %", "perturbed" if perturbed else "exact", int(sel.sum()),
                         scores["mmse"][sel].mean(), scores["net"][sel].mean(), with_step[sel].mean(),
                         scores["grid"][sel].mean(axis=0).max(), f"{oracle:.3g}",
                         np.min(with_step[sel] - scores["net"][sel])])
    rows.append(["all", "", len(pairs), scores["mmse"].mean(), scores["net"].mean(), with_step.mean(), "", "",
                 np.min(with_step - scores["net"])])
    table = markdown_table(["noise", "kernel", "pairs", "MMSE default", "network", "network + data step",
                            "best single mu (oracle)", "that mu", "worst change of a pair"], rows)
    return (f"## {model}\n\nChosen rule (`data_step` on the card): `{json.dumps(rule)}`, i.e. "
            f"`mu = {rule['mu']:g} * (max(n, {rule['noise_floor']:g}) / 0.01) ** {rule['power']:g}` with the noise "
            f"level n estimated from each image.\n\nPSNR (dB, 15 px border ignored) on the calibration pairs:\n\n"
            + table + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="any-kernel-gray")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 images (smoke test)")
    parser.add_argument("--name", default=None, help="results file name (default data_step_<model>)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from napari_crcnet.models.store import read_config

    pairs = calibration_pairs(2 if args.quick else 12, read_config(args.model).in_channels)
    scores = score_grid(args.model, pairs)
    rule = choose_rule(scores)
    body = run_note() + "\n" + report(args.model, pairs, scores, rule)
    name = args.name or ("data_step_" + args.model + ("_quick" if args.quick else ""))
    path = write_results(name, "Data step: calibration of mu on held-out photos", body)
    print(json.dumps(rule))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
