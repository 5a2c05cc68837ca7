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


@pytest.mark.parametrize("method", ["mmse", "ird", "hyper-laplacian", "richardson-lucy"])
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


def test_richardson_lucy_options_reach_the_method(tmp_path, blurred_png, capsys):
    import napari_crcnet as nc

    out = tmp_path / "rl.tif"
    assert main(["deblur", str(blurred_png), "--kernel", "gaussian:1.5", "--method", "richardson-lucy",
                 "--iterations", "7", "--tv", "0.002", "-o", str(out)]) == 0
    expected = nc.richardson_lucy(read_image(blurred_png), nc.gaussian_kernel(1.5), 7, tv=0.002, channel_axis=-1)
    np.testing.assert_allclose(read_image(out), expected, atol=1e-5)
    capsys.readouterr()
    for bad, word in ((["--tv", "-1"], "tv"), (["--iterations", "0"], "iterations")):
        assert main(["deblur", str(blurred_png), "--kernel", "gaussian:1.5", "--method", "richardson-lucy", *bad,
                     "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0], err


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
        (["deblur", "{img}", "--kernel", "gaussian:1", "--channel-axis", "5", "-o", "x.tif"],
         "--channel-axis 5 is out of range"),
        (["deblur", "{img}", "--kernel", "gaussian:1", "--channel-axis", "1.5", "-o", "x.tif"],
         "--channel-axis must be auto, none or an axis number"),
        (["deblur", "{dir}", "--kernel", "gaussian:1", "-o", "x.tif"], "is a directory"),
        (["deblur", "{img}", "--kernel", "gaussian:1", "-o", "{dir}"], "is a directory; give a file name"),
        (["deblur", "{img}", "--kernel", "gaussian:1", "-o", "x.txt"], "-o: unsupported output format"),
        (["deblur", "{img}", "--kernel", "gaussian:1", "--method", "ird", "--residues", "1,a", "-o", "x.tif"],
         "--residues: not a list of residue indices"),
        (["deblur", "{img}", "--kernel", "gaussian:1", "--residues", "0,1", "-o", "x.tif"],
         "--residues is for --method ird"),
        (["deblur", "{img}", "--kernel", "gaussian:1", "--method", "hyper-laplacian", "--residues", "0", "-o",
          "x.tif"], "--method hyper-laplacian has none"),
        (["deblur", "{img}", "--kernel", "{img}", "-o", "x.tif"], "--kernel: blurred.png is a colour picture"),
        (["deblur", "{img}", "--kernel", "motion:1e9,0", "-o", "x.tif"], "at most 4097 px"),
        (["kernel", "disk:1e9", "-o", "x.npy"], "at most 4097 px"),
        (["kernel", "gaussian:1e5", "-o", "x.npy"], "at most 4097 px"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, blurred_png, capsys, argv, message):
    (tmp_path / "folder").mkdir()
    argv = [a.replace("{img}", str(blurred_png)).replace("{dir}", str(tmp_path / "folder")) for a in argv]
    argv = [str(tmp_path / a) if a.startswith("x.") else a for a in argv]
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


def test_residues_take_ranges_like_the_widget(tmp_path, blurred_png):
    out = tmp_path / "ird.tif"
    assert main(["deblur", str(blurred_png), "--kernel", "gaussian:1.5", "--method", "ird", "--iterations", "5",
                 "--residues", "0-3,5", "-o", str(out)]) == 0
    assert read_image(tmp_path / "ird_residues.tif").shape == (5, 48, 40, 3)


@pytest.fixture
def per_kernel_model(tmp_path):
    """A tiny untrained RGB model for gaussian:1.5 only."""
    import torch

    from napari_crcnet.kernels import gaussian_kernel
    from napari_crcnet.models import CRCNet, CRCNetConfig, save_model

    torch.manual_seed(0)
    path = tmp_path / "g15.safetensors"
    save_model(path, CRCNet(CRCNetConfig(in_channels=3, n_units=2, iu_channels=4)),
               {"kernel": gaussian_kernel(1.5), "mmse_sigma": 0.01, "noise": 0.01})
    return path


def test_messages_and_warnings_speak_in_options_on_one_line(tmp_path, blurred_png, per_kernel_model, capsys):
    base = ["deblur", str(blurred_png), "--method", "crcnet", "--model", str(per_kernel_model), "--device", "cpu"]
    assert main([*base, "--kernel", "gaussian:3", "-o", str(tmp_path / "x.tif")]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "force=True" not in err and len(err.strip().splitlines()) == 1
    # A library warning (the noise level here is outside the family model's range) is one line, in option words.
    from napari_crcnet.models.store import save_model

    card = {"kernel": None, "kernel_family": {"max_kernel": 31}, "mmse_sigma": "suggest", "noise": [0.2, 0.3]}
    import torch

    from napari_crcnet.models import CRCNet, CRCNetConfig

    torch.manual_seed(0)
    family = tmp_path / "family.safetensors"
    save_model(family, CRCNet(CRCNetConfig(in_channels=3, n_units=2, iu_channels=4, input="mmse",
                                           extra_inputs=("noise",))), card)
    base[5] = str(family)
    assert main([*base, "--kernel", "gaussian:1.5", "-o", str(tmp_path / "y.tif")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    warning = [line for line in err if "warning" in line]
    assert len(warning) == 1 and warning[0].startswith("crcnet deblur: warning: model")
    assert "--noise" in warning[0] and "noise=" not in warning[0]


def test_cli_words_translates_python_keywords():
    from napari_crcnet.cli import cli_words

    assert cli_words("use force=True to apply it") == "use --force to apply it"
    assert cli_words("no CUDA GPU; use device='cpu'") == "no CUDA GPU; use --device cpu"
    assert cli_words("(pass noise= to override)") == "(pass --noise to override)"
    assert cli_words("its card has none: pass kernel=...") == "its card has none: pass --kernel"


def _actions(parser):
    """``(action, its parser)`` for every option and argument of ``parser`` and its subcommands but train."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name != "train":  # its own parser: crcnet train --help
                    yield from _actions(sub)
        elif not isinstance(action, argparse._HelpAction):
            yield action, parser


def test_help_gives_every_option_a_text_and_its_default(capsys):
    from napari_crcnet.cli import build_parser
    from napari_crcnet.training.cli import build_parser as train_parser

    for action, owner in [*_actions(build_parser()), *_actions(train_parser())]:
        assert action.help, action.dest
        if action.option_strings and not action.required:
            formatter = owner._get_formatter()
            text = formatter._expand_help(action) if hasattr(formatter, "_get_help_string") else action.help
            assert "default" in text, (owner.prog, action.dest, text)
    for name in ("deblur", "kernel", "models", "demo"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for method in ("MMSE", "IRD", "hyper-Laplacian", "CRCNet"):
        assert method in text.split("positional arguments")[0], method


def test_models_lists_user_models_and_skips_damaged_files(tmp_path, monkeypatch, per_kernel_model, capsys):
    folder = tmp_path / "user-models"
    monkeypatch.setenv("NAPARI_CRCNET_MODELS", str(folder))
    folder.mkdir()
    (folder / "mine.safetensors").write_bytes(per_kernel_model.read_bytes())
    data = per_kernel_model.read_bytes()
    (folder / "damaged.safetensors").write_bytes(data[: len(data) // 2])
    assert main(["models"]) == 0
    captured = capsys.readouterr()
    assert "mine.safetensors" in captured.out and "damaged" not in captured.out and str(folder) in captured.out
    assert captured.err.count("\n") == 1 and "crcnet models: warning: skipping model" in captured.err


def test_the_readme_apt_get_list_is_the_one_ci_installs():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ci = (root / ".ci" / "run").read_text()
    ci_packages = set(re.search(r"apt-get install -y -qq --no-install-recommends \\(.*?)>", ci, re.S).group(1).split())
    readme = re.search(r"`apt-get install ([^`]*)`", (root / "README.md").read_text()).group(1).split()
    assert set(readme) == ci_packages - {"\\"}
