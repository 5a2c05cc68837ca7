"""The napari widgets, manifest and sample data, with a real viewer (pytest-qt's ``make_napari_viewer``
under pytest-xvfb; do not set ``QT_QPA_PLATFORM=offscreen``, it cannot draw image layers).

Every run goes through the widget's worker thread; results are compared with direct calls of the core
functions, so the widgets are shown to be glue only (same arrays, placed like the input).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_crcnet import deconv, kernels  # noqa: E402
from napari_crcnet._sample_data import blurred_cell, blurred_photo  # noqa: E402

# Small arrays: one torch thread avoids OpenMP spin-waits on a shared, oversubscribed CPU (and the worker
# threads still leave the GUI thread free).
pytestmark = [pytest.mark.widgets, pytest.mark.usefixtures("one_torch_thread")]

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 120_000


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("NAPARI_CRCNET_MODELS", str(folder))
    return folder


def add_sample(viewer, sample, **overrides):
    layers = []
    for data, kwargs, _ in sample():
        layers.append(viewer.add_image(data, **{**kwargs, **overrides.get(kwargs["name"], {})}))
    return layers


def deblur_widget(viewer):
    from napari_crcnet._widgets.deblur import DeblurWidget

    widget = DeblurWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def run_and_wait(qtbot, widget):
    worker = widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    return worker


def photo_kernel(viewer):
    return kernels.validate_kernel(viewer.layers["astronaut kernel"].data)


# ------------------------------------------------------------------------------------ manifest, samples
def test_manifest_validates_and_every_command_imports():
    from npe2 import PluginManifest

    assert (ROOT / "src" / "napari_crcnet" / "napari.yaml").resolve() == (ROOT / "napari.yaml").resolve()
    manifest = PluginManifest.from_file(ROOT / "napari.yaml")
    for command in manifest.contributions.commands:
        module, _, attribute = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), command.id
    commands = {c.id for c in manifest.contributions.commands}
    assert {w.command for w in manifest.contributions.widgets} <= commands
    assert {s.command for s in manifest.contributions.sample_data} <= commands
    filters = [item.command for item in manifest.contributions.menus["napari/layers/filter"]]
    assert "napari-crcnet.deblur_widget" in filters
    # (the imports were checked above, in this process: no need for `validate --imports`)
    command = [sys.executable, "-m", "npe2", "validate", "napari-crcnet"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("sample", [blurred_photo, blurred_cell])
def test_sample_data_is_a_blurred_image_and_its_kernel(sample):
    (image, image_kwargs, kind), (kernel, kernel_kwargs, _) = sample()
    assert kind == "image" and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert kernel.ndim == 2 and kernel.shape[0] % 2 == 1
    np.testing.assert_allclose(kernel.sum(), 1.0, atol=1e-5)
    assert kernel_kwargs["metadata"]["napari_crcnet"]["kernel"]
    assert image_kwargs.get("rgb", False) == (image.ndim == 3)


# ------------------------------------------------------------------------------------ deblur
def test_mmse_on_rgb_photo_keeps_geometry_and_updates_its_own_layer(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    image, _ = add_sample(
        viewer, blurred_photo,
        **{"astronaut (blurred)": {"scale": (2.0, 2.0), "translate": (10.0, -5.0), "metadata": {"um": 0.2}}},
    )
    before = image.data.copy()
    widget = deblur_widget(viewer)
    assert widget.image.value is image
    assert widget.kernel.source.currentText() == "Layer"  # the sample's kernel layer is picked up
    widget.method.setCurrentText("MMSE")
    widget.sigma.setValue(0.003)
    n_layers = len(viewer.layers)

    run_and_wait(qtbot, widget)

    assert widget.runner.outcome == "done", notes
    result = widget.result_layer(image, "MMSE")
    assert result.name == "MMSE σ=0.003 · astronaut (blurred)"
    assert result.rgb and result.data.shape == image.data.shape
    np.testing.assert_array_equal(result.scale, image.scale)
    np.testing.assert_array_equal(result.translate, image.translate)
    assert result.metadata["um"] == 0.2
    assert result.metadata["napari_crcnet"]["method"] == "MMSE"
    expected = deconv.mmse(before, photo_kernel(viewer), 0.003, channel_axis=-1)
    np.testing.assert_allclose(result.data, expected, atol=1e-5)
    np.testing.assert_array_equal(image.data, before)  # the input is never modified
    assert len(viewer.layers) == n_layers + 1

    widget.sigma.setValue(0.01)  # same input + method: the same layer is updated, nothing piles up
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers + 1
    assert widget.result_layer(image, "MMSE") is result
    assert result.name == "MMSE σ=0.01 · astronaut (blurred)"
    assert not notes["error"]


def test_crcnet_defaults_to_the_any_kernel_model_with_the_noise_given(
    make_napari_viewer, qtbot, notes, any_kernel_model
):
    from napari_crcnet.inference import crcnet
    from napari_crcnet.models import load_model, save_model

    net, card = load_model(any_kernel_model)
    listed_first = any_kernel_model.with_name("a-first.safetensors")  # sorts before "any-kernel"
    save_model(listed_first, net, {**card, "name": "a-first"})
    viewer = make_napari_viewer()
    image, _ = add_sample(viewer, blurred_photo)
    before = image.data.copy()
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("CRCNet")
    assert widget.model_names()[:2] == [str(listed_first), str(any_kernel_model)]
    assert widget.model.currentData() == str(any_kernel_model)  # the default model is preselected
    widget.units.setChecked(False)
    widget.noise.setValue(1.0)  # percent

    run_and_wait(qtbot, widget)

    assert widget.runner.outcome == "done", notes
    result = widget.result_layer(image, "CRCNet")
    expected = crcnet(before, str(any_kernel_model), photo_kernel(viewer), channel_axis=-1, noise=0.01,
                      device="cpu")
    np.testing.assert_allclose(result.data, expected, atol=1e-5)
    assert not notes["warning"]
    widget.noise.setValue(20.0)  # outside the trained 0.5-5 %: it runs, and the viewer says so
    run_and_wait(qtbot, widget)
    assert widget.runner.outcome == "done" and any("trained for noise" in m for m in notes["warning"]), notes
    widget.estimate_parameters()  # "Estimate" fills in the noise it finds
    assert widget.noise.value() == pytest.approx(100 * deconv.estimate_noise(before, channel_axis=-1), abs=0.01)
    widget.model.setCurrentIndex(widget.model.count() - 1)  # "file..." survives a refresh of the list
    widget.refresh_models()
    assert widget.model.currentIndex() == widget.model.count() - 1
    assert not notes["error"]


def test_the_default_rgb_model_deblurs_a_gray_microscopy_image(make_napari_viewer, qtbot, notes, any_kernel_model):
    """The any-kernel model is RGB; a gray layer runs as three equal channels (mean of the outputs)."""
    from napari_crcnet.inference import crcnet

    viewer = make_napari_viewer()
    image, psf = add_sample(viewer, blurred_cell)
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("CRCNet")
    assert widget.model.currentData() == str(any_kernel_model)
    widget.noise.setValue(1.0)

    run_and_wait(qtbot, widget)

    assert widget.runner.outcome == "done", notes
    result = widget.result_layer(image, "CRCNet")
    expected = crcnet(image.data, str(any_kernel_model), psf.data, noise=0.01, device="cpu")
    assert result.data.shape == image.data.shape and not result.rgb
    np.testing.assert_allclose(result.data, expected, atol=1e-5)
    units = [layer for layer in viewer.layers if layer.name.startswith("CRCNet units")]
    assert len(units) == 1 and units[0].data.shape[1:] == image.data.shape
    # A gray default installed later (e.g. by the Train widget) is picked up for this gray layer.
    from napari_crcnet._widgets._model_list import model_events
    from napari_crcnet.models import save_model
    from napari_crcnet.models.crcnet import colour_to_gray
    from napari_crcnet.models.store import DEFAULT_GRAY_MODEL, load_model

    net, card = load_model(any_kernel_model, device="cpu")
    gray_path = any_kernel_model.with_name(f"{DEFAULT_GRAY_MODEL}.safetensors")
    save_model(gray_path, colour_to_gray(net), {**card, "name": DEFAULT_GRAY_MODEL})
    model_events.changed.emit()
    assert widget.model.currentData() == str(gray_path)
    assert not notes["error"]


def test_the_default_model_follows_the_image_gray_or_colour(make_napari_viewer, qtbot, notes, any_kernel_gray_model):
    """With both defaults installed, a gray layer gets any-kernel-gray and an RGB layer any-kernel, until the
    user picks another model."""
    from napari_crcnet.inference import crcnet
    from napari_crcnet.models.store import DEFAULT_MODEL

    rgb_model = str(any_kernel_gray_model.with_name(f"{DEFAULT_MODEL}.safetensors"))
    viewer = make_napari_viewer()
    photo, _ = add_sample(viewer, blurred_photo)
    cell, psf = add_sample(viewer, blurred_cell)
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("CRCNet")
    widget.kernel.layer.setCurrentIndex(widget.kernel.layer.candidates().index(psf))
    assert widget.image.value is cell
    assert widget.model.currentData() == str(any_kernel_gray_model)
    widget.noise.setValue(1.0)
    run_and_wait(qtbot, widget)
    assert widget.runner.outcome == "done", notes
    expected = crcnet(cell.data, str(any_kernel_gray_model), psf.data, noise=0.01, device="cpu")
    np.testing.assert_allclose(widget.result_layer(cell, "CRCNet").data, expected, atol=1e-5)

    widget.image.setCurrentIndex(widget.image.candidates().index(photo))
    assert widget.model.currentData() == rgb_model
    widget.image.setCurrentIndex(widget.image.candidates().index(cell))
    assert widget.model.currentData() == str(any_kernel_gray_model)
    widget.model.setCurrentIndex(widget.model.findData(rgb_model))  # the user's choice stays
    widget.model.activated.emit(widget.model.currentIndex())  # as a click in the list does
    widget.image.setCurrentIndex(widget.image.candidates().index(photo))
    widget.image.setCurrentIndex(widget.image.candidates().index(cell))
    assert widget.model.currentData() == rgb_model
    assert not notes["error"]


def test_ird_residue_and_partial_sum_stacks_are_hidden_and_sum_to_the_result(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    image, _ = add_sample(viewer, blurred_cell, **{"cell (blurred)": {"translate": (3.0, 4.0), "colormap": "viridis"}})
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("IRD")
    widget.iterations.setValue(6)
    widget.residue_ns.setText("0-6")
    widget.estimate_parameters()  # fills in sigma from the noise of the shown slice
    sigma = widget.sigma.value()
    assert 0 < sigma < 0.5

    run_and_wait(qtbot, widget)

    assert widget.runner.outcome == "done", notes
    result = widget.result_layer(image, "IRD")
    residues = widget.result_layer(image, "IRD residues")
    sums = widget.result_layer(image, "IRD partial sums")
    assert result.visible and not residues.visible and not sums.visible
    assert result.colormap.name == residues.colormap.name == "viridis"
    assert residues.name == "IRD residues · cell (blurred)" and sums.name == "IRD partial sums · cell (blurred)"
    assert residues.data.shape == sums.data.shape == (7, *image.data.shape)
    assert residues.metadata["napari_crcnet"]["n"] == list(range(7))
    np.testing.assert_array_equal(residues.translate, (0.0, 3.0, 4.0))  # n axis first, then the image's
    np.testing.assert_allclose(residues.data.sum(axis=0), result.data, atol=1e-4)
    np.testing.assert_allclose(sums.data[-1], result.data, atol=1e-4)
    expected = deconv.ird(image.data, kernels.validate_kernel(viewer.layers["cell PSF"].data), sigma, 6)
    np.testing.assert_allclose(result.data, expected, atol=1e-5)


def test_time_series_current_step_or_all(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    kernel = kernels.gaussian_kernel(1.5)
    frames = deconv.blur(rng.random((4, 48, 40)), kernel, noise=0.01, seed=1)
    image = viewer.add_image(frames, name="movie", scale=(5.0, 0.5, 0.5), translate=(100.0, 1.0, 2.0))
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian", sigma=1.5)
    widget.method.setCurrentText("MMSE")
    widget.sigma.setValue(0.01)
    viewer.dims.set_point(0, 100.0 + 2 * 5.0)  # frame 2
    widget.scope.setCurrentText("current step only")

    run_and_wait(qtbot, widget)

    one = widget.result_layer(image, "MMSE", current_step=True)
    assert widget.result_layer(image, "MMSE") is None
    assert one.data.shape == (1, 48, 40)
    assert one.name == "MMSE σ=0.01 · movie [axis 0=2]"
    np.testing.assert_array_equal(one.translate, (110.0, 1.0, 2.0))  # sits on frame 2
    np.testing.assert_array_equal(one.scale, image.scale)
    expected = deconv.mmse(frames, kernel, 0.01)
    np.testing.assert_allclose(one.data[0], expected[2], atol=1e-5)

    widget.scope.setCurrentText("all slices / frames")  # its own layer: the one-step result stays
    run_and_wait(qtbot, widget)
    everything = widget.result_layer(image, "MMSE")
    assert everything is not one and everything.data.shape == frames.shape
    assert everything.name == "MMSE σ=0.01 · movie"
    np.testing.assert_array_equal(everything.translate, image.translate)
    np.testing.assert_allclose(everything.data, expected, atol=1e-5)
    assert widget.result_layer(image, "MMSE", current_step=True) is one and one.data.shape == (1, 48, 40)

    viewer.dims.set_point(0, 100.0 + 3 * 5.0)  # another step updates the one-step layer, not the other
    widget.scope.setCurrentText("current step only")
    run_and_wait(qtbot, widget)
    assert widget.result_layer(image, "MMSE", current_step=True) is one and one.name.endswith("[axis 0=3]")
    np.testing.assert_allclose(one.data[0], expected[3], atol=1e-5)
    assert everything.data.shape == frames.shape
    assert len(viewer.layers) == 3 and not notes["error"]


def test_a_lazy_movie_is_read_only_at_the_current_frame(make_napari_viewer, qtbot, notes):
    """A dask layer (a movie too big to load): "current step only" reads that frame and nothing else."""
    dask = pytest.importorskip("dask")
    import dask.array as da

    viewer = make_napari_viewer()
    kernel = kernels.gaussian_kernel(1.5)
    frames = deconv.blur(np.random.default_rng(0).random((5, 48, 40)), kernel, noise=0.01, seed=1)
    read: list[int] = []
    readers: set[threading.Thread] = set()

    def load(block, block_info=None):
        read.append(block_info[0]["chunk-location"][0])
        readers.add(threading.current_thread())
        return block

    lazy = da.from_array(frames, chunks=(1, 48, 40)).map_blocks(load, dtype=frames.dtype)
    image = viewer.add_image(lazy, name="lazy movie")
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian", sigma=1.5)
    widget.method.setCurrentText("MMSE")
    widget.sigma.setValue(0.01)
    viewer.dims.set_point(0, 3)
    widget.scope.setCurrentText("current step only")
    qtbot.wait(50)
    read.clear()  # napari reads the frame it shows; from here on only the widget reads

    run_and_wait(qtbot, widget)

    assert set(read) == {3}
    result = widget.result_layer(image, "MMSE", current_step=True)
    np.testing.assert_allclose(result.data[0], deconv.mmse(frames, kernel, 0.01)[3], atol=1e-5)
    # All frames: read in the worker thread (the viewer stays responsive), same result as in memory.
    readers.clear()
    widget.scope.setCurrentText("all slices / frames")
    with dask.config.set(scheduler="synchronous"):  # blocks are read by the thread that asks for them
        run_and_wait(qtbot, widget)
    assert readers and threading.main_thread() not in readers
    np.testing.assert_allclose(widget.result_layer(image, "MMSE").data, deconv.mmse(frames, kernel, 0.01),
                               atol=1e-5)
    assert not notes["error"]


def test_volume_with_a_3d_kernel(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    kernel = kernels.gaussian_psf_3d(1.0, 1.5)
    volume = deconv.blur(np.random.default_rng(2).random((16, 32, 32)), kernel, noise=0.005, seed=3)
    image = viewer.add_image(volume, name="volume", scale=(2.0, 0.5, 0.5))
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian 3D (PSF)", sigma_xy=1.0, sigma_z=1.5)
    widget.method.setCurrentText("MMSE")
    widget.sigma.setValue(0.02)
    run_and_wait(qtbot, widget)
    result = widget.result_layer(image, "MMSE")
    np.testing.assert_allclose(result.data, deconv.mmse(volume, kernel, 0.02), atol=1e-5)

    widget.method.setCurrentText("hyper-Laplacian")  # gradients along z, y and x
    run_and_wait(qtbot, widget)
    assert widget.result_layer(image, "hyper-Laplacian").data.shape == volume.shape

    from napari_crcnet import richardson_lucy

    widget.method.setCurrentText("Richardson-Lucy")  # the 3D PSF deconvolves the volume as a whole
    widget.rl_iterations.setValue(5)
    run_and_wait(qtbot, widget)
    np.testing.assert_allclose(widget.result_layer(image, "Richardson-Lucy").data,
                               richardson_lucy(volume, kernel, 5, device="cpu"), atol=1e-5)
    assert not notes["error"]


def test_hyper_laplacian_and_bad_inputs_notify_and_change_nothing(make_napari_viewer, qtbot, notes, monkeypatch):
    from napari_crcnet._widgets import deblur as deblur_module

    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(0).random((24, 24)).astype(np.float32), name="small")
    bad = np.ones((5, 5))
    bad[2, 2] = np.nan
    viewer.add_image(bad, name="nan kernel")
    widget = deblur_widget(viewer)
    widget.image.value = image
    widget.kernel.source.setCurrentText("Layer")
    widget.kernel.layer.value = viewer.layers["nan kernel"]
    before = [layer.name for layer in viewer.layers]

    assert widget.run() is None  # NaN kernel
    widget.kernel.set_generated("Random shake", size=31, seed=1)
    assert widget.run() is None  # kernel larger than the image
    assert len(notes["error"]) == 2
    assert "NaN" in notes["error"][0] and "larger than the image" in notes["error"][1]

    image.data = np.full((24, 24), np.nan, np.float32)  # found by the core, in the worker
    widget.kernel.set_generated("Gaussian", sigma=1.0)
    run_and_wait(qtbot, widget)
    assert widget.runner.outcome == "error" and "NaN" in notes["error"][-1]
    assert [layer.name for layer in viewer.layers] == before

    image.data = (np.random.default_rng(1).random((24, 24)) * 255).astype(np.uint8)
    image.contrast_limits = (10, 200)
    widget.method.setCurrentText("hyper-Laplacian")
    run_and_wait(qtbot, widget)
    assert widget.runner.outcome == "done", notes
    result = widget.result_layer(image, "hyper-Laplacian")
    assert result.name.startswith("hyper-Laplacian λ=") and result.name.endswith(" · small")
    assert result.data.dtype == np.float32
    np.testing.assert_allclose(result.contrast_limits, (10 / 255, 200 / 255))  # uint8 was scaled to [0, 1]

    widget.method.setCurrentText("IRD")  # residue stacks too large for memory: refused up front
    widget.residue_ns.setText("0-6")
    monkeypatch.setattr(deblur_module, "MAX_STACK_BYTES", 2 * 7 * 24 * 24 * 4 - 1)
    assert widget.run() is None and "GB of memory" in notes["error"][-1]
    assert [layer.name for layer in viewer.layers] == [*before, result.name]


@pytest.mark.parametrize(("text", "words"), [
    ("0-2000000", "more than 10,000 residue indices"),  # one range of the shared rule (the CLI's too)
    ("5-2", "ranges A-B have A <= B"),  # reversed: refused, not read as "no n"
    ("0, 1, x", "e.g. '0, 1, 2, 5, 10, 50' or '0-20'"),
])
def test_residue_indices_follow_the_cli_rule_and_refusals_are_notifications(
    make_napari_viewer, qtbot, notes, text, words
):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((24, 24)).astype(np.float32), name="small")
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian", sigma=1.0)
    widget.method.setCurrentText("IRD")
    widget.sigma.setValue(0.01)
    widget.residue_ns.setText(text)
    assert widget.run() is None and not widget.runner.running
    assert notes["error"] == [f"Deblur: {_parse_error(text)}"]
    assert words in notes["error"][0] and "Traceback" not in notes["error"][0]
    assert [layer.name for layer in viewer.layers] == ["small"]

    widget.residue_ns.setText("2-4, 0")  # what it accepts runs, with those n on the slider
    run_and_wait(qtbot, widget)
    assert widget.runner.outcome == "done", notes
    assert widget.result_layer(viewer.layers["small"], "IRD residues").metadata["napari_crcnet"]["n"] == [0, 2, 3, 4]


def _parse_error(text):
    try:
        deconv.parse_indices(text)
    except ValueError as error:
        return str(error)
    raise AssertionError(f"{text!r} was accepted")


def test_richardson_lucy_equals_the_core_call_and_keeps_each_scope(make_napari_viewer, qtbot, notes):
    from napari_crcnet import richardson_lucy

    viewer = make_napari_viewer()
    kernel = kernels.gaussian_kernel(1.2)
    frames = deconv.blur(np.random.default_rng(4).random((3, 32, 28)), kernel, noise=0.01, seed=5)
    image = viewer.add_image(frames, name="stack", scale=(3.0, 0.5, 0.25), translate=(6.0, 1.0, -2.0),
                             metadata={"um": 0.25})
    before = image.data.copy()
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian", sigma=1.2)
    widget.method.setCurrentText("Richardson-Lucy")
    assert widget.rl_iterations.value() == 10 and widget.tv.value() == 0 and not widget.stop_early.isChecked()
    for shown in (widget.rl_iterations, widget.tv, widget.stop_early, widget.tol):
        assert shown.isVisibleTo(widget)
    for hidden in (widget.sigma, widget.iterations, widget.residue_ns, widget.lam, widget.model):
        assert not hidden.isVisibleTo(widget)
    assert not widget.tol.isEnabled()  # "stop early" is off by default
    widget.rl_iterations.setValue(12)
    widget.tv.setValue(0.005)
    widget.device.setCurrentText("cpu")  # compared with CPU calls of the core

    run_and_wait(qtbot, widget)

    assert widget.runner.outcome == "done", notes
    result = widget.result_layer(image, "Richardson-Lucy")
    assert result.name == "Richardson-Lucy N=12 TV=0.005 · stack"
    expected = richardson_lucy(before, kernel, 12, tv=0.005, device="cpu")
    np.testing.assert_allclose(result.data, expected, atol=1e-5)
    np.testing.assert_array_equal(result.scale, image.scale)
    np.testing.assert_array_equal(result.translate, image.translate)
    meta = result.metadata["napari_crcnet"]
    assert result.metadata["um"] == 0.25 and meta["method"] == "Richardson-Lucy"
    assert meta["n_iter"] == 12 and meta["tv"] == 0.005 and meta["tol"] is None and meta["iterations_run"] == 12
    np.testing.assert_array_equal(image.data, before)

    widget.tv.setValue(0)  # plain RL that may stop early: the same layer, updated
    widget.rl_iterations.setValue(500)
    widget.stop_early.setChecked(True)
    assert widget.tol.isEnabled()
    widget.tol.setValue(0.01)
    run_and_wait(qtbot, widget)
    assert widget.result_layer(image, "Richardson-Lucy") is result and len(viewer.layers) == 2
    assert result.name == "Richardson-Lucy N=500 tol=0.01 · stack"
    np.testing.assert_allclose(result.data, richardson_lucy(before, kernel, 500, tol=0.01, device="cpu"), atol=1e-5)
    assert 1 <= result.metadata["napari_crcnet"]["iterations_run"] < 500  # it stopped early

    widget.stop_early.setChecked(False)  # the current step has its own layer; the stack's stays
    widget.rl_iterations.setValue(8)
    viewer.dims.set_point(0, 6.0 + 1 * 3.0)
    widget.scope.setCurrentText("current step only")
    run_and_wait(qtbot, widget)
    one = widget.result_layer(image, "Richardson-Lucy", current_step=True)
    assert one is not result and one.name == "Richardson-Lucy N=8 · stack [axis 0=1]"
    np.testing.assert_allclose(one.data[0], richardson_lucy(before[1], kernel, 8, device="cpu"), atol=1e-5)
    assert result.name == "Richardson-Lucy N=500 tol=0.01 · stack" and len(viewer.layers) == 3
    assert not notes["error"] and not notes["warning"]


def test_richardson_lucy_cancel_stops_it_and_adds_nothing(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(0).random((128, 128)).astype(np.float32), name="big")
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian", sigma=2.0)
    widget.method.setCurrentText("Richardson-Lucy")
    widget.rl_iterations.setValue(100_000)  # far longer than the wait below: only Cancel ends it in time
    widget.run()
    qtbot.waitUntil(lambda: widget.runner.bar.maximum() >= 100_000 and widget.runner.bar.value() >= 3,
                    timeout=WAIT_MS)  # the bar counts the iterations
    widget.runner.cancel_button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.outcome == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert widget.result_layer(image, "Richardson-Lucy") is None and not notes["error"]
    assert any("cancelled" in message for message in notes["info"])


def test_cancel_stops_a_long_run_and_adds_nothing(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(0).random((192, 192)).astype(np.float32), name="big")
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian", sigma=2.0)
    widget.method.setCurrentText("IRD")
    widget.sigma.setValue(0.01)
    widget.residue_ns.setText("0-3000")  # thousands of residues: long enough to be cancelled
    widget.run()
    qtbot.waitUntil(lambda: widget.runner.bar.value() >= 3, timeout=WAIT_MS)
    widget.runner.cancel_button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.outcome == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert widget.result_layer(image, "IRD") is None and not notes["error"]
    assert any("cancelled" in message for message in notes["info"])


# ------------------------------------------------------------------------------------ training
def test_train_widget_trains_stops_and_feeds_the_deblur_model_list(
    make_napari_viewer, qtbot, notes, models_dir
):
    from skimage import data

    from napari_crcnet._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    blurred, _ = add_sample(viewer, blurred_photo)
    viewer.add_image(data.astronaut()[96:224, 160:288], name="sharp", rgb=True)
    deblur = deblur_widget(viewer)
    shipped = deblur.model_names()
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train)
    assert train.kernel.spec() == "layer:astronaut kernel"
    train.set_training_layers(["sharp"])
    train.network.setCurrentText("tiny (2 units, for tests)")
    train.iterations.setValue(2)
    train.batch.setValue(2)
    train.crop.setValue(32)
    train.name.setText("tiny-shake")
    train.preview_layer.value = blurred

    run_and_wait(qtbot, train)

    assert train.runner.outcome == "done", notes
    assert train.last_result.steps == 2 and not train.last_result.stopped
    assert (models_dir / "tiny-shake.safetensors").is_file()
    assert "gain" in train.status.text()
    path = str(models_dir / "tiny-shake.safetensors")
    assert deblur.model_names() == [path, *shipped]  # list refreshed, user models first
    preview = viewer.layers["CRCNet preview (training) · astronaut (blurred)"]
    assert preview.data.shape == (256, 256, 3)
    np.testing.assert_array_equal(preview.translate, (128.0, 128.0))  # over the centre crop

    # the new model deblurs the photo, with its unit outputs as a hidden gray stack
    deblur.image.value = blurred
    deblur.method.setCurrentText("CRCNet")
    deblur.model.setCurrentIndex(deblur.model.findData(path))
    run_and_wait(qtbot, deblur)
    assert deblur.runner.outcome == "done", notes
    result = deblur.result_layer(blurred, "CRCNet")
    assert result.name == "CRCNet tiny-shake · astronaut (blurred)" and result.data.shape == blurred.data.shape
    units = deblur.result_layer(blurred, "CRCNet units")
    assert not units.visible and not units.rgb and units.data.shape == (2, 512, 512)

    # a model refuses another kernel: a notification, no layer
    deblur.kernel.set_generated("Gaussian", sigma=2.0)
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, deblur)
    assert deblur.runner.outcome == "error" and "trained for" in notes["error"][-1]
    assert len(viewer.layers) == n_layers

    # a new fit can start from the trained model (listed once it is saved)
    assert train.start_from.findData(path) > 0
    train.start_from.setCurrentIndex(train.start_from.findData(path))
    train.name.setText("tiny-shake-2")
    train.iterations.setValue(1)
    assert train.config().init == path
    run_and_wait(qtbot, train)
    assert train.runner.outcome == "done", notes
    assert (models_dir / "tiny-shake-2.safetensors").is_file()
    train.start_from.setCurrentIndex(0)
    train.name.setText("tiny-shake")

    # Stop: the trainer stops after its step and still saves the model
    train.resume.setChecked(False)
    train.iterations.setValue(100_000)
    train.preview.setChecked(False)
    train.run()
    qtbot.waitUntil(lambda: train.runner.bar.value() >= 1, timeout=WAIT_MS)
    train.runner.cancel_button.click()
    qtbot.waitUntil(lambda: not train.runner.running, timeout=WAIT_MS)
    assert train.runner.outcome == "done" and train.last_result.stopped
    assert 1 <= train.last_result.steps < 100_000
    assert (models_dir / "checkpoints" / "tiny-shake.ckpt.safetensors").is_file()


def test_a_layer_naming_a_model_preselects_it_and_the_cell_sample_keeps_the_gray_default(
        make_napari_viewer, qtbot, notes, any_kernel_gray_model):
    """A layer whose metadata names a model (``napari_crcnet.model``) gets it preselected when installed, else
    the gray default; the photo keeps the photo default; the bright-field cell sample names no model (the
    fluorescence model scored below its blurred input there), so it gets the gray default."""
    from napari_crcnet._widgets._model_list import model_events
    from napari_crcnet.models import save_model
    from napari_crcnet.models.store import DEFAULT_MODEL, load_model
    from napari_crcnet.specialisation import FLUORESCENCE_MODEL

    viewer = make_napari_viewer()
    photo, _ = add_sample(viewer, blurred_photo)
    cell, _ = add_sample(viewer, blurred_cell)
    named = viewer.add_image(np.asarray(cell.data).copy(), name="fluorescence",
                             metadata={"napari_crcnet": {"model": FLUORESCENCE_MODEL}})
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("CRCNet")
    widget.image.value = named
    assert widget.model.currentData() == str(any_kernel_gray_model)  # not installed yet: the gray default
    net, card = load_model(any_kernel_gray_model, device="cpu")
    fluorescence = any_kernel_gray_model.with_name(f"{FLUORESCENCE_MODEL}.safetensors")
    save_model(fluorescence, net, {**card, "name": FLUORESCENCE_MODEL})
    model_events.changed.emit()
    assert widget.model.currentData() == str(fluorescence)
    widget.image.value = cell
    assert widget.model.currentData() == str(any_kernel_gray_model)
    widget.image.value = photo
    assert widget.model.currentData() == str(any_kernel_gray_model.with_name(f"{DEFAULT_MODEL}.safetensors"))
    assert not notes["error"]
