"""Training with DistributedDataParallel under torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from napari_crcnet.training.data import PairSynthesizer
from napari_crcnet.training.distributed import Processes

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from skimage import data
    from napari_crcnet.training import TrainConfig, train

    out, iterations = sys.argv[1], int(sys.argv[2])
    cam = data.camera()[::4, ::4]
    train(TrainConfig(kernel="gaussian:1", images=[cam[:64, :64], cam[64:, :64], cam[:64, 64:]],
                      val_images=[cam[64:, 64:]], channels=1, crop=32, batch=4, iterations=iterations,
                      model={"n_units": 2, "iu_channels": 8}, val_every=2, val_size=48, device="cpu",
                      checkpoint=out + "/run.ckpt.safetensors", resume=True, log_path=out + "/run.jsonl",
                      output=out + "/model.safetensors", threads=1))
    """
)


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_train_one_model_and_resume_on_one(tmp_path):
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    done = _run([*launch, str(script), str(tmp_path), "4"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["training"]["world_size"] == 2 and card["training"]["iterations"] == 4
    records = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    starts = [r for r in records if r["event"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # only rank 0 logs
    assert sum(r["event"] == "val" for r in records) == 2  # steps 2 and the end, once each
    # Resume the same run on one process: it continues from step 4.
    more = _run([sys.executable, str(script), str(tmp_path), "6"], tmp_path)
    assert more.returncode == 0, more.stderr[-2000:]
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["training"]["world_size"] == 1 and card["training"]["iterations"] == 6
    records = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "start"] == [0, 4]


def test_each_process_draws_other_crops_and_the_draws_depend_only_on_seed_step_and_rank():
    cam = data.camera()
    kernel = np.ones((3, 3)) / 9
    draws = {}
    for rank in (0, 1):
        synth = PairSynthesizer([cam], kernel, channels=1, crop=16, seed=0)
        Processes(rank=rank, world_size=2).seed_step(synth, seed=0, step=7)
        draws[rank] = synth.sample(2)[0]
    assert not torch.equal(draws[0], draws[1])
    again = PairSynthesizer([cam], kernel, channels=1, crop=16, seed=5)
    again.sample(3)  # whatever came before
    Processes(rank=1, world_size=2).seed_step(again, seed=0, step=7)
    assert torch.equal(again.sample(2)[0], draws[1])
    solo = PairSynthesizer([cam], kernel, channels=1, crop=16, seed=0)
    state = solo.state_dict()
    Processes().seed_step(solo, seed=0, step=7)  # one process: nothing changes
    assert solo.state_dict()["numpy"] == state["numpy"]


def test_the_batch_must_split_evenly(monkeypatch):
    from napari_crcnet.training.distributed import start_processes

    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="divisible"):
        start_processes(torch.device("cpu"), 8)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_the_cli_under_torchrun_writes_one_model_and_one_summary(tmp_path):
    from skimage import io as skio

    cam = data.camera()[::4, ::4]
    folder = tmp_path / "images"
    folder.mkdir()
    for i, crop in enumerate((cam[:64, :64], cam[64:, :64], cam[:64, 64:], cam[64:, 64:], cam[32:96, 32:96])):
        skio.imsave(folder / f"{i}.png", crop, check_contrast=False)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
              "napari_crcnet.cli", "train", "--kernel", "gaussian:1", "--images", str(folder), "--iterations", "2",
              "--batch", "4", "--crop", "32", "--val-every", "0", "--device", "cpu", "-o", str(tmp_path / "m")]
    done = _run(launch, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("done: 2 iterations") == 1  # one summary, from rank 0
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["training"]["world_size"] == 2
