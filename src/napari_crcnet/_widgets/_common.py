"""Pieces shared by the napari widgets: layer pickers, the kernel picker, the worker runner, result layers.

Everything here is glue between napari layers and NumPy arrays. The maths lives in the core modules
(:mod:`napari_crcnet.kernels`, :mod:`napari_crcnet.deconv`, ...); a widget reads arrays out of layers,
calls one core function in a :func:`napari.qt.threading.create_worker` thread and turns what comes back
into layers.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import notifications
from psygnal import Signal as PsygnalSignal
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .._arrays import integer_scale
from .._progress import Cancelled, ProgressCallback, cancellable

#: Key under which the plugin records what produced a layer, inside the layer's (copied) metadata.
METADATA_KEY = "napari_crcnet"


# ------------------------------------------------------------------------------------ notifications
def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification (no traceback dialog)."""
    notifications.show_error(message)


def notify_info(message: str) -> None:
    """Show ``message`` as a napari info notification."""
    notifications.show_info(message)


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification."""
    notifications.show_warning(message)


def describe_error(error: BaseException) -> str:
    """The text a user sees for ``error``: the message of expected errors, the type name for the rest."""
    if isinstance(error, (ValueError, FileNotFoundError, OSError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


class _ModelEvents:
    """Tells every open deblur widget that the set of trained models changed (a model was saved)."""

    changed = PsygnalSignal()


model_events = _ModelEvents()


def refill_model_combo(
    combo: QComboBox,
    listener: Callable[..., Any],
    label: Callable[[dict], str],
    tooltip: Callable[[dict], str] | None = None,
    first: tuple[str, Any] | None = None,
    last: tuple[str, Any] | None = None,
    preferred: str | None = None,
) -> bool:
    """Fill ``combo`` with every model of :func:`~napari_crcnet.models.store.list_models` (item data: its
    path, text: ``label(card)``), between the optional ``first`` and ``last`` ``(text, data)`` items, and
    keep the selection. A combo filled for the first time selects the model named ``preferred`` when there
    is one, else its first item. Returns False, and disconnects ``listener`` from ``model_events``, when
    the combo's widget was closed."""
    from ..models import store

    try:
        filled, current, current_text = combo.count() > 0, combo.currentData(), combo.currentText()
    except RuntimeError:  # the widget was closed; stop listening
        model_events.changed.disconnect(listener)
        return False
    combo.blockSignals(True)
    combo.clear()
    if first is not None:
        combo.addItem(*first)
    preferred_index = -1
    for card in store.list_models():
        if card["name"] == preferred and preferred_index < 0:  # the user folder's copy comes first
            preferred_index = combo.count()
        combo.addItem(label(card), card["path"])
        if tooltip is not None:
            combo.setItemData(combo.count() - 1, tooltip(card), Qt.ItemDataRole.ToolTipRole)
    if last is not None:
        combo.addItem(*last)
    if not filled:
        index = preferred_index
    elif current is not None:
        index = combo.findData(current)
    else:  # an item without data, such as "scratch" or "file..."
        index = combo.findText(current_text)
    combo.setCurrentIndex(max(index, 0))
    combo.blockSignals(False)
    return True


