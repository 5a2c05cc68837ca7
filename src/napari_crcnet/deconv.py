"""Classical non-blind deconvolution: blur, MMSE (Wiener) and Iterative Residual Deconvolution (IRD).

Blur model (convolution, not correlation): ``b = k * x + n`` with ``k`` a kernel that is non-negative,
odd-sized, centred on its middle pixel and sums to 1, and ``n`` white Gaussian noise. ``H`` is the
convolution by ``k`` and ``K`` its transfer function; all Fourier bookkeeping (padding, boundaries,
transfer functions, forward ``H`` and adjoint ``H^T``) lives in :class:`napari_crcnet.operators.BlurOperator`.

MMSE (paper eq. 7 with ``Cx = I``)::

    X = conj(K) B / (|K|^2 + sigma)                     (prior=None)
    X = conj(K) B / (|K|^2 + sigma |L|^2)               (prior="laplacian", L the discrete Laplacian)

IRD (paper Algorithm 1), ``sigma' = 1 - sigma``, ``s = r = b``, ``N`` times ``r <- sigma' r - k*fx*k^- * r``,
``s <- s + r``, finally ``x = fx * k^- * s``. In Fourier space it is a geometric series: with
``q = sigma' - |K|^2 Fx``::

    X = Fx conj(K) (1 - q^(N+1)) / (1 - q) B            (the limit (N+1) Fx conj(K) B where q = 1)

and its ``n``-th term, the residue, is ``H^T (sigma' I - H H^T)^n b = Fx conj(K) q^n B``. For a kernel
summing to 1 and ``fx = delta``, ``-sigma <= q <= 1 - sigma``, so IRD converges to MMSE as ``N -> inf``.

Arrays: spatial axes last; the number of spatial axes is ``kernel.ndim`` (a 2D kernel on a ``(Z, Y, X)``
stack works slice-wise, a 3D kernel deconvolves volumes); colour via an explicit ``channel_axis``; other
leading axes are a batch. Integer input is scaled to [0, 1]; output is float32 (``dtype=np.float64``
for tests) of the input's shape; the input is never modified.

References
----------
H. C. Andrews and B. R. Hunt, *Digital Image Restoration*, Prentice-Hall, 1977.
The CRCNet paper (MMSE deconvolution, eqs. 5-11, and Algorithm 1, Iterative Residue Deconvolution).
J. Immerkaer, "Fast noise variance estimation", CVIU 64(2), 1996 (the noise estimator's mask).
"""

from __future__ import annotations

import math
import operator as _operator
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ._arrays import Layout, prepare, resolve_device
from ._progress import ProgressCallback, report
from .operators import DEFAULT_BOUNDARY, BlurOperator, get_operator

__all__ = [
    "blur",
    "estimate_noise",
    "ird",
    "ird_residues",
    "iter_ird_residues",
    "laplacian_stencil",
    "mmse",
    "suggest_sigma",
]

#: Real-grid elements processed per chunk (bounds memory for long stacks; ~16M samples).
_CHUNK_ELEMENTS = 1 << 24

#: Fourier responses (MMSE / IRD filters) of recent calls, keyed by operator, grid and parameters: re-running
#: with the same kernel and parameters (a widget working frame by frame, a parameter sweep over images) skips
#: rebuilding them. Entries hold a weak reference to their operator, so a new operator never hits a stale one.
_RESPONSE_CACHE: OrderedDict[tuple, tuple[weakref.ref, torch.Tensor]] = OrderedDict()
_RESPONSE_CACHE_SIZE = 8

# suggest_sigma rule, fitted by benchmarks/sigma_calibration.py (see benchmarks/results/sigma_calibration.md):
# best MMSE sigma (prior=None, taper boundary) ~= _SIGMA_COEF * noise_std ** _SIGMA_POWER, clipped.
_SIGMA_COEF = 1.652
_SIGMA_POWER = 1.006
_SIGMA_MIN = 1e-4
_SIGMA_MAX = 0.5
#: Model-error floor of the default sigma, as a noise std (see :func:`suggest_sigma`).
SIGMA_NOISE_FLOOR = 0.004


