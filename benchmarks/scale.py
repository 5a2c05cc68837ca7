"""Beyond one process: batch deblurring with 1 vs 2 dask workers, and DDP training with 1 vs 2 processes.

(a) Batch throughput: N small blurred images deblurred by ``napari_crcnet.batch.run_batch`` (what ``crcnet deblur
IN... -o OUTDIR/`` runs) in this process, and on local dask clusters of 1 and 2 worker processes. The clusters
are started and warmed up before the timing; their start-up time is reported on its own. Rounds are
interleaved; files per second from each case's best round.

(b) DDP training: ``python -m torch.distributed.run --standalone --nproc-per-node=K`` on a small gray CRCNet
training (same global batch for every K), steps per second from the log's ``train`` records (median over the
windows after the first).

Every process runs torch on one thread (``--threads`` to change it), so the ratios say what a second worker or
process adds. On this shared 2-core machine, busy with other jobs, two OpenMP threads in one process were far
slower than one (their synchronisation waits for a descheduled thread), which would flatter the 2-process rows.

    python benchmarks/scale.py [--quick]

Both questions are about this 2-core machine; the commands for a real cluster are printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from _common import markdown_table, run_note, write_results

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    from skimage import data
    from napari_crcnet.training import TrainConfig, train

    out, iterations, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cam = data.camera()
    images = [cam[y:y + 128, x:x + 128] for y in range(0, 384, 128) for x in range(0, 512, 128)]
    train(TrainConfig(kernel="gaussian:2", images=images, val_images=[data.camera()[400:, 400:]], channels=1,
                      crop=48, batch=8, iterations=iterations, log_every=5, val_every=10**6, val_size=64, n_val=1,
                      model={"n_units": 4, "iu_channels": 16}, device="cpu", log_path=out + "/run.jsonl",
                      threads=threads, seed=0))
    """
)

READING = (
    "\n"
    '**Reading these numbers.** This machine has 2 cores; the load average at the end says whether other '
    'jobs shared them. On a loaded machine a second worker or process finds no idle core and the ratio measures '
    'contention (an earlier run beside two training jobs gave 0.93x, 0.28x and 0.95x); rounds vary by 2-4x '
    '(the per-round times go to stderr). Files of a batch are independent, so on idle cores expect up to N x '
    'the files per second of one worker, less the cluster start-up and the FFTs competing for memory '
    'bandwidth; DDP adds a gradient all-reduce per step, so expect less than N x with small models.'
    "\n"
)

CLUSTER_COMMANDS = """## On a real cluster

Batch deblurring with dask.distributed (every node needs `pip install "napari-crcnet[distributed]"` and the
same paths to the data, e.g. a shared file system; models are loaded by name or path on each worker):

```bash
dask scheduler                                        # on the head node; prints tcp://HEAD:8786
dask worker tcp://HEAD:8786 --nworkers 4 --nthreads 1 # on each compute node (one process per core or GPU)
crcnet deblur /shared/raw/ /shared/more/*.tif -o /shared/sharp/ --kernel psf.tif --method mmse \\
    --cluster tcp://HEAD:8786                         # from any machine that reaches the scheduler
```

Training one model with DistributedDataParallel on 2 nodes of 4 GPUs (NCCL; gloo on CPUs), every node
running the same command:

```bash
torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=HEAD:29500 --rdzv-id=my-run \\
    --no-python crcnet train --kernel psf.tif --images /shared/sharp_photos/ -o /shared/models/my-model
```
"""


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    import napari_crcnet as nc

    kernel = nc.gaussian_kernel(2.0)
    paths = []
    for i in range(count):
        clear = np.random.default_rng(i).random((size, size))
        path = folder / f"img{i:03d}.tif"
        nc.write_image(path, nc.blur(clear, kernel, noise=0.01, seed=i).astype(np.float32))
        paths.append(path)
    return paths


