"""The Deblur widget's "Specialise to this kernel" action and its quick preview of a large image, in a real
viewer (pytest-qt's ``make_napari_viewer`` under pytest-xvfb).

Specialise runs :func:`napari_crcnet.specialise` for about a second on the tiny stand-in default models of
``tests/conftest.py``; the preview tests shrink :data:`~napari_crcnet._widgets.deblur.PREVIEW_SIDE` so that a
small image counts as large.
"""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_crcnet import deconv, kernels  # noqa: E402
from napari_crcnet._sample_data import blurred_cell, blurred_photo  # noqa: E402

pytestmark = [pytest.mark.widgets, pytest.mark.usefixtures("one_torch_thread")]

WAIT_MS = 120_000


def add_sample(viewer, sample):
    return [viewer.add_image(data, **kwargs) for data, kwargs, _ in sample()]


def deblur_widget(viewer):
    from napari_crcnet._widgets.deblur import DeblurWidget

    widget = DeblurWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def wait(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)


# ------------------------------------------------------------------------------------------ Specialise
def test_specialise_saves_a_model_that_deblur_then_uses_for_that_kernel(
    make_napari_viewer, qtbot, notes, any_kernel_model
):
    import napari_crcnet as nc
    from napari_crcnet.models import load_model
    from napari_crcnet.specialisation import specialised_path

    viewer = make_napari_viewer()
    image, kernel_layer = add_sample(viewer, blurred_photo)
    before = image.data.copy()
    kernel = kernels.validate_kernel(kernel_layer.data)
    path = specialised_path(kernel, 3)
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("CRCNet")
    assert widget.model.currentData() == str(any_kernel_model) and not widget.specialised_note.text()
    assert widget.minutes.value() == 3.0 and widget.specialise_button.isVisibleTo(widget)
    widget.noise.setValue(1.0)  # percent: the noise it is specialised to
    widget.units.setChecked(False)
    widget.minutes.setValue(0.02)  # about a second

    assert widget.specialise() is not None
    wait(qtbot, widget)

    assert widget.runner.outcome == "done", notes
    assert path.is_file() and not notes["error"]
    assert any("trained after" in message and "used automatically" in message for message in notes["info"]), notes
    _, card = load_model(path)
    assert card["specialised"]["noise"] == pytest.approx(0.01) and card["specialised"]["base"] == "any-kernel"
    assert [layer.name for layer in viewer.layers] == [image.name, kernel_layer.name]  # no layer added
    # the list now shows the specialised model, chosen automatically, and the widget says so
    assert widget.model.currentData() == str(path)
    assert "specialised model for this kernel: used automatically" in widget.specialised_note.text()
    assert widget.specialised_note.isVisibleTo(widget)

    widget.run()
    wait(qtbot, widget)
    assert widget.runner.outcome == "done", notes
    result = widget.result_layer(image, "CRCNet")
    assert result.name == f"CRCNet {path.stem} · {image.name}"
    expected = nc.crcnet(before, path, kernel=kernel, channel_axis=-1, noise=0.01, device="cpu")
    np.testing.assert_allclose(result.data, expected, atol=1e-5)
    # the same choice as crcnet() with no model named, and not the default model's result
    automatic = nc.crcnet(before, kernel=kernel, channel_axis=-1, noise=0.01, device="cpu")
    np.testing.assert_allclose(result.data, automatic, atol=1e-5)
    default = nc.crcnet(before, any_kernel_model, kernel=kernel, channel_axis=-1, noise=0.01, device="cpu")
    assert np.abs(result.data - default).max() > 1e-4

    # another kernel: back to the default; the kernel again: the specialised model again
    widget.kernel.set_generated("Gaussian", sigma=2.0)
    assert widget.model.currentData() == str(any_kernel_model) and not widget.specialised_note.text()
    widget.kernel.source.setCurrentText("Layer")
    assert widget.model.currentData() == str(path) and "used automatically" in widget.specialised_note.text()
    # a model the user picks stays; the note says the specialised one exists
    index = widget.model.findData(str(any_kernel_model))
    widget.model.setCurrentIndex(index)
    widget.model.activated.emit(index)  # as a click in the list does
    assert widget.model.currentData() == str(any_kernel_model)
    assert f"a model specialised to this kernel exists: {path.stem}" in widget.specialised_note.text()
    assert not notes["error"]


