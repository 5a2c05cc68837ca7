"""``crcnet deblur IN... -o OUTDIR/``: batches of files, folders, globs and lazy stacks, in this process or on a
dask.distributed cluster; skipping, failures and exit codes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import napari_crcnet as nc
from napari_crcnet import batch
from napari_crcnet.cli import main
from napari_crcnet.io import read_image, write_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KERNEL = "gaussian:1.2"


def _blurred(shape, seed, channel_axis=None):
    clear = np.random.default_rng(seed).random(shape)
    return nc.blur(clear, nc.gaussian_kernel(1.2), noise=0.01, seed=seed, channel_axis=channel_axis).astype(np.float32)


@pytest.fixture
def images(tmp_path):
    """Three small blurred images: a gray TIFF, a gray PNG and an RGB TIFF."""
    folder = tmp_path / "in"
    paths = [folder / "a.tif", folder / "b.png", folder / "c.tif"]
    write_image(paths[0], _blurred((32, 30), 0))
    write_image(paths[1], np.clip(_blurred((28, 32), 1), 0, 1))
    write_image(paths[2], _blurred((30, 30, 3), 2, channel_axis=-1))
    return paths


def _single(path, out, *options):
    """The single-file command's result for ``path``."""
    assert main(["deblur", str(path), "--kernel", KERNEL, *options, "-o", str(out)]) == 0
    return read_image(out)


def test_a_local_cluster_of_two_workers_writes_what_the_single_file_command_does(tmp_path, images, capsys):
    distributed = pytest.importorskip("distributed")
    del distributed
    stack = tmp_path / "in" / "stack.tif"
    frames = _blurred((4, 24, 26), 3)
    write_image(stack, frames)
    outdir = tmp_path / "out"
    code = main(["deblur", *map(str, images), str(stack), "--kernel", KERNEL, "--method", "ird", "--iterations",
                 "20", "--sigma", "0.02", "-o", f"{outdir}/", "--cluster", "local:2"])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("4 written, 0 skipped, 0 failed")
    assert sorted(p.name for p in outdir.iterdir()) == ["a.tif", "b.tif", "c.tif", "stack.tif"]
    for path in images:
        expected = _single(path, tmp_path / f"single-{path.stem}.tif", "--method", "ird", "--iterations", "20",
                           "--sigma", "0.02")
        result = read_image(outdir / f"{path.stem}.tif")
        assert result.dtype == np.float32
        np.testing.assert_array_equal(result, expected)
    np.testing.assert_allclose(read_image(outdir / "stack.tif"), nc.ird(frames, nc.gaussian_kernel(1.2), 0.02, 20),
                               atol=1e-5)


