"""The Train widget: train a CRCNet for one kernel and noise level, from a folder or from image layers.

Glue around :func:`napari_crcnet.training.train` (widgets, worker and signals kept apart, as in
careamics-napari): the widget builds a :class:`~napari_crcnet.training.TrainConfig`, runs ``train`` in a
worker thread and shows what the trainer logs (step, loss, validation PSNR of the model and of MMSE).
``Stop`` makes the trainer stop after its current step; it still writes its checkpoint and saves the
model trained so far. The model goes to the user models folder
(:func:`napari_crcnet.models.store.user_dir`: ``$NAPARI_CRCNET_MODELS`` or ``~/.napari-crcnet/models``),
so it appears in the Deblur widget's model list at once; the checkpoint (resumable) and a JSON-lines log
go to its ``checkpoints/`` subfolder.

Preview: on every checkpoint the trainer reports (every :data:`CHECKPOINT_EVERY_S` seconds, on stop and
at the end) the checkpointed network is applied, in the training thread, to the centre
(:data:`PREVIEW_SIZE` pixels at most per side) of the shown slice of the chosen preview layer; the result
is shown as a layer ``CRCNet preview (training) · <layer>`` placed over that crop. The preview layer
defaults to a blurred image: the one whose recorded kernel is the chosen kernel layer, else any layer the
sample data marked as blurred (not the top layer, which is often a sharp training image).

Rarely changed options (network, start from, batch, crop, validate every, device, resume) sit in a
collapsed "Advanced" section; the form scrolls, so the Deblur and Train docks fit a small screen.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np
from napari.layers import Image
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .._progress import ProgressCallback
from ._kernel_picker import KernelPicker
from ._layer_pickers import LayerCombo, is_plugin_output, kernel_matches, looks_like_kernel, recorded_kernel
from ._layers import LayerInput, layer_input, show_result
from ._layout import Collapsible, compact_combo, fit_to_current_page, hbox, scrolled
from ._model_list import model_events, refill_model_combo
from ._notify import Notifier
from ._task_runner import TaskRunner

#: Architectures offered: label -> ``TrainConfig.model`` value.
NETWORKS: dict[str, Any] = {
    "default (PReLU IU, MMSE input, skip)": "default",
    "paper (ReLU IU, blurred input)": "paper",
    "small (3 units, fast to train)": {"n_units": 3, "iu_channels": 16},
    "tiny (2 units, for tests)": {"n_units": 2, "iu_channels": 4},
}
IMAGE_SOURCES = ("folder", "image layers")
CHANNELS = {"RGB (3 channels)": 3, "gray (1 channel)": 1}
CHECKPOINT_EVERY_S = 60.0
PREVIEW_SIZE = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
TITLE = "Train"


class _Messages(QObject):
    """Carries log records and preview images from the training thread to the GUI thread."""

    record = Signal(object)
    preview = Signal(object)


class TrainWidget(QWidget):
    """Train a CRCNet model for the chosen kernel; the result is listed in the Deblur widget."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.notes = Notifier(TITLE)
        self._preview_layer: Image | None = None
        self.history: list[dict] = []  # validation records of the current run
        self.last_result: Any = None

        self.kernel = KernelPicker(napari_viewer)

        self.source = QComboBox()
        self.source.addItems(IMAGE_SOURCES)
        self.source.setToolTip("where the sharp training images come from: a folder, or image layers you tick")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("folder of sharp images (PNG, JPG, TIFF)")
        self.folder.setToolTip("a folder of sharp images (PNG, JPG, TIFF); they are blurred with the kernel")
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.setToolTip("choose the folder of sharp training images")
        browse.clicked.connect(self._browse_folder)
        folder_row = hbox(self.folder, browse)
        self.layers = QListWidget()
        self.layers.setMaximumHeight(90)
        self.layers.setToolTip("sharp images to train on (every slice/frame of a stack is an image)")
        self.layers.itemChanged.connect(self._suggest_channels)
        self.source_pages = QStackedWidget()
        self.source_pages.addWidget(folder_row)
        self.source_pages.addWidget(self.layers)
        fit_to_current_page(self.source_pages)
        self.source.currentIndexChanged.connect(self.source_pages.setCurrentIndex)
        for emitter in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            emitter.connect(self._refresh_layers)
        self._refresh_layers()

        self.channels = QComboBox()
        self.channels.addItems(list(CHANNELS))
        self.channels.setToolTip("colour (RGB) or gray model; ticked gray layers suggest gray, RGB layers RGB")
        self.noise = QDoubleSpinBox()
        self.noise.setDecimals(2)
        self.noise.setRange(0.0, 50.0)
        self.noise.setSingleStep(0.5)
        self.noise.setValue(1.0)
        self.noise.setSuffix(" %")
        self.noise.setToolTip("noise std of your blurred images, in % of the image range (as in the Deblur widget)")
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 10_000_000)
        self.iterations.setValue(2000)
        self.iterations.setToolTip("training steps; Stop ends earlier and still saves the model")
        self.network = QComboBox()
        self.network.addItems(list(NETWORKS))
        self.network.setToolTip("the network architecture to train (ignored when starting from a model)")
        compact_combo(self.network)
        self.batch = QSpinBox()
        self.batch.setRange(1, 256)
        self.batch.setValue(8)
        self.batch.setToolTip("image crops per training step")
        self.crop = QSpinBox()
        self.crop.setRange(16, 1024)
        self.crop.setValue(64)
        self.crop.setSuffix(" px")
        self.crop.setToolTip("side of the training crops")
        self.val_every = QSpinBox()
        self.val_every.setRange(0, 1_000_000)
        self.val_every.setValue(250)
        self.val_every.setToolTip("validate (PSNR of the model and of MMSE) every this many iterations")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setToolTip("where to train: auto uses a CUDA GPU when there is one, else the CPU")
        self.name = QLineEdit("my-crcnet")
        self.name.setToolTip("model name (letters, digits, - _ . +); saved in the user models folder")
        self.resume = QCheckBox("resume from its checkpoint")
        self.resume.setChecked(True)
        self.resume.setToolTip("continue a stopped training of this model name from its checkpoint")
        self.start_from = QComboBox()
        self.start_from.setToolTip(
            "start from a trained model's weights (and its architecture, with the default network) instead of "
            "from scratch: a model for a similar kernel, or one trained for any kernel, gets there sooner"
        )
        compact_combo(self.start_from)
        self.refresh_start_models()
        model_events.changed.connect(self.refresh_start_models)
        self.preview_layer = LayerCombo(
            napari_viewer, prefer=self._preview_score,
            exclude=lambda layer: looks_like_kernel(layer) or is_plugin_output(layer),
        )
        self.preview_layer.setToolTip("a blurred image to deblur with the network at each checkpoint")
        compact_combo(self.preview_layer)
        self.preview = QCheckBox("preview on checkpoints")
        self.preview.setChecked(True)
        self.preview.setToolTip("show the current network's result on the centre of the preview layer")

        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("train in the background; the model is saved to the user models folder")
        self.train_button.clicked.connect(self.run)
        self.runner = TaskRunner(cancel_text="Stop")
        self.runner.cancel_button.setToolTip("stop after the current step; the model trained so far is saved")
        self.runner.started.connect(lambda: self.train_button.setEnabled(False))
        self.runner.finished.connect(lambda: self.train_button.setEnabled(True))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self._messages = _Messages()
        self._messages.record.connect(self._on_record)
        self._messages.preview.connect(self._on_preview)

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 4, 0)
        form = QFormLayout()
        form.addRow(self.kernel)
        form.addRow("images", self.source)
        form.addRow(self.source_pages)
        form.addRow("channels", self.channels)
        form.addRow("noise", self.noise)
        form.addRow("iterations", self.iterations)
        form.addRow("model name", self.name)
        form.addRow("preview on", self.preview_layer)
        form.addRow("", self.preview)
        self.advanced = Collapsible("Advanced")
        advanced = self.advanced.form
        advanced.addRow("network", self.network)
        advanced.addRow("start from", self.start_from)
        advanced.addRow("batch", self.batch)
        advanced.addRow("crop", self.crop)
        advanced.addRow("validate every", self.val_every)
        advanced.addRow("device", self.device)
        advanced.addRow("", self.resume)
        column.addLayout(form)
        column.addWidget(self.advanced)
        column.addWidget(self.status)
        column.addStretch()
        self.scroll = scrolled(self, content, self.train_button, self.runner)
        self.kernel.changed.connect(self.preview_layer.pick_default_if_unpicked)

    # ------------------------------------------------------------------------------- inputs
    def _preview_score(self, layer: Image) -> float:
        """Default preview layer: the image blurred by the chosen kernel layer (2), another blurred image
        recorded by the sample data (1), else any (0, the active or top layer)."""
        kernel = getattr(self, "kernel", None)
        if kernel is not None and kernel.source.currentText() == "Layer" and kernel_matches(layer, kernel.layer.value):
            return 2.0
        return 1.0 if recorded_kernel(layer) or "blur" in layer.name.lower() else 0.0

    def refresh_start_models(self, *args: Any) -> None:
        """Re-read the models a run can start from (shipped + user folder)."""
        from ..models.store import kernel_label

        refill_model_combo(
            self.start_from,
            self.refresh_start_models,
            lambda card: f"{card['name']} (kernel {kernel_label(card)})",
            first=("scratch (random weights)", None),
        )

    def _refresh_layers(self, *args: Any) -> None:
        try:
            checked = self.checked_layers()
            self.layers.blockSignals(True)
            self.layers.clear()
        except RuntimeError:  # widget closed
            return
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and not looks_like_kernel(layer) and not is_plugin_output(layer):
                item = QListWidgetItem(layer.name)
                item.setData(Qt.ItemDataRole.UserRole, layer)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer in checked else Qt.CheckState.Unchecked)
                self.layers.addItem(item)
        self.layers.blockSignals(False)

    def _suggest_channels(self, *args: Any) -> None:
        """Gray training layers suggest a gray model, any RGB layer an RGB one."""
        layers = self.checked_layers()
        if layers:
            rgb = any(layer.rgb for layer in layers)
            self.channels.setCurrentIndex(list(CHANNELS.values()).index(3 if rgb else 1))

    def checked_layers(self) -> list[Image]:
        """The image layers ticked as training images."""
        items = [self.layers.item(i) for i in range(self.layers.count())]
        return [
            item.data(Qt.ItemDataRole.UserRole) for item in items if item.checkState() == Qt.CheckState.Checked
        ]

    def set_training_layers(self, names: list[str]) -> None:
        """Tick these layers as training images and switch the source to "image layers"."""
        self.source.setCurrentText("image layers")
        for i in range(self.layers.count()):
            item = self.layers.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of sharp training images")
        if folder:
            self.folder.setText(folder)

    def _images(self) -> Any:
        if self.source.currentText() == "folder":
            folder = self.folder.text().strip()
            if not folder:
                raise ValueError("choose a folder of sharp training images")
            return folder
        arrays: list[np.ndarray] = []
        for layer in self.checked_layers():
            data = np.asarray(layer.data)
            plain = data.shape[-3:-1] if layer.rgb else data.shape[-2:]
            tail = (*plain, 3) if layer.rgb else plain
            arrays.extend(data.reshape((-1, *tail)))  # every slice / frame is one image
        if not arrays:
            raise ValueError("tick at least one image layer of sharp images to train on")
        return arrays

    def config(self) -> Any:
        """The :class:`~napari_crcnet.training.TrainConfig` the widget's fields describe."""
        from ..models import store
        from ..training import TrainConfig

        name = self.name.text().strip()
        if not _NAME.match(name):
            raise ValueError(f"model name {name!r}: use letters, digits and - _ . + (no spaces or slashes)")
        kernel = self.kernel.kernel()
        if kernel.ndim != 2:
            raise ValueError("CRCNet training needs a 2D kernel")
        folder = store.user_dir()
        checkpoints = folder / "checkpoints"
        return TrainConfig(
            kernel=kernel,
            images=self._images(),
            channels=CHANNELS[self.channels.currentText()],
            model=NETWORKS[self.network.currentText()],
            noise=self.noise.value() / 100,
            iterations=self.iterations.value(),
            batch=self.batch.value(),
            crop=self.crop.value(),
            val_every=self.val_every.value(),
            val_size=max(2 * self.crop.value(), 64),
            device=self.device.currentText(),
            name=name,
            description=f"trained in napari for kernel {self.kernel.spec()}",
            output=folder / f"{name}.safetensors",
            checkpoint=checkpoints / f"{name}.ckpt.safetensors",
            log_path=checkpoints / f"{name}.log.jsonl",
            checkpoint_every_s=CHECKPOINT_EVERY_S,
            resume=self.resume.isChecked(),
            init=self.start_from.currentData(),
            card={"kernel_spec": self.kernel.spec()},
        )

    def _preview_source(self) -> LayerInput | None:
        layer = self.preview_layer.value
        if not self.preview.isChecked() or layer is None:
            return None
        return centre_crop(layer_input(layer, self.viewer, 2, current_step=True), PREVIEW_SIZE)

    # ------------------------------------------------------------------------------- running
    def run(self) -> Any:
        """Start training (returns the worker; None when the inputs are bad)."""
        if self.runner.running:
            return None
        try:
            config = self.config()
            preview = self._preview_source()
        except Exception as error:  # bad kernel, no images...: a notification, nothing starts
            self.notes.failed(error)
            return None
        self.history = []
        self.last_result = None
        self.status.setText(f"starting: {config.iterations} iterations → {config.output}")
        return self.runner.start(_train_job(config, preview, self._messages), self._finished, title=TITLE)

    def stop(self) -> None:
        """Stop after the current step (the model trained so far is saved)."""
        self.runner.cancel()

    def _on_record(self, record: dict) -> None:
        event = record.get("event")
        if event == "start":
            self.status.setText(
                f"training on {record.get('n_train_images')} images, MMSE σ={record.get('mmse_sigma', 0):.3g}, "
                f"{record.get('n_parameters', 0):,} parameters, {record.get('device')}"
            )
        elif event == "train":
            self.status.setText(
                f"step {record['step']}: loss {record.get('loss', float('nan')):.4g}, "
                f"{record.get('steps_per_s', 0):.2f} steps/s" + self._gain_text()
            )
        elif event == "val":
            self.history.append(record)
            self.status.setText(f"step {record['step']}" + self._gain_text())
        elif event == "end":
            self.status.setText(
                f"{'stopped' if record.get('stopped') else 'done'} at step {record.get('step')}"
                + self._gain_text() + (f"; saved {record['model_path']}" if record.get("model_path") else "")
            )

    def _gain_text(self) -> str:
        if not self.history:
            return ""
        last = self.history[-1]
        return (
            f"; validation PSNR {last.get('psnr', float('nan')):.2f} dB vs MMSE "
            f"{last.get('mmse_psnr', float('nan')):.2f} dB (gain {last.get('gain_psnr', float('nan')):+.2f} dB)"
        )

    def _on_preview(self, payload: tuple[np.ndarray, LayerInput, int]) -> None:
        data, source, step = payload
        self._preview_layer = show_result(
            self.viewer, self._preview_layer, data, source,
            name=f"CRCNet preview (training) · {source.layer.name}",
            info={"method": "CRCNet preview", "step": step, "model": self.name.text().strip()},
        )

    def _finished(self, result: Any) -> None:
        self.last_result = result
        model_events.changed.emit()  # every Deblur widget re-reads its model list
        gain = result.metrics.get("validation", {}).get("gain_psnr")
        gain_text = f", validation gain over MMSE {gain:+.2f} dB" if gain is not None else ""
        self.notes.info(
            f"CRCNet {result.card.get('name')!r} {'stopped' if result.stopped else 'trained'} "
            f"after {result.steps} steps{gain_text}; saved to {result.model_path}"
        )


