"""The Deblur widget: image layer + kernel -> MMSE, IRD (with residues), Richardson-Lucy, hyper-Laplacian or
CRCNet.

Thin glue, as in pycudadecon's napari adapter: the widget cuts an array out of the chosen layer
(:func:`~napari_crcnet._widgets._layers.layer_input`), calls one core function in a worker thread
(:func:`napari_crcnet.deconv.mmse`, :func:`~napari_crcnet.deconv.ird`,
:func:`~napari_crcnet.deconv.iter_ird_residues`, :func:`~napari_crcnet.richardsonlucy.richardson_lucy`,
:func:`~napari_crcnet.hyperlaplacian.hyper_laplacian`,
:func:`~napari_crcnet.inference.crcnet`) and turns the arrays that come back into layers placed like the
input (scale, translate, metadata, colormap and contrast copied). The input layer is never modified.

Layers added (``<image>`` is the input layer's name):

* ``MMSE σ=0.003 · <image>`` (or ``IRD σ=… N=…``, ``Richardson-Lucy N=…`` (`` TV=…`` with a TV weight,
  `` tol=…`` when it may stop early), ``hyper-Laplacian λ=… α=…``, ``CRCNet <model>``): the
  result, method first so that it stays readable in a narrow layer list. Running the same method on the
  same input again updates this layer instead of adding one. "all slices / frames" and "current step
  only" each have their own layer (``… · <image> [z=7]``): one never overwrites the other.
* While a large image runs: ``<result name> (preview) · <image>``, the same method on the region in the middle of
  the view (:data:`PREVIEW_SIDE`, full resolution, the shown step), a first result within about a second;
  removed when the result comes, or on Cancel.
* IRD, hidden: ``IRD residues · <image>``, the residues ``conj(K) (σ' - |K|²)^n B`` for the chosen ``n``
  stacked on a new first axis (the ``n`` slider), and ``IRD partial sums · <image>``, their running sums
  ``Σ_{m≤n}`` (= IRD with ``n`` iterations). With ``n = 0..N`` the residues sum to the IRD result.
* CRCNet, hidden: ``CRCNet units · <image>``, the outputs ``inter_1..inter_N`` of the Residual Units
  (the network's learned residues). Unit ``i`` has a different number of channels (RGB paper net:
  3, 6, 12, 24, 48, 96), so each unit is shown as the mean over its channels (and over the colour
  channels for RGB input), stacked with the unit index as the first (slider) axis.

Stack display: the slider of a stack counts entries 0, 1, 2, ...; the viewer's text overlay says what the
shown entry stands for (``IRD residues · cell: n = 50``), from ``metadata["napari_crcnet"]["slider"]``
(``values``: the n or unit of each entry). The data are the true values (the status bar reads them); only
the contrast follows the entry shown: residues and units shrink by orders of magnitude with n, so each
entry gets its own robust contrast range (``slider["limits"]``, see
:class:`~napari_crcnet._widgets._residues.StackReadout`). Partial sums keep the input's contrast: they
are images on the input's scale.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .._progress import Cancelled, ProgressCallback
from ..operators import BOUNDARIES, DEFAULT_BOUNDARY
from ..specialisation import FLUORESCENCE_MODEL
from ._kernel_picker import KernelPicker
from ._layer_pickers import LayerCombo, is_plugin_output, looks_like_kernel
from ._layers import METADATA_KEY, LayerInput, crop_around, display_limits, layer_input, show_result
from ._layout import Collapsible, compact_combo, hbox, scrolled, vbox
from ._model_list import model_events, refill_model_combo
from ._notify import Notifier
from ._residues import SLIDER_KEY, StackReadout, slice_limits
from ._task_runner import TaskRunner, call_with_progress, interruptible, interruptible_steps

METHODS = ("MMSE", "IRD", "Richardson-Lucy", "hyper-Laplacian", "CRCNet")
DEVICES = ("auto", "cpu", "cuda")
SCOPES = ("all slices / frames", "current step only")
TITLE = "Deblur"
ALPHAS = (("2/3", 2 / 3), ("1/2", 0.5), ("4/5", 0.8), ("1 (TV)", 1.0))
DEFAULT_RESIDUES = "0, 1, 2, 5, 10, 50"
FILE_ITEM = "from file…"
#: Side of the first, quick result (a preview) on a large image, per method: the region at the centre of the
#: view at full resolution, computed with the same settings before the whole image. An image of at most
#: four times this area gets no preview (its full result comes soon enough).
PREVIEW_SIDE = {"MMSE": 512, "IRD": 512, "Richardson-Lucy": 256, "hyper-Laplacian": 256, "CRCNet": 256}
#: The model names of the automatic choice (the defaults; a specialised model takes their place).
SPECIALISED_PREFIX = "specialised-"
#: Largest diagnostic stacks (residues + partial sums, or unit outputs) a run may create, in bytes.
MAX_STACK_BYTES = 2 * 1024**3


@dataclass
class Outcome:
    """What a run returns to the GUI thread: the result and the optional stacks, ready to show."""

    data: np.ndarray
    label: str
    info: dict[str, Any]
    source: LayerInput
    stacks: list[tuple[str, np.ndarray, str, dict[str, Any]]] = field(default_factory=list)


def unit_display(unit: np.ndarray, plain_ndim: int, rgb: bool) -> np.ndarray:
    """One CRCNet unit output, laid out as :func:`napari_crcnet.inference.apply_model` returns it, reduced
    to the input's plain (non-colour) shape by averaging over its channels.

    Gray input: ``(c_i, *P)``. RGB input: colour model ``(*P, c_i)``, gray model run per colour
    ``(c_i, *P, 3)``; the colours are averaged too, so every unit becomes a gray ``P`` array.
    """
    if not rgb:
        return unit.mean(axis=0)
    if unit.ndim == plain_ndim + 1:
        return unit.mean(axis=-1)
    return unit.mean(axis=(0, -1))


@dataclass
class Preview:
    """Yielded by a job before its result: the same method on a region of the image, shown at once."""

    outcome: Outcome


class DeblurWidget(QWidget):
    """Deblur an image layer with a known kernel (MMSE, IRD + residues, Richardson-Lucy, hyper-Laplacian, CRCNet)."""

    #: A preview layer was shown (the layer), for tests and scripts.
    preview_shown = Signal(object)

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.notes = Notifier(TITLE)
        self._results: dict[tuple[int, str, bool], tuple[Image, Image]] = {}

        self.image = LayerCombo(
            napari_viewer, exclude=lambda layer: looks_like_kernel(layer) or is_plugin_output(layer)
        )
        self.image.setToolTip("the blurred image (gray, RGB, stack or time series); it is never modified")
        compact_combo(self.image)
        self.kernel = KernelPicker(napari_viewer)
        self.kernel.follow_image(self.image.value)
        self.image.currentIndexChanged.connect(lambda *_: self.kernel.follow_image(self.image.value))

        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.method.setToolTip(
            "MMSE: closed-form Wiener filter. IRD: Iterative Residual Deconvolution (paper Alg. 1), "
            "with its residues. Richardson-Lucy: the iterative Poisson (photon-count) method of microscopy, "
            "optionally with total variation. hyper-Laplacian: Krishnan & Fergus 2009. CRCNet: a trained network"
        )

        # MMSE / IRD
        self.sigma = _auto_spin(
            5, 1.0, 0.0005, "noise-to-signal balance σ in X = conj(K) B / (|K|² + σ); auto: from the noise"
        )
        self.estimate = QPushButton("Estimate")
        self.estimate.setToolTip("estimate the noise of the current slice and fill in σ, λ and the CRCNet noise")
        self.estimate.clicked.connect(self.estimate_parameters)
        self.iterations = QSpinBox()
        self.iterations.setRange(0, 100_000)
        self.iterations.setValue(100)
        self.iterations.setToolTip("IRD iterations N (the closed form costs the same for any N)")
        self.residues = QCheckBox("add residue layers (hidden)")
        self.residues.setChecked(True)
        self.residues.setToolTip(
            "also add the residues n and their partial sums as two hidden stacks (n on the slider)"
        )
        self.residue_ns = QLineEdit(DEFAULT_RESIDUES)
        self.residue_ns.setToolTip("residue indices n, e.g. '0, 1, 2, 5, 10, 50' or '0-20'")

        # Richardson-Lucy
        self.rl_iterations = QSpinBox()
        self.rl_iterations.setRange(1, 100_000)
        self.rl_iterations.setValue(10)
        self.rl_iterations.setToolTip(
            "Richardson-Lucy iterations N: more sharpen more, and amplify the noise more (each costs two blurs)"
        )
        self.tv = QDoubleSpinBox()
        self.tv.setDecimals(4)
        self.tv.setRange(0.0, 0.5)
        self.tv.setSingleStep(0.001)
        self.tv.setSpecialValueText("off")
        self.tv.setToolTip(
            "total-variation weight λ (Dey et al. 2006); off: plain Richardson-Lucy; "
            "0.001-0.02 suppresses the noise that many iterations amplify"
        )
        self.stop_early = QCheckBox("stop early")
        self.stop_early.setToolTip(
            "stop before N iterations once an iteration changes every image by less than the tolerance"
        )
        self.tol = QDoubleSpinBox()
        self.tol.setDecimals(5)
        self.tol.setRange(0.00001, 0.5)
        self.tol.setSingleStep(0.0005)
        self.tol.setValue(0.001)
        self.tol.setEnabled(False)
        self.tol.setToolTip(
            "tolerance: the relative change ||x_new - x|| / ||x|| of one iteration below which it stops"
        )
        self.stop_early.toggled.connect(self.tol.setEnabled)

        # hyper-Laplacian
        self.lam = _auto_spin(1, 1e6, 100.0, "data weight λ in λ/2 ||k*x - b||² + Σ|∇x|^α; auto: from the noise")
        self.alpha = QComboBox()
        for text, value in ALPHAS:
            self.alpha.addItem(text, value)
        self.alpha.setToolTip("exponent α of the gradient prior Σ|∇x|^α: 2/3 or 1/2 for photos, 1 is total variation")

        # CRCNet
        self.model = QComboBox()
        self.model.setToolTip("trained models (shipped and in the user models folder) or a .safetensors file")
        compact_combo(self.model)
        self.refresh_button = QPushButton("↻")
        self.refresh_button.setMaximumWidth(30)
        self.refresh_button.setToolTip("re-read the models folders")
        self.refresh_button.clicked.connect(self.refresh_models)
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("model .safetensors")
        self.model_path.setToolTip("a CRCNet model file (.safetensors) that is not in the list")
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.setToolTip("choose a model file")
        browse.clicked.connect(self._browse_model)
        self.noise = _auto_spin(
            2, 50.0, 0.1, "noise std of the image, in % of its range, for models that take it (the any-kernel "
            "model); auto: the model card's, else estimated from the image", suffix=" %",
        )
        self.units = QCheckBox("add unit outputs (hidden)")
        self.units.setChecked(True)
        self.units.setToolTip(
            "also add the outputs of the network's Residual Units (its learned residues) as a hidden stack"
        )
        self.force = QCheckBox("apply to another kernel anyway (force)")
        self.force.setToolTip("a model only undoes the blur it was trained for; by default another kernel is refused")
        self.minutes = QDoubleSpinBox()
        self.minutes.setDecimals(2)
        self.minutes.setRange(0.01, 600.0)
        self.minutes.setValue(3.0)
        self.minutes.setSuffix(" min")
        self.minutes.setToolTip("how long Specialise trains: more minutes, a better fit (3 min gain most of it)")
        self.specialise_button = QPushButton("Specialise to this kernel")
        self.specialise_button.setToolTip(
            "fine-tune the default model to this kernel, the image's noise (the noise above, else estimated) and "
            "its channels, on images every installation has (photos; synthetic cells for a fluorescence model); "
            "saved in the user models folder and used automatically for this kernel. Cancel keeps the model so far"
        )
        self.specialise_button.clicked.connect(self.specialise)
        self.specialised_note = QLabel()
        self.specialised_note.setWordWrap(True)
        # a wrapping label would otherwise ask the form for room for its whole text, even while hidden
        self.specialised_note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        # common
        self.boundary = QComboBox()
        self.boundary.addItems(BOUNDARIES)
        self.boundary.setCurrentText(DEFAULT_BOUNDARY)
        self.boundary.setToolTip("how the image is extended before the FFT (taper rings least)")
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip("where to compute: auto uses a CUDA GPU when there is one, else the CPU")
        self.scope = QComboBox()
        self.scope.addItems(SCOPES)
        self.scope.setToolTip(
            "for stacks and time series: process every slice/frame, or only the one shown "
            "(the result then sits on that step)"
        )
        self.run_button = QPushButton("Deblur")
        self.run_button.setToolTip("deblur the image in the background; the result is added as a new layer")
        self.run_button.clicked.connect(self.run)
        self.runner = TaskRunner()
        self.runner.started.connect(lambda: self._set_running(True))
        self.runner.finished.connect(lambda: self._set_running(False))
        self._preview_layer: Image | None = None
        self.runner.cancel_button.clicked.connect(self._hide_preview)  # at once; removed when the job ends

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 4, 0)
        form = QFormLayout()
        self.advanced = Collapsible("Advanced")
        self._rows: dict[str, tuple[QLabel, QWidget]] = {}

        def row(key: str, label: str, widget: QWidget, where: QFormLayout = form) -> None:
            text = QLabel(label)
            if label:
                where.addRow(text, widget)
            else:  # a row of check boxes: the whole width, so that their text does not widen the dock
                where.addRow(widget)
            self._rows[key] = (text, widget)

        row("image", "image", self.image)
        form.addRow(self.kernel)
        row("method", "method", self.method)
        row("sigma", "σ", hbox(self.sigma, self.estimate))
        row("iterations", "iterations N", self.iterations)
        row("residues", "", self.residues)
        row("residue_ns", "residues n", self.residue_ns)
        row("rl_iterations", "iterations N", self.rl_iterations)
        row("tv", "TV weight", self.tv)
        row("tol", "", hbox(self.stop_early, self.tol))
        row("lam", "λ", hbox(self.lam, _clone_button(self.estimate, self.estimate_parameters)))
        row("alpha", "α", self.alpha)
        row("model", "model", hbox(self.model, self.refresh_button))
        row("model_path", "model file", hbox(self.model_path, browse))
        row("noise", "noise", hbox(self.noise, _clone_button(self.estimate, self.estimate_parameters)))
        row("units", "", vbox(self.units, self.force))
        row("specialise", "", hbox(self.specialise_button, self.minutes))
        row("specialised", "", self.specialised_note)
        row("scope", "stacks", self.scope)
        row("boundary", "boundary", self.boundary, self.advanced.form)
        row("device", "device", self.device, self.advanced.form)
        column.addLayout(form)
        column.addWidget(self.advanced)
        column.addStretch()
        self.scroll = scrolled(self, content, self.run_button, self.runner)

        self._readout = StackReadout(napari_viewer, METADATA_KEY)  # "n = 50" over the canvas, per-n contrast
        readout = self._readout
        self.destroyed.connect(lambda *_: readout.disconnect())

        self.method.currentTextChanged.connect(self._show_rows)
        self.model.currentTextChanged.connect(self._show_rows)
        self._model_picked = False  # the user chose a model: stop matching the default to the image
        self.model.activated.connect(self._on_model_picked)
        self.image.currentIndexChanged.connect(self._match_default_model)
        self.kernel.changed.connect(self._match_default_model)  # a specialised model follows its kernel
        self.image.currentIndexChanged.connect(self._show_rows)
        model_events.changed.connect(self.refresh_models)
        self.refresh_models()
        self._show_rows()

    # ------------------------------------------------------------------------------- options
    def _show_rows(self, *args: Any) -> None:
        method = self.method.currentText()
        self._note_specialised()
        visible = {
            "sigma": method in ("MMSE", "IRD"),
            "iterations": method == "IRD",
            "residues": method == "IRD",
            "residue_ns": method == "IRD",
            "rl_iterations": method == "Richardson-Lucy",
            "tv": method == "Richardson-Lucy",
            "tol": method == "Richardson-Lucy",
            "lam": method == "hyper-Laplacian",
            "alpha": method == "hyper-Laplacian",
            "model": method == "CRCNet",
            "model_path": method == "CRCNet" and self.model.currentText() == FILE_ITEM,
            "noise": method == "CRCNet",
            "units": method == "CRCNet",
            "specialise": method == "CRCNet",
            "specialised": method == "CRCNet" and bool(self.specialised_note.text()),
            "boundary": method != "CRCNet",  # a model uses the boundary it was trained with
            "scope": self._has_steps(),
        }
        for key, show in visible.items():
            for widget in self._rows[key]:
                widget.setVisible(show)

    def _has_steps(self) -> bool:
        """True when the image has axes before Y, X (z, time): "all slices" or "current step" matters."""
        layer = self.image.value
        return layer is not None and layer.ndim - (1 if layer.rgb else 0) > 2

    def refresh_models(self, *args: Any) -> None:
        """Re-read the model list (shipped + user folder, see :func:`napari_crcnet.models.store.list_models`)."""
        from ..models.store import DEFAULT_MODEL, kernel_label

        if refill_model_combo(
            self.model,
            self.refresh_models,
            lambda card: f"{card['name']} ({card.get('source', '')}, kernel {kernel_label(card).replace('x', '×')})",
            tooltip=lambda card: card.get("description") or card["path"],
            last=(FILE_ITEM, None),
            preferred=DEFAULT_MODEL,
        ):
            self._match_default_model()  # e.g. a gray default just installed
            self._show_rows()

    def _match_default_model(self, *args: Any) -> None:
        """Until the user picks a model, keep the automatic choice for the image and the kernel: the model
        specialised to this kernel for the image's channels (:func:`napari_crcnet.specialise`) when there is
        one, else the model the layer's metadata names (``napari_crcnet.model``: the Blurred cell sample
        names the fluorescence model) when installed, else ``any-kernel-gray`` for a gray layer when
        installed, else ``any-kernel`` (:func:`~napari_crcnet.models.store.default_model`)."""
        from ..models.store import DEFAULT_GRAY_MODEL, DEFAULT_MODEL, default_model
        layer, current = self.image.value, self.model.currentData()
        if not self._model_picked and layer is not None and current:
            stem = Path(current).stem
            automatic = (DEFAULT_MODEL, DEFAULT_GRAY_MODEL, FLUORESCENCE_MODEL)
            if stem in automatic or stem.startswith(SPECIALISED_PREFIX):
                special = self._specialised_model()
                index = self.model.findData(str(special)) if special is not None else -1
                # A layer may name the model it suits in its metadata (napari_crcnet.model).
                suggested = (layer.metadata.get("napari_crcnet") or {}).get("model")
                for wanted in (suggested, default_model(3 if layer.rgb else 1)):
                    if index < 0 and wanted:
                        index = next((i for i in range(self.model.count()) if self.model.itemData(i)
                                      and Path(self.model.itemData(i)).stem == wanted), -1)
                if index >= 0 and index != self.model.currentIndex():
                    self.model.blockSignals(True)  # not a pick by the user
                    self.model.setCurrentIndex(index)
                    self.model.blockSignals(False)
        self._show_rows()

    def _specialised_model(self) -> Path | None:
        """The model specialised to the current (2D) kernel for the image's channels, if one was made."""
        from ..specialisation import find_specialised

        layer = self.image.value
        if layer is None:
            return None
        try:
            raw = self.kernel.raw_kernel()
            return find_specialised(raw, 3 if layer.rgb else 1) if raw.ndim == 2 else None
        except Exception:  # no usable kernel: the kernel picker says why
            return None

    def _note_specialised(self) -> None:
        """Say in the CRCNet section when a model specialised to this kernel exists, and whether it is used."""
        special = self._specialised_model()
        if special is None:
            self.specialised_note.setText("")
            self.specialised_note.setToolTip("")
            return
        if self.model.currentData() == str(special):
            how = "used automatically" if not self._model_picked else "chosen"
            self.specialised_note.setText(f"<i>✓ specialised model for this kernel: {how}</i>")
        else:
            self.specialised_note.setText(f"<i>a model specialised to this kernel exists: {special.stem}</i>")
        self.specialised_note.setToolTip(
            f"{special}\nmade by Specialise for this kernel and {special.stem.rsplit('-', 1)[-1]} images; "
            "chosen automatically in the model list until you pick another model"
        )

    def _on_model_picked(self, *args: Any) -> None:
        self._model_picked = True
        self._show_rows()

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.specialise_button.setEnabled(not running)
        if not running:  # done, cancelled or failed: a preview left over goes
            self._drop_preview()

    def model_names(self) -> list[str]:
        """Names (paths) of the models offered, for tests and scripts."""
        return [self.model.itemData(i) for i in range(self.model.count()) if self.model.itemData(i)]

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CRCNet model", "", "Models (*.safetensors)")
        if path:
            self.model_path.setText(path)

    def estimate_parameters(self) -> None:
        """Estimate the noise of the shown slice; fill in σ (MMSE/IRD), λ (hyper-Laplacian) and the CRCNet noise."""
        from .. import deconv, hyperlaplacian

        layer = self.image.value
        if layer is None:
            self.notes.error("choose an image layer first")
            return
        try:
            source = layer_input(layer, self.viewer, 2, current_step=True)
            noise = deconv.estimate_noise(source.data, channel_axis=source.channel_axis)
        except ValueError as error:
            self.notes.failed(error)
            return
        self.sigma.setValue(deconv.suggest_sigma(noise))
        self.lam.setValue(hyperlaplacian.suggest_lambda(noise))
        self.noise.setValue(100 * noise)
        self.estimate.setToolTip(f"noise std ≈ {100 * noise:.2f} % of the image range")

    # ------------------------------------------------------------------------------- running
    def run(self) -> Any:
        """Check the inputs, then start the worker; returns it (None when the inputs are bad)."""
        if self.runner.running:
            return None
        try:
            layer, job = self._prepare()
        except Exception as error:  # bad kernel, wrong dimensions...: a notification, nothing changes
            self.notes.failed(error)
            return None
        mismatch = self.kernel.mismatch()
        if mismatch:  # the user may mean it (two images with one blur): say so, and run
            self.notes.warning(mismatch)
        return self.runner.start(job, lambda outcome: self._show(layer, outcome), title=TITLE,
                                 on_yielded=lambda value: self._show_preview(layer, value))

    def _prepare(self) -> tuple[Image, Any]:
        """The layer and the job: on a large 2D image, a quick preview of the region in view (the same
        method and settings, :data:`PREVIEW_SIDE`) and then the whole image."""
        layer = self.image.value
        if layer is None:
            raise ValueError("choose an image layer to deblur")
        raw = self.kernel.raw_kernel()  # a 3D kernel deconvolves volumes (the core checks what supports it)
        source = layer_input(layer, self.viewer, raw.ndim, current_step=self.scope.currentIndex() == 1)
        job = self._job(source, raw)
        try:
            region = self._preview_region(layer, raw)
            preview = None if region is None else self._job(region, raw, preview=True)
        except ValueError:  # e.g. a kernel wider than the region: no preview, the whole image as before
            preview = None
        return layer, job if preview is None else _with_preview(preview, job)

    def _preview_region(self, layer: Image, raw: np.ndarray) -> LayerInput | None:
        """The region to preview: the shown step, at most ``PREVIEW_SIDE`` px square around the centre of
        the view, at full resolution; None for volumes and for images small enough to need none."""
        side = PREVIEW_SIDE.get(self.method.currentText())
        if side is None or raw.ndim != 2:
            return None
        source = layer_input(layer, self.viewer, 2, current_step=True)
        height, width = source.spatial_shape
        if height * width <= 4 * side * side:
            return None
        return crop_around(source, side, self._view_centre(layer))

    def _view_centre(self, layer: Image) -> tuple[float, float] | None:
        """The centre of the view in ``layer``'s data coordinates (Y, X), or None when it has none."""
        try:
            point = list(self.viewer.dims.point)
            displayed = list(self.viewer.dims.displayed)
            scene = getattr(self.viewer, "scene", None)  # napari >= 0.9; viewer.camera before
            camera = scene.camera if scene is not None else self.viewer.camera
            centre = list(camera.center)[-len(displayed):]
            for axis, value in zip(displayed, centre, strict=True):
                point[axis] = value
            y, x = layer.world_to_data(point)[-2:]
            return float(y), float(x)
        except Exception:  # an unusual transform or axis order: the middle of the image
            return None

    def _job(self, source: LayerInput, raw: np.ndarray, preview: bool = False) -> Any:
        """The job of the chosen method on ``source`` (a ``preview`` job adds no residue or unit stacks)."""
        from .. import deconv, kernels

        method = self.method.currentText()
        kernel = kernels.validate_kernel(raw, image_shape=source.spatial_shape)
        options: dict[str, Any] = {"channel_axis": source.channel_axis, "device": self.device.currentText()}
        info: dict[str, Any] = {"method": method, "kernel": self.kernel.spec(), "device": options["device"]}
        if method != "CRCNet":
            options["boundary"] = self.boundary.currentText()
            info["boundary"] = options["boundary"]
        if source.step:
            info["step"] = source.step
        sigma = self.sigma.value() or None
        if method == "MMSE":
            return _mmse_job(source, kernel, sigma, options, info)
        all_steps = self._has_steps() and not source.step
        if method == "IRD":
            ns = deconv.parse_indices(self.residue_ns.text()) if self.residues.isChecked() and not preview else []
            _check_stack_size(
                2 * len(ns) * source.data.size * 4, f"{len(ns)} residues and partial sums",
                'choose fewer n in "residues n" or untick "add residue layers"'
                + (', or choose "current step only"' if all_steps else ""),
            )
            return _ird_job(source, kernel, sigma, self.iterations.value(), ns, options, info)
        if method == "Richardson-Lucy":
            tol = self.tol.value() if self.stop_early.isChecked() else None
            return _richardson_lucy_job(source, kernel, self.rl_iterations.value(), self.tv.value(), tol,
                                        options, info)
        if method == "hyper-Laplacian":
            lam = self.lam.value() or None
            alpha_text, alpha = self.alpha.currentText(), float(self.alpha.currentData())
            return _hyper_laplacian_job(source, kernel, lam, alpha, alpha_text, options, info)
        model = self.model.currentData() or self.model_path.text().strip()
        if not model:
            raise ValueError("choose a CRCNet model (or a .safetensors file); train one with the Train widget")
        options["force"] = self.force.isChecked()
        options["noise"] = self.noise.value() / 100 or None
        units = self.units.isChecked() and not preview
        if units:  # the core holds every unit output (63 planes per colour channel, paper net)
            _check_stack_size(
                _unit_planes(model) * source.data.size * 4, "the CRCNet unit outputs",
                'untick "add unit outputs" (the result alone needs far less)'
                + (', or choose "current step only"' if all_steps else ", or deblur a smaller crop of the image"),
            )
        return _crcnet_job(source, kernel, model, units, options, info)

    def _show_preview(self, layer: Image, value: Any) -> None:
        """Show a :class:`Preview` in a temporary layer on top; the result replaces it when it comes."""
        if not isinstance(value, Preview):
            return
        outcome = value.outcome
        self._preview_layer = show_result(
            self.viewer, self._preview_layer, outcome.data, outcome.source,
            name=f"{outcome.label} (preview) · {layer.name}", info={**outcome.info, "role": "preview"},
        )
        self.preview_shown.emit(self._preview_layer)

    def _hide_preview(self) -> None:
        if self._preview_layer is not None and self._preview_layer in self.viewer.layers:
            self._preview_layer.visible = False

    def _drop_preview(self) -> None:
        preview, self._preview_layer = self._preview_layer, None
        if preview is not None and preview in self.viewer.layers:
            self.viewer.layers.remove(preview)

    def _show(self, layer: Image, outcome: Outcome) -> None:
        source = outcome.source
        role, current_step = outcome.info["method"], bool(source.step)
        preview = self._preview_layer
        if preview in self.viewer.layers and self.result_layer(layer, role, current_step) is None:
            # the preview layer becomes the result layer (removing a layer costs napari a garbage collection)
            self._results[(id(layer), role, current_step)] = (layer, preview)
            self._preview_layer = None
        self._put(layer, outcome.info["method"], outcome.data, source, outcome.label, outcome.info)
        for role, data, stack_label, extra in outcome.stacks:
            slider = extra.get(SLIDER_KEY, {})
            limits = display_limits(layer)
            if slider.get("limits"):  # the entry the slider shows now; the readout follows the slider
                limits = tuple(slider["limits"][0])
            # a stack with one axis more than the result keeps its colours; fewer (unit means) is gray
            rgb = None if data.ndim == outcome.data.ndim + 1 else False
            self._put(
                layer, role, data, source, role, {**outcome.info, **extra},
                stack_label=stack_label, visible=False, contrast_limits=limits, rgb=rgb,
            )
        self._drop_preview()
        self._readout.update()

    def _put(self, layer: Image, role: str, data: np.ndarray, source: LayerInput, label: str,
             info: dict[str, Any], **options: Any) -> Image:
        key = (id(layer), role, bool(source.step))  # "all" and "current step" each have their layer
        previous = None
        if key in self._results and self._results[key][0] is layer:
            previous = self._results[key][1]
        suffix = f" [{source.step}]" if source.step else ""
        result = show_result(
            self.viewer, previous, data, source, name=f"{label} · {layer.name}{suffix}",
            info={**info, "role": role}, **options,
        )
        self._results[key] = (layer, result)
        return result

    # ------------------------------------------------------------------------------- specialise
    def specialise(self) -> Any:
        """Fine-tune the default model to the kernel, the image's channels and noise for the minutes given
        (:func:`napari_crcnet.specialise`) in the background; returns the worker (None when the inputs are
        bad). The model is saved in the user models folder and chosen automatically for this kernel."""
        if self.runner.running:
            return None
        try:
            job = self._specialise_job()
        except Exception as error:  # no image, a 3D kernel...: a notification, nothing starts
            self.notes.failed(error)
            return None
        return self.runner.start(job, self._specialised, title=f"{TITLE}: Specialise")

    def _specialise_job(self) -> Any:
        from .. import kernels

        layer = self.image.value
        if layer is None:
            raise ValueError("choose the image layer whose kernel to specialise to")
        raw = self.kernel.raw_kernel()
        if raw.ndim != 2:
            raise ValueError("Specialise needs a 2D kernel (CRCNet works per slice): choose a 2D kernel")
        kernel = kernels.validate_kernel(raw, ndim=2)
        channels = 3 if layer.rgb else 1
        model = str(self.model.currentData() or self.model_path.text().strip())
        fluorescence = channels == 1 and FLUORESCENCE_MODEL in Path(model).stem  # synthetic cells, else photos
        noise = self.noise.value() / 100 or None
        source = None if noise is not None else layer_input(layer, self.viewer, 2, current_step=True)
        options = {"channels": channels, "minutes": self.minutes.value(), "fluorescence": fluorescence,
                   "device": self.device.currentText()}
        return _specialise_job(kernel, noise, source, options)

    def _specialised(self, ended: tuple[Any, bool]) -> None:
        """A Specialise run ended (its time was up, or Cancel; the model is saved): list it and choose it."""
        result, cancelled = ended
        model_events.changed.emit()  # every Deblur widget re-reads its model list
        index = self.model.findData(str(result.model_path))
        if index >= 0:  # chosen automatically, as it will be for this kernel from now on
            self._model_picked = False
            self.model.setCurrentIndex(index)
        self._show_rows()
        gain = result.metrics.get("validation", {}).get("gain_psnr")
        self.notes.info(
            f"specialised model {'stopped by Cancel' if cancelled else 'trained'} after {result.steps} steps"
            + (f" (validation gain over MMSE {gain:+.2f} dB)" if gain is not None else "")
            + f"; saved to {result.model_path}, used automatically for this kernel"
        )

    def result_layer(self, layer: Image, role: str, current_step: bool = False) -> Image | None:
        """The layer holding ``role`` (a method name, "IRD residues", ...) for the input ``layer``, from a
        run on all slices or (``current_step``) on the current step only."""
        entry = self._results.get((id(layer), role, current_step))
        if entry is None or entry[0] is not layer or entry[1] not in self.viewer.layers:
            return None
        return entry[1]


