"""Reading and writing images: TIFF, PNG/JPEG/BMP and NumPy files.

Readers return the array stored in the file, unchanged (dtype and shape as written: a colour PNG comes back
``(Y, X, 3)`` or ``(Y, X, 4)``, a TIFF stack ``(Z, Y, X)``); scaling integers to [0, 1] is the job of the
core functions that consume the array. Writers choose a dtype the format can hold:

========================  =================================================================================
format                    what is written
========================  =================================================================================
``.tif``, ``.tiff``       floats as float32 (Fiji/ImageJ cannot open float64), integers and bool as they are
                          (bool as uint8 0/1); a trailing axis of 3 or 4 on a 3D array is stored as RGB(A)
``.png``                  uint8 and uint16 as they are; floats clipped to [0, 1] and scaled to uint8
                          (``round(255 x)``); bool as 0/255; other integers if they fit in uint8/uint16
``.jpg``, ``.jpeg``       as PNG but always uint8 (uint16 is divided by 257), quality 95
``.bmp``                  as JPEG (uint8)
``.npy``                  the array exactly as it is
========================  =================================================================================

Files are never unpickled: ``.npy``/``.npz`` are read with ``allow_pickle=False``.
Errors are one-line messages meant for napari users: :class:`FileNotFoundError` for a missing file,
:class:`ValueError` for an unsupported extension, an unreadable file or an array the format cannot hold.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "read_image", "write_image"]

_TIFF = (".tif", ".tiff")
_IMAGEIO = (".png", ".jpg", ".jpeg", ".bmp")
_NUMPY = (".npy", ".npz")
IMAGE_EXTENSIONS: tuple[str, ...] = _TIFF + _IMAGEIO + _NUMPY
"""Extensions :func:`read_image` understands (``.npz``: the first array, or ``key``)."""

_WRITE_EXTENSIONS = _TIFF + _IMAGEIO + (".npy",)


def checked_suffix(path: Path, allowed, kind: str = "image", supported_label: str = "supported") -> str:
    """The lower-case extension of ``path``; ValueError naming the allowed ones when it is not in ``allowed``."""
    ext = path.suffix.lower()
    if ext not in allowed:
        raise ValueError(
            f"unsupported {kind} format {ext or '(no extension)'!r} for {path.name}; "
            f"{supported_label}: {', '.join(allowed)}"
        )
    return ext


def read_image(path: str | os.PathLike, *, key: str | None = None) -> np.ndarray:
    """Read an image, stack or volume from a file.

    Parameters
    ----------
    path : str or path-like
        ``.tif``/``.tiff`` (read with tifffile; stacks and volumes keep all their pages), ``.png``,
        ``.jpg``/``.jpeg``, ``.bmp`` (read with imageio), ``.npy`` or ``.npz`` (NumPy, never unpickled).
    key : str, optional
        For ``.npz`` files: the name of the array to read. Default: the first array in the file.

    Returns
    -------
    numpy.ndarray
        The stored array with its stored dtype (e.g. uint8 for an 8-bit PNG): no scaling is applied.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the extension is not supported or the file cannot be decoded.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not an image file")
    ext = checked_suffix(path, IMAGE_EXTENSIONS)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if ext in _TIFF:
            import tifffile

            data = np.asarray(tifffile.imread(path))
            if data.size == 0:  # tifffile logs and returns an empty array for a TIFF without readable pages
                raise ValueError("no image data found")
            return data
        if ext in _IMAGEIO:
            import imageio.v3 as iio

            # pillow only: a file that pillow cannot decode is not retried with unrelated plugins
            return np.asarray(iio.imread(path, plugin="pillow"))
        if ext == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            if not archive.files:
                raise ValueError("the archive holds no arrays")
            if key is None:
                key = archive.files[0]
            if key not in archive.files:
                raise ValueError(f"no array named {key!r} (arrays: {', '.join(archive.files)})")
            return archive[key]
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # decoders raise many types; napari users need one clear line
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"could not read {path.name}: {reason}") from exc


def _to_8_or_16_bit(array: np.ndarray, allow_uint16: bool, name: str) -> np.ndarray:
    """Convert an array to the integer dtype a PNG/JPEG/BMP file stores (see the module table)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        if allow_uint16:
            return array
        # 65535 / 257 = 255 exactly, so full scale maps to full scale.
        return np.round(array / 257.0).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"cannot write {name}: the image contains NaN or infinite values")
        return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if low >= 0 and high <= 255:
            return array.astype(np.uint8)
        if allow_uint16 and low >= 0 and high <= 65535:
            return array.astype(np.uint16)
        raise ValueError(
            f"cannot write {name}: integer values {low}..{high} do not fit the format; "
            "scale them to [0, 1] floats or save as .tif"
        )
    raise ValueError(f"cannot write {name}: unsupported dtype {array.dtype}")


def write_image(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array to an image file chosen by extension, creating parent folders.

    Parameters
    ----------
    path : str or path-like
        Destination; the extension picks the format (``.tif``, ``.tiff``, ``.png``, ``.jpg``, ``.jpeg``,
        ``.bmp``, ``.npy``). See the module docstring for the dtype written in each case.
    array : array_like
        The image. For PNG/JPEG/BMP: ``(Y, X)`` gray or ``(Y, X, C)`` with C in 1, 3, 4 (JPEG/BMP: 1 or 3);
        float values are clipped to [0, 1] and stored as ``round(255 x)`` in uint8. The array is not modified.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        For an unsupported extension, complex data, a shape the format cannot hold, NaN in an 8-bit
        image, or integers out of the format's range.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a directory; give a file name such as {path / 'result.tif'}")
    ext = checked_suffix(path, _WRITE_EXTENSIONS, supported_label="supported for writing")
    array = np.asarray(array)
    if np.iscomplexobj(array) or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"cannot write {path.name}: unsupported dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"cannot write {path.name}: the image is empty (shape {array.shape})")

    if ext in _IMAGEIO:
        max_channels = 4 if ext == ".png" else 3
        shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))
        if not shape_ok or (array.ndim == 3 and array.shape[-1] > max_channels):
            raise ValueError(
                f"cannot write {path.name}: {ext} holds a 2D gray or (Y, X, channels) colour image, "
                f"got shape {array.shape}; save stacks and volumes as .tif"
            )
        data = _to_8_or_16_bit(array, allow_uint16=ext == ".png", name=path.name)
        if data.ndim == 3 and data.shape[-1] == 1:
            data = data[..., 0]
    elif ext in _TIFF:
        if np.issubdtype(array.dtype, np.floating):
            data = array.astype(np.float32, copy=False)
        elif array.dtype == np.bool_:
            data = array.astype(np.uint8)
        else:
            data = array
    else:
        data = array

    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".npy":
        np.save(path, data, allow_pickle=False)
    elif ext in _TIFF:
        import tifffile

        rgb = data.ndim == 3 and data.shape[-1] in (3, 4)
        tifffile.imwrite(path, data, photometric="rgb" if rgb else "minisblack")
    else:
        import imageio.v3 as iio

        options = {"quality": 95} if ext in (".jpg", ".jpeg") else {}
        iio.imwrite(path, data, plugin="pillow", **options)
    return path