# --------------------------------------------------------------------------------------- helpers
def _torch_dtype(dtype: Any) -> torch.dtype:
    """torch.float64 for ``dtype=np.float64``, torch.float32 otherwise (float32 is the default)."""
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def _out_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be np.float32 or np.float64, not {dtype}")
    return dtype


def _validate_kernel(kernel: Any) -> np.ndarray:
    """Validated, normalised float64 copy of a convolution kernel (via :mod:`napari_crcnet.kernels`)."""
    from .kernels import validate_kernel  # imported at call time: kernels.py is pure NumPy

    return validate_kernel(kernel)


def _check_sigma(sigma: Any, upper: float | None = 1.0, name: str = "sigma") -> float:
    if isinstance(sigma, (bool, np.bool_)):  # float(True) is 1.0: a flag passed by mistake
        raise ValueError(f"{name} must be a number, not {sigma!r}")
    try:
        value = float(sigma)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a number, not {sigma!r}") from error
    if not math.isfinite(value) or value <= 0 or (upper is not None and value > upper):
        bound = f"(0, {upper}]" if upper is not None else "(0, inf)"
        raise ValueError(f"{name} must be in {bound}, got {sigma!r}")
    return value


#: Most IRD iterations (and largest residue index) accepted: the expansion converges long before.
MAX_ITERATIONS = 10**9
#: Most residue indices one range ``A-B`` of :func:`parse_indices` may hold.
MAX_RANGE = 10_000


def _check_count(n: Any, name: str) -> int:
    if isinstance(n, (bool, np.bool_)):
        raise ValueError(f"{name} must be a non-negative integer, not {n!r}")
    try:
        value = _operator.index(n)
    except TypeError as error:
        raise ValueError(f"{name} must be a non-negative integer, not {n!r}") from error
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}")
    if value > MAX_ITERATIONS:
        raise ValueError(f"{name} must be at most {MAX_ITERATIONS:,} (IRD has long converged), got {value:.3g}")
    return int(value)


def parse_indices(text: str) -> list[int]:
    """Residue indices typed by a user (CLI ``--residues``, the Deblur widget): ``"0, 1, 2, 5-8, 50"`` ->
    ``[0, 1, 2, 5, 6, 7, 8, 50]`` (sorted, unique, non-negative; ``;`` also separates, ``A-B`` is a range of at
    most :data:`MAX_RANGE` indices).

    Raises
    ------
    ValueError
        For anything else, with an example of what is accepted.
    """
    example = "e.g. '0, 1, 2, 5, 10, 50' or '0-20'"
    values: set[int] = set()
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            first, last = (int(p) for p in part.split("-", 1)) if "-" in part[1:] else (int(part), int(part))
        except ValueError:
            raise ValueError(f"not a list of residue indices: {text!r} ({example})") from None
        if first < 0 or last < first:
            raise ValueError(f"residue indices must be >= 0 and ranges A-B have A <= B, got {part!r}")
        if last - first >= MAX_RANGE:
            raise ValueError(f"the range {part!r} holds more than {MAX_RANGE:,} residue indices")
        values.update(range(_check_count(first, "a residue index"), _check_count(last, "a residue index") + 1))
    if not values:
        raise ValueError(f"give at least one residue index n ({example})")
    return sorted(values)


