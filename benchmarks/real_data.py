"""Deblurring on data unlike the training data: real captured camera shake, and inexact kernels.

Cases:

- ``levin09-real``: the 16 real captures of ``../shared/data/levin09-real`` (two printed scenes photographed
  under 8 measured camera shakes, 8-bit gray). The kernels are the measured ones (stored for correlation:
  flipped). Scored as ``SOURCES.md`` says: PSNR against the sharp image after the best integer alignment
  within +-3 px, ignoring a 15 px border.
- ``levin09-synthetic`` and ``levin09-synthetic-perturbed``: the same two scenes and 8 measured kernels, but
  blurred synthetically ('valid' blur, 0.2 % Gaussian noise, about what the captures show) and deblurred with
  the exact kernel, or with it perturbed as below (seed = 3000 + index): what separates these from
  ``levin09-real`` is what a real capture adds to the blur model.
- ``kernel-error-set12`` (gray) and ``kernel-error-kodak`` (RGB, first 12 images): the centre 256x256 crop of
  each image, 'valid' blur by a kernel from the any-kernel family (``kernels.random_kernel_spec``, seed =
  1000 + image index) plus 1 % Gaussian noise (``training/evaluate.py``'s ``degrade``); every method is
  given the kernel perturbed by the degradation model's :class:`KernelError` with ``exact=0`` (always
  perturbed; seed = 2000 + image index), as a measured or estimated kernel is. PSNR ignoring a 15 px border.
- ``exact-set12``: the same pairs as ``kernel-error-set12`` deblurred with the exact kernel: the control,
  where the blur model holds.

Methods: MMSE, IRD (N = 100) and hyper-Laplacian at their defaults (sigma and lam from the estimated
noise) and at their best *single* setting for the case (one value for all its images, an oracle that
favours them); each CRCNet model with the noise estimated (its default). ``--model`` adds models (names or
paths); by default the shipped default model for the images' channels (``store.default_model``).

Per image tables, means, the exceptions (images where a model is below MMSE at its defaults) and a figure of
the worst image of each case (largest loss of the first model against the best classical method at its
defaults): ``results/real_data.md`` and ``results/real_data_<case>.png``.

    python benchmarks/real_data.py [--model NAME_OR_PATH ...] [--threads 2] [--name real_data]
    python benchmarks/real_data.py --quick      # smoke test: 2 images per case
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _common import DATA, RESULTS, ROOT, markdown_table, run_note, write_results

sys.path.insert(0, str(ROOT / "training"))
from evaluate import degrade

BORDER = 15
SHIFT = 3
MMSE_SIGMAS = (0.002, 0.005, 0.01, 0.02, 0.04)
IRD_SIGMAS = (0.005, 0.01, 0.02, 0.04)
HL_LAMS = (300.0, 1000.0, 2000.0, 4000.0, 10000.0)
#: Noise of the synthetic Levin cases: about what the real captures show (benchmarks/results/noise_floor.md).
LEVIN_NOISE = 0.002


def levin_kernels() -> list[np.ndarray]:
    """The 8 Levin et al. (2009) kernels as convolution kernels (stored for correlation: flipped)."""
    from napari_crcnet import kernels

    data = np.load(DATA / "kernels" / "Levin09_kernels_float64_from_mat.npz")
    return [kernels.from_correlation(data[f"kernel{i}"]) for i in range(1, 9)]


def aligned_psnr(clear: np.ndarray, estimate: np.ndarray, shift: int = SHIFT, border: int = BORDER) -> float:
    """PSNR (data range 1) of ``clip(estimate, 0, 1)`` against ``clear`` over the image less ``border`` px,
    at the best integer shift of ``estimate`` within ``+-shift`` px (0 for synthetic cases). Colour
    images (channel last) are scored over all channels."""
    estimate = np.clip(estimate, 0, 1)
    h, w = clear.shape[:2]
    reference = clear[border : h - border, border : w - border]
    best = -np.inf
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            moved = estimate[border + dy : h - border + dy, border + dx : w - border + dx]
            best = max(best, 10 * np.log10(1.0 / np.mean((reference - moved) ** 2)))
    return float(best)


class Case:
    """One benchmark case: ``(name, clear, blurred, given kernel)`` per image, channels, alignment shift."""

    def __init__(self, name: str, items: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], channels: int,
                 shift: int) -> None:
        self.name, self.items, self.channels, self.shift = name, items, channels, shift

    @property
    def axis(self) -> int | None:
        return -1 if self.channels == 3 else None

    def score(self, clear: np.ndarray, estimate: np.ndarray) -> float:
        return aligned_psnr(clear, estimate, self.shift)


def _read(path: Path) -> np.ndarray:
    from napari_crcnet import io
    from napari_crcnet._arrays import as_float_image

    return as_float_image(io.read_image(path), np.float64)


def levin_real_case() -> Case:
    folder = DATA / "levin09-real"
    ks = levin_kernels()
    items = []
    for i in (1, 2):
        clear = _read(folder / "gt" / f"im{i}.png")
        for j in range(1, 9):
            items.append((f"im{i} kernel{j}", clear, _read(folder / f"im{i}_kernel{j}_img.png"), ks[j - 1]))
    return Case("levin09-real", items, 1, SHIFT)


def levin_synthetic_cases(noise: float = LEVIN_NOISE) -> list[Case]:
    """``levin09-synthetic`` and ``levin09-synthetic-perturbed``: the two sharp scenes of ``levin09-real``
    blurred *synthetically* ('valid' blur) by the same 8 measured kernels, plus Gaussian noise of std
    ``noise`` (about what a real capture shows); deblurred with the exact kernel, or with it perturbed by the
    degradation model's :class:`KernelError` (``exact=0``, seed = 3000 + index). Same scenes and kernels as
    the real captures, so the difference to ``levin09-real`` is what the captures add to the blur model."""
    from napari_crcnet.training.degradation import KernelError

    error = KernelError(exact=0.0)
    folder = DATA / "levin09-real"
    ks = levin_kernels()
    exact, perturbed = [], []
    for i in (1, 2):
        sharp = _read(folder / "gt" / f"im{i}.png")
        for j, kernel in enumerate(ks, start=1):
            index = 8 * (i - 1) + j
            clear, blurred = degrade(sharp, kernel, seed=index, noise=noise)
            exact.append((f"im{i} kernel{j}", clear, blurred, kernel))
            given = error.perturb(kernel, np.random.default_rng(3000 + index))
            perturbed.append((f"im{i} kernel{j}", clear, blurred, given))
    return [Case("levin09-synthetic", exact, 1, 0), Case("levin09-synthetic-perturbed", perturbed, 1, 0)]


def kernel_error_cases(noise: float = 0.01, suffix: str = "") -> list[Case]:
    """``kernel-error-set12``, ``kernel-error-kodak`` and the ``exact-set12`` control (module docstring), with
    Gaussian noise of std ``noise``; ``suffix`` is added to the case names."""
    from napari_crcnet.kernels import kernel_from_spec, random_kernel_spec
    from napari_crcnet.training.degradation import KernelError

    error = KernelError(exact=0.0)
    cases = []
    sets = {"set12": (sorted((DATA / "set12").glob("*.png")), 1),
            "kodak": (sorted((DATA / "kodak24").glob("*.png"))[:12], 3)}
    for set_name, (files, channels) in sets.items():
        perturbed, exact = [], []
        for index, path in enumerate(files):
            kernel = kernel_from_spec(random_kernel_spec(np.random.default_rng(1000 + index)))
            clear, blurred = degrade(_read(path), kernel, seed=index, noise=noise)
            given = error.perturb(kernel, np.random.default_rng(2000 + index))
            perturbed.append((path.stem, clear, blurred, given))
            exact.append((path.stem, clear, blurred, kernel))
        cases.append(Case(f"kernel-error-{set_name}{suffix}", perturbed, channels, 0))
        if set_name == "set12":
            cases.append(Case(f"exact-set12{suffix}", exact, channels, 0))
    return cases


# ------------------------------------------------------------------------------------------ methods
Method = Callable[[np.ndarray, np.ndarray, int | None], np.ndarray]


def classical_methods() -> dict[str, tuple[Method, dict[str, Method]]]:
    """name -> (the method at its defaults, {setting label: the method at that setting})."""
    import napari_crcnet as nc

    return {
        "MMSE": (lambda b, k, a: nc.mmse(b, k, channel_axis=a),
                 {f"sigma={s:g}": (lambda b, k, a, s=s: nc.mmse(b, k, s, channel_axis=a)) for s in MMSE_SIGMAS}),
        "IRD": (lambda b, k, a: nc.ird(b, k, channel_axis=a),
                {f"sigma={s:g}": (lambda b, k, a, s=s: nc.ird(b, k, s, channel_axis=a)) for s in IRD_SIGMAS}),
        "hyper-Laplacian": (lambda b, k, a: nc.hyper_laplacian(b, k, channel_axis=a),
                            {f"lam={v:g}": (lambda b, k, a, v=v: nc.hyper_laplacian(b, k, v, channel_axis=a))
                             for v in HL_LAMS}),
    }


def model_method(model: str) -> Method:
    """A CRCNet model (name or path) with the noise estimated from each image."""
    import napari_crcnet as nc

    def run(blurred: np.ndarray, kernel: np.ndarray, axis: int | None) -> np.ndarray:
        return nc.crcnet(blurred, model, kernel=kernel, channel_axis=axis, device="cpu")

    return run


def default_model_name(channels: int) -> str:
    from napari_crcnet.models.store import default_model

    return default_model(channels)


# ------------------------------------------------------------------------------------------ running
def run_case(case: Case, models: list[str]) -> tuple[dict[str, list[float]], dict[str, np.ndarray], str]:
    """Per-image PSNRs of every row (``"MMSE (default)"``, ``"MMSE (best: sigma=...)"``, models...), the
    outputs of the default rows and models on the worst image (for the figure), and the worst image's name."""
    import warnings

    scores: dict[str, list[float]] = {"blurred": [case.score(c, b) for _, c, b, _ in case.items]}
    outputs: dict[str, list[np.ndarray]] = {}
    for name, (default, settings) in classical_methods().items():
        outputs[f"{name} (default)"] = [default(b, k, case.axis) for _, _, b, k in case.items]
        scores[f"{name} (default)"] = [case.score(c, o) for (_, c, _, _), o in
                                       zip(case.items, outputs[f"{name} (default)"])]
        grid = {label: [case.score(c, run(b, k, case.axis)) for _, c, b, k in case.items]
                for label, run in settings.items()}
        best = max(grid, key=lambda label: np.mean(grid[label]))
        scores[f"{name} (best single: {best})"] = grid[best]
    for model in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # outside-range warnings: the table says what happened
            outputs[model] = [model_method(model)(b, k, case.axis) for _, _, b, k in case.items]
        scores[f"CRCNet {model}"] = [case.score(c, o) for (_, c, _, _), o in zip(case.items, outputs[model])]
    first = f"CRCNet {models[0]}"
    classical = np.max([scores[f"{n} (default)"] for n in classical_methods()], axis=0)
    worst = int(np.argmin(np.asarray(scores[first]) - classical))
    figure = {"blurred": case.items[worst][2], **{k: v[worst] for k, v in outputs.items()},
              "sharp": case.items[worst][1]}
    return scores, figure, case.items[worst][0]