def _check_stack_size(nbytes: int, what: str, remedy: str) -> None:
    if nbytes > MAX_STACK_BYTES:
        raise ValueError(f"{what} would take {nbytes / 1024**3:.1f} GB of memory: {remedy}")


# ------------------------------------------------------------------------------- jobs (worker thread)
def _with_preview(preview: Any, job: Any):
    """``preview``'s outcome yielded as a :class:`Preview` (its steps do not move the bar), then ``job``."""

    def both(progress: ProgressCallback):
        yield Preview(_quietly(preview, progress))
        return (yield from job(progress))

    return both


def _quietly(job: Any, progress: ProgressCallback) -> Any:
    """Run the generator job to its result: Cancel still stops it, its progress and warnings are not shown
    (the whole image reports its own)."""
    is_cancelled = getattr(progress, "is_cancelled", lambda: False)

    def quiet(done: int, total: int) -> None:
        if is_cancelled():
            raise Cancelled("stopped by the user")

    quiet.is_cancelled = is_cancelled  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        steps = job(quiet)
        try:
            while True:
                next(steps)
                quiet(0, 1)
        except StopIteration as stop:
            return stop.value


def _specialise_job(kernel: np.ndarray, noise: float | None, source: LayerInput | None, options: dict):
    def job(progress: ProgressCallback):
        from ..specialisation import specialise

        yield (0, max(1, round(60 * options["minutes"])))
        value = noise if noise is not None else _noise(source, progress)
        stop = getattr(progress, "stop_event", None)
        result = specialise(kernel, noise=value, progress=progress, stop_event=stop, **options)
        return result, bool(stop is not None and stop.is_set())

    return job


