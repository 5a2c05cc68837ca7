"""Blur kernels and PSFs: generators, file loading, normalisation, centring and validation.

Conventions (the whole package relies on them)
---------------------------------------------
* **Convolution orientation.** A kernel ``k`` blurs an image as ``b = k * x`` (convolution, as
  :func:`scipy.ndimage.convolve`), not correlation. Kernels stored for correlation (e.g. MATLAB ``imfilter``
  defaults, Levin et al. 2009 captures) are converted with :func:`from_correlation`.
* **Odd size, centred.** Every axis has odd length ``n``; the kernel's origin is the middle pixel
  ``n // 2``. Even-sized kernels from files are padded with one zero row/column *at the end*
  (:func:`pad_to_odd`), which keeps scipy.ndimage's origin ``n // 2`` for even sizes unchanged.
* **Non-negative, sum 1, float64.** Generators return ``float64`` arrays with ``k >= 0`` and ``k.sum() == 1``
  (to round-off); :func:`validate_kernel` turns user input into such an array or raises a clear ValueError.
* **Axes and angles.** 2D kernels are ``(Y, X)`` (row, column); 3D PSFs are ``(Z, Y, X)``. Lengths, radii and
  sigmas are in pixels (3D: Z sigma in Z steps). Angles are in **degrees, counter-clockwise as seen on
  screen** (rows pointing down), measured from the +X axis: the unit direction of angle ``theta`` in
  ``(row, column)`` coordinates is ``u = (-sin theta, cos theta)``. So ``motion_kernel(9, 90)`` is a vertical
  streak and ``motion_kernel(9, 45)`` runs from bottom-left to top-right on screen.

This module is pure NumPy/SciPy: it never imports torch.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "KERNEL_EXTENSIONS",
    "KERNEL_SPEC_HELP",
    "airy_psf_3d",
    "center_kernel",
    "disk_kernel",
    "from_correlation",
    "gaussian_kernel",
    "gaussian_psf_3d",
    "kernel_from_spec",
    "load_kernel",
    "motion_kernel",
    "normalize_kernel",
    "pad_to_odd",
    "random_kernel_spec",
    "random_motion_kernel",
    "random_psf",
    "save_kernel",
    "validate_kernel",
    "widefield_psf_3d",
]

KERNEL_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy", ".npz", ".mat")
"""File extensions :func:`load_kernel` reads."""

#: Negative values whose magnitude is at most this fraction of the kernel maximum are round-off: clipped to 0.
NEGATIVE_TOLERANCE = 1e-6

#: Largest kernel side, in pixels, that a generator makes or a kernel file may have. Blur this wide is not a
#: kernel any deblurring here can use (kernels are at most the image's size), and a size beyond it in a spec
#: (``disk:1e9``) is a typing error that would otherwise allocate gigabytes before failing.
MAX_KERNEL_SIDE = 4097

# Gaussians are truncated at this many standard deviations (as scipy.ndimage.gaussian_filter): the mass
# lost is < 1e-4 per axis and the variance of the truncated kernel is within 0.2 % of sigma^2.
_TRUNCATE = 4.0


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------
def _shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(n)) for n in shape)


def _odd_shape(size: int | Sequence[int] | None, default: Sequence[int], ndim: int) -> tuple[int, ...]:
    """The kernel shape: ``default`` when ``size`` is None, else ``size`` (int = same on every axis), odd."""
    if size is None:
        shape = tuple(int(n) for n in default)
    elif np.ndim(size) == 0:
        shape = (int(size),) * ndim  # type: ignore[arg-type]
    else:
        shape = tuple(int(n) for n in size)  # type: ignore[union-attr]
        if len(shape) != ndim:
            raise ValueError(f"size must be an int or {ndim} ints, got {size!r}")
    if size is not None and any(float(n) != int(n) for n in np.atleast_1d(size)):
        raise ValueError(f"size must be whole numbers, got {size!r}")
    for n in shape:
        if n < 1 or n % 2 == 0:
            raise ValueError(f"kernel size must be a positive odd number of pixels, got {size!r}")
    if max(shape) > MAX_KERNEL_SIDE:
        raise ValueError(f"kernel size {max(shape)} px is larger than the {MAX_KERNEL_SIDE} px supported")
    return shape


def _check_side(side: float, what: str) -> None:
    """Refuse a kernel wider than :data:`MAX_KERNEL_SIDE` before anything is allocated."""
    if side > MAX_KERNEL_SIDE:
        raise ValueError(f"{what} needs a kernel {side:.4g} px wide; at most {MAX_KERNEL_SIDE} px are supported")


def _offsets(shape: Sequence[int]) -> list[np.ndarray]:
    """Open grids of pixel offsets from the middle pixel, one broadcastable array per axis."""
    return list(np.ogrid[tuple(slice(-(n // 2), n // 2 + 1) for n in shape)])


def _finish(kernel: np.ndarray) -> np.ndarray:
    """Clip round-off negatives, normalise to sum 1, return a contiguous float64 array."""
    kernel = np.clip(np.asarray(kernel, dtype=np.float64), 0.0, None)
    total = kernel.sum()
    if not total > 0:
        raise ValueError("the kernel has no mass inside its support; use a larger size")
    return np.ascontiguousarray(kernel / total)


def _splat(points: np.ndarray, weights: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Multilinear ("bilinear" in 2D) splatting of weighted points onto a pixel grid.

    ``points`` is ``(N, ndim)`` in array-index coordinates. A point ``p`` with weight ``w`` adds
    ``w * prod_i max(0, 1 - |p_i - j_i|)`` to every pixel ``j``: mass and centroid are preserved exactly
    (the sub-pixel position is kept), and each point adds variance ``f (1 - f)`` per axis (``f`` its
    fractional coordinate). Points whose footprint leaves the grid lose that part.
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    base = np.floor(points).astype(np.int64)
    frac = points - base
    out = np.zeros(int(np.prod(shape)), dtype=np.float64)
    for corner in range(2**ndim):
        idx = base.copy()
        w = weights.astype(np.float64).copy()
        for axis in range(ndim):
            if (corner >> axis) & 1:
                idx[:, axis] += 1
                w *= frac[:, axis]
            else:
                w *= 1.0 - frac[:, axis]
        inside = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
        flat = np.ravel_multi_index(tuple(idx[inside].T), shape)
        out += np.bincount(flat, weights=w[inside], minlength=out.size)
    return out.reshape(shape)


def _trim_symmetric(kernel: np.ndarray, threshold: float = 0.0, same: bool = False) -> np.ndarray:
    """Remove the same number of all-zero (``<= threshold``) slices from both ends of every axis.

    Trimming equally from both ends keeps the middle pixel where it is. ``same=True`` cuts every axis by
    the same amount (a square kernel stays square).
    """
    cuts = []
    for axis, n in enumerate(kernel.shape):
        other = tuple(a for a in range(kernel.ndim) if a != axis)
        alive = np.flatnonzero(kernel.max(axis=other) > threshold) if other else np.flatnonzero(kernel > threshold)
        cuts.append(min(int(alive[0]), n - 1 - int(alive[-1])) if alive.size else 0)
    if same:
        cuts = [min(cuts)] * kernel.ndim
    index = tuple(slice(c, n - c) for c, n in zip(cuts, kernel.shape))
    return kernel[index]


def _direction(angle: float) -> np.ndarray:
    """Unit vector of ``angle`` degrees (counter-clockwise on screen from +X) in (row, column) coordinates."""
    theta = math.radians(float(angle))
    return np.array([-math.sin(theta), math.cos(theta)])


# ---------------------------------------------------------------------------------------------------------
# 2D generators
# ---------------------------------------------------------------------------------------------------------
def gaussian_kernel(
    sigma: float | Sequence[float], size: int | Sequence[int] | None = None, angle: float = 0.0
) -> np.ndarray:
    """Gaussian blur kernel, isotropic or anisotropic and rotated.

    .. math::

        k(p) \\propto \\exp\\left(-\\frac{(p \\cdot u)^2}{2 \\sigma_x^2} - \\frac{(p \\cdot v)^2}{2 \\sigma_y^2}\\right)

    sampled at the pixel centres ``p = (row, column)`` offsets from the middle pixel, with ``u`` the unit
    direction of ``angle`` (see the module docstring: counter-clockwise on screen from +X) and ``v`` the
    direction of ``angle + 90``, then normalised to sum 1. With ``angle = 0``, ``sigma_x`` acts along
    columns (X) and ``sigma_y`` along rows (Y).

    Parameters
    ----------
    sigma : float or (float, float)
        Standard deviation in pixels: one value (isotropic) or ``(sigma_y, sigma_x)``. ``0`` gives a delta.
        Point sampling is accurate for sigma >= ~0.7 px; below that the kernel is close to a delta anyway.
    size : int or (int, int), optional
        Odd kernel size. Default: square, ``2 * ceil(4 * max(sigma)) + 1`` (truncation at 4 sigma, as
        :func:`scipy.ndimage.gaussian_filter`; the variance of the truncated kernel is within 0.2 % of
        ``sigma**2``).
    angle : float
        Rotation of the ``sigma_x`` axis in degrees, counter-clockwise on screen.

    Returns
    -------
    numpy.ndarray
        float64 ``(size_y, size_x)`` kernel, non-negative, summing to 1, centred on the middle pixel.
    """
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (2,))
    if sigmas.size != 2 or not np.all(np.isfinite(sigmas)) or np.any(sigmas < 0):
        raise ValueError(f"sigma must be one or two non-negative numbers (pixels), got {sigma!r}")
    sigma_y, sigma_x = (float(s) for s in sigmas)
    if max(sigma_y, sigma_x) == 0:
        delta = np.zeros(_odd_shape(size, (1, 1), 2))
        delta[delta.shape[0] // 2, delta.shape[1] // 2] = 1.0
        return delta
    if min(sigma_y, sigma_x) == 0:
        raise ValueError("an anisotropic Gaussian needs both sigmas > 0 (use motion_kernel for a line)")
    if size is None:
        _check_side(2 * _TRUNCATE * max(sigma_y, sigma_x) + 1, f"sigma {max(sigma_y, sigma_x):g}")
    radius = math.ceil(_TRUNCATE * max(sigma_y, sigma_x))
    shape = _odd_shape(size, (2 * radius + 1,) * 2, 2)
    rows, cols = _offsets(shape)
    u = _direction(angle)
    v = _direction(angle + 90.0)
    a = rows * u[0] + cols * u[1]
    b = rows * v[0] + cols * v[1]
    return _finish(np.exp(-0.5 * ((a / sigma_x) ** 2 + (b / sigma_y) ** 2)))


def disk_kernel(radius: float, size: int | Sequence[int] | None = None) -> np.ndarray:
    """Anti-aliased uniform disk (out-of-focus / defocus blur of a circular aperture).

    ``k(p)`` is the fraction of pixel ``p`` (a unit square) covered by the disk ``|q| <= radius`` centred on
    the middle pixel, estimated on a 16 x 16 sub-pixel grid per pixel (error < 1/256 of a pixel's area on
    the rim only), then normalised to sum 1.

    Parameters
    ----------
    radius : float
        Disk radius in pixels (>= 0). Radii below 0.5 give (nearly) a delta.
    size : int or (int, int), optional
        Odd kernel size. Default: ``2 * ceil(radius - 0.5) + 1``, the smallest that holds the whole disk.

    Returns
    -------
    numpy.ndarray
        float64 kernel, non-negative, summing to 1, centred (the disk is symmetric).
    """
    radius = float(radius)
    if not math.isfinite(radius) or radius < 0:
        raise ValueError(f"radius must be a non-negative number of pixels, got {radius!r}")
    if size is None:
        _check_side(2 * radius + 1, f"radius {radius:g}")
    half = max(0, math.ceil(radius - 0.5))
    shape = _odd_shape(size, (2 * half + 1,) * 2, 2)
    coverage = _disk_coverage(radius, shape)
    if coverage.sum() == 0:  # radius 0: a point
        coverage[shape[0] // 2, shape[1] // 2] = 1.0
    return _finish(coverage)


def _disk_coverage(radius: float, shape: tuple[int, ...], sub: int = 16) -> np.ndarray:
    """Share of the ``sub x sub`` samples of each pixel with ``x^2 + y^2 <= radius^2`` (offsets from the middle).

    Counted in closed form per sample row: the samples of a row inside the disk are those with
    ``|x| <= sqrt(radius^2 - y^2)``, and the samples ``f_m = (m + 0.5) / sub - 0.5`` of a pixel at ``x_j`` below
    a bound ``t`` number ``clip(floor(sub (t - x_j) + sub / 2 - 0.5) + 1, 0, sub)``. Memory is bounded by
    working on blocks of rows (a full 4097-px disk takes seconds, not the 32 GB of all samples at once).
    """
    frac = (np.arange(sub) + 0.5) / sub - 0.5  # sub-pixel sample offsets, symmetric about the pixel centre
    rows = np.arange(shape[0]) - shape[0] // 2
    cols = (np.arange(shape[1]) - shape[1] // 2).astype(np.float64)
    coverage = np.empty(shape)
    block = max(1, (1 << 22) // (sub * shape[1]))
    for start in range(0, shape[0], block):
        y = rows[start : start + block, None] + frac[None, :]
        half = np.sqrt(np.maximum(radius**2 - y**2, 0.0))[..., None]
        upto = np.clip(np.floor((half - cols) * sub + (sub / 2 - 0.5)) + 1, 0, sub)
        below = np.clip(np.ceil((-half - cols) * sub + (sub / 2 - 0.5)), 0, sub)
        count = np.where((y**2 <= radius**2)[..., None], np.maximum(upto - below, 0), 0)
        coverage[start : start + block] = count.sum(axis=1) / sub**2
    return coverage


def motion_kernel(length: float, angle: float = 0.0, size: int | Sequence[int] | None = None) -> np.ndarray:
    """Linear (uniform-velocity) motion blur, sub-pixel and anti-aliased.

    The line integral of the bilinear (tent) interpolation kernel along a segment of ``length`` pixels
    centred on the middle pixel:

    .. math::

        k(p) \\propto \\frac{1}{L} \\int_{-L/2}^{L/2} \\Lambda(p - t u)\\, dt, \\qquad
        \\Lambda(r, c) = \\max(0, 1 - |r|) \\max(0, 1 - |c|),

    with ``u`` the direction of ``angle``; the integral is evaluated with the midpoint rule at 32 samples
    per pixel of length. The kernel's variance along ``u`` is ``L^2 / 12 + ~1/6`` px² (segment plus tent),
    so ``L`` can be read back from the second moment.

    Parameters
    ----------
    length : float
        Length of the motion in pixels (>= 0; any real value, not only integers). 0 gives a delta.
    angle : float
        Direction in degrees, counter-clockwise on screen from +X (0 = horizontal, 90 = vertical).
    size : int or (int, int), optional
        Odd kernel size. Default: the smallest square that holds the whole segment and its anti-aliased
        edge. A smaller size crops the ends of the segment (the rest is renormalised).

    Returns
    -------
    numpy.ndarray
        float64 kernel, non-negative, summing to 1, centred (the segment is symmetric about the middle).
    """
    length = float(length)
    if not math.isfinite(length) or length < 0:
        raise ValueError(f"length must be a non-negative number of pixels, got {length!r}")
    if not math.isfinite(float(angle)):
        raise ValueError(f"angle must be a finite number of degrees, got {angle!r}")
    _check_side(length + 1, f"length {length:g}")  # also bounds the 32 samples per pixel of length
    u = _direction(angle)
    n = max(1, math.ceil(32 * length))
    t = ((np.arange(n) + 0.5) / n - 0.5) * length
    offsets = t[:, None] * u[None, :]
    if size is None:
        half = math.ceil(float(np.abs(offsets).max())) + 1  # +1 for the tent footprint
        shape = (2 * half + 1,) * 2
    else:
        shape = _odd_shape(size, (1, 1), 2)
    centre = np.array([s // 2 for s in shape], dtype=np.float64)
    kernel = _splat(offsets + centre, np.ones(n), shape)
    if size is None:
        kernel = _trim_symmetric(kernel, threshold=1e-12 * kernel.max(), same=True)
    return _finish(kernel)


def random_motion_kernel(size: int = 21, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Random camera-shake kernel, in the spirit of the generator of Chakrabarti (2016) used by CRCNet.

    The CRCNet paper trained and tested on ten random 21 x 21 kernels from Chakrabarti's generator (random
    smooth trajectories with varying intensity). This is an independent implementation of that idea:

    1. **Trajectory.** On ``T = 2000`` time steps ``t_j = j / T``, the velocity is an initial random
       direction plus Brownian acceleration plus a few (Poisson, mean 1) random jerks:
       ``v(t) = v_0 + a W(t) + sum_i J_i [t >= tau_i]`` with ``|v_0| = 1``, ``W`` a standard 2D Wiener
       process, ``a ~ U(1, 6)`` (curviness), jerks ``J_i ~ N(0, 1.5^2 I)`` at ``tau_i ~ U(0, 1)``;
       the position is ``x(t) = integral of v``.
    2. **Exposure.** Each time step carries weight ``w(t) = max(0.2, 1 + 0.5 g(t))``, ``g`` a smooth random
       function (linear interpolation of 8 standard normals): the shutter-integrated intensity varies
       along the path as in Chakrabarti's kernels; slow segments of the path also collect more weight.
    3. **Placement.** The trajectory is shifted so that its weighted centroid is the middle pixel and
       scaled so that its largest excursion (max norm) is ``s (size // 2 - 1)`` pixels, ``s ~ U(0.3, 1)``,
       leaving one pixel for the splat footprint.
    4. **Rasterisation.** Bilinear splatting of all ``T`` samples (sub-pixel, anti-aliased; preserves the
       centroid exactly), then normalisation to sum 1.

    Parameters
    ----------
    size : int
        Odd support size in pixels (>= 5). The paper used 21.
    seed : int, numpy.random.Generator or None
        Seed for :func:`numpy.random.default_rng`: the same seed gives the same kernel.

    Returns
    -------
    numpy.ndarray
        float64 ``(size, size)`` kernel, non-negative, summing to 1, centre of mass on the middle pixel.

    References
    ----------
    A. Chakrabarti, "A Neural Approach to Blind Motion Deblurring", ECCV 2016.
    """
    (n,) = _odd_shape(int(size), (21,), 1)
    if n < 5:
        raise ValueError(f"size must be an odd number >= 5, got {size!r}")
    rng = np.random.default_rng(seed)
    steps = 2000
    dt = 1.0 / steps
    phi = rng.uniform(0.0, 2.0 * np.pi)
    velocity = np.tile([math.sin(phi), math.cos(phi)], (steps, 1))
    curviness = rng.uniform(1.0, 6.0)
    velocity += curviness * np.cumsum(rng.normal(scale=math.sqrt(dt), size=(steps, 2)), axis=0)
    times = np.arange(steps) * dt
    for _ in range(rng.poisson(1.0)):
        velocity += (times >= rng.uniform())[:, None] * rng.normal(scale=1.5, size=2)[None, :]
    path = np.cumsum(velocity, axis=0) * dt

    knots = rng.normal(size=8)
    gain = np.interp(times, np.linspace(0.0, 1.0, knots.size), knots)
    weights = np.maximum(0.2, 1.0 + 0.5 * gain)

    path -= (weights[:, None] * path).sum(axis=0) / weights.sum()
    extent = float(np.abs(path).max())
    reach = rng.uniform(0.3, 1.0) * (n // 2 - 1)
    path *= reach / extent if extent > 0 else 0.0
    return _finish(_splat(path + n // 2, weights, (n, n)))


# ---------------------------------------------------------------------------------------------------------
# 3D PSFs
# ---------------------------------------------------------------------------------------------------------
KERNEL_FAMILY: dict[str, float] = {"shake": 0.4, "motion": 0.2, "gaussian": 0.25, "disk": 0.15}
"""Probabilities of the kernel types drawn by :func:`random_kernel_spec`."""


def random_kernel_spec(rng: np.random.Generator, max_size: int = 31) -> str:
    """Draw a random 2D blur kernel, as a spec for :func:`kernel_from_spec` (reproducible by its text).

    The family the "any kernel" CRCNet trains on, each type with the probability in :data:`KERNEL_FAMILY`:

    * ``shake``: :func:`random_motion_kernel` of odd size uniform in ``[9, max_size]``, random seed;
    * ``motion``: linear motion, length ``U(3, min(25, max_size - 4))`` px, angle ``U(0, 180)`` degrees;
    * ``gaussian``: half isotropic with sigma ``U(0.5, s)``, half anisotropic with sigmas ``U(0.5, s)``
      and angle ``U(0, 180)``; ``s = min(3.5, (max_size // 2) / 4)`` keeps the 4-sigma support within
      ``max_size``;
    * ``disk`` (defocus): radius ``U(1, min(8, max_size // 2 - 1))`` px.

    Every kernel fits in ``max_size x max_size`` (odd, >= 9). Values are rounded in the text (2 decimals,
    angles 1), so the spec is the kernel.
    """
    if int(max_size) != max_size or max_size < 9 or max_size % 2 == 0:
        raise ValueError(f"max_size must be an odd integer >= 9, not {max_size!r}")
    kind = rng.choice(list(KERNEL_FAMILY), p=list(KERNEL_FAMILY.values()))
    if kind == "shake":
        size = 2 * int(rng.integers(4, max_size // 2 + 1)) + 1
        return f"shake:{size},seed={int(rng.integers(2**31))}"
    if kind == "motion":
        return f"motion:{rng.uniform(3, min(25, max_size - 4)):.2f},{rng.uniform(0, 180):.1f}"
    if kind == "gaussian":
        top = min(3.5, (max_size // 2) / _TRUNCATE)
        if rng.random() < 0.5:
            return f"gaussian:{rng.uniform(0.5, top):.2f}"
        return f"gaussian:{rng.uniform(0.5, top):.2f},{rng.uniform(0.5, top):.2f},{rng.uniform(0, 180):.1f}"
    return f"disk:{rng.uniform(1, min(8, max_size // 2 - 1)):.2f}"


def random_psf(rng: np.random.Generator, max_size: int = 21) -> np.ndarray:
    """Draw a random 2D fluorescence-microscope PSF (the family a fluorescence model trains on):

    * 40 %: isotropic Gaussian, sigma ``U(0.7, s)``;
    * 30 %: anisotropic Gaussian, sigmas ``U(0.7, s)``, angle ``U(0, 180)``;
    * 30 %: a plane of :func:`widefield_psf_3d` (NA ``U(0.8, 1.4)``, emission ``U(0.45, 0.65)`` um, pixel
      ``U(0.06, 0.12)`` um, defocus up to 3 planes of 0.2-0.4 um), cut to ``max_size``;

    ``s = min(3, (max_size // 2) / 4)`` keeps the Gaussians' 4-sigma support within ``max_size`` (odd, >= 9).
    Returns a float64 ``(n, n)`` kernel, ``n <= max_size``, non-negative, summing to 1.
    """
    if int(max_size) != max_size or max_size < 9 or max_size % 2 == 0:
        raise ValueError(f"max_size must be an odd integer >= 9, not {max_size!r}")
    top = min(3.0, (max_size // 2) / _TRUNCATE)
    kind = rng.random()
    if kind < 0.4:
        return gaussian_kernel(rng.uniform(0.7, top))
    if kind < 0.7:
        return gaussian_kernel((rng.uniform(0.7, top), rng.uniform(0.7, top)), angle=rng.uniform(0, 180))
    volume = widefield_psf_3d(int(max_size), 7, na=rng.uniform(0.8, 1.4), wavelength_um=rng.uniform(0.45, 0.65),
                              pixel_um=rng.uniform(0.06, 0.12), z_step_um=rng.uniform(0.2, 0.4))
    return _finish(volume[3 + int(rng.integers(-3, 4))])


def gaussian_psf_3d(sigma_xy: float, sigma_z: float, size: int | Sequence[int] | None = None) -> np.ndarray:
    """Separable 3D Gaussian PSF, ``(Z, Y, X)``.

    .. math::

        k(z, y, x) \\propto \\exp\\left(-\\frac{x^2 + y^2}{2 \\sigma_{xy}^2} - \\frac{z^2}{2 \\sigma_z^2}\\right)

    sampled at voxel centres and normalised to sum 1. A common approximation of a widefield/confocal PSF
    (sigma_xy ~ 0.21 lambda / NA, sigma_z ~ 0.66 n lambda / NA², converted to pixels / z steps).

    Parameters
    ----------
    sigma_xy : float
        Lateral standard deviation in pixels (> 0).
    sigma_z : float
        Axial standard deviation in Z steps (> 0).
    size : int or (int, int, int), optional
        Odd size ``(nz, ny, nx)`` (an int: a cube). Default: ``2 * ceil(4 * sigma) + 1`` per axis.

    Returns
    -------
    numpy.ndarray
        float64 ``(nz, ny, nx)`` PSF, non-negative, summing to 1, centred.
    """
    sxy, sz = float(sigma_xy), float(sigma_z)
    if not (math.isfinite(sxy) and math.isfinite(sz) and sxy > 0 and sz > 0):
        raise ValueError(f"sigma_xy and sigma_z must be positive, got {sigma_xy!r}, {sigma_z!r}")
    if size is None:
        _check_side(2 * _TRUNCATE * max(sxy, sz) + 1, f"sigma {max(sxy, sz):g}")
    rxy, rz = math.ceil(_TRUNCATE * sxy), math.ceil(_TRUNCATE * sz)
    shape = _odd_shape(size, (2 * rz + 1, 2 * rxy + 1, 2 * rxy + 1), 3)
    z, y, x = _offsets(shape)
    return _finish(np.exp(-0.5 * ((x**2 + y**2) / sxy**2 + z**2 / sz**2)))


def widefield_psf_3d(
    size_xy: int = 31,
    size_z: int = 31,
    na: float = 1.4,
    wavelength_um: float = 0.52,
    pixel_um: float = 0.1,
    z_step_um: float = 0.2,
    refractive_index: float = 1.518,
) -> np.ndarray:
    """Widefield (Airy-like) 3D PSF from a scalar defocus model, ``(Z, Y, X)``.

    The angular spectrum of a uniform circular pupil, propagated to each defocus ``z``:

    .. math::

        E(x, y; z) = \\mathcal{F}^{-1}\\left[ P(f)\\, e^{2\\pi i z \\sqrt{(n/\\lambda)^2 - |f|^2}} \\right],
        \\qquad P(f) = [\\,|f| \\le \\mathrm{NA}/\\lambda\\,], \\qquad k = |E|^2 / \\sum |E|^2,

    with ``f`` the lateral spatial frequency (cycles/µm) on an FFT grid of pitch ``pixel_um`` (odd length,
    4x the PSF to keep the defocus rings from wrapping), ``n`` the immersion refractive index and ``lambda``
    the emission wavelength in vacuum. At ``z = 0`` this is the Airy pattern (first zero at
    ``0.61 lambda / NA``). Scalar, aberration-free, no apodisation or polarisation: a quick
    physically-shaped PSF, not a substitute for a measured one. It is symmetric in x, y and z, so its
    centre of mass is the middle voxel.

    Parameters
    ----------
    size_xy, size_z : int
        Odd lateral (Y = X) and axial sizes in pixels / planes.
    na : float
        Numerical aperture of the objective (0 < NA < refractive_index).
    wavelength_um : float
        Emission wavelength in µm (vacuum).
    pixel_um : float
        Lateral pixel size in µm (sample space). For an unaliased PSF, ``pixel_um <= lambda / (2 NA)``;
        a coarser pixel truncates the pupil at the Nyquist frequency (a warning is issued).
    z_step_um : float
        Distance between planes in µm.
    refractive_index : float
        Refractive index of the immersion medium.

    Returns
    -------
    numpy.ndarray
        float64 ``(size_z, size_xy, size_xy)`` PSF, non-negative, summing to 1 over the volume, centred.
    """
    nz, ny, _ = _odd_shape((size_z, size_xy, size_xy), (1, 1, 1), 3)
    if max(nz, ny) > MAX_KERNEL_SIDE // 4:  # its FFT grid is 4x the PSF, per plane
        raise ValueError(f"widefield PSF sizes are limited to {MAX_KERNEL_SIDE // 4} px, got {size_xy}, {size_z}")
    values = {
        "na": na,
        "wavelength_um": wavelength_um,
        "pixel_um": pixel_um,
        "z_step_um": z_step_um,
        "refractive_index": refractive_index,
    }
    for name, value in values.items():
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if na >= refractive_index:
        raise ValueError(f"na ({na}) must be smaller than the refractive index ({refractive_index})")
    cutoff = na / wavelength_um
    if cutoff > 0.5 / pixel_um:
        warnings.warn(
            f"pixel_um={pixel_um} undersamples this PSF (Nyquist needs <= {wavelength_um / (2 * na):.3g} µm); "
            "the pupil is truncated",
            stacklevel=2,
        )
    grid = 4 * ny + 1  # odd, so the frequency grid is symmetric and the PSF centre is a grid point
    freq = np.fft.fftfreq(grid, d=pixel_um)
    f2 = freq[:, None] ** 2 + freq[None, :] ** 2
    pupil = f2 <= cutoff**2
    kz = np.sqrt(np.maximum((refractive_index / wavelength_um) ** 2 - f2, 0.0))
    half, c = ny // 2, grid // 2
    psf = np.empty((nz, ny, ny))
    for i, z in enumerate((np.arange(nz) - nz // 2) * z_step_um):
        field = np.fft.ifft2(pupil * np.exp(2j * np.pi * z * kz))
        intensity = np.fft.fftshift(np.abs(field) ** 2)
        psf[i] = intensity[c - half : c + half + 1, c - half : c + half + 1]
    return _finish(psf)


airy_psf_3d = widefield_psf_3d
"""Alias of :func:`widefield_psf_3d`."""


# ---------------------------------------------------------------------------------------------------------
# array utilities
# ---------------------------------------------------------------------------------------------------------
def normalize_kernel(kernel: np.ndarray) -> np.ndarray:
    """Return ``kernel / kernel.sum()`` as a float64 copy.

    Raises
    ------
    ValueError
        If the sum is not a positive finite number.
    """
    kernel = np.array(kernel, dtype=np.float64)
    total = kernel.sum()
    if not (np.isfinite(total) and total > 0):
        raise ValueError(f"cannot normalise a kernel whose sum is {total:g}; a blur kernel needs a positive sum")
    return kernel / total


def pad_to_odd(kernel: np.ndarray) -> np.ndarray:
    """Pad every even-length axis with one zero slice at its end; return a float64 copy.

    For an even length ``n`` the origin used by :func:`scipy.ndimage.convolve` (and by FFT centring) is
    index ``n // 2``; appending a zero makes that index the middle of the new odd length ``n + 1``, so the
    blur the kernel describes is unchanged.
    """
    kernel = np.array(kernel, dtype=np.float64)
    widths = [(0, 1 if n % 2 == 0 else 0) for n in kernel.shape]
    return np.pad(kernel, widths) if any(w for _, w in widths) else kernel


def center_kernel(kernel: np.ndarray) -> np.ndarray:
    """Move the kernel's centre of mass to the middle pixel by an integer shift; return a float64 copy.

    With ``c_i = sum_p p_i k(p) / sum_p k(p)`` the centre of mass along axis ``i`` (after
    :func:`pad_to_odd`) and ``m_i = n_i // 2`` the middle, the kernel is zero-padded by ``2 |d_i|``
    slices, ``d_i = round(c_i) - m_i``, on the side that makes ``round(c_i)`` the new middle; then equal
    numbers of all-zero slices are removed from both ends. No interpolation is done (it would blur the
    kernel), so ``|c_i - m_i| <= 0.5`` px remains. Values are not normalised. Centring removes the
    translation a kernel would cause (the deblurred image is registered with the sharp one, not with the
    blurred one).

    Raises
    ------
    ValueError
        If the kernel does not have a positive finite sum.
    """
    kernel = pad_to_odd(kernel)
    total = kernel.sum()
    if not (np.isfinite(total) and total > 0):
        raise ValueError("cannot centre a kernel whose sum is not positive")
    widths = []
    for axis, n in enumerate(kernel.shape):
        other = tuple(a for a in range(kernel.ndim) if a != axis)
        profile = kernel.sum(axis=other) if other else kernel
        d = int(np.round((np.arange(n) * profile).sum() / total)) - n // 2
        widths.append((0, 2 * d) if d > 0 else (-2 * d, 0))
    return _trim_symmetric(np.pad(kernel, widths))


def from_correlation(kernel: np.ndarray) -> np.ndarray:
    """Convert a correlation-oriented kernel to convolution orientation (flip every axis); float64 copy.

    Correlating with ``k`` equals convolving with ``k`` rotated by 180 degrees (2D; all axes reversed in
    3D). Even-length axes are first padded to odd length (:func:`pad_to_odd`), so the flip keeps the
    middle pixel in place. Use it for kernels stored for MATLAB ``imfilter``/``filter2`` or
    :func:`scipy.ndimage.correlate`, e.g. the Levin et al. (2009) kernels. Applying it twice to an
    odd-sized kernel returns the original.
    """
    kernel = pad_to_odd(kernel)
    return np.ascontiguousarray(np.flip(kernel))


def validate_kernel(
    kernel: np.ndarray, image_shape: Sequence[int] | None = None, ndim: int | None = None
) -> np.ndarray:
    """Check a user kernel and return it as a float64, non-negative, odd-sized copy summing to 1.

    Steps: real numeric, non-empty; leading length-1 axes are dropped when ``ndim`` asks for fewer axes;
    2D or 3D (or exactly ``ndim``); finite; negatives down to ``-1e-6 * max`` are round-off and clipped to
    0, larger ones are an error; positive sum; :func:`pad_to_odd`; normalised to sum 1; not larger than the
    image's spatial axes (the last ``kernel.ndim`` axes of ``image_shape``). The kernel is not centred
    (see :func:`center_kernel`) and the input is never modified.

    Parameters
    ----------
    kernel : array_like
        The kernel, convolution-oriented.
    image_shape : sequence of int, optional
        Shape of the image it will blur or deblur.
    ndim : int, optional
        Required number of spatial axes (2 or 3). Default: 2 or 3 accepted.

    Returns
    -------
    numpy.ndarray
        A float64 copy, odd-sized, non-negative, summing to 1.

    Raises
    ------
    ValueError
        With a one-line message suitable for showing to a napari user.
    """
    k = np.asarray(kernel)
    if k.dtype == np.bool_:
        k = k.astype(np.float64)
    if np.iscomplexobj(k) or not np.issubdtype(k.dtype, np.number):
        raise ValueError(f"the kernel must be an array of real numbers, got dtype {k.dtype}")
    if k.size == 0:
        raise ValueError(f"the kernel is empty (shape {k.shape})")
    if ndim is not None:
        while k.ndim > ndim and k.shape[0] == 1:
            k = k[0]
        if k.ndim != ndim:
            raise ValueError(f"the kernel must be {ndim}D, got {k.ndim}D (shape {k.shape})")
    elif k.ndim not in (2, 3):
        raise ValueError(f"the kernel must be 2D (images) or 3D (volumes), got {k.ndim}D (shape {k.shape})")
    k = np.array(k, dtype=np.float64)  # a copy: the caller's array is never touched
    if not np.all(np.isfinite(k)):
        raise ValueError("the kernel contains NaN or infinite values")
    peak = float(k.max())
    low = float(k.min())
    if low < 0 and (peak <= 0 or -low > NEGATIVE_TOLERANCE * peak):
        share = f", {-low / peak:.2%} of the maximum" if peak > 0 else ""
        raise ValueError(f"the kernel has negative values (minimum {low:.3g}{share}); blur kernels must be >= 0")
    np.clip(k, 0.0, None, out=k)
    if not peak > 0:
        raise ValueError("the kernel sums to zero (all values are 0); a blur kernel needs a positive sum")
    k /= peak  # first to peak 1: the sum of huge values (1e308) would overflow to inf, tiny ones underflow
    k = pad_to_odd(k)
    k /= k.sum()
    if image_shape is not None:
        image_shape = tuple(int(n) for n in image_shape)
        if len(image_shape) < k.ndim:
            raise ValueError(f"a {k.ndim}D kernel needs an image with at least {k.ndim} axes, got shape {image_shape}")
        spatial = image_shape[-k.ndim :]
        if any(a > b for a, b in zip(k.shape, spatial)):
            raise ValueError(f"the kernel ({_shape_str(k.shape)}) is larger than the image ({_shape_str(spatial)})")
    return k


# ---------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------
def _is_candidate(value: object) -> bool:
    return (
        isinstance(value, np.ndarray)
        and value.dtype != object
        and (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_)
        and value.ndim in (2, 3)
        and value.size > 1
    )


def _pick_from_mat(contents: dict, key: str | None, index: int, name: str) -> np.ndarray:
    """The kernel in a loadmat dict: ``key`` or the first numeric 2D/3D variable, or a cell's element."""
    variables = {k: v for k, v in contents.items() if not k.startswith("__")}
    if key is not None:
        if key not in variables:
            raise ValueError(f"{name} has no variable {key!r} (variables: {', '.join(variables) or 'none'})")
        variables = {key: variables[key]}
    for value in variables.values():
        if isinstance(value, np.ndarray) and value.dtype == object:  # a MATLAB cell array
            cells = [c for c in value.ravel(order="F") if _is_candidate(c)]
            if cells:
                if not -len(cells) <= index < len(cells):
                    raise ValueError(f"index {index} is out of range: the cell in {name} holds {len(cells)} kernels")
                return cells[index]
        elif _is_candidate(value):
            # prefer proper 2D/3D arrays over row/column vectors (e.g. a stored 1 x N parameter list)
            if min(value.shape) > 1 or key is not None:
                return value
    vectors = [v for v in variables.values() if _is_candidate(v)]
    if vectors:
        return vectors[0]
    raise ValueError(f"{name} holds no numeric 2D or 3D array")


#: A 2D kernel file of at least :data:`_PICTURE_SIDE` px per side is taken for a picture when the level of its
#: edges, spread over the whole file, would carry this share of its mass: a blur kernel falls to about 0 at
#: its edges (photos score 0.6-1.3, the shared Levin and large kernels 0-0.11).
_PICTURE_EDGE_MASS = 0.4
_PICTURE_SIDE = 64


def _refuse_colour_picture(rgb: np.ndarray, name: str) -> None:
    """A kernel saved as colour has equal R, G and B; differing ones mean a photo (or a false-colour plot)."""
    channels = np.asarray(rgb[..., :3], dtype=np.float64)
    peak = float(np.max(channels)) if channels.size else 0.0
    spread = float(np.max(channels.max(axis=-1) - channels.min(axis=-1))) if channels.size else 0.0
    if peak > 0 and spread > 0.05 * peak:
        raise ValueError(
            f"{name} is a colour picture (its R, G and B differ), not a blur kernel; "
            "a kernel file holds a gray image of the blur (e.g. written by `crcnet kernel`)"
        )


def _refuse_picture(raw: np.ndarray, name: str) -> None:
    """Refuse a file far too large for a kernel, or a large one whose edges are as bright as a photo's."""
    shape = np.shape(raw)
    if shape and max(shape) > MAX_KERNEL_SIDE:
        raise ValueError(
            f"{name} is {_shape_str(shape)} px: too large for a blur kernel (at most {MAX_KERNEL_SIDE} px "
            "per side); is it an image rather than a kernel?"
        )
    k = np.asarray(raw)
    if k.ndim != 2 or min(k.shape) < _PICTURE_SIDE or not np.issubdtype(k.dtype, np.number):
        return
    k = k.astype(np.float64)
    total = float(np.sum(k))
    if not (np.isfinite(total) and total > 0):
        return  # validate_kernel says what is wrong
    edge = float(np.mean(np.concatenate([k[0], k[-1], k[1:-1, 0], k[1:-1, -1]])))
    share = edge * k.size / total
    if share >= _PICTURE_EDGE_MASS:
        raise ValueError(
            f"{name} looks like a photo, not a blur kernel: it is {_shape_str(k.shape)} px and the level of its "
            f"edges would carry {min(share, 1):.0%} of its mass (a kernel falls to about 0 at its edges; "
            "subtract a measured PSF's background first)"
        )


def load_kernel(
    path: str | os.PathLike,
    *,
    key: str | None = None,
    index: int = 0,
    correlation: bool = False,
    center: bool = False,
) -> np.ndarray:
    """Load a kernel or PSF from a file and validate it.

    Formats: ``.png``/``.jpg``/``.bmp`` (colour is averaged over R, G, B; alpha dropped), ``.tif``/``.tiff``
    (2D kernel or 3D ``(Z, Y, X)`` PSF; RGB TIFFs averaged), ``.npy``, ``.npz`` (``key`` or the first
    array), ``.mat`` (MATLAB v4-v7.2 via :func:`scipy.io.loadmat`: variable ``key`` or the first numeric
    2D/3D variable; a cell array gives its ``index``-th numeric element, MATLAB order). Nothing is
    unpickled. Integer images need no scaling: the kernel is normalised to sum 1.

    Parameters
    ----------
    path : str or path-like
        The file.
    key : str, optional
        ``.npz`` array name or ``.mat`` variable name.
    index : int
        Element of a MATLAB cell array (0-based).
    correlation : bool
        The file stores a correlation-oriented kernel: flip it (:func:`from_correlation`).
    center : bool
        Move its centre of mass to the middle pixel (:func:`center_kernel`).

    Returns
    -------
    numpy.ndarray
        The validated kernel (:func:`validate_kernel`): float64, odd-sized, non-negative, sum 1.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For an unsupported format, an unreadable file or an invalid kernel.
    """
    from .io import checked_suffix, read_image

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a kernel file")
    ext = checked_suffix(path, KERNEL_EXTENSIONS, kind="kernel")
    if not path.is_file():
        raise FileNotFoundError(f"no such kernel file: {path}")
    if ext == ".mat":
        import scipy.io

        try:
            contents = scipy.io.loadmat(path)
        except NotImplementedError as exc:  # scipy's message for v7.3 (HDF5) files
            raise ValueError(
                f"{path.name} is a MATLAB v7.3 (HDF5) file; re-save it with save(..., '-v7') or as .npy"
            ) from exc
        except Exception as exc:
            raise ValueError(f"could not read {path.name}: {exc}") from exc
        raw = _pick_from_mat(contents, key, index, path.name)
    else:
        raw = read_image(path, key=key) if ext == ".npz" else read_image(path)
        rgb = raw.ndim == 3 and raw.shape[-1] in (3, 4)
        if ext in (".tif", ".tiff") and rgb:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                rgb = tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
        if rgb and ext not in (".npy", ".npz"):
            _refuse_colour_picture(raw, path.name)
            raw = raw[..., :3].astype(np.float64).mean(axis=-1)
    _refuse_picture(raw, path.name)
    try:
        kernel = validate_kernel(raw)
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc
    if correlation:
        kernel = from_correlation(kernel)
    if center:
        kernel = normalize_kernel(center_kernel(kernel))
    return kernel


def save_kernel(path: str | os.PathLike, kernel: np.ndarray) -> Path:
    """Save a kernel; the extension picks the format; parent folders are created.

    ``.npy`` (float64 as given), ``.npz`` (array ``"kernel"``), ``.mat`` (variable ``kernel``, MATLAB v5),
    ``.tif``/``.tiff`` (float32, readable by Fiji), ``.png`` (16-bit, scaled so that the maximum is 65535:
    ``round(65535 k / max k)``; sum-1 normalisation is restored by :func:`load_kernel`). The values are
    saved as given (not normalised), the orientation is convolution.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    ext = path.suffix.lower()
    formats = (".npy", ".npz", ".mat", ".tif", ".tiff", ".png")
    if ext not in formats:
        raise ValueError(f"unsupported kernel format {ext or '(no extension)'!r}; use one of {', '.join(formats)}")
    k = np.asarray(kernel)
    if k.size == 0 or np.iscomplexobj(k) or not np.issubdtype(k.dtype, np.number):
        raise ValueError(f"cannot save: the kernel must be a non-empty real array (got {k.dtype}, {k.shape})")
    k = np.array(k, dtype=np.float64)
    if not np.all(np.isfinite(k)):
        raise ValueError("cannot save: the kernel contains NaN or infinite values")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".npy":
        np.save(path, k, allow_pickle=False)
    elif ext == ".npz":
        np.savez(path, kernel=k)
    elif ext == ".mat":
        import scipy.io

        scipy.io.savemat(path, {"kernel": k})
    elif ext in (".tif", ".tiff"):
        from .io import write_image

        write_image(path, k.astype(np.float32))
    else:
        if k.ndim != 2 or k.min() < 0 or not k.max() > 0:
            raise ValueError("cannot save as PNG: it holds a 2D kernel with values >= 0 and a positive maximum")
        from .io import write_image

        write_image(path, np.round(k / k.max() * 65535).astype(np.uint16))
    return path


# ---------------------------------------------------------------------------------------------------------
# text specs (CLI and widgets)
# ---------------------------------------------------------------------------------------------------------
KERNEL_SPEC_HELP = """\
A kernel is given as NAME:ARGS (comma separated numbers, optionally KEY=VALUE) or as a file path.
  gaussian:SIGMA                     isotropic Gaussian, sigma in pixels          e.g. gaussian:2
  gaussian:SIGMA_Y,SIGMA_X[,ANGLE]   anisotropic, rotated by ANGLE degrees (ccw)  e.g. gaussian:3,1.5,30
  disk:RADIUS                        anti-aliased defocus disk, radius in pixels  e.g. disk:4
  motion:LENGTH[,ANGLE]              linear motion, length in pixels, angle ccw   e.g. motion:15,30
                                     (no ANGLE: 0 degrees, a horizontal streak)
  shake:SIZE[,seed=N]                random camera shake (Chakrabarti 2016 style) e.g. shake:21,seed=3
  gaussian3d:SIGMA_XY,SIGMA_Z        3D Gaussian PSF (pixels, z steps)            e.g. gaussian3d:1.5,3
  widefield3d:SIZE_XY,SIZE_Z[,na=1.4,wavelength_um=0.52,pixel_um=0.1,z_step_um=0.2,refractive_index=1.518]
                                     scalar widefield PSF (also airy3d:)          e.g. widefield3d:31,21,na=1.2
  Every generator also takes size=N (odd). Angles are degrees counter-clockwise on screen from the +X axis.
  PATH                               a kernel file: .png .tif .npy .npz .mat (a gray image of the blur;
                                     normalised to sum 1; an even side gets one zero row/column at its
                                     end, which keeps scipy.ndimage's centre n // 2; a photo is refused)
Kernels are convolution-oriented, odd-sized, centred, non-negative and sum to 1."""

_SPEC_PARAMS: dict[str, tuple[object, tuple[str, ...]]] = {
    "gaussian": (gaussian_kernel, ("sigma", "sigma_x", "angle")),
    "disk": (disk_kernel, ("radius",)),
    "motion": (motion_kernel, ("length", "angle")),
    "shake": (random_motion_kernel, ("size", "seed")),
    "gaussian3d": (gaussian_psf_3d, ("sigma_xy", "sigma_z")),
    "widefield3d": (
        widefield_psf_3d,
        ("size_xy", "size_z", "na", "wavelength_um", "pixel_um", "z_step_um", "refractive_index"),
    ),
}
_SPEC_PARAMS["airy3d"] = _SPEC_PARAMS["widefield3d"]
_INT_PARAMS = {"size", "seed", "size_xy", "size_z"}


def _number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad kernel spec {spec!r}: {text!r} is not a number") from None


def kernel_from_spec(spec: str) -> np.ndarray:
    """Build a kernel from a short text spec (see :data:`KERNEL_SPEC_HELP`) or load it from a file path.

    Examples: ``"gaussian:2"``, ``"gaussian:3,1.5,30"`` (sigma_y=3, sigma_x=1.5, angle 30°), ``"disk:4"``,
    ``"motion:15,30"``, ``"shake:21,seed=3"``, ``"gaussian3d:1.5,3"``, ``"widefield3d:31,21,na=1.2"``,
    ``"motion:15,30,size=31"``, ``"kernels/k.png"``.

    Returns
    -------
    numpy.ndarray
        float64 kernel, odd-sized, non-negative, summing to 1 (files go through :func:`load_kernel`).

    Raises
    ------
    ValueError
        For an unknown name, a malformed argument or invalid parameters (the message includes a hint).
    FileNotFoundError
        For a path (a string with a kernel file extension) that does not exist.
    """
    text = str(spec).strip()
    name, sep, args = text.partition(":")
    name = name.strip().lower()
    if not sep or name not in _SPEC_PARAMS:
        if Path(text).suffix.lower() in KERNEL_EXTENSIONS or Path(text).exists():
            return load_kernel(text)
        known = ", ".join(_SPEC_PARAMS)
        raise ValueError(f"unknown kernel {text!r}: expected NAME:ARGS with NAME one of {known}, or a kernel file")
    func, names = _SPEC_PARAMS[name]
    positional: list[float] = []
    keywords: dict[str, float] = {}
    for part in (p.strip() for p in args.split(",")):
        if not part:
            continue
        if "=" in part:
            key, _, value = (s.strip() for s in part.partition("="))
            keywords[key.lower()] = _number(value, text)
        elif keywords:
            raise ValueError(f"bad kernel spec {text!r}: positional values must come before KEY=VALUE")
        else:
            positional.append(_number(part, text))
    if len(positional) > len(names):
        raise ValueError(f"bad kernel spec {text!r}: {name} takes at most {len(names)} values ({', '.join(names)})")
    params: dict[str, object] = dict(zip(names, positional))
    for key, value in keywords.items():
        if key in params:
            raise ValueError(f"bad kernel spec {text!r}: {key} given twice")
        params[key] = value
    allowed = set(names) | {"size"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"bad kernel spec {text!r}: unknown option {', '.join(sorted(unknown))} "
            f"(options: {', '.join(sorted(allowed))})"
        )
    for key in _INT_PARAMS & set(params):
        value = params[key]
        if float(value) != int(value):  # type: ignore[arg-type]
            raise ValueError(f"bad kernel spec {text!r}: {key} must be a whole number")
        params[key] = int(value)  # type: ignore[arg-type]
    if name == "gaussian":
        if "sigma" not in params:
            raise ValueError(f"bad kernel spec {text!r}: gaussian needs a sigma, e.g. gaussian:2")
        if "sigma_x" in params:
            params["sigma"] = (params["sigma"], params.pop("sigma_x"))
    required = {"disk": "radius", "motion": "length", "gaussian3d": "sigma_z"}.get(name)
    if required and required not in params:
        raise ValueError(f"bad kernel spec {text!r}: {name} needs {', '.join(names[: names.index(required) + 1])}")
    try:
        return func(**params)  # type: ignore[operator]
    except TypeError as exc:
        raise ValueError(f"bad kernel spec {text!r}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"bad kernel spec {text!r}: {exc}") from exc
