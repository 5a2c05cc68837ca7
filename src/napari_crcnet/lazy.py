"""Deblurring of lazy (dask) arrays: stacks and time series larger than memory, one chunk of planes at a time.

Every method here deblurs each plane (each 2D image, or each 3D volume with a 3D kernel) on its own, so a
stack can be cut along its leading axes (time, z, ...) into chunks that are deblurred independently and
exactly: the result of a chunk does not depend on the others. :func:`deblur_lazy` does that with
``dask.array.map_blocks``; nothing is computed until the result is (``.compute()``, ``to_zarr``, or napari
showing a slice of it), and a ``dask.distributed`` client, when one is set up, spreads the chunks over its
workers. A single plane must fit in memory (the FFT methods work on whole planes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._arrays import Layout


def deblur_lazy(
    method: Callable[..., np.ndarray],
    image: Any,
    *args: Any,
    channel_axis: int | None = None,
    spatial_ndim: int = 2,
    **kwargs: Any,
) -> Any:
    """``method(chunk, *args, channel_axis=channel_axis, **kwargs)`` on each chunk of planes of ``image``,
    lazily; returns a float32 ``dask.array.Array`` of ``image``'s shape.

    Parameters
    ----------
    method : callable
        A deblurring function that returns one array of its input's shape: :func:`~napari_crcnet.mmse`,
        :func:`~napari_crcnet.ird`, :func:`~napari_crcnet.hyper_laplacian`, :func:`~napari_crcnet.crcnet`
        (without ``return_residues``), or your own.
    image : dask array (or anything ``dask.array.asarray`` takes)
        ``(..., *spatial)`` with an optional colour axis ``channel_axis``. Chunks along the leading axes are
        kept; the spatial and colour axes are merged into whole planes (a chunk holds whole images).
    *args, **kwargs
        Passed to ``method`` (the kernel, sigma, model, ...). Give noise-dependent parameters (``sigma``,
        ``lam``, ``noise``) explicitly: left to be estimated they would be estimated per chunk.
    channel_axis : int, optional
        The colour axis, passed to ``method`` too.
    spatial_ndim : int
        2 for images (2D kernel), 3 for volumes (3D kernel).

    Examples
    --------
    >>> movie = dask.array.from_zarr("movie.zarr")               # (T, Y, X), larger than memory
    >>> sharp = deblur_lazy(nc.mmse, movie, kernel, sigma=0.01)   # lazy: nothing computed yet
    >>> viewer.add_image(sharp)                                   # each shown frame deblurred on demand
    >>> sharp.to_zarr("sharp.zarr")                               # or all of it, chunk by chunk
    """
    import dask.array as da

    array = da.asarray(image)
    Layout.of(array.shape, channel_axis, spatial_ndim)  # ValueError for too few axes or a bad channel axis
    colour = None if channel_axis is None else channel_axis % array.ndim
    plain = [axis for axis in range(array.ndim) if axis != colour]
    whole = plain[-spatial_ndim:] + ([colour] if colour is not None else [])  # one chunk spans these axes
    array = array.rechunk({axis: -1 for axis in whole})
    if channel_axis is not None:
        kwargs["channel_axis"] = channel_axis

    def deblur_chunk(chunk: np.ndarray) -> np.ndarray:
        result = method(chunk, *args, **kwargs)
        shape = getattr(result, "shape", None)
        if shape is None or tuple(shape) != chunk.shape:
            name = getattr(method, "__name__", type(method).__name__)
            got = f"an array of shape {tuple(shape)}" if shape is not None else f"a {type(result).__name__}"
            raise ValueError(
                f"deblur_lazy: {name} returned {got} for a chunk of shape {chunk.shape}; it must return one "
                "array of its input's shape (not a tuple: no return_residues)"
            )
        return np.asarray(result, dtype=np.float32)

    return array.map_blocks(deblur_chunk, dtype=np.float32, meta=np.empty((0,) * array.ndim, np.float32))
