"""Speed of the classical core on the CPU: FFT round trip, MMSE, closed-form IRD, skimage Wiener, literal IRD.

All cases run side by side in interleaved repeats (case A, B, C, ..., then again). Ratios use the best time of
each case (load from other processes only adds time), with the medians and their ratios shown beside. Timings
include the NumPy <-> torch conversions that a user call pays. The literal Algorithm 1 loop is timed on a
smaller image (it costs ~4 FFTs per iteration) and compared with the closed form on that same image.

    python benchmarks/speed_core.py [--quick] [--threads 2] [--repeats 30]   # writes results/speed_core*.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from _common import markdown_table, run_note, write_results
from napari_crcnet import deconv, kernels, operators
from napari_crcnet.operators import BOUNDARIES

SIGMA = 0.01


def timed(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each case in ``repeats`` interleaved rounds (after one warm-up round)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(repeats + 1):
        for name, case in cases.items():
            start = time.perf_counter()
            case()
            elapsed = time.perf_counter() - start
            if round_:  # round 0 warms caches and allocators
                times[name].append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3x256x256, 3 repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    size, loop_size = (256, 128) if args.quick else (1024, 512)
    repeats = args.repeats or (3 if args.quick else 7)
    rng = np.random.default_rng(0)
    image = rng.random((3, size, size), dtype=np.float32)
    small = rng.random((loop_size, loop_size), dtype=np.float32)
    kernel = kernels.random_motion_kernel(21, seed=0)
    tensor = torch.from_numpy(image)

    def round_trip():
        return torch.fft.irfft2(torch.fft.rfft2(tensor), s=tensor.shape[-2:])

    def uncached(run: Callable[[], object]) -> object:
        """Run with an empty operator cache (transfer function and response rebuilt), then put the cached
        operators back, so the 'cached' cases that follow really are cached."""
        saved = dict(operators._OPERATOR_CACHE)
        operators._OPERATOR_CACHE.clear()
        try:
            return run()
        finally:
            operators._OPERATOR_CACHE.clear()
            operators._OPERATOR_CACHE.update(saved)

    def uncached_mmse():
        return uncached(lambda: deconv.mmse(image, kernel, SIGMA, channel_axis=0, boundary="periodic", device="cpu"))

    def uncached_ird():
        return uncached(lambda: deconv.ird(image, kernel, SIGMA, 1000, channel_axis=0, boundary="periodic",
                                           device="cpu"))

    def skimage_wiener():
        from skimage.restoration import wiener

        return np.stack([wiener(channel, kernel, SIGMA, clip=False) for channel in image])

    cases: dict[str, Callable[[], object]] = {"torch rfft2+irfft2 round trip (bare)": round_trip}
    for boundary in BOUNDARIES:
        cases[f"MMSE, {boundary}"] = lambda b=boundary: deconv.mmse(
            image, kernel, SIGMA, channel_axis=0, boundary=b, device="cpu"
        )
    cases["MMSE, periodic, nothing cached"] = uncached_mmse
    for boundary in BOUNDARIES:
        cases[f"IRD closed form N=1000, {boundary}"] = lambda b=boundary: deconv.ird(
            image, kernel, SIGMA, 1000, channel_axis=0, boundary=b, device="cpu"
        )
    cases["IRD closed form N=1000, periodic, nothing cached"] = uncached_ird
    cases["skimage.restoration.wiener (per channel)"] = skimage_wiener
    big = timed(cases, repeats)

    loop_cases = {
        "IRD literal loop N=100, periodic": lambda: deconv.ird(
            small, kernel, SIGMA, 100, method="iterative", boundary="periodic", device="cpu"
        ),
        "IRD closed form N=100, periodic": lambda: deconv.ird(small, kernel, SIGMA, 100, boundary="periodic",
                                                              device="cpu"),
    }
    loop = timed(loop_cases, max(5, repeats))

    # Other processes on a shared machine only ever add time, so the best of the interleaved rounds is the
    # cost of the code itself (as `timeit` recommends); the median is shown beside it as the typical case.
    best = {name: min(values) for name, values in big.items()}
    median = {name: statistics.median(values) for name, values in big.items()}
    bare_name, wiener_name = "torch rfft2+irfft2 round trip (bare)", "skimage.restoration.wiener (per channel)"
    rows = [
        [name, best[name] * 1e3, median[name] * 1e3, best[name] / best[bare_name],
         best[wiener_name] / best[name], median[wiener_name] / median[name]]
        for name in big
    ]
    loop_rows = [[name, min(values) * 1e3, statistics.median(values) * 1e3] for name, values in loop.items()]
    bare, wiener_time = best[bare_name], best[wiener_name]
    ird_periodic = best["IRD closed form N=1000, periodic"]
    ird_taper = best["IRD closed form N=1000, taper"]
    median_wiener_ratio = median[wiener_name] / median["IRD closed form N=1000, periodic"]
    speedup_loop = min(loop["IRD literal loop N=100, periodic"]) / min(loop["IRD closed form N=100, periodic"])

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    targets = [
        ["closed-form IRD N=1000 (periodic) <= 2x the bare round trip", f"{ird_periodic / bare:.2f}x",
         verdict(ird_periodic / bare <= 2)],
        ["closed-form IRD N=1000 (taper, default) vs bare round trip", f"{ird_taper / bare:.2f}x",
         "(padded grid, informative)"],
        ["closed-form IRD N=1000 (periodic) >= 3.5x faster than skimage wiener",
         f"{wiener_time / ird_periodic:.2f}x (median {median_wiener_ratio:.2f}x)",
         verdict(wiener_time / ird_periodic >= 3.5)],
        ["closed-form IRD N=1000 (taper) vs skimage wiener", f"{wiener_time / ird_taper:.2f}x", "(informative)"],
        [f"closed form >= 50x faster than the literal loop, N=100 ({loop_size}x{loop_size})",
         f"{speedup_loop:.1f}x", verdict(speedup_loop >= 50)],
    ]
    body = (
        f"Image 3x{size}x{size} float32 (channel_axis=0), random shake kernel 21x21, sigma {SIGMA}, device cpu, "
        f"{args.threads} torch thread(s); {repeats} interleaved repeats after a warm-up. Ratios and targets use the "
        "best wall time of each case (other processes only ever add time); medians are shown beside them. "
        "skimage's wiener runs per channel on NumPy's FFT (single-threaded) and recomputes its transfer function "
        "every call, as a user would call it. deconv caches the operator (transfer function) and the Fourier "
        "response of recent (kernel, grid, parameters); the 'not cached' rows start from a new operator. "
        "Periodic needs no padding; reflect/taper extend by the kernel size "
        "(grid rounded up to a 2-3-5 FFT length).\n\n"
        "## Targets\n\n" + markdown_table(["target", "measured", "status"], targets)
        + f"\nThe bare round trip alone is {wiener_time / bare:.2f}x faster than skimage's wiener here, which bounds "
        "what any method needing one FFT round trip can reach (torch FFTs gain from more threads, NumPy's do not; "
        "with one thread the 3.5x target is out of reach).\n"
        + "\n## All cases\n\n"
        + markdown_table(["case", "best ms", "median ms", "x bare round trip", "speed-up vs skimage wiener",
                         "same, medians"], rows)
        + f"\n## Literal loop vs closed form ({loop_size}x{loop_size} gray image, smaller because the loop is slow)"
        "\n\n" + markdown_table(["case", "best ms", "median ms"], loop_rows)
        + f"\nClosed form speed-up over the loop: **{speedup_loop:.1f}x**.\n"
    )
    body += run_note()
    name = "speed_core" + (f"_threads{args.threads}" if args.threads != 1 else "") + ("_quick" if args.quick else "")
    write_results(name, "Core speed: MMSE and IRD on the CPU", body)


if __name__ == "__main__":
    main()