def _noise(source: LayerInput, progress: ProgressCallback) -> float:
    """The noise estimate of the input (seconds on a large image: Cancel does not wait for it)."""
    from .. import deconv

    return interruptible(progress, deconv.estimate_noise, source.data, channel_axis=source.channel_axis)


def _sigma_or_auto(source: LayerInput, sigma: float | None, progress: ProgressCallback) -> float:
    from .. import deconv

    if sigma is not None:
        return sigma
    return deconv.suggest_sigma(_noise(source, progress))


def _mmse_job(source: LayerInput, kernel: np.ndarray, sigma: float | None, options: dict, info: dict):
    def job(progress: ProgressCallback):
        from .. import deconv

        value = _sigma_or_auto(source, sigma, progress)
        yield (0, 1)
        out = call_with_progress(deconv.mmse, source.data, kernel, value, progress=progress, **options)
        return Outcome(out, f"MMSE σ={value:.3g}", {**info, "sigma": value}, source)

    return job


def _ird_job(source: LayerInput, kernel: np.ndarray, sigma: float | None, n_iter: int, ns: list[int],
             options: dict, info: dict):
    def job(progress: ProgressCallback):
        from .. import deconv

        value = _sigma_or_auto(source, sigma, progress)
        yield (0, len(ns) + 1)
        out = call_with_progress(deconv.ird, source.data, kernel, value, n_iter, progress=progress, **options)
        outcome = Outcome(out, f"IRD σ={value:.3g} N={n_iter}",
                          {**info, "sigma": value, "n_iter": n_iter}, source)
        yield (1, len(ns) + 1)
        if ns:
            residues = np.empty((len(ns), *out.shape), np.float32)
            sums = np.empty_like(residues)
            steps = deconv.iter_ird_residues(source.data, kernel, value, ns, progress=progress, **options)
            for i, (_, residue, partial) in enumerate(interruptible_steps(progress, steps)):
                residues[i], sums[i] = residue, partial
                yield (i + 2, len(ns) + 1)
            outcome.stacks = [
                ("IRD residues", residues, "n",
                 {"n": ns, SLIDER_KEY: {"label": "n", "values": ns, "limits": slice_limits(residues)}}),
                ("IRD partial sums", sums, "n", {"n": ns, SLIDER_KEY: {"label": "n", "values": ns}}),
            ]
        return outcome

    return job


