"""The kernel picker shared by the Deblur and Train widgets: generated, from a layer or from a file,
with a thumbnail of the kernel (or the reason it is not usable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ._layer_pickers import LayerCombo, is_plugin_output, kernel_matches, looks_like_kernel, owner_images
from ._layout import compact_combo, fit_to_current_page
from ._notify import describe_error


@dataclass(frozen=True)
class _Param:
    name: str
    label: str
    tooltip: str
    default: float
    minimum: float
    maximum: float
    decimals: int = 2  # 0: an integer spin box
    suffix: str = ""


# Generated kernels: label -> (parameters, spec template for kernels.kernel_from_spec). The spec string is
# also the kernel's short description in layer names and model cards.
_GENERATORS: dict[str, tuple[tuple[_Param, ...], str]] = {
    "Random shake": (
        (
            _Param("size", "size", "side of the kernel (camera-shake path drawn inside it)", 21, 5, 101, 0, " px"),
            _Param("seed", "seed", "random seed: each seed draws another shake path", 0, 0, 999_999, 0),
        ),
        "shake:{size},seed={seed}",
    ),
    "Gaussian": ((_Param("sigma", "σ", "standard deviation of the Gaussian blur", 2.0, 0.2, 30.0, 2, " px"),),
                 "gaussian:{sigma:g}"),
    "Disk (defocus)": ((_Param("radius", "radius", "radius of the defocus disk", 3.0, 0.5, 40.0, 1, " px"),),
                       "disk:{radius:g}"),
    "Linear motion": (
        (
            _Param("length", "length", "length of the straight motion path", 15.0, 1.0, 100.0, 1, " px"),
            _Param("angle", "angle", "direction of the motion, counter-clockwise from the x axis",
                   30.0, -180, 180, 1, "°"),
        ),
        "motion:{length:g},{angle:g}",
    ),
    "Gaussian 3D (PSF)": (
        (
            _Param("sigma_xy", "σ xy", "lateral standard deviation of the 3D Gaussian PSF", 1.5, 0.2, 20.0, 2, " px"),
            _Param("sigma_z", "σ z", "axial standard deviation of the 3D Gaussian PSF", 3.0, 0.2, 30.0, 2, " px"),
        ),
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
        self.generator.setToolTip("the kind of blur to generate")
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
                spin.setToolTip(p.tooltip)
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
        self._image: Any = None  # the image the kernel is for (set by the Deblur widget)
        self.layer = LayerCombo(viewer, prefer=self._score, exclude=is_plugin_output)
        self.layer.setToolTip("the image layer that holds the kernel (PSF); the image's own kernel is picked "
                              "when the sample data recorded it")
        compact_combo(self.layer)
        self.layer.currentIndexChanged.connect(self._update)
        self.pages.addWidget(self.layer)

        # file
        file_page = QWidget()
        row = QHBoxLayout(file_page)
        row.setContentsMargins(0, 0, 0, 0)
        self.path = QLineEdit()
        self.path.setPlaceholderText("PNG, TIFF, NPY, NPZ or MAT")
        self.path.setToolTip("kernel file: PNG, TIFF, NPY, NPZ or MAT (odd-sized, centred; normalised to sum 1)")
        self.path.editingFinished.connect(self._update)
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        browse.setToolTip("choose a kernel file")
        row.addWidget(self.path)
        row.addWidget(browse)
        self.pages.addWidget(file_page)

        fit_to_current_page(self.pages)
        self.pages.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.source.currentIndexChanged.connect(self.pages.setCurrentIndex)
        self.source.currentIndexChanged.connect(self._update)
        self.source.setToolTip("where the kernel (PSF) comes from; it must be the blur of the image")

        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: black;")
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.preview.setToolTip("the kernel (maximum projection for a 3D PSF)")

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

        # as tall as its content (its stretches would otherwise make it take the space of the whole form)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        # a kernel layer in the viewer (e.g. from the sample data) is the most likely intent
        if self.layer.value is not None and looks_like_kernel(self.layer.value):
            self.source.setCurrentText("Layer")
        self._update()

    # -- public
    def follow_image(self, image: Any) -> None:
        """The kernel is for ``image``: pick the kernel layer it records (the samples link them); a kernel
        layer recorded for another image is not kept (another kernel layer, or none, is picked)."""
        self._image = image
        current = self.layer.value
        linked = [layer for layer in self.layer.candidates() if kernel_matches(image, layer) is True]
        if (linked and current not in linked) or (current is not None and self._score(current) < 0):
            self.layer.pick_default()
        self._update()

    def mismatch(self) -> str:
        """A warning when the kernel layer was recorded for another image than the chosen one, else ""."""
        if self.source.currentText() != "Layer":
            return ""
        image, kernel = self._image, self.layer.value
        if kernel_matches(image, kernel) is False:
            owners = [layer.name for layer in owner_images(kernel, self._viewer)]
            made_for = f" (it was made for {', '.join(map(repr, owners))})" if owners else ""
            return (f"the kernel layer {kernel.name!r} is not the blur recorded for {image.name!r}{made_for}: "
                    "the result will be wrong unless both images share that blur")
        return ""

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
    def _score(self, layer: Any) -> float:
        """How much ``layer`` suits as the kernel of the current image: 3 the image's recorded kernel,
        1 another kernel layer; never picked by default (-1): a kernel recorded for another image, or a
        layer that does not look like a kernel (the user picks those in the list)."""
        match = kernel_matches(self._image, layer)
        if match is True:
            return 3.0
        if match is False or (self._image is not None and owner_images(layer, self._viewer)):
            return -1.0
        return 1.0 if looks_like_kernel(layer) else -1.0

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
            self.preview.setToolTip("no usable kernel: see the message below")
        else:
            self.preview.setPixmap(kernel_thumbnail(k))
            warning = self.mismatch()
            size = "×".join(map(str, k.shape))
            self.caption.setText(f"{size}<br><span style='color:#e90'>not this image's kernel</span>"
                                 if warning else size)
            self.caption.setToolTip(warning)
            self.preview.setToolTip(self.spec())
        self.changed.emit()
