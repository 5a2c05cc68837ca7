"""The paper's test kernels: 10 random 21x21 camera-shake kernels (fixed seeds), saved and shown as in Fig. 5.

The CRCNet paper trained and tested one model per kernel on 10 kernels from Chakrabarti's generator; these
are ours, from :func:`napari_crcnet.kernels.random_motion_kernel` with seeds 101..110, so every benchmark of
the paper protocol uses the same files.

    python benchmarks/paper_kernels.py      # writes results/paper_kernels/kernel_NN.npy and paper_kernels.png
"""

from __future__ import annotations

import numpy as np

from _common import RESULTS, write_results
from napari_crcnet.kernels import random_motion_kernel

SEEDS = tuple(range(101, 111))


def paper_kernels() -> list[np.ndarray]:
    """The 10 kernels (21x21, convolution-oriented, sum 1), in seed order."""
    return [random_motion_kernel(21, seed=seed) for seed in SEEDS]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = RESULTS / "paper_kernels"
    folder.mkdir(parents=True, exist_ok=True)
    kernels = paper_kernels()
    fig, axes = plt.subplots(2, 5, figsize=(7.5, 3.3), dpi=80)
    rows = []
    for index, (seed, kernel, ax) in enumerate(zip(SEEDS, kernels, axes.ravel()), start=1):
        np.save(folder / f"kernel_{index:02d}.npy", kernel)
        ax.imshow(kernel, cmap="gray", interpolation="nearest")
        ax.set_title(f"k{index} (seed {seed})", fontsize=8)
        ax.axis("off")
        ys, xs = np.nonzero(kernel > 0.02 * kernel.max())
        rows.append(f"| k{index} | {seed} | {np.ptp(ys) + 1}x{np.ptp(xs) + 1} |")
    fig.tight_layout()
    fig.savefig(RESULTS / "paper_kernels.png")
    plt.close(fig)
    body = (
        "`random_motion_kernel(21, seed)` for seeds 101-110, saved as `results/paper_kernels/kernel_NN.npy` "
        "(float64, sum 1, convolution-oriented).\n\n| kernel | seed | support (rows x cols, > 2 % of max) |\n"
        "|---|---|---|\n" + "\n".join(rows) + "\n\n![the 10 kernels](paper_kernels.png)\n"
    )
    write_results("paper_kernels", "The paper protocol's 10 random 21x21 kernels (cf. the paper's Fig. 5)", body)


if __name__ == "__main__":
    main()
