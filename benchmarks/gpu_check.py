"""The CUDA path, checked on a GPU: inference (tiles, the out-of-memory fallback, half precision) and training.

Run on a machine with a CUDA GPU (this project's machines have none; the `device` tool lends one to some
sessions)::

    python benchmarks/gpu_check.py                    # writes benchmarks/results/gpu_check.md
    python benchmarks/gpu_check.py --allow-cpu --quick   # the same steps on the CPU (smoke test)

Checks, each a row of the results table (pass/fail, time, detail):

1. ``nc.crcnet`` on a 1024x1024 RGB image on CUDA equals the CPU result (max difference; bf16 autocast on
   CUDA when supported, as on the CPU);
2. out of memory: a fake out-of-memory error on the first tiles makes inference halve the tile and finish,
   and one on every CUDA tile makes it move to the CPU (warnings say so), with the same result;
3. half precision: the network under ``torch.autocast("cuda", torch.float16)`` against float32 (PSNR change);
4. training: 20 steps of ``training.train`` on CUDA (any-kernel, realistic degradation), steps per second;
5. MMSE, IRD, hyper-Laplacian and Richardson-Lucy on CUDA equal their CPU results.
"""

from __future__ import annotations

import argparse
import time
import traceback
import warnings

import numpy as np

from _common import markdown_table, write_results


def _check(rows: list, name: str, run) -> None:
    start = time.perf_counter()
    try:
        ok, detail = run()
    except Exception as error:  # a failed check is a row, not the end of the run
        ok, detail = False, f"{type(error).__name__}: {error} | {traceback.format_exc(limit=2).splitlines()[-1]}"
    rows.append([name, "pass" if ok else "FAIL", round(time.perf_counter() - start, 2), detail])
    print(rows[-1], flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--allow-cpu", action="store_true", help="run the steps on the CPU when there is no GPU")
    parser.add_argument("--quick", action="store_true", help="256 px and 3 training steps")
    args = parser.parse_args(argv)
    import torch

    import napari_crcnet as nc
    from napari_crcnet import inference

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("no CUDA device: nothing checked (use --allow-cpu for a CPU dry run)")
        return 1
    device = "cuda" if cuda else "cpu"
    size = 256 if args.quick else 1024
    rng = np.random.default_rng(0)
    kernel = nc.random_motion_kernel(21, seed=3)
    clear = np.clip(rng.random((size, size, 3)) * 0.2 + np.linspace(0, 0.8, size)[:, None, None], 0, 1)
    blurred = nc.blur(clear, kernel, noise=0.01, seed=1, channel_axis=-1)
    warnings.simplefilter("always")
    rows: list[list] = []
    reference = nc.crcnet(blurred, kernel=kernel, channel_axis=-1, noise=0.01, device="cpu")

    def same_as_cpu():
        out = nc.crcnet(blurred, kernel=kernel, channel_axis=-1, noise=0.01, device=device)
        diff = float(np.abs(out - reference).max())
        return diff < 2e-2, f"max |GPU - CPU| = {diff:.2e} ({torch.cuda.get_device_name() if cuda else 'cpu'})"

    def out_of_memory():
        real = inference._forward
        calls = {"n": 0}

        def flaky(model, x, *rest):
            calls["n"] += 1
            if x.device.type != "cpu" and calls["n"] <= 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return real(model, x, *rest)

        inference._forward = flaky
        try:
            with warnings.catch_warnings(record=True) as seen:
                out = nc.crcnet(blurred, kernel=kernel, channel_axis=-1, noise=0.01, device=device, tile=256)
        finally:
            inference._forward = real
        said = sorted({str(w.message)[:60] for w in seen if "out of memory" in str(w.message)})
        diff = float(np.abs(out - reference).max())
        return (diff < 2e-2 and (bool(said) or not cuda)), f"max diff {diff:.2e}; warnings: {said}"

    def half_precision():
        from napari_crcnet.models.store import load_model

        model, _ = load_model("any-kernel", device=device)
        x = torch.rand(1, 4, 128, 128, device=device)
        with torch.inference_mode():
            full = model(x)
            with torch.autocast(device_type=device, dtype=torch.float16 if cuda else torch.bfloat16):
                half = model(x).float()
        change = float(10 * np.log10(1 / max(torch.mean((full - half) ** 2).item(), 1e-20)))
        return change > 40, f"fp16 vs fp32: PSNR of the difference {change:.1f} dB"

    def training():
        from napari_crcnet.training import TrainConfig, train

        images = [np.asarray(rng.random((128, 128, 3)), np.float32) for _ in range(4)]
        steps = 3 if args.quick else 20
        result = train(TrainConfig(kernel="any", images=images, channels=3, iterations=steps, batch=8, crop=64,
                                   max_kernel=15, degradation="realistic", init="any-kernel", device=device,
                                   val_every=0, val_size=64))
        rate = result.steps / max(result.elapsed_s, 1e-9)
        return result.steps == steps, f"{steps} steps, {rate:.2f} steps/s on {device}"

    def classical():
        diffs = {}
        for name, run in (("mmse", lambda d: nc.mmse(blurred, kernel, 0.01, channel_axis=-1, device=d)),
                          ("ird", lambda d: nc.ird(blurred, kernel, 0.01, 50, channel_axis=-1, device=d)),
                          ("hyper_laplacian", lambda d: nc.hyper_laplacian(blurred, kernel, 2000.0, channel_axis=-1,
                                                                           device=d)),
                          ("richardson_lucy", lambda d: nc.richardson_lucy(blurred, kernel, 10, channel_axis=-1,
                                                                           device=d))):
            diffs[name] = float(np.abs(run(device) - run("cpu")).max())
        return max(diffs.values()) < 1e-3, ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())

    for name, run in (("crcnet on the device = CPU", same_as_cpu), ("out-of-memory fallback", out_of_memory),
                      ("half precision", half_precision), ("training steps", training),
                      ("classical methods on the device = CPU", classical)):
        _check(rows, name, run)
    title = "CUDA path check" + ("" if cuda else " (CPU dry run: no CUDA device)")
    write_results("gpu_check" + ("_quick" if args.quick or not cuda else ""), title,
                  __doc__.split("\n\n", 1)[1].split("Checks,")[0]
                  + markdown_table(["check", "result", "seconds", "detail"], rows))
    return 0 if all(r[1] == "pass" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
