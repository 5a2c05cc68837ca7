"""napari widgets of napari-crcnet (layer <-> array glue only; the work is done by the core).

* :class:`~napari_crcnet._widgets.deblur.DeblurWidget`: MMSE, IRD (+ residues), hyper-Laplacian, CRCNet.
* :class:`~napari_crcnet._widgets.train.TrainWidget`: train a CRCNet for one kernel and noise level.

Both are listed in ``napari.yaml``; importing this package does not import napari or Qt.

Everything here is glue between napari layers and NumPy arrays; the maths lives in the core modules
(:mod:`napari_crcnet.kernels`, :mod:`napari_crcnet.deconv`, ...). The parts the widgets share, one per module:

* ``_layers``: layers <-> arrays (the array cut out of an input layer, result layers placed like it).
* ``_layer_pickers``: the combo box of image layers; which layers are kernels, which are results.
* ``_kernel_picker``: the kernel picker (generated, layer, file) with its thumbnail.
* ``_task_runner``: one job at a time in a worker thread, progress bar and Cancel.
* ``_residues``: residue stacks (the list of n, their display).
* ``_model_list``: the model combo boxes and the "models changed" signal.
* ``_notify``: notifications and the text of an error.
* ``_layout``: small Qt layout helpers.
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