def _check_finite(values: torch.Tensor) -> None:
    """Raise the image's non-finite error when any of ``values`` (sums or DC terms) is NaN or infinite."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError("the image contains NaN or infinite values (or values too large to transform)")


class _Problem:
    """An image turned into a ``(B*C, *spatial)`` batch with its operator, ready for Fourier filters."""

    def __init__(
        self,
        image: Any,
        kernel: Any,
        channel_axis: int | None,
        boundary: str,
        device: Any,
        dtype: Any,
    ) -> None:
        self.out_dtype = _out_dtype(dtype)
        self.kernel = _validate_kernel(kernel)
        # No copy and no finiteness pass here: the batch is only read (it may be a view of the caller's
        # array), and non-finite pixels are caught for free on each spectrum (see `spectrum`).
        batch, layout = prepare(
            image, channel_axis, self.kernel.ndim, dtype=self.out_dtype, copy=False, check_finite=False
        )
        self.layout: Layout = layout
        self.spatial = tuple(layout.spatial_shape)
        self.batch = batch.reshape((-1, *self.spatial))  # (B*C, *spatial), read-only by convention
        self.operator: BlurOperator = get_operator(
            self.kernel, boundary, resolve_device(device), _torch_dtype(self.out_dtype)
        )
        self.operator.check_shape(self.spatial)
        self.grid = self.operator.padded_shape(self.spatial)

    @property
    def chunk(self) -> int:
        """Number of images processed together (bounded so memory does not grow with the stack)."""
        return max(1, _CHUNK_ELEMENTS // int(np.prod(self.grid)))

    def chunks(self) -> Iterator[slice]:
        for start in range(0, self.batch.shape[0], self.chunk):
            yield slice(start, min(start + self.chunk, self.batch.shape[0]))

    def _load(self, part: slice | None) -> torch.Tensor:
        """The images ``part`` of the batch on the operator's device, sharing the input's memory on the CPU
        where it can: never write into it."""
        array = self.batch if part is None else self.batch[part]
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.operator.device)

    def tensor(self, part: slice | None = None) -> torch.Tensor:
        """The images ``part`` of the batch as a tensor on the operator's device (checked finite; read only)."""
        tensor = self._load(part)
        _check_finite(tensor.sum(dim=tuple(range(1, tensor.ndim))))
        return tensor

    def spectrum(self, part: slice | None = None) -> torch.Tensor:
        """``rfftn(P b)`` of the images ``part`` on the FFT grid, in the operator's dtype (checked finite).

        Finiteness costs nothing here: the zero-frequency term is the sum of the extended image, which
        is non-finite when any pixel is (or when the values are so large that the transform overflows).
        """
        spectrum = self.operator.to_fourier(self._load(part))
        _check_finite(spectrum[(Ellipsis, *([0] * len(self.spatial)))])
        return spectrum

    def finish(self, out: np.ndarray) -> np.ndarray:
        """``(B*C, *spatial)`` result back to the input's shape, in the output dtype."""
        batch_shape = (self.layout.batch_size, self.layout.channels, *self.spatial)
        return np.ascontiguousarray(self.layout.from_batch(out.reshape(batch_shape)), dtype=self.out_dtype)

    def apply(self, response: torch.Tensor, progress: ProgressCallback | None = None) -> np.ndarray:
        """``S irfftn(response * rfftn(P b))`` for every image of the batch; returns the input-shaped array."""
        parts = list(self.chunks())
        out = None if len(parts) == 1 else np.empty(self.batch.shape, dtype=self.out_dtype)
        for i, part in enumerate(parts):
            spectrum = self.spectrum(part)
            spectrum.mul_(response)  # in place: one grid-sized complex buffer less per call
            result = self.operator.from_fourier(spectrum, self.spatial).cpu().numpy()
            if out is None:
                out = result  # a single chunk: no extra copy
            else:
                out[part] = result
            report(progress, i + 1, len(parts))
        return self.finish(out)

    def response(self, key: tuple, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The Fourier response ``build()`` on this grid, from a small LRU cache keyed by ``key``."""
        full = (id(self.operator), self.grid, *key)
        entry = _RESPONSE_CACHE.get(full)
        if entry is not None and entry[0]() is self.operator:
            _RESPONSE_CACHE.move_to_end(full)
            return entry[1]
        response = build()
        _RESPONSE_CACHE[full] = (weakref.ref(self.operator), response)
        while len(_RESPONSE_CACHE) > _RESPONSE_CACHE_SIZE:
            _RESPONSE_CACHE.popitem(last=False)
        return response

    def transfer_of(self, stencil: np.ndarray) -> torch.Tensor:
        """Transfer function of another (centred, odd-sized) stencil on this problem's FFT grid."""
        op = get_operator(stencil, self.operator.boundary, self.operator.device, self.operator.dtype)
        return op.transfer(self.grid)


def laplacian_stencil(ndim: int = 2) -> np.ndarray:
    """The discrete Laplacian stencil (``[[0,1,0],[1,-4,1],[0,1,0]]`` in 2D, 7-point in 3D)."""
    stencil = np.zeros((3,) * ndim)
    centre = (1,) * ndim
    stencil[centre] = -2.0 * ndim
    for axis in range(ndim):
        for offset in (0, 2):
            index = list(centre)
            index[axis] = offset
            stencil[tuple(index)] = 1.0
    return stencil


def _check_fx(fx: Any, ndim: int) -> np.ndarray | None:
    if fx is None:
        return None
    array = np.asarray(fx, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"fx must have the kernel's number of axes ({ndim}), not {array.ndim}")
    if array.size == 0 or any(n % 2 == 0 for n in array.shape):
        raise ValueError(f"fx must be odd-sized and centred, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("fx contains NaN or infinite values")
    return array


def _fx_transfer(problem: _Problem, fx: np.ndarray | None) -> torch.Tensor | None:
    """``Fx`` on the grid: real when ``fx`` is point-symmetric (the usual case), complex otherwise."""
    if fx is None:
        return None
    Fx = problem.transfer_of(fx)
    if float(Fx.imag.abs().max()) <= 1e-6 * max(float(Fx.abs().max()), 1e-30):
        return Fx.real.contiguous()
    return Fx


def _geometric_sum(q: torch.Tensor, d: torch.Tensor, terms: int) -> torch.Tensor:
    """``sum_{m=0}^{terms-1} q^m = (1 - q^terms) / (1 - q)`` with ``d = 1 - q`` passed exactly.

    Where ``0 < q < 1`` (the usual case) ``1 - q^terms = -expm1(terms log1p(-d))`` avoids the cancellation
    of ``1 - q^terms`` when ``q`` is close to 1 (tiny sigma, float32). Where ``d == 0`` the limit is
    ``terms``.
    """
    if terms == 0:
        return torch.zeros_like(d)
    safe = torch.where(d == 0, torch.ones_like(d), d)
    if q.is_complex():
        numerator = 1 - torch.pow(q, terms)
    else:
        positive = q > 0
        # q > 0 means d < 1 up to round-off: clamp so log1p never sees -1 - eps
        stable = -torch.expm1(terms * torch.log1p(-torch.where(positive, d.clamp(max=1.0), torch.zeros_like(d))))
        numerator = torch.where(positive, stable, 1 - torch.pow(q, terms))
    return torch.where(d == 0, torch.full_like(numerator, float(terms)), numerator / safe)


def _ird_terms(problem: _Problem, sigma: float, Fx: torch.Tensor | None) -> tuple:
    """``(A, q, d)`` with ``A = Fx conj(K)``, ``q = sigma' - |K|^2 Fx`` and ``d = 1 - q = sigma + |K|^2 Fx``."""
    K = problem.operator.transfer(problem.grid)
    power = K.real**2 + K.imag**2
    if Fx is None:
        return K.conj(), (1.0 - sigma) - power, sigma + power
    return Fx * K.conj(), (1.0 - sigma) - power * Fx, sigma + power * Fx


def _default_sigma(image: Any, channel_axis: int | None, upper: float | None = 1.0) -> float:
    sigma = suggest_sigma(estimate_noise(image, channel_axis=channel_axis))
    return sigma if upper is None else min(sigma, upper)


# ------------------------------------------------------------------------------------------ blur
def blur(
    image: Any,
    kernel: Any,
    *,
    noise: float = 0.0,
    seed: int | None = None,
    channel_axis: int | None = None,
    boundary: str = "reflect",
    device: Any = "auto",
    dtype: Any = np.float32,
) -> np.ndarray:
    """Blur an image and optionally add white Gaussian noise: ``b = k * x + noise * n``, ``n ~ N(0, 1)``.

    Parameters
    ----------
    image : array_like
        Sharp image ``x``, spatial axes last; integers are scaled to [0, 1].
    kernel : array_like
        Convolution kernel (2D, or 3D for volumes); normalised to sum 1 by validation.
    noise : float
        Standard deviation of the added Gaussian noise, in [0, 1] image units (0.01 = 1 %).
    seed : int, optional
        Seed of the noise generator (``numpy.random.default_rng``).
    channel_axis : int, optional
        Colour axis (None: gray). Channels and leading axes are never blurred across.
    boundary : {"reflect", "periodic", "taper"}
        How the image is extended; ``"reflect"`` equals ``scipy.ndimage.convolve(x, k, mode="reflect")``,
        ``"periodic"`` is the circular convolution.
    device, dtype
        Torch device (``"auto"``) and output dtype (float32 or float64).

    Returns
    -------
    numpy.ndarray
        Blurred (noisy) image, same shape as ``image``, float32 (not clipped).
    """
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}")
    problem = _Problem(image, kernel, channel_axis, boundary, device, dtype)
    K = problem.operator.transfer(problem.grid)
    out = problem.apply(K)
    if noise > 0:
        rng = np.random.default_rng(seed)
        out = out + (noise * rng.standard_normal(out.shape)).astype(out.dtype)
    return out


# ------------------------------------------------------------------------------------------ MMSE
def mmse(
    image: Any,
    kernel: Any,
    sigma: float | None = None,
    *,
    prior: str | None = None,
    channel_axis: int | None = None,
    boundary: str = DEFAULT_BOUNDARY,
    device: Any = "auto",
    dtype: Any = np.float32,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """MMSE (Wiener) deconvolution, the paper's closed form with ``Cx = I``.

    ``X = conj(K) B / (|K|^2 + sigma)``; with ``prior="laplacian"``
    ``X = conj(K) B / (|K|^2 + sigma |L|^2)`` where ``L`` is the transfer function of the discrete
    Laplacian (:func:`laplacian_stencil`), a smoothness prior that keeps the mean (``L(0) = 0``).

    Parameters
    ----------
    image : array_like
        Blurred image ``b`` (spatial axes last; integers scaled to [0, 1]).
    kernel : array_like
        Convolution kernel, 2D or 3D (``kernel.ndim`` spatial axes).
    sigma : float, optional
        Noise-to-signal balance (> 0). None: ``suggest_sigma(estimate_noise(image))``.
    prior : {None, "laplacian"}
        Regulariser ``Cx^-1``: identity (the paper) or the squared Laplacian.
    channel_axis, boundary, device, dtype, progress
        See :mod:`napari_crcnet.deconv`; ``progress(done, total)`` is called per chunk of images.

    Returns
    -------
    numpy.ndarray
        Deconvolved image, same shape as ``image``, float32.
    """
    if prior not in (None, "laplacian"):
        raise ValueError(f"prior must be None or 'laplacian', not {prior!r}")
    problem = _Problem(image, kernel, channel_axis, boundary, device, dtype)
    sigma = _default_sigma(image, channel_axis, None) if sigma is None else _check_sigma(sigma, None)

    def build() -> torch.Tensor:
        K = problem.operator.transfer(problem.grid)
        power = K.real**2 + K.imag**2
        if prior == "laplacian":
            L = problem.transfer_of(laplacian_stencil(problem.kernel.ndim))
            return K.conj() / (power + sigma * (L.real**2 + L.imag**2))
        return K.conj() / (power + sigma)

    return problem.apply(problem.response(("mmse", prior, sigma), build), progress)


# ------------------------------------------------------------------------------------------- IRD
def ird(
    image: Any,
    kernel: Any,
    sigma: float | None = None,
    n_iter: int = 100,
    *,
    fx: Any = None,
    method: str = "closed_form",
    channel_axis: int | None = None,
    boundary: str = DEFAULT_BOUNDARY,
    device: Any = "auto",
    dtype: Any = np.float32,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Iterative Residual Deconvolution (paper Algorithm 1) with ``n_iter = N`` iterations.

    ``method="closed_form"`` evaluates the whole loop as a geometric series in Fourier space at the cost
    of one MMSE (two FFTs per image, whatever ``N``)::

        q = (1 - sigma) - |K|^2 Fx,   X = Fx conj(K) (1 - q^(N+1)) / (1 - q) B

    (the exact limit ``(N + 1) Fx conj(K) B`` where ``q = 1``). The image is extended once by the
    operator's boundary mode, the series runs on that grid, and the result is cropped.

    ``method="iterative"`` runs the literal loop with spatial convolutions, ``H`` and ``H^T`` being the
    operator's :meth:`~BlurOperator.forward` and :meth:`~BlurOperator.adjoint`::

        r = s = b;  N times: r <- (1 - sigma) r - H Cx H^T r;  s <- s + r;  x = Cx H^T s

    With ``boundary="periodic"`` both methods are the same linear map (to round-off). With other
    boundaries the loop applies the exact non-periodic ``H = S A P`` every iteration while the closed
    form extends once; both are valid, they differ near the borders.

    Parameters
    ----------
    image, kernel
        Blurred image ``b`` and convolution kernel (see :func:`mmse`).
    sigma : float, optional
        Noise strength in (0, 1]; ``sigma' = 1 - sigma``. None: ``suggest_sigma(estimate_noise(image))``.
    n_iter : int
        Number of iterations ``N >= 0`` (``N = 0`` gives ``Cx H^T b``).
    fx : array_like, optional
        Prior patch ``fx`` (``Cx`` = convolution by ``fx``), odd-sized, centred, ``kernel.ndim`` axes;
        default the delta (``Cx = I``).
    method : {"closed_form", "iterative"}
    channel_axis, boundary, device, dtype, progress
        See :func:`mmse`; the iterative method reports ``progress`` every iteration.

    Returns
    -------
    numpy.ndarray
        Restored image, same shape as ``image``, float32.
    """
    if method not in ("closed_form", "iterative"):
        raise ValueError(f"method must be 'closed_form' or 'iterative', not {method!r}")
    n_iter = _check_count(n_iter, "n_iter")
    problem = _Problem(image, kernel, channel_axis, boundary, device, dtype)
    sigma = _default_sigma(image, channel_axis) if sigma is None else _check_sigma(sigma)
    fx = _check_fx(fx, problem.kernel.ndim)
    if method == "closed_form":

        def build() -> torch.Tensor:
            A, q, d = _ird_terms(problem, sigma, _fx_transfer(problem, fx))
            return A * _geometric_sum(q, d, n_iter + 1)

        fx_key = None if fx is None else (fx.shape, fx.tobytes())
        return problem.apply(problem.response(("ird", sigma, n_iter, fx_key), build), progress)
    return _ird_iterative(problem, sigma, n_iter, fx, progress)


def _ird_iterative(
    problem: _Problem, sigma: float, n_iter: int, fx: np.ndarray | None, progress: ProgressCallback | None
) -> np.ndarray:
    """The literal Algorithm 1 on every chunk of the batch (``progress`` after every iteration)."""
    op = problem.operator
    fx_op = None if fx is None else get_operator(fx, op.boundary, op.device, op.dtype)

    def prior(x: torch.Tensor) -> torch.Tensor:  # Cx x = fx * x
        return x if fx_op is None else fx_op.forward(x)

    out = np.empty(problem.batch.shape, dtype=problem.out_dtype)
    parts = list(problem.chunks())
    total = max(1, n_iter) * len(parts)
    for c, part in enumerate(parts):
        b = problem.tensor(part).to(op.dtype)
        r = b.clone()
        s = b.clone()
        for i in range(n_iter):
            r = (1.0 - sigma) * r - op.forward(prior(op.adjoint(r)))
            s = s + r
            report(progress, c * max(1, n_iter) + i + 1, total)
        out[part] = prior(op.adjoint(s)).cpu().numpy()
        if n_iter == 0:
            report(progress, c + 1, total)
    return problem.finish(out)


def iter_ird_residues(
    image: Any,
    kernel: Any,
    sigma: float | None,
    ns: Iterable[int],
    *,
    fx: Any = None,
    channel_axis: int | None = None,
    boundary: str = DEFAULT_BOUNDARY,
    device: Any = "auto",
    dtype: Any = np.float32,
    progress: ProgressCallback | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(n, residue_n, partial_sum_n)`` for each requested ``n``, in the order given.

    ``residue_n = Cx H^T (sigma' I - H Cx H^T)^n b = Fx conj(K) q^n B`` (the paper's Fig. 3 components) and
    ``partial_sum_n = sum_{m=0}^{n} residue_m = ird(b, k, sigma, n)``, the IRD estimate after ``n``
    iterations (all terms ``0..n`` are summed, in closed form, whichever ``n`` are asked for).

    One FFT of ``b`` is taken up front; each step costs two inverse FFTs and holds only one residue and
    one partial sum in memory, so long lists of ``n`` stay memory-bounded. Boundaries as in the closed
    form of :func:`ird` (extend once, crop).

    Parameters
    ----------
    image, kernel, sigma, fx, channel_axis, boundary, device, dtype
        As for :func:`ird` (sigma in (0, 1]; None: ``suggest_sigma(estimate_noise(image))``).
    ns : iterable of int
        Non-negative iteration indices.
    progress : callable, optional
        ``progress(done, len(ns))`` after each yielded ``n``; raising ``Cancelled`` stops the generator.

    Yields
    ------
    (int, numpy.ndarray, numpy.ndarray)
        ``n``, the residue and the partial sum, each float32 of the input's shape.
    """
    ns = [_check_count(n, "every n in ns") for n in ns]
    if not ns:
        raise ValueError("ns must contain at least one iteration index")
    problem = _Problem(image, kernel, channel_axis, boundary, device, dtype)
    sigma = _default_sigma(image, channel_axis) if sigma is None else _check_sigma(sigma)
    A, q, d = _ird_terms(problem, sigma, _fx_transfer(problem, _check_fx(fx, problem.kernel.ndim)))
    op = problem.operator
    spectrum = problem.spectrum()
    for i, n in enumerate(ns):
        residue = op.from_fourier(A * torch.pow(q, n) * spectrum, problem.spatial).cpu().numpy()
        partial = op.from_fourier(A * _geometric_sum(q, d, n + 1) * spectrum, problem.spatial).cpu().numpy()
        report(progress, i + 1, len(ns))
        yield n, problem.finish(residue), problem.finish(partial)


def ird_residues(
    image: Any, kernel: Any, sigma: float | None, ns: Iterable[int], **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """All of :func:`iter_ird_residues` at once: ``(residues, partial_sums)``, stacked on a new axis 0.

    Both arrays have shape ``(len(ns), *image.shape)``, in the order of ``ns``; ``options`` are the
    keyword options of :func:`iter_ird_residues`.
    """
    residues, partials = [], []
    for _, residue, partial in iter_ird_residues(image, kernel, sigma, ns, **options):
        residues.append(residue)
        partials.append(partial)
    return np.stack(residues), np.stack(partials)


# ----------------------------------------------------------------------------------------- noise
#: Immerkaer's mask: the difference of two Laplacians; annihilates constants, ramps and separable quadrics.
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_MAD_TO_STD = 1.482602218505602  # 1 / Phi^-1(3/4): std of a Gaussian from its median absolute deviation


def estimate_noise(image: Any, channel_axis: int | None = None) -> float:
    """Estimate the standard deviation of additive white Gaussian noise, in [0, 1] image units.

    Each 2D plane is filtered with Immerkaer's 3x3 mask ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` (which removes
    smooth image content; white noise of std ``s`` gives a response of std ``6 s``) and the noise is the
    robust median-absolute-deviation estimate ``1.4826 * median(|r|) / 6`` over the valid pixels.
    Pixels whose 3x3 window is flat (zero range: empty background, clipped plateaus) or touches a
    saturated value (the image minimum/maximum when more than 0.5 % of the pixels sit there) are skipped,
    because clipping removes the noise there.

    Parameters
    ----------
    image : array_like
        Image with at least 2 axes (spatial last); integers scaled to [0, 1].
    channel_axis : int, optional
        Colour axis; all planes and channels are pooled.

    Returns
    -------
    float
        Estimated noise standard deviation (0.0 for a noise-free constant image).
    """
    batch, _ = prepare(image, channel_axis, 2, dtype=np.float64)
    planes = batch.reshape((-1, *batch.shape[-2:]))
    if planes.shape[-1] < 3 or planes.shape[-2] < 3:
        raise ValueError(f"the image is too small to estimate noise (spatial shape {planes.shape[-2:]})")
    h, w = planes.shape[-2:]
    response = np.zeros((planes.shape[0], h - 2, w - 2))
    low = np.full_like(response, np.inf)
    high = np.full_like(response, -np.inf)
    for dy in range(3):
        for dx in range(3):
            window = planes[:, dy : dy + h - 2, dx : dx + w - 2]
            response += _IMMERKAER[dy, dx] * window
            np.minimum(low, window, out=low)
            np.maximum(high, window, out=high)
    valid = high > low
    lowest, highest = planes.min(), planes.max()
    for value, touches in ((lowest, low <= lowest), (highest, high >= highest)):
        if np.mean(planes == value) > 0.005:
            valid &= ~touches
    values = np.abs(response[valid]) if np.count_nonzero(valid) >= 16 else np.abs(response).ravel()
    return float(_MAD_TO_STD * np.median(values) / 6.0)


def suggest_sigma(noise_std: float, floor: float | None = None) -> float:
    """MMSE/IRD ``sigma`` for a noise level: ``sigma = 1.652 * n ** 1.006`` with ``n = max(noise_std, floor)``,
    clipped to [1e-4, 0.5].

    Nearly linear in the noise std (about ``1.65 * noise``). The constants were fitted by
    ``benchmarks/sigma_calibration.py``: best-PSNR MMSE sigma (taper boundary) on BSDS500 training images
    blurred with random camera-shake and Gaussian kernels, 6 images x 4 kernels x 7 noise levels from
    0.2 % to 8 %, log-log least squares on the median best sigma per level; the rule loses 0.2-0.3 dB on
    average against the per-image best sigma (``benchmarks/results/sigma_calibration.md``). ``noise_std``
    is in [0, 1] image units; the lower clip keeps the filter stable on noise-free (quantised) data.

    ``floor`` (same units) stands for the model error that the noise level does not show: a measured
    kernel, 8-bit quantisation, a camera curve. None uses :data:`SIGMA_NOISE_FLOOR`, measured on real
    captures (``benchmarks/results/noise_floor.md``); 0 gives the pure noise rule.
    """
    noise = float(noise_std)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    noise = max(noise, SIGMA_NOISE_FLOOR if floor is None else float(floor))
    if noise == 0:
        return _SIGMA_MIN
    return float(min(max(_SIGMA_COEF * noise**_SIGMA_POWER, _SIGMA_MIN), _SIGMA_MAX))
