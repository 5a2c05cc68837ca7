"""Training CRCNet models: on-the-fly data, the paper's loss, the fit loop with checkpoints, and the CLI.

``train(TrainConfig(kernel=..., images=...))`` trains one model for one kernel and noise level; see
:mod:`napari_crcnet.training.fit`. ``crcnet train`` on the command line calls :func:`train_main`.
"""

from .data import PairSynthesizer, load_images
from .fit import TrainConfig, TrainResult, choose_mmse_sigma, evaluate, load_checkpoint, train
from .loss import crcnet_loss


def train_main(argv=None) -> int:
    """``crcnet train ...`` (see :mod:`napari_crcnet.training.cli`); returns the exit code."""
    from .cli import train_main as main

    return main(argv)


__all__ = [
    "PairSynthesizer",
    "TrainConfig",
    "TrainResult",
    "choose_mmse_sigma",
    "crcnet_loss",
    "evaluate",
    "load_checkpoint",
    "load_images",
    "train",
    "train_main",
]
