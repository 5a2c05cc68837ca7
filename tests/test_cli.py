"""The ``crcnet`` command end to end on tiny files: deblur, kernel, models, demo, and clean errors."""

import numpy as np
import pytest

from napari_crcnet.cli import main
from napari_crcnet.io import read_image, write_image


@pytest.fixture
def blurred_png(tmp_path):
    from napari_crcnet.deconv import blur
    from napari_crcnet.kernels import gaussian_kernel

    rng = np.random.default_rng(0)
    sharp = rng.random((48, 40, 3))
    path = tmp_path / "blurred.png"
    write_image(path, np.clip(blur(sharp, gaussian_kernel(1.5), channel_axis=-1), 0, 1))
    return path


@pytest.mark.parametrize("method", ["mmse", "ird", "hyper-laplacian"])
def test_deblur_writes_same_shape(tmp_path, blurred_png, method):
    out = tmp_path / f"{method}.tif"
    assert main(["deblur", str(blurred_png), "--kernel", "gaussian:1.5", "--method", method, "-o", str(out)]) == 0
    result = read_image(out)
    assert result.shape == (48, 40, 3)
    assert result.dtype == np.float32


def test_deblur_writes_residues(tmp_path, blurred_png):
    out = tmp_path / "ird.tif"
    code = main(["deblur", str(blurred_png), "--kernel", "gaussian:1.5", "--method", "ird", "--iterations", "5",
                 "--residues", "0,1,5", "-o", str(out)])
    assert code == 0
    residues = read_image(tmp_path / "ird_residues.tif")
    sums = read_image(tmp_path / "ird_partial_sums.tif")
    assert residues.shape == sums.shape == (3, 48, 40, 3)
    np.testing.assert_allclose(sums[-1], read_image(out), atol=1e-4)


def test_kernel_command(tmp_path):
    out = tmp_path / "k.npy"
    assert main(["kernel", "motion:9,30", "-o", str(out)]) == 0
    kernel = np.load(out)
    assert kernel.ndim == 2 and abs(kernel.sum() - 1) < 1e-6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deblur", "missing.png", "--kernel", "gaussian:1", "-o", "x.tif"], "missing.png"),
        (["deblur", "{img}", "--kernel", "nonsense:3", "-o", "x.tif"], "nonsense"),
        (["deblur", "{img}", "--method", "mmse", "-o", "x.tif"], "--kernel is required"),
        (["deblur", "{img}", "--kernel", "gaussian:1", "--sigma", "-1", "-o", "x.tif"], "sigma"),
        (["deblur", "{img}", "--kernel", "disk:40", "-o", "x.tif"], "larger than the image"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, blurred_png, capsys, argv, message):
    argv = [a.replace("{img}", str(blurred_png)).replace("x.tif", str(tmp_path / "x.tif")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err
    assert "Traceback" not in err


def test_models_lists_something(capsys):
    assert main(["models"]) == 0
    assert capsys.readouterr().out.strip()


def test_demo_writes_results_and_figure(tmp_path):
    assert main(["demo", "-o", str(tmp_path), "--size", "96"]) == 0
    for name in ("comparison.png", "results.md", "blurred.png", "mmse.png", "ird.png", "hyper-laplacian.png"):
        assert (tmp_path / name).exists(), name
    table = (tmp_path / "results.md").read_text()
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in table.splitlines()
            if line.startswith("| ") and "PSNR" not in line}
    mmse = next(v for k, v in rows.items() if k.startswith("MMSE"))
    assert mmse > rows["blurred"]  # deblurring helps on the demo problem
    # The shipped per-kernel model for the demo's kernel, and the model for any kernel, each its own file.
    assert (tmp_path / "crcnet-shake21-rgb.png").exists() and (tmp_path / "crcnet-any-kernel.png").exists()
    assert rows["CRCNet (any-kernel)"] > mmse and rows["CRCNet (shake21-rgb)"] > mmse


@pytest.mark.slow
def test_wheel_holds_the_manifest_and_the_shipped_models(tmp_path):
    """The manifest is a symlink in the source tree: the wheel must carry it as a real file, with the weights."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("napari_crcnet-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        manifest = archive.read("napari_crcnet/napari.yaml").decode()
    assert "name: napari-crcnet" in manifest
    assert "napari_crcnet/weights/shake21-rgb.safetensors" in names
    assert "napari_crcnet/weights/shake21-rgb.json" in names


def test_crcnet_without_model_uses_the_default_any_kernel_model(tmp_path, blurred_png, any_kernel_model):
    """No --model: the default (family) model runs with the given kernel; the same call with the model
    named gives the same result."""
    outputs = []
    for extra in ([], ["--model", str(any_kernel_model)]):
        out = tmp_path / f"crcnet{len(extra)}.tif"
        args = ["deblur", str(blurred_png), "--kernel", "gaussian:1.5", "--method", "crcnet", "--noise", "0.01"]
        assert main([*args, *extra, "-o", str(out)]) == 0
        outputs.append(read_image(out))
    assert outputs[0].shape == (48, 40, 3)
    np.testing.assert_array_equal(outputs[0], outputs[1])