def _richardson_lucy_job(source: LayerInput, kernel: np.ndarray, n_iter: int, tv: float, tol: float | None,
                         options: dict, info: dict):
    def job(progress: ProgressCallback):
        from ..richardsonlucy import richardson_lucy

        done = [0]  # iterations run on the image (the most over its chunks): fewer than N once it stops early

        def counting(step: int, total: int) -> None:
            done[0] = max(done[0], (step - 1) % n_iter + 1)
            progress(step, total)

        if hasattr(progress, "is_cancelled"):  # Cancel stops the wait for the core at once (interruptible)
            counting.is_cancelled = progress.is_cancelled  # type: ignore[attr-defined]
        yield (0, 1)
        out = call_with_progress(richardson_lucy, source.data, kernel, n_iter, tv=tv, tol=tol, progress=counting,
                                 **options)
        label = f"Richardson-Lucy N={n_iter}" + (f" TV={tv:.3g}" if tv else "") + (f" tol={tol:.3g}" if tol else "")
        return Outcome(out, label, {**info, "n_iter": n_iter, "tv": tv, "tol": tol, "iterations_run": done[0]},
                       source)

    return job


def _hyper_laplacian_job(source: LayerInput, kernel: np.ndarray, lam: float | None, alpha: float,
                         alpha_text: str, options: dict, info: dict):
    def job(progress: ProgressCallback):
        from .. import hyperlaplacian

        value = lam
        if value is None:
            value = hyperlaplacian.suggest_lambda(_noise(source, progress))
        yield (0, 1)
        out = call_with_progress(
            hyperlaplacian.hyper_laplacian, source.data, kernel, value, alpha, progress=progress, **options
        )
        return Outcome(out, f"hyper-Laplacian λ={value:.3g} α={alpha_text}",
                       {**info, "lam": value, "alpha": alpha}, source)

    return job


