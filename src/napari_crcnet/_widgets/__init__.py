"""napari widgets of napari-crcnet (layer <-> array glue only; the work is done by the core).

* :class:`~napari_crcnet._widgets.deblur.DeblurWidget`: MMSE, IRD (+ residues), hyper-Laplacian, CRCNet.
* :class:`~napari_crcnet._widgets.train.TrainWidget`: train a CRCNet for one kernel and noise level.

Both are listed in ``napari.yaml``; importing this package does not import napari or Qt.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DeblurWidget", "TrainWidget"]


def __getattr__(name: str) -> Any:
    if name == "DeblurWidget":
        from .deblur import DeblurWidget

        return DeblurWidget
    if name == "TrainWidget":
        from .train import TrainWidget

        return TrainWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