def centre_crop(source: LayerInput, size: int) -> LayerInput:
    """The centre ``size x size`` pixels (at most) of ``source``'s Y and X axes, placed where they were."""
    data = source.data
    n_plain = data.ndim - (source.channel_axis is not None)  # axes with a scale (all but RGB's last)
    index = [slice(None)] * data.ndim
    translate = list(source.translate)
    for axis in (n_plain - 2, n_plain - 1):
        start = max((data.shape[axis] - size) // 2, 0)
        index[axis] = slice(start, start + size)
        translate[axis] += start * source.scale[axis]
    crop = data[tuple(index)]
    return replace(source, data=crop, spatial_shape=crop.shape[n_plain - 2 : n_plain], translate=tuple(translate))


def _train_job(config: Any, preview: LayerInput | None, messages: _Messages):
    """The worker: ``train(config)``, forwarding log records and checkpoint previews to the GUI."""

    def job(progress: ProgressCallback):
        from .. import inference
        from ..models.crcnet import CRCNet, CRCNetConfig
        from ..training import load_checkpoint, train
        from ..training.fit import data_step_rule

        step_rule = data_step_rule(config)  # the data step the model will carry (from its init model)

        def show(model: Any, sigma: float, step: int) -> None:
            card = {"mmse_sigma": sigma, "kernel": config.kernel, "mmse_boundary": config.mmse_boundary,
                    "noise": config.noise, "data_step": step_rule}
            try:
                out = inference.apply_model(model, card, preview.data, kernel=config.kernel,
                                            channel_axis=preview.channel_axis, device=config.device)
            except ValueError as error:  # e.g. an RGB model and a gray preview layer: say so, keep training
                messages.record.emit({"event": "preview_error", "message": str(error)})
                return
            messages.preview.emit((out, preview, step))

        def log(record: dict) -> None:
            messages.record.emit(record)
            if preview is not None and record.get("event") == "checkpoint" and record.get("reason") == "periodic":
                tensors, document = load_checkpoint(record["path"])
                model = CRCNet(CRCNetConfig.from_dict(document["model_config"]))
                model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
                show(model.eval(), float(document["mmse_sigma"]), int(document["step"]))

        yield (0, config.iterations)
        result = train(config, progress=progress, log=log)
        if preview is not None:
            show(result.model, float(result.card["mmse_sigma"]), result.steps)
        return result

    return job
