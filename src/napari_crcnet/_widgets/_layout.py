"""Small Qt layout helpers shared by the widgets: pages as tall as the shown one, a collapsed "Advanced"
section, a scroll area as tall as its content (so the docks fit a small screen), compact combo boxes."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

#: Characters a combo box asks room for; longer items are elided (the list that drops down shows them whole).
COMBO_CHARS = 10


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


def compact_combo(combo: QComboBox, chars: int = COMBO_CHARS) -> QComboBox:
    """Let ``combo`` be narrow whatever its items (the shown text is elided), with the full text as its
    tooltip and a drop-down list wide enough for the longest item."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    base = combo.toolTip()

    def follow(*_: Any) -> None:
        text = combo.currentText()
        combo.setToolTip(f"{base}\n\nnow: {text}" if base and text else base or text)
        view = combo.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + 24)

    combo.currentTextChanged.connect(follow)
    model = combo.model()
    model.rowsInserted.connect(follow)
    model.rowsRemoved.connect(follow)
    follow()
    return combo


class Collapsible(QWidget):
    """A titled section that shows or hides its form (collapsed by default): rarely changed options."""

    def __init__(self, title: str = "Advanced", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolTip(f"show or hide the {title.lower()} options (rarely changed)")
        self.body = QWidget()
        self.form = QFormLayout(self.body)
        self.form.setContentsMargins(12, 0, 0, 0)
        self.body.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toggle)
        layout.addWidget(self.body)
        self.toggle.toggled.connect(self.set_expanded)

    @property
    def expanded(self) -> bool:
        return self.body.isVisibleTo(self)

    def set_expanded(self, expanded: bool) -> None:
        self.toggle.blockSignals(True)
        self.toggle.setChecked(expanded)
        self.toggle.blockSignals(False)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)


class FitScrollArea(QScrollArea):
    """A vertical scroll area that asks to be as tall as its content but can shrink to a few rows, so that
    docked widgets share a small screen instead of making the window taller than it."""

    def __init__(self, content: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Expanding: napari adds no stretch below; the maximum height (the content's) leaves the rest of
        # the dock area to the other docks instead of to empty space
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        content.installEventFilter(self)
        self._fit()

    def _fit(self) -> None:
        self.setMaximumHeight(self.widget().sizeHint().height() + 2 * self.frameWidth())
        self.updateGeometry()
        QTimer.singleShot(0, self._grow_dock)

    def _grow_dock(self) -> None:
        """Ask the main window for the height the content now needs (rows shown, Advanced opened): it
        gives what its other docks can spare and never grows the window; the rest scrolls."""
        dock = self.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        deficit = self.widget().sizeHint().height() - self.viewport().height()
        main = dock.parentWidget() if dock is not None else None
        if deficit <= 0 or not isinstance(main, QMainWindow) or dock.isFloating():
            return
        if dock.layout() is not None:
            dock.layout().activate()  # so the dock's maximum height already follows the longer form
        target = min(dock.height() + deficit, dock.maximumHeight())
        main.resizeDocks([dock], [target], Qt.Orientation.Vertical)
        if dock.height() < target and target <= main.height() // 2:
            # The dock area can refuse resizeDocks (seen after result layers were added: the CRCNet form
            # then kept the shorter hyper-Laplacian form's height, with a scroll bar and free space
            # below). A minimum height for one layout pass makes it give the room; then it is released.
            before = dock.minimumHeight()
            dock.setMinimumHeight(target)
            QTimer.singleShot(0, lambda: dock.setMinimumHeight(before))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._fit()  # the content grew or shrank (rows shown, Advanced opened)
        return super().eventFilter(watched, event)

    def _bar(self) -> int:
        return self.verticalScrollBar().sizeHint().width()

    def sizeHint(self) -> QSize:
        hint = self.widget().sizeHint()
        return QSize(hint.width() + self._bar(), hint.height() + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        return QSize(self.widget().minimumSizeHint().width() + self._bar(), 120)


def scrolled(owner: QWidget, content: QWidget, *footer: QWidget) -> FitScrollArea:
    """Lay ``owner`` (a dock widget) out as ``content`` in a :class:`FitScrollArea` with ``footer`` (run
    button, progress) below it, always in view. ``owner`` is no taller than its content, so the space
    it does not need goes to the docks below it."""
    area = FitScrollArea(content)
    layout = QVBoxLayout(owner)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(area)
    for widget in footer:
        widget.setSizePolicy(widget.sizePolicy().horizontalPolicy(), QSizePolicy.Policy.Fixed)
        layout.addWidget(widget)
    owner.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
    return area


def box(layout_type: type, *widgets: QWidget) -> QWidget:
    """A margin-less container laying ``widgets`` out with ``layout_type`` (QHBoxLayout or QVBoxLayout)."""
    container = QWidget()
    layout = layout_type(container)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return container


def hbox(*widgets: QWidget) -> QWidget:
    return box(QHBoxLayout, *widgets)


def vbox(*widgets: QWidget) -> QWidget:
    return box(QVBoxLayout, *widgets)