# ------------------------------------------------------------------------------------ layer pickers
class LayerCombo(QComboBox):
    """A combo box of the viewer's image layers that follows additions, removals and renames.

    ``prefer(layer) -> bool`` marks the layers picked by default when nothing is selected yet (e.g. a
    layer called "... kernel" for the kernel picker).
    """

    def __init__(
        self,
        viewer: Any,
        prefer: Callable[[Image], bool] | None = None,
        exclude: Callable[[Image], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._prefer = prefer
        self._exclude = exclude
        self._layers: list[Image] = []
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.moved.connect(self.refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def _on_inserted(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def candidates(self) -> list[Image]:
        """Image layers offered, top of the layer list first."""
        layers = [layer for layer in self._viewer.layers if isinstance(layer, Image)]
        if self._exclude is not None:
            layers = [layer for layer in layers if not self._exclude(layer)]
        return layers[::-1]

    def refresh(self, event: Any = None) -> None:
        """Rebuild the list, keeping the current layer when it is still there."""
        try:
            current = self.value
            layers = self.candidates()
            self.blockSignals(True)
            self.clear()
            self._layers = layers
            for layer in layers:
                self.addItem(layer.name)
            if current in layers:
                index = layers.index(current)
            else:
                index = self._default_index(layers)
            self.setCurrentIndex(index)
            self.blockSignals(False)
            if current is not self.value:
                self.currentIndexChanged.emit(self.currentIndex())
        except RuntimeError:  # the Qt side of the widget was deleted; stop following the viewer
            self._disconnect()

    def _default_index(self, layers: list[Image]) -> int:
        if not layers:
            return -1
        if self._prefer is not None:
            for i, layer in enumerate(layers):
                if self._prefer(layer):
                    return i
        active = self._viewer.layers.selection.active
        return layers.index(active) if active in layers else 0

    def _disconnect(self) -> None:
        for emitter in (
            self._viewer.layers.events.inserted,
            self._viewer.layers.events.removed,
            self._viewer.layers.events.moved,
        ):
            emitter.disconnect(self._on_inserted)
            emitter.disconnect(self.refresh)

    @property
    def value(self) -> Image | None:
        """The chosen layer, or None."""
        index = self.currentIndex()
        return self._layers[index] if 0 <= index < len(self._layers) else None

    @value.setter
    def value(self, layer: Image) -> None:
        self.refresh()
        self.setCurrentIndex(self._layers.index(layer))


def looks_like_kernel(layer: Image) -> bool:
    """A layer that holds a kernel: marked so by the sample data, or named "...kernel"/"...psf"."""
    if layer.metadata.get(METADATA_KEY, {}).get("kernel"):
        return True
    name = layer.name.lower()
    return "kernel" in name or "psf" in name


def is_plugin_output(layer: Image) -> bool:
    """Layers this plugin added (results, residue stacks)."""
    return "source" in layer.metadata.get(METADATA_KEY, {})


def fit_to_current_page(stack: QStackedWidget) -> None:
    """Make ``stack`` as tall as its current page (a QStackedWidget is as tall as its tallest page)."""

    policies = [stack.widget(i).sizePolicy() for i in range(stack.count())]
    ignored = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def fit(index: int) -> None:
        for i in range(stack.count()):
            stack.widget(i).setSizePolicy(policies[i] if i == index else ignored)
        stack.adjustSize()

    stack.currentChanged.connect(fit)
    fit(stack.currentIndex())


# ------------------------------------------------------------------------------------ kernel picker
@dataclass(frozen=True)
class _Param:
    name: str
    label: str
    default: float
    minimum: float
    maximum: float
    decimals: int = 2  # 0: an integer spin box
    suffix: str = ""


# Generated kernels: label -> (parameters, spec template for kernels.kernel_from_spec). The spec string is
# also the kernel's short description in layer names and model cards.
_GENERATORS: dict[str, tuple[tuple[_Param, ...], str]] = {
    "Random shake": (
        (_Param("size", "size", 21, 5, 101, 0, " px"), _Param("seed", "seed", 0, 0, 999_999, 0)),
        "shake:{size},seed={seed}",
    ),
    "Gaussian": ((_Param("sigma", "σ", 2.0, 0.2, 30.0, 2, " px"),), "gaussian:{sigma:g}"),
    "Disk (defocus)": ((_Param("radius", "radius", 3.0, 0.5, 40.0, 1, " px"),), "disk:{radius:g}"),
    "Linear motion": (
        (_Param("length", "length", 15.0, 1.0, 100.0, 1, " px"), _Param("angle", "angle", 30.0, -180, 180, 1, "°")),
        "motion:{length:g},{angle:g}",
    ),
    "Gaussian 3D (PSF)": (
        (_Param("sigma_xy", "σ xy", 1.5, 0.2, 20.0, 2, " px"), _Param("sigma_z", "σ z", 3.0, 0.2, 30.0, 2, " px")),
        "gaussian3d:{sigma_xy:g},{sigma_z:g}",
    ),
}

KERNEL_SOURCES = ("Generated", "Layer", "File")
PREVIEW_SIZE = 72  # px, side of the kernel thumbnail


def kernel_thumbnail(kernel: np.ndarray, size: int = PREVIEW_SIZE) -> QPixmap:
    """Gray pixmap of a kernel (max projection for 3D), peak = white, nearest-neighbour magnified."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim == 3:
        k = k.max(axis=0)
    peak = k.max()
    gray = np.zeros(k.shape, np.uint8) if peak <= 0 else np.clip(255 * k / peak, 0, 255).astype(np.uint8)
    gray = np.ascontiguousarray(gray)
    height, width = gray.shape
    image = QImage(gray.data, width, height, width, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(image).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class KernelPicker(QWidget):
    """Choose the blur kernel: generated (shake, Gaussian, disk, motion, 3D Gaussian), a layer or a file.

    Shared by the deblur and training widgets. :meth:`kernel` returns the validated kernel (float64,
    sum 1, via :func:`napari_crcnet.kernels.validate_kernel`) or raises ``ValueError`` with a message for
    the user; a thumbnail shows the current kernel, or the reason it is not usable.
    """

    changed = Signal()

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._spins: dict[str, dict[str, QDoubleSpinBox | QSpinBox]] = {}

        self.source = QComboBox()
        self.source.addItems(KERNEL_SOURCES)
        self.pages = QStackedWidget()

        # generated
        generated = QWidget()
        form = QFormLayout(generated)
        form.setContentsMargins(0, 0, 0, 0)
        self.generator = QComboBox()
        self.generator.addItems(list(_GENERATORS))
        form.addRow("type", self.generator)
        self.generator_pages = QStackedWidget()
        for label, (params, _) in _GENERATORS.items():
            page = QWidget()
            page_form = QFormLayout(page)
            page_form.setContentsMargins(0, 0, 0, 0)
            spins: dict[str, QDoubleSpinBox | QSpinBox] = {}
            for p in params:
                spin: QDoubleSpinBox | QSpinBox
                if p.decimals == 0:
                    spin = QSpinBox()
                    spin.setRange(int(p.minimum), int(p.maximum))
                    spin.setValue(int(p.default))
                else:
                    spin = QDoubleSpinBox()
                    spin.setDecimals(p.decimals)
                    spin.setRange(p.minimum, p.maximum)
                    spin.setValue(p.default)
                spin.setSuffix(p.suffix)
                spin.valueChanged.connect(self._update)
                page_form.addRow(p.label, spin)
                spins[p.name] = spin
            self._spins[label] = spins
            self.generator_pages.addWidget(page)
        form.addRow(self.generator_pages)
        fit_to_current_page(self.generator_pages)
        self.generator.currentIndexChanged.connect(self.generator_pages.setCurrentIndex)
        self.generator.currentIndexChanged.connect(self._update)
        self.pages.addWidget(generated)

        # layer
        self.layer = LayerCombo(viewer, prefer=looks_like_kernel, exclude=is_plugin_output)
        self.layer.currentIndexChanged.connect(self._update)
        self.pages.addWidget(self.layer)

        # file
        file_page = QWidget()
        row = QHBoxLayout(file_page)
        row.setContentsMargins(0, 0, 0, 0)
        self.path = QLineEdit()
        self.path.setPlaceholderText("PNG, TIFF, NPY, NPZ or MAT")
        self.path.editingFinished.connect(self._update)
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        row.addWidget(self.path)
        row.addWidget(browse)
        self.pages.addWidget(file_page)

        fit_to_current_page(self.pages)
        self.source.currentIndexChanged.connect(self.pages.setCurrentIndex)
        self.source.currentIndexChanged.connect(self._update)
        self.source.setToolTip("where the kernel (PSF) comes from; it must be the blur of the image")

        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: black;")
        self.caption = QLabel()
        self.caption.setWordWrap(True)

        top = QFormLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addRow("kernel", self.source)
        left = QVBoxLayout()
        left.addLayout(top)
        left.addWidget(self.pages)
        left.addStretch()
        right = QVBoxLayout()
        right.addWidget(self.preview)
        right.addWidget(self.caption)
        right.addStretch()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(left, stretch=1)
        layout.addLayout(right)

        # a kernel layer in the viewer (e.g. from the sample data) is the most likely intent
        if self.layer.value is not None and looks_like_kernel(self.layer.value):
            self.source.setCurrentText("Layer")
        self._update()

    # -- public
    def spec(self) -> str:
        """Short description: a ``kernel_from_spec`` string, a layer name or a file name."""
        source = self.source.currentText()
        if source == "Layer":
            layer = self.layer.value
            return f"layer:{layer.name}" if layer is not None else "layer:?"
        if source == "File":
            return self.path.text().strip()
        label = self.generator.currentText()
        values = {name: spin.value() for name, spin in self._spins[label].items()}
        return _GENERATORS[label][1].format(**values)

    def raw_kernel(self) -> np.ndarray:
        """The kernel as given (not normalised); ValueError with a user message when there is none."""
        from .. import kernels

        source = self.source.currentText()
        if source == "Layer":
            layer = self.layer.value
            if layer is None:
                raise ValueError("no kernel layer: open a kernel image or choose a generated kernel")
            if layer.rgb or layer.multiscale:
                raise ValueError(f"layer {layer.name!r} cannot be a kernel: it must be a gray 2D or 3D image")
            return np.asarray(layer.data, dtype=np.float64)
        if source == "File":
            path = self.path.text().strip()
            if not path:
                raise ValueError("no kernel file chosen")
            return np.asarray(kernels.load_kernel(path), dtype=np.float64)
        return np.asarray(kernels.kernel_from_spec(self.spec()), dtype=np.float64)

    def kernel(self) -> np.ndarray:
        """Validated kernel (float64, odd-sized, sum 1; :func:`napari_crcnet.kernels.validate_kernel`).

        Raises ``ValueError`` (NaN, negative, empty, zero sum...). The size check against an image is
        the caller's: ``validate_kernel(picker.raw_kernel(), image_shape=...)``.
        """
        from .. import kernels

        return kernels.validate_kernel(self.raw_kernel())

    def set_generated(self, label: str, **values: float) -> None:
        """Select a generated kernel and its parameters (used by tests and scripts)."""
        self.source.setCurrentText("Generated")
        self.generator.setCurrentText(label)
        for name, value in values.items():
            self._spins[label][name].setValue(value)

    # -- private
    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Kernel file", "", "Kernels (*.png *.tif *.tiff *.npy *.npz *.mat);;All files (*)"
        )
        if path:
            self.path.setText(path)
            self._update()

    def _update(self, *args: Any) -> None:
        try:
            k = self.kernel()
        except Exception as error:  # shown in the caption: the user fixes it before running
            self.preview.clear()
            self.caption.setText(f"<span style='color:#e66'>{describe_error(error)}</span>")
            self.preview.setToolTip("")
        else:
            self.preview.setPixmap(kernel_thumbnail(k))
            self.caption.setText("×".join(map(str, k.shape)))
            self.preview.setToolTip(self.spec())
        self.changed.emit()


# ------------------------------------------------------------------------------------ worker runner
class _Bridge(QObject):
    """Carries progress from the worker thread to the GUI thread (queued Qt signal)."""

    progress = Signal(int, int)


Job = Callable[[ProgressCallback], Generator[Any, None, Any]]


class TaskRunner(QWidget):
    """A progress bar and a Cancel button that run one generator job at a time in a worker thread.

    The job is ``job(progress) -> generator``: it yields between steps (``(done, total)`` tuples move the
    bar) and returns its result. ``progress`` is the callback to hand to core functions: it moves the bar
    from the worker thread and raises :class:`~napari_crcnet._progress.Cancelled` once Cancel is pressed,
    so the core stops at its next step. Only a job that returns normally reaches ``on_result``: after a
    cancel or an error nothing is added to the viewer, and errors become a notification.
    """

    started = Signal()
    finished = Signal()

    def __init__(self, cancel_text: str = "Cancel", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)  # no "0%" while idle
        self.cancel_button = QPushButton(cancel_text)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, stretch=1)
        layout.addWidget(self.cancel_button)
        self._bridge = _Bridge()  # no Qt parent: it outlives the widget while a worker may still emit
        self._bridge.progress.connect(self._on_progress)
        self._event = threading.Event()
        self.worker: Any = None
        self.outcome: str = ""  # "done", "cancelled" or "error" once a job ended (for tests and scripts)
        self.destroyed.connect(lambda *_: self._event.set())  # a closed widget stops its job

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self.worker is not None

    def start(self, job: Job, on_result: Callable[[Any], None], title: str = "") -> Any:
        """Run ``job`` in a thread; ``on_result(result)`` is called in the GUI thread when it returns."""
        if self.running:
            raise RuntimeError("a job is already running")
        self._event = threading.Event()
        self._title = title
        self.outcome = ""
        progress = cancellable(self._event, self._bridge.progress.emit)

        def returned(result: Any) -> None:
            try:
                on_result(result)
            except Exception as error:  # turning arrays into layers failed: tell the user, no dialog
                self.outcome = "error"
                notify_error(self._prefix() + describe_error(error))
            else:
                self.outcome = "done"

        self.bar.setRange(0, 0)  # busy until the first progress report
        self.bar.setTextVisible(True)
        self.cancel_button.setEnabled(True)
        self.worker = create_worker(
            _stop_at_yields,
            job,
            progress,
            self._event,
            _connect={
                "yielded": self._on_yielded,
                "returned": returned,
                "errored": self._on_error,
                "warned": self._on_warning,
                "aborted": self._on_aborted,
                "finished": self._on_finished,
            },
        )
        self.started.emit()
        return self.worker

    def cancel(self) -> None:
        """Ask the job to stop: at its next yield, or where the core next reports progress.

        (Not ``worker.quit()``: a quit worker drops its return value, and a stopped training run still
        returns the model it saved.)
        """
        self._event.set()
        self.cancel_button.setEnabled(False)

    def _prefix(self) -> str:
        return f"{self._title}: " if self._title else ""

    def _on_progress(self, done: int, total: int) -> None:
        if self.worker is None:
            return
        self.bar.setRange(0, max(int(total), 1))
        self.bar.setValue(min(int(done), max(int(total), 1)))

    def _on_yielded(self, value: Any) -> None:
        if isinstance(value, tuple) and len(value) == 2:
            self._on_progress(*value)

    def _on_error(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self._on_aborted()
            return
        self.outcome = "error"
        notify_error(self._prefix() + describe_error(error))

    def _on_warning(self, show_warning_args: tuple) -> None:
        # The core's warnings (a model outside its trained noise range, a kernel wider than it saw...)
        # are caught in the worker thread; napari's worker does not relay them, so the runner does.
        notify_warning(self._prefix() + str(show_warning_args[0]))

    def _on_aborted(self) -> None:
        self.outcome = "cancelled"
        notify_info(self._prefix() + "cancelled, nothing was added")

    def _on_finished(self) -> None:
        self.worker = None
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.cancel_button.setEnabled(False)
        self.finished.emit()


def _stop_at_yields(job: Job, progress: ProgressCallback, event: threading.Event) -> Generator[Any, None, Any]:
    """Run the generator ``job(progress)``, raising ``Cancelled`` at any of its yields once ``event`` is set."""
    steps = job(progress)
    try:
        value = next(steps)
        while True:
            if event.is_set():
                steps.close()
                raise Cancelled("stopped by the user")
            yield value
            value = next(steps)
    except StopIteration as stop:
        return stop.value


def call_with_progress(function: Callable[..., Any], *args: Any, progress: ProgressCallback, **kwargs: Any) -> Any:
    """Call a core function, handing it ``progress`` only when its signature takes one."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    if "progress" in parameters:
        kwargs["progress"] = progress
    else:
        progress(0, 1)  # at least a cancellation point before the call
    return function(*args, **kwargs)


# ------------------------------------------------------------------------------------ layers <-> arrays
@dataclass
class LayerInput:
    """The array a widget works on, cut out of an image layer, and where it sits in the world.

    ``data`` has the layer's axes (length-1 leading axes when only the current step is taken);
    ``channel_axis`` is -1 for RGB layers; ``spatial_shape`` the trailing ``kernel_ndim`` axes;
    ``scale``/``translate`` place ``data`` exactly where the original pixels were; ``step`` names the
    taken step (e.g. ``"t=3"``) or is empty.
    """

    layer: Image
    data: np.ndarray
    channel_axis: int | None
    spatial_shape: tuple[int, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    step: str = ""


def layer_input(layer: Image, viewer: Any, kernel_ndim: int = 2, current_step: bool = False) -> LayerInput:
    """Cut the array to process out of ``layer``: the layer's own array or a slice of it (no copy; the
    core functions copy before they compute and never write to their input). A lazy layer (dask, zarr)
    is read only where cut: "current step" reads one step; a dask cut stays lazy, so the worker thread
    reads it and the viewer stays responsive.

    Leading axes (time, or z when the kernel is 2D) are kept whole, or, with ``current_step``, cut to
    the viewer's current position with length 1, so the result lands on the same slice.
    Raises ``ValueError`` when the layer cannot be deblurred with a ``kernel_ndim``-D kernel.
    """
    if layer.multiscale:
        raise ValueError(f"layer {layer.name!r} is multiscale; deblur one resolution level saved as an image")
    channel_axis = -1 if layer.rgb else None
    data = layer.data  # maybe lazy (dask, zarr): cut first, read after, so one step reads one step
    plain_shape = data.shape[:-1] if layer.rgb else data.shape
    if len(plain_shape) < kernel_ndim:
        kind = "volume (Z, Y, X)" if kernel_ndim == 3 else "image (Y, X)"
        raise ValueError(
            f"a {kernel_ndim}D kernel needs a {kind}; layer {layer.name!r} has shape {data.shape}"
            + (" (RGB)" if layer.rgb else "")
        )
    n_leading = len(plain_shape) - kernel_ndim
    scale = tuple(float(s) for s in layer.scale)
    translate = [float(t) for t in layer.translate]
    step = ""
    if current_step and n_leading:
        position = layer.world_to_data(viewer.dims.point)
        index = []
        labels = _axis_labels(layer)
        for axis in range(n_leading):
            i = int(np.clip(np.round(position[axis]), 0, data.shape[axis] - 1))
            index.append(slice(i, i + 1))
            translate[axis] += i * scale[axis]
        data = data[tuple(index)]
        step = ", ".join(f"{_step_name(labels[a], a)}={index[a].start}" for a in range(n_leading))
    return LayerInput(
        layer=layer,
        data=data if _is_dask(data) else np.asarray(data),  # dask: read in the worker, not the GUI thread
        channel_axis=channel_axis,
        spatial_shape=tuple(plain_shape[n_leading:]),
        scale=scale,
        translate=tuple(translate),
        step=step,
    )


def _is_dask(data: Any) -> bool:
    """True for a dask array (NumPy functions read it; reading is left to the worker thread)."""
    from dask import is_dask_collection

    return is_dask_collection(data)


def _axis_labels(layer: Image) -> list[str]:
    """The layer's axis labels (napari's defaults are "-3", "-2", "-1")."""
    labels = [str(label) for label in (getattr(layer, "axis_labels", ()) or ())]
    return labels if len(labels) == layer.ndim else [str(i - layer.ndim) for i in range(layer.ndim)]


def _step_name(label: str, axis: int) -> str:
    """How an axis is named in a layer name: its label, or "axis 0" for napari's default "-3"."""
    return f"axis {axis}" if label.lstrip("-").isdigit() else label


def display_limits(layer: Image) -> tuple[float, float]:
    """The input's contrast limits in the [0, 1] units of the float output (integers were rescaled)."""
    low, high = (float(v) for v in layer.contrast_limits)
    scale = integer_scale((layer.data[0] if layer.multiscale else layer.data).dtype)  # no dask compute
    if scale is not None and scale != 1.0:
        low, high = low / scale, high / scale
    return low, high


def robust_limits(data: np.ndarray, percentile: float = 0.5) -> tuple[float, float]:
    """Contrast limits that ignore the extreme ``percentile`` % on each side (for residue stacks)."""
    sample = np.asarray(data, dtype=np.float32).ravel()
    if sample.size > 2_000_000:  # percentiles of a regular subsample are plenty for display
        sample = sample[:: sample.size // 1_000_000]
    low, high = np.percentile(sample, [percentile, 100 - percentile])
    if not high > low:
        high = low + 1e-6
    return float(low), float(high)


def show_result(
    viewer: Any,
    previous: Image | None,
    data: np.ndarray,
    source: LayerInput,
    *,
    name: str,
    info: dict[str, Any],
    stack_label: str | None = None,
    visible: bool = True,
    contrast_limits: tuple[float, float] | None = None,
    rgb: bool | None = None,
) -> Image:
    """Add ``data`` as a layer placed like ``source`` (or update ``previous``, the layer of the last run).

    Copies scale, translate, metadata (plus ``metadata["napari_crcnet"] = info``), axis labels, units,
    colormap, gamma, blending and contrast limits of the input layer. ``stack_label`` means ``data``
    has one extra leading axis (residue index n, unit index) placed at 0 with unit spacing. ``rgb``
    (default: the input's) is False for a gray stack made from an RGB input. The input is never touched.
    """
    like = source.layer
    scale, translate = list(source.scale), list(source.translate)
    labels = _axis_labels(like)
    units = list(like.units) if getattr(like, "units", None) is not None else None
    if stack_label is not None:
        scale, translate, labels = [1.0, *scale], [0.0, *translate], [stack_label, *labels]
        units = None if units is None else [units[0], *units]
    metadata = {**like.metadata, METADATA_KEY: {"source": like.name, **info}}
    limits = contrast_limits if contrast_limits is not None else display_limits(like)
    rgb = bool(like.rgb) if rgb is None else rgb
    attributes: dict[str, Any] = {
        "name": name,
        "scale": scale,
        "translate": translate,
        "metadata": metadata,
        "gamma": like.gamma,
        "blending": like.blending,
        "axis_labels": labels,
    }
    if units is not None:
        attributes["units"] = units
    if not rgb:
        attributes["colormap"] = "gray" if like.rgb else like.colormap

    if previous is not None and previous in viewer.layers:
        if previous.rgb == rgb and np.ndim(previous.data) == data.ndim:
            previous.data = data
            for key, value in attributes.items():
                setattr(previous, key, value)
            previous.contrast_limits_range = (min(limits[0], float(data.min())), max(limits[1], float(data.max())))
            previous.contrast_limits = limits
            return previous  # keeps the visibility the user chose
        index = viewer.layers.index(previous)
        viewer.layers.remove(previous)
        layer = Image(data, rgb=rgb, contrast_limits=limits, visible=visible, **attributes)
        viewer.layers.insert(index, layer)
        return layer
    return viewer.add_image(data, rgb=rgb, contrast_limits=limits, visible=visible, **attributes)


def parse_int_list(text: str) -> list[int]:
    """``"0, 1, 2, 5-8, 50"`` -> ``[0, 1, 2, 5, 6, 7, 8, 50]`` (sorted, unique, non-negative)."""
    values: set[int] = set()
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                first, last = part.split("-", 1)
                values.update(range(int(first), int(last) + 1))
            else:
                values.add(int(part))
        except ValueError:
            raise ValueError(f"not a list of integers: {text!r} (write e.g. '0, 1, 2, 5, 10, 50' or '0-20')") from None
    if any(v < 0 for v in values):
        raise ValueError(f"residue indices must be >= 0, got {text!r}")
    if not values:
        raise ValueError("give at least one residue index n (e.g. '0, 1, 2, 5, 10, 50')")
    return sorted(values)