def save_figure(case: Case, panels: dict[str, np.ndarray], scores: dict[str, float], path: Path) -> None:
    """One row of panels (image less the border) with each method's PSNR in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.1))
    for ax, (label, image) in zip(axes, panels.items()):
        crop = np.clip(image[BORDER:-BORDER, BORDER:-BORDER], 0, 1)
        ax.imshow(crop, cmap=None if crop.ndim == 3 else "gray", vmin=0, vmax=1)
        title = label if label not in scores else f"{label}\n{scores[label]:.2f} dB"
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def case_report(case: Case, scores: dict[str, list[float]], models: list[str]) -> str:
    names = [item[0] for item in case.items]
    header = ["image", *scores]
    rows = [[n, *[scores[r][i] for r in scores]] for i, n in enumerate(names)]
    rows.append(["**mean**", *[float(np.mean(v)) for v in scores.values()]])
    mmse = np.asarray(scores["MMSE (default)"])
    notes = []
    for model in models:
        below = [names[i] for i in np.flatnonzero(np.asarray(scores[f"CRCNet {model}"]) < mmse)]
        notes.append(f"- `{model}` below MMSE at its defaults on {len(below)} of {len(names)} images"
                     + (f": {', '.join(below)}" if below else ""))
    return (f"## {case.name}\n\nPSNR (dB) per image, {len(names)} images"
            + (f", aligned within +-{case.shift} px" if case.shift else "") + f", {BORDER} px border ignored.\n\n"
            + markdown_table(header, rows) + "\n" + "\n".join(notes) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=None,
                        help="CRCNet model name or path (repeatable; default: the shipped default per channels)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--name", default="real_data", help="results file name (results/NAME.md)")
    parser.add_argument("--case", action="append", default=None,
                        help="run only this case (repeatable): levin09-real, levin09-synthetic, "
                             "levin09-synthetic-perturbed, kernel-error-set12, exact-set12, kernel-error-kodak")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 images per case")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.name + ("_quick" if args.quick and "quick" not in args.name else "")
    every = (levin_real_case(), *levin_synthetic_cases(), *kernel_error_cases())
    cases = [case for case in every if not args.case or case.name in args.case]
    sections, means = [], []
    for case in cases:
        if args.quick:
            case.items = case.items[:2]
        models = args.model or [default_model_name(case.channels)]
        scores, panels, worst = run_case(case, models)
        sections.append(case_report(case, scores, models))
        figure = RESULTS / f"{name}_{case.name}.png"
        score_of = {k.replace("CRCNet ", ""): v[[i[0] for i in case.items].index(worst)] for k, v in scores.items()}
        save_figure(case, {k: v for k, v in panels.items()}, score_of, figure)
        sections[-1] += f"\nWorst image for `{models[0]}` against the best classical method at its defaults: " \
                        f"{worst}, ![{case.name}]({figure.name})\n"
        means.append([case.name, *[f"{r}: {np.mean(v):.2f}" for r, v in scores.items() if r != "blurred"]])
        print(sections[-1], flush=True)
    summary = "\n".join(f"- **{m[0]}**: " + "; ".join(m[1:]) for m in means)
    write_results(name, "Real captured blur and inexact kernels", __doc__.split("\n\n", 1)[1].split("    python")[0]
                  + "\n## Means\n\n" + summary + "\n\n" + "\n".join(sections) + run_note())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