def test_a_folder_is_its_image_files_sorted_and_not_recursive_and_a_quoted_glob_is_expanded(tmp_path, images):
    folder = images[0].parent
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.tif").write_bytes(images[0].read_bytes())
    write_image(folder / "deeper" / "d.tif", _blurred((20, 20), 4))
    assert batch.collect_inputs([str(folder)]) == sorted(images)
    assert main(["deblur", str(folder), "--kernel", KERNEL, "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif", "c.tif"]
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "b.tif"), _single(images[1], tmp_path / "b1.tif"))
    # A quoted glob (the shell did not expand it) and a shell-expanded list give the same files.
    assert batch.collect_inputs([str(folder / "*.tif")]) == [images[0], images[2]]
    assert main(["deblur", str(folder / "*.tif"), "--kernel", KERNEL, "-o", f"{tmp_path / 'glob'}/"]) == 0
    assert sorted(p.name for p in (tmp_path / "glob").iterdir()) == ["a.tif", "c.tif"]


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, images, capsys):
    outdir = tmp_path / "out"
    argv = ["deblur", *map(str, images), "--kernel", KERNEL, "-o", f"{outdir}/"]
    assert main(argv) == 0
    write_image(outdir / "a.tif", np.zeros((2, 2), np.float32))  # stands for a result we must not redo
    (outdir / "c.tif").unlink()  # an interrupted batch: c was not written
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped 2 existing output(s)" in out and "a.tif, b.tif" in out and "--overwrite" in out
    assert out.strip().splitlines()[-1].startswith("1 written, 2 skipped, 0 failed")
    assert read_image(outdir / "a.tif").shape == (2, 2) and (outdir / "c.tif").exists()
    assert main([*argv, "--overwrite"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("3 written, 0 skipped, 0 failed")
    np.testing.assert_array_equal(read_image(outdir / "a.tif"), _single(images[0], tmp_path / "a1.tif"))
    assert not [p for p in outdir.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_one_bad_file_is_one_line_and_the_others_are_written_with_exit_1(tmp_path, images, capsys):
    folder = images[0].parent
    (folder / "damaged.png").write_bytes(b"\x89PNG not really")
    np.save(folder / "line.npy", np.ones(50))  # a 1D array: not an image
    assert main(["deblur", str(folder), "--kernel", KERNEL, "-o", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("crcnet deblur: failed: ") for line in errors)
    assert "damaged.png" in errors[0] and "line.npy" in errors[1] and "Traceback" not in captured.err
    assert captured.out.strip().splitlines()[-1].startswith("3 written, 0 skipped, 2 failed")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif", "c.tif"]


@pytest.mark.parametrize(("method", "options", "shape", "axis"), [
    ("mmse", [], (7, 26, 24), None),  # sigma estimated once, from the first plane
    ("ird", ["--sigma", "0.03", "--iterations", "15"], (5, 24, 22, 3), -1),  # an RGB stack
    ("hyper-laplacian", [], (3, 24, 24), None),  # lam from the first plane
])
def test_a_tiff_stack_is_deblurred_lazily_chunk_by_chunk_and_equals_the_eager_call(
        tmp_path, monkeypatch, method, options, shape, axis):
    frames = _blurred(shape, 5, channel_axis=axis)
    write_image(tmp_path / "stack.tif", frames)
    monkeypatch.setattr(batch, "STACK_CHUNK_BYTES", 2 * 4 * int(np.prod(shape[1:])))  # 2 planes per chunk
    chunks = []
    real = batch.deblur_array

    def recorded(image, channel_axis, settings, progress=None):
        chunks.append(image.shape)
        return real(image, channel_axis, settings, progress)

    monkeypatch.setattr(batch, "deblur_array", recorded)
    assert main(["deblur", str(tmp_path / "stack.tif"), "--kernel", KERNEL, "--method", method, *options,
                 "-o", f"{tmp_path / 'out'}/"]) == 0
    assert chunks == [(2, *shape[1:])] * (shape[0] // 2) + [(1, *shape[1:])] * (shape[0] % 2)
    kernel = nc.gaussian_kernel(1.2)
    plane_noise = nc.estimate_noise(frames[0], channel_axis=axis)
    if method == "mmse":
        expected = nc.mmse(frames, kernel, nc.suggest_sigma(plane_noise))
    elif method == "ird":
        expected = nc.ird(frames, kernel, 0.03, 15, channel_axis=-1)
    else:
        from napari_crcnet.hyperlaplacian import suggest_lambda

        expected = nc.hyper_laplacian(frames, kernel, suggest_lambda(plane_noise))
    result = read_image(tmp_path / "out" / "stack.tif")
    assert result.shape == shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_a_zarr_store_is_written_as_a_zarr_store(tmp_path):
    zarr = pytest.importorskip("zarr")
    da = pytest.importorskip("dask.array")
    frames = _blurred((2, 3, 20, 22), 6)  # (T, Z, Y, X)
    da.from_array(frames, chunks=(1, 3, 10, 22)).to_zarr(str(tmp_path / "movie.zarr"))
    assert main(["deblur", str(tmp_path / "movie.zarr"), "--kernel", KERNEL, "--sigma", "0.02",
                 "-o", f"{tmp_path / 'out'}/"]) == 0
    result = np.asarray(zarr.open_array(str(tmp_path / "out" / "movie.zarr"), mode="r"))
    np.testing.assert_allclose(result, nc.mmse(frames, nc.gaussian_kernel(1.2), 0.02), atol=1e-6)


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, images, capfd):
    pytest.importorskip("distributed")
    code = main(["deblur", *map(str, images), "--kernel", KERNEL, "-o", f"{tmp_path / 'out'}/",
                 "--cluster", "tcp://127.0.0.1:1", "--cluster-timeout", "1"])
    assert code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no dask scheduler answered at tcp://127.0.0.1:1 within 1 s" in err[0]
    assert "dask scheduler" in err[0] and not (tmp_path / "out").exists()


def test_without_distributed_the_error_names_the_extra(tmp_path, images, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert main(["deblur", *map(str, images), "--kernel", KERNEL, "-o", f"{tmp_path}/", "--cluster", "local:2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "napari-crcnet[distributed]"' in err[0]


@pytest.mark.parametrize(("extra", "message"), [
    (["-o", "{tmp}/one.tif"], "-o names a folder"),
    (["-o", "{tmp}/out/", "--cluster", "local:0"], "--cluster local:N needs a number of workers N >= 1"),
    (["-o", "{tmp}/out/", "--cluster", "somewhere"], "--cluster must be local:N"),
    (["-o", "{tmp}/out/", "--method", "ird", "--residues", "0,1"], "--residues is for one input file"),
    (["{tmp}/in/a.png", "-o", "{tmp}/out/"], "a.tif and a.png would both be written to"),
    (["{tmp}/in/*.jpg", "-o", "{tmp}/out/"], "no image file matches"),
    (["-o", "{tmp}/in/"], "would replace its input"),
])
def test_batch_usage_errors_are_one_line_and_exit_2_before_any_work(tmp_path, images, capsys, extra, message):
    write_image(tmp_path / "in" / "a.png", np.zeros((8, 8), np.uint8))
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["deblur", str(images[0]), str(images[1]), *extra, "--kernel", KERNEL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()