def batch_section(quick: bool, threads: int) -> str:
    import distributed
    import torch

    import napari_crcnet as nc
    from napari_crcnet.batch import Settings, _set_threads, plan_jobs, run_batch

    torch.set_num_threads(threads)
    count = 6 if quick else 16
    rounds = 1 if quick else 2
    kernel = np.asarray(nc.gaussian_kernel(2.0))
    problems = [("MMSE, 512x512", 512, Settings(method="mmse", kernel=kernel, device="cpu")),
                ("hyper-Laplacian, 256x256", 256, Settings(method="hyper-laplacian", kernel=kernel, device="cpu"))]
    start = time.perf_counter()
    clusters = {}
    for workers in (1, 2):
        begin = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        client = distributed.Client(cluster)
        client.run(_set_threads, threads)
        clusters[workers] = (cluster, client, time.perf_counter() - begin)
    print(f"clusters up in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, size, settings in problems:
                images = make_images(Path(tmp) / f"in{size}", count, size)
                cases = {"this process": None, "1 worker": clusters[1][1], "2 workers": clusters[2][1]}
                jobs = {name: plan_jobs(images, Path(tmp) / f"out-{size}-{i}") for i, name in enumerate(cases)}
                for name, client in cases.items():  # warm-up: imports and first calls on every worker
                    run_batch(jobs[name][:4], settings, cluster=client, overwrite=True, report=lambda line: None)
                best = {name: float("inf") for name in cases}
                for _ in range(rounds):
                    for name, client in cases.items():
                        begin = time.perf_counter()
                        summary = run_batch(jobs[name], settings, cluster=client, overwrite=True,
                                            report=lambda line: None)
                        elapsed = time.perf_counter() - begin
                        assert summary.written == count and not summary.failed, summary.line()
                        best[name] = min(best[name], elapsed)
                        print(f"{label}: {name} {elapsed:.2f} s", file=sys.stderr)
                for name in cases:
                    rows.append([label, name, count, best[name], count / best[name],
                                 best["1 worker"] / best[name]])
    finally:
        for cluster, client, _ in clusters.values():
            client.close()
            cluster.close()
    startup = ", ".join(f"{w} worker(s) {clusters[w][2]:.1f} s" for w in clusters)
    table = markdown_table(["problem", "where", "files", "best time (s)", "files/s", "speed vs 1 worker"], rows)
    return (f"## (a) Batch deblurring: files per second\n\n{count} gray float32 TIFF files, Gaussian kernel "
            f"sigma 2 px, 1 % noise, read, deblurred and written per file (`run_batch`, what `crcnet deblur IN... "
            f"-o OUTDIR/` runs). \"this process\": files one after another; N workers: a `LocalCluster` of N "
            f"processes (`crcnet deblur --cluster local:N`), started and warmed up before the timing; torch on "
            f"{threads} thread(s) in every process. Best of {rounds} interleaved round(s).\n\n{table}\n"
            f"Cluster start-up (processes spawned and napari_crcnet imported on each worker), not in the times "
            f"above: {startup}; `crcnet deblur --cluster local:N` pays it once per run.\n")


def _train_run(script: Path, processes: int, iterations: int, folder: Path, threads: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               str(script), str(folder), str(iterations), str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    begin = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - begin
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (folder / "run.jsonl").read_text().splitlines()]
    rates = [r["steps_per_s"] for r in records if r["event"] == "train"][1:]  # the first window warms up
    start = next(r for r in records if r["event"] == "start")
    return {"rate": statistics.median(rates), "wall": wall, "world_size": start.get("world_size", 1)}


def ddp_section(quick: bool, threads: int) -> str:
    iterations = 15 if quick else 40
    rounds = 1 if quick else 2
    results: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train_small.py"
        script.write_text(TRAIN_SCRIPT)
        for round_ in range(rounds):
            for processes in (1, 2):
                run = _train_run(script, processes, iterations, Path(tmp) / f"run-{processes}-{round_}", threads)
                assert run["world_size"] == processes, run
                results[processes].append(run)
                print(f"DDP {processes} process(es): {run['rate']:.2f} steps/s, {run['wall']:.1f} s", file=sys.stderr)
    best = {k: max(r["rate"] for r in runs) for k, runs in results.items()}
    rows = [[f"{k} process(es) x {threads} thread(s)", iterations, best[k], best[k] / best[1],
             min(r["wall"] for r in results[k])] for k in (1, 2)]
    table = markdown_table(["launch", "steps", "steps/s (best run's median window)", "speed vs 1 process",
                            "wall incl. start-up (s)"], rows)
    return (f"## (b) DDP training: steps per second\n\n`python -m torch.distributed.run --standalone "
            f"--nproc-per-node=K` on a small gray CRCNet training (4 units of 16 channels, global batch 8 crops "
            f"of 48 px: 8 on one process, 4 per process on two; gloo on the CPU), {iterations} steps, logged "
            f"every 5; steps/s is the median of the log's windows after the first, best of {rounds} "
            f"interleaved run(s). One step is the same work for every K, so the ratio is the speed-up.\n\n"
            f"{table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer files, steps and rounds (smoke test)")
    parser.add_argument("--only", choices=("batch", "ddp"), default=None, help="run one part only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every process")
    args = parser.parse_args()
    parts = []
    if args.only in (None, "batch"):
        parts.append(batch_section(args.quick, args.threads))
    if args.only in (None, "ddp"):
        parts.append(ddp_section(args.quick, args.threads))
    body = "\n".join(parts) + READING + "\n" + CLUSTER_COMMANDS + run_note()
    name = "scale" + (f"_{args.only}" if args.only else "") + ("_quick" if args.quick else "")
    write_results(name, "Scaling: batch deblurring on dask workers, DDP training on several processes", body)


if __name__ == "__main__":
    main()
