"""Small Qt layout helpers shared by the widgets."""

from __future__ import annotations

from qtpy.QtWidgets import QSizePolicy, QStackedWidget


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
