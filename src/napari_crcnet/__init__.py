"""napari-crcnet: non-blind deblurring (MMSE, IRD, CRCNet) for napari and Python."""

__version__ = "0.1.0"