def test_cancel_keeps_the_model_so_far_and_adds_no_layer(make_napari_viewer, qtbot, notes, any_kernel_gray_model):
    from napari_crcnet.models import load_model
    from napari_crcnet.specialisation import specialised_path

    viewer = make_napari_viewer()
    cell, psf = add_sample(viewer, blurred_cell)
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("CRCNet")
    assert widget.model.currentData() == str(any_kernel_gray_model)
    assert widget.noise.value() == 0  # auto: estimated from the image
    widget.minutes.setValue(10.0)  # far longer than the test waits: only Cancel ends it in time
    path = specialised_path(kernels.validate_kernel(psf.data), 1)

    widget.specialise()
    assert not widget.run_button.isEnabled() and not widget.specialise_button.isEnabled()
    qtbot.waitUntil(lambda: widget.runner.bar.maximum() == 600 and widget.runner.bar.value() >= 1,
                    timeout=WAIT_MS)  # the bar counts the seconds of the 10 minutes
    widget.runner.cancel_button.click()
    wait(qtbot, widget)

    assert widget.runner.outcome == "done", notes  # stopped, and the model so far was saved
    assert path.is_file() and any("stopped by Cancel" in message for message in notes["info"]), notes
    _, card = load_model(path)
    noise = deconv.estimate_noise(cell.data)
    assert card["specialised"]["noise"] == pytest.approx(noise, rel=1e-6)
    assert [layer.name for layer in viewer.layers] == [cell.name, psf.name]
    assert widget.model.currentData() == str(path) and widget.run_button.isEnabled()
    assert not notes["error"]


def test_specialise_refuses_a_3d_kernel_with_a_notification(make_napari_viewer, qtbot, notes, any_kernel_model):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 32, 32), np.float32), name="volume")
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian 3D (PSF)", sigma_xy=1.0, sigma_z=1.0)
    assert widget.specialise() is None
    assert not widget.runner.running and "2D kernel" in notes["error"][-1]


# ------------------------------------------------------------------------------------------ preview
@pytest.fixture
def small_preview(monkeypatch):
    """Previews of 64 px: an image above 4 x 64² pixels is 'large'."""
    from napari_crcnet._widgets import deblur

    monkeypatch.setattr(deblur, "PREVIEW_SIDE", dict.fromkeys(deblur.PREVIEW_SIDE, 64))
    return 64


def test_a_preview_of_the_view_comes_first_then_the_exact_full_result_replaces_it(
    make_napari_viewer, qtbot, notes, small_preview
):
    viewer = make_napari_viewer()
    image, kernel_layer = add_sample(viewer, blurred_photo)
    before = image.data.copy()
    kernel = kernels.validate_kernel(kernel_layer.data)
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("MMSE")
    widget.sigma.setValue(0.01)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.center = (100.0, 300.0)  # the preview is the region in the middle of the view
    events, previews = [], []
    viewer.layers.events.inserted.connect(lambda event: events.append(("added", event.value.name)))
    viewer.layers.events.removed.connect(lambda event: events.append(("removed", event.value.name)))
    widget.preview_shown.connect(
        lambda layer: previews.append((layer.name, layer.data.copy(), tuple(layer.translate), layer.visible))
    )

    widget.run()
    wait(qtbot, widget)

    assert widget.runner.outcome == "done", notes
    name = f"MMSE σ=0.01 · {image.name}"
    preview_name = f"MMSE σ=0.01 (preview) · {image.name}"
    # the preview layer became the result layer (no second layer, nothing removed)
    assert events == [("added", preview_name)]
    assert len(previews) == 1
    shown_name, data, translate, visible = previews[0]
    assert shown_name == preview_name and visible and translate == (68.0, 268.0)
    crop = before[68:132, 268:332]
    expected = deconv.mmse(crop, kernel, 0.01, channel_axis=-1, boundary=widget.boundary.currentText())
    np.testing.assert_allclose(data, expected, atol=1e-6)
    full = deconv.mmse(before, kernel, 0.01, channel_axis=-1, boundary=widget.boundary.currentText())
    result = widget.result_layer(image, "MMSE")
    np.testing.assert_array_equal(result.data, full)  # the result is today's, computed on the whole image
    assert [layer.name for layer in viewer.layers] == [image.name, kernel_layer.name, name]
    assert tuple(result.translate) == (0.0, 0.0) and result.data.shape == before.shape
    # again: the preview goes on top of the previous result, which the new result then updates
    widget.sigma.setValue(0.02)
    events.clear()
    widget.run()
    wait(qtbot, widget)
    assert widget.runner.outcome == "done", notes
    preview_name = f"MMSE σ=0.02 (preview) · {image.name}"
    assert events == [("added", preview_name), ("removed", preview_name)]
    assert widget.result_layer(image, "MMSE") is result and result.name == f"MMSE σ=0.02 · {image.name}"
    np.testing.assert_array_equal(
        result.data, deconv.mmse(before, kernel, 0.02, channel_axis=-1, boundary=widget.boundary.currentText()))
    assert [layer.name for layer in viewer.layers] == [image.name, kernel_layer.name, result.name]
    # a small image (at most 4 x the preview's area) gets none
    widget.image.value = viewer.add_image(before[:128, :128], name="small", rgb=True)
    widget.kernel.set_generated("Gaussian", sigma=2.0)
    previews.clear()
    assert widget.run() is not None
    wait(qtbot, widget)
    assert widget.runner.outcome == "done" and not previews and not notes["error"]


