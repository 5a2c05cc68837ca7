"""The widgets as a new user meets them (issue 15): the kernel follows the image, one result layer per scope
(in test_widgets.py), docks that fit a small screen, readable residue stacks, messages in the GUI's words.

Real viewer under pytest-xvfb, as in test_widgets.py (``QT_QPA_PLATFORM=offscreen`` cannot draw image layers).
"""

from __future__ import annotations

import warnings

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


def dock(viewer, name):
    from napari_crcnet._widgets.deblur import DeblurWidget
    from napari_crcnet._widgets.train import TrainWidget

    widget = {"Deblur": DeblurWidget, "Train": TrainWidget}[name](viewer)
    viewer.window.add_dock_widget(widget, name=name)
    return widget


def run_and_wait(qtbot, widget):
    worker = widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    return worker


def pick(combo, layer):
    combo.setCurrentIndex(combo.candidates().index(layer))


def test_the_kernel_follows_the_image_and_a_mismatch_warns(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    cell, psf = add_sample(viewer, blurred_cell)
    photo, shake = add_sample(viewer, blurred_photo)
    widget = dock(viewer, "Deblur")
    assert widget.kernel.source.currentText() == "Layer"
    assert (widget.image.value, widget.kernel.layer.value) == (photo, shake)
    pick(widget.image, cell)
    assert widget.kernel.layer.value is psf and not widget.kernel.mismatch()
    pick(widget.image, photo)
    assert widget.kernel.layer.value is shake

    # the user insists on the other image's kernel: allowed, with a warning on the caption and when run
    pick(widget.kernel.layer, psf)
    assert "not the blur recorded for 'astronaut (blurred)'" in widget.kernel.mismatch()
    assert "not this image's kernel" in widget.kernel.caption.text()
    widget.method.setCurrentText("MMSE")
    widget.sigma.setValue(0.01)
    run_and_wait(qtbot, widget)
    assert widget.runner.outcome == "done", notes
    assert any(m.startswith("Deblur: the kernel layer 'cell PSF'") for m in notes["warning"]), notes

    # an image of the user's (no recorded kernel): the samples' kernels belong to their images, not kept
    mine = viewer.add_image(np.random.default_rng(0).random((40, 40)).astype(np.float32), name="mine")
    pick(widget.image, mine)
    assert widget.kernel.layer.value not in (psf, shake)
    with pytest.raises(ValueError, match="no kernel layer"):
        widget.kernel.raw_kernel()
    own = viewer.add_image(kernels.gaussian_kernel(1.0), name="my psf")  # a kernel of nobody's: picked
    pick(widget.image, mine)
    assert widget.kernel.layer.value is own and not widget.kernel.mismatch()
    assert not notes["error"]


def test_residue_stacks_show_n_and_give_each_n_its_own_contrast(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    image, psf = add_sample(viewer, blurred_cell)
    widget = dock(viewer, "Deblur")
    widget.method.setCurrentText("IRD")
    widget.sigma.setValue(0.01)
    widget.iterations.setValue(50)
    widget.residue_ns.setText("0, 1, 50")
    run_and_wait(qtbot, widget)
    assert widget.runner.outcome == "done", notes

    residues = widget.result_layer(image, "IRD residues")
    slider = residues.metadata["napari_crcnet"]["slider"]
    assert slider["label"] == "n" and slider["values"] == [0, 1, 50]
    expected, _ = deconv.ird_residues(image.data, kernels.validate_kernel(psf.data), 0.01, [0, 1, 50])
    np.testing.assert_allclose(residues.data, expected, atol=1e-5)  # the true values, not rescaled

    overlay = viewer.canvas.overlays.text if hasattr(viewer, "canvas") else viewer.text_overlay
    assert not overlay.visible  # the stacks are added hidden
    residues.visible = True
    viewer.dims.set_current_step(0, 2)  # the third entry of the stack: n = 50
    assert overlay.visible and "IRD residues · cell (blurred): n = 50" in overlay.text
    low, high = residues.contrast_limits
    assert (low, high) == pytest.approx(slider["limits"][2])
    shown = residues.data[2]
    assert np.mean((shown > low) & (shown < high)) > 0.5  # n = 50 is not black: most pixels inside its range
    viewer.dims.set_current_step(0, 0)
    assert "n = 0" in overlay.text
    assert residues.contrast_limits == pytest.approx(slider["limits"][0])
    assert slider["limits"][0][1] - slider["limits"][0][0] > 5 * (high - low)  # one range would hide n = 50
    residues.visible = False
    assert not overlay.visible


def test_docks_fit_a_small_screen_and_stay_narrow(make_napari_viewer, notes, any_kernel_model):
    from napari_crcnet._widgets._model_list import model_events
    from napari_crcnet.models import load_model, save_model

    net, card = load_model(any_kernel_model)
    long_name = "a-model-with-a-very-long-name-trained-for-a-kernel-of-my-own-microscope"
    save_model(any_kernel_model.with_name(f"{long_name}.safetensors"), net, {**card, "name": long_name})
    viewer = make_napari_viewer()
    add_sample(viewer, blurred_photo)
    deblur = dock(viewer, "Deblur")
    train = dock(viewer, "Train")
    model_events.changed.emit()
    widths = []
    for method in ("MMSE", "IRD", "Richardson-Lucy", "hyper-Laplacian", "CRCNet"):
        deblur.method.setCurrentText(method)
        widths.append(deblur.minimumSizeHint().width())
    from qtpy.QtCore import Qt

    deblur.model.setCurrentIndex(deblur.model.findText(long_name, flags=Qt.MatchFlag.MatchStartsWith))
    assert deblur.model.currentText().startswith(long_name)
    widths.append(deblur.minimumSizeHint().width())
    assert max(widths) <= 320, widths  # the long model name is elided, the dock keeps its width
    assert train.minimumSizeHint().width() <= 320
    # both scroll: together they need less than a 1000 px screen's dock area, whatever is shown
    deblur.advanced.set_expanded(True)
    train.advanced.set_expanded(True)
    assert deblur.minimumSizeHint().height() + train.minimumSizeHint().height() < 600
    # rarely changed options start collapsed
    for widget, hidden in ((deblur, (deblur.device, deblur.boundary)),
                           (train, (train.batch, train.crop, train.val_every, train.network, train.start_from,
                                    train.device, train.resume))):
        widget.advanced.set_expanded(False)
        assert not any(control.isVisibleTo(widget) for control in hidden)
    assert train.preview_layer.value.name == "astronaut (blurred)"


def test_the_train_preview_defaults_to_the_blurred_image_not_the_top_layer(make_napari_viewer, notes):
    from skimage import data

    viewer = make_napari_viewer()
    photo, _ = add_sample(viewer, blurred_photo)
    viewer.add_image(data.astronaut()[96:224, 160:288], name="sharp", rgb=True)  # on top, and active
    train = dock(viewer, "Train")
    assert train.preview_layer.value is photo
    assert train.noise.suffix() == " %" and train.noise.value() == 1.0
    train.name.setText("x")
    train.set_training_layers(["sharp"])
    assert train.config().noise == pytest.approx(0.01)  # noise in % in both widgets


def test_every_control_has_a_tooltip(make_napari_viewer, notes):
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QListWidget

    viewer = make_napari_viewer()
    add_sample(viewer, blurred_photo)
    for name in ("Deblur", "Train"):
        widget = dock(viewer, name)
        controls = [
            control for kind in (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QListWidget)
            for control in widget.findChildren(kind)
            if not isinstance(control.parent(), (QAbstractSpinBox, QComboBox))  # their inner parts
        ]
        assert len(controls) > 15
        missing = [f"{type(c).__name__} {getattr(c, 'text', lambda: '')()!r}" for c in controls if not c.toolTip()]
        assert not missing, f"{name}: {missing}"


def test_messages_speak_the_gui_and_say_what_to_do(make_napari_viewer, qtbot, notes, any_kernel_model, monkeypatch):
    import torch

    from napari_crcnet._widgets import deblur as deblur_module
    from napari_crcnet.models import CRCNet, CRCNetConfig, save_model

    torch.manual_seed(0)
    fixed = any_kernel_model.with_name("fixed-kernel.safetensors")
    net = CRCNet(CRCNetConfig(in_channels=1, n_units=2, iu_channels=4))
    save_model(fixed, net, {"name": "fixed-kernel", "kernel": kernels.gaussian_kernel(1.0).tolist(),
                            "mmse_sigma": 0.01})
    viewer = make_napari_viewer()
    add_sample(viewer, blurred_cell)
    widget = dock(viewer, "Deblur")
    widget.method.setCurrentText("CRCNet")
    widget.model.setCurrentIndex(widget.model.findData(str(fixed)))
    widget.units.setChecked(False)
    run_and_wait(qtbot, widget)  # the cell's PSF is not the model's kernel
    assert widget.runner.outcome == "error"
    message = notes["error"][-1]
    assert message.startswith("Deblur: ") and "force=True" not in message
    assert 'tick "apply to another kernel anyway (force)"' in message

    # the unit outputs of one large image: say what to do there (not "choose fewer n")
    monkeypatch.setattr(deblur_module, "MAX_STACK_BYTES", 1000)
    widget.units.setChecked(True)
    assert widget.run() is None
    message = notes["error"][-1]
    assert message.startswith("Deblur: the CRCNet unit outputs would take")
    assert 'untick "add unit outputs"' in message and "fewer n" not in message
    assert not widget.scope.isVisibleTo(widget)  # a single image: no "stacks" choice shown or advised
    assert "current step" not in message

    widget.method.setCurrentText("IRD")  # and the residues, the same way
    assert widget.run() is None
    assert 'choose fewer n in "residues n"' in notes["error"][-1] and notes["error"][-1].startswith("Deblur: ")


def test_warnings_from_elsewhere_are_not_shown_as_the_jobs(make_napari_viewer, qtbot, notes, monkeypatch):
    """napari's worker records warnings process-wide while it runs; only the plugin's own are shown."""
    import threading

    from napari_crcnet._widgets._task_runner import is_our_warning

    original, proceed = deconv.iter_ird_residues, threading.Event()

    def held(*args, **kwargs):  # the job waits (in the worker) until the GUI thread has warned
        for i, item in enumerate(original(*args, **kwargs)):
            if i == 1:
                proceed.wait(60)
            yield item

    monkeypatch.setattr(deconv, "iter_ird_residues", held)
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((96, 96)).astype(np.float32), name="noise")
    widget = dock(viewer, "Deblur")
    widget.kernel.set_generated("Gaussian", sigma=2.0)
    widget.method.setCurrentText("IRD")
    widget.sigma.setValue(0.01)
    widget.residue_ns.setText("0-3")
    widget.run()
    qtbot.waitUntil(lambda: widget.runner.bar.value() >= 2, timeout=WAIT_MS)
    assert widget.runner.running
    warnings.warn("something napari or another plugin says", UserWarning, stacklevel=1)  # the GUI thread
    proceed.set()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert widget.runner.outcome == "done", notes
    assert not any("another plugin says" in message for message in notes["warning"]), notes
    import napari_crcnet.inference as ours

    assert is_our_warning(("m", UserWarning, ours.__file__, 1))
    assert not is_our_warning(("m", UserWarning, napari.__file__, 1))


def test_cancel_does_not_wait_for_a_long_silent_step(make_napari_viewer, qtbot, notes, monkeypatch):
    """Cancel stops the job while a core step that reports no progress (the noise estimate of a large
    image, one FFT) is still running; its result is dropped and nothing is added."""
    import threading

    entered, release = threading.Event(), threading.Event()
    original = deconv.estimate_noise

    def silent(*args, **kwargs):  # a step that would run until released
        entered.set()
        release.wait(3 * WAIT_MS / 1000)  # longer than the wait below: a runner that waits for it fails
        return original(*args, **kwargs)

    monkeypatch.setattr(deconv, "estimate_noise", silent)
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="image")
    widget = dock(viewer, "Deblur")
    widget.kernel.set_generated("Gaussian", sigma=1.0)
    widget.method.setCurrentText("IRD")  # σ "auto": the noise estimate comes first
    widget.run()
    try:
        qtbot.waitUntil(entered.is_set, timeout=WAIT_MS)
        widget.runner.cancel_button.click()
        qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)  # the step is still blocked
    finally:
        release.set()
    assert widget.runner.outcome == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["image"] and not notes["error"]