def _unit_planes(model: str) -> int:
    """Unit-output planes per colour channel of ``model`` (63 for the paper network; more when widened)."""
    from ..models.store import read_config

    try:
        config = read_config(model)
    except Exception:  # an unreadable model fails with a clear message when it is loaded
        return 63
    return -(-sum(config.unit_channels()) // config.in_channels)


def _crcnet_job(source: LayerInput, kernel: np.ndarray, model: str, units: bool, options: dict, info: dict):
    def job(progress: ProgressCallback):
        from pathlib import Path

        from .. import inference

        yield (0, 1)
        result = call_with_progress(
            inference.crcnet, source.data, model, kernel, return_residues=units, progress=progress, **options
        )
        name = Path(model).stem if str(model).endswith(".safetensors") else str(model)
        outcome = Outcome(result[0] if units else result, f"CRCNet {name}",
                          {**info, "model": str(model)}, source)
        if units:
            plain_ndim = source.data.ndim - (source.channel_axis is not None)
            rgb = source.channel_axis is not None
            stack = np.stack([unit_display(u, plain_ndim, rgb) for u in result[1]]).astype(np.float32)
            numbers = list(range(1, len(stack) + 1))
            extra = {"units": numbers, "unit_display": "mean over channels",
                     SLIDER_KEY: {"label": "unit", "values": numbers, "limits": slice_limits(stack)}}
            outcome.stacks = [("CRCNet units", stack, "unit", extra)]
        return outcome

    return job


# ------------------------------------------------------------------------------- small Qt helpers
def _auto_spin(decimals: int, maximum: float, step: float, tooltip: str, suffix: str = "") -> QDoubleSpinBox:
    """A spin box from 0 to ``maximum`` whose 0 reads "auto" (the core then chooses the value)."""
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(0.0, maximum)
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    spin.setSpecialValueText("auto")
    spin.setToolTip(tooltip)
    return spin


def _clone_button(button: QPushButton, slot: Any) -> QPushButton:
    clone = QPushButton(button.text())
    clone.setToolTip(button.toolTip())
    clone.clicked.connect(slot)
    return clone