def test_cancel_after_the_preview_removes_it_and_adds_nothing(make_napari_viewer, qtbot, notes, small_preview):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(0).random((192, 192)).astype(np.float32), name="big")
    widget = deblur_widget(viewer)
    widget.kernel.set_generated("Gaussian", sigma=2.0)
    widget.method.setCurrentText("IRD")
    widget.sigma.setValue(0.01)
    widget.residue_ns.setText("0-3000")  # thousands of residues after the result: long enough to cancel
    previews = []
    widget.preview_shown.connect(previews.append)
    widget.run()
    qtbot.waitUntil(lambda: len(previews) == 1 and widget.runner.bar.value() >= 3, timeout=WAIT_MS)
    assert previews[0].name == "IRD σ=0.01 N=100 (preview) · big" and previews[0] in viewer.layers
    assert previews[0].data.shape == (64, 64)
    widget.runner.cancel_button.click()
    assert not previews[0].visible  # hidden at the click, removed when the job has stopped
    wait(qtbot, widget)
    assert widget.runner.outcome == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert widget.result_layer(image, "IRD") is None and not notes["error"]


def test_crcnet_previews_without_units_and_keeps_its_stacks_for_the_full_result(
    make_napari_viewer, qtbot, notes, any_kernel_model, small_preview
):
    import napari_crcnet as nc

    viewer = make_napari_viewer()
    image, kernel_layer = add_sample(viewer, blurred_photo)
    before = image.data.copy()
    kernel = kernels.validate_kernel(kernel_layer.data)
    widget = deblur_widget(viewer)
    widget.method.setCurrentText("CRCNet")
    widget.noise.setValue(1.0)
    previews = []
    widget.preview_shown.connect(lambda layer: previews.append((layer.data.copy(), tuple(layer.translate))))
    widget.run()
    wait(qtbot, widget)
    assert widget.runner.outcome == "done", notes
    (data, translate), = previews
    top, left = (int(t) for t in translate)
    expected = nc.crcnet(before[top:top + 64, left:left + 64], any_kernel_model, kernel=kernel, channel_axis=-1,
                         noise=0.01, device="cpu")
    np.testing.assert_allclose(data, expected, atol=1e-5)
    full = nc.crcnet(before, any_kernel_model, kernel=kernel, channel_axis=-1, noise=0.01, device="cpu")
    np.testing.assert_allclose(widget.result_layer(image, "CRCNet").data, full, atol=1e-5)
    assert widget.result_layer(image, "CRCNet units").data.shape[1:] == before.shape[:2]
    assert not any("(preview)" in layer.name for layer in viewer.layers) and not notes["error"]
