"""CRCNet models: the network (:mod:`.crcnet`) and model files with their cards (:mod:`.store`).

Importing this package imports torch.
"""

from .crcnet import CRCNet, CRCNetConfig
from .store import kernel_sha256, list_models, load_model, save_model

__all__ = ["CRCNet", "CRCNetConfig", "kernel_sha256", "list_models", "load_model", "save_model"]
