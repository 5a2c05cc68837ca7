"""The blur operator: one place for padding, transfer functions, forward ``H x`` and adjoint ``H^T y``.

The blur model is ``b = k * x + n`` (``*`` is convolution, not correlation). Written as a matrix, ``H`` is
the convolution by ``k`` and ``H^T`` the convolution by the flipped kernel ``k^-`` (the correlation by
``k``). In Fourier space, on a periodic grid, ``H`` multiplies by the transfer function ``K`` (the FFT of
the kernel zero-padded to the grid and circularly shifted so that its centre pixel sits at the origin) and
``H^T`` by ``conj(K)``.

Real images are not periodic. The ``boundary`` mode says how the image is extended before the FFT:

``"periodic"``
    no extension: the image wraps around (exact for circularly blurred data, rings on real photos).
``"reflect"``
    mirror-symmetric extension (edge pixel repeated) by the kernel size on each side.
``"taper"``
    mirror extension, then a raised-cosine fade of the extension towards the image mean, so the
    periodic continuation is smooth and the edges ring least.

Each mode is a linear map ``P`` (extend), so the operator is ``H = S A P`` with ``A`` the circular
convolution on the extended grid and ``S`` the crop back to the image; its exact adjoint is
``H^T = P^T A^T S^T``. :class:`BlurOperator` implements both and a Fourier filter helper that MMSE, IRD and
the residues are built from. :class:`CompactBlur` computes the same ``H`` and ``H^T`` on the smallest grid
they need (the image and the kernel's reach around it), for iterative methods such as Richardson-Lucy.
Tensors are ``(..., *spatial)`` with 2 or 3 trailing spatial axes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._arrays import resolve_device

if TYPE_CHECKING:
    import torch

BOUNDARIES = ("periodic", "reflect", "taper")
DEFAULT_BOUNDARY = "taper"


def fast_fft_length(n: int) -> int:
    """Smallest integer >= n whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    best = n
    while True:
        m = best
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return best
        best += 1


def _symmetric_index(n: int, before: int, after: int) -> np.ndarray:
    """Source index of every sample of a mirror-extended axis (edge repeated), valid for any pad width."""
    return np.pad(np.arange(n), (before, after), mode="symmetric")


def _raised_cosine_window(n: int, before: int, after: int) -> np.ndarray:
    """1 on the ``n`` image samples, falling as a raised cosine to 0 across each pad, of length n+before+after."""
    window = np.ones(n + before + after)
    if before:
        t = (np.arange(before) + 0.5) / before  # 0 -> 1 towards the image
        window[:before] = 0.5 - 0.5 * np.cos(np.pi * t)
    if after:
        t = (np.arange(after)[::-1] + 0.5) / after
        window[n + before :] = 0.5 - 0.5 * np.cos(np.pi * t)
    return window


class BlurOperator:
    """Convolution by a fixed kernel on 2D images or 3D volumes, with boundary handling.

    Parameters
    ----------
    kernel : array_like
        The blur kernel ``k``, 2D (images) or 3D (volumes), oriented for convolution and centred on its
        middle pixel (index ``size // 2`` along each axis). It is used as given (no normalisation):
        validate user kernels with :func:`napari_crcnet.kernels.validate_kernel` first.
    boundary : {"periodic", "reflect", "taper"}
        How images are extended before the FFT (see the module docstring).
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``...
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.float64``.

    Notes
    -----
    Tensors passed to :meth:`forward`, :meth:`adjoint` and :meth:`filter` have shape ``(..., *spatial)``
    where ``spatial`` has ``kernel.ndim`` axes. Transfer functions are cached per padded grid shape.
    """

    def __init__(
        self,
        kernel: Any,
        boundary: str = DEFAULT_BOUNDARY,
        device: Any = "auto",
        dtype: torch.dtype | None = None,
    ) -> None:
        import torch

        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, not {boundary!r}")
        kernel = np.asarray(kernel, dtype=np.float64)
        if kernel.ndim not in (2, 3):
            raise ValueError(f"the kernel must be 2D or 3D, not {kernel.ndim}D")
        self.kernel = kernel
        self.boundary = boundary
        self.device = resolve_device(device)
        self.dtype = torch.float32 if dtype is None else dtype
        self.ndim = kernel.ndim
        self._transfer_cache: dict[tuple[int, ...], torch.Tensor] = {}
        self._pad_cache: dict[tuple[int, ...], tuple] = {}

    # ----------------------------------------------------------------------------------- geometry
    def pad_widths(self, shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """``(before, after)`` extension of each spatial axis for an image of spatial ``shape``.

        Periodic: none. Reflect/taper: the kernel size on each side, the far side rounded up to a fast
        FFT length.
        """
        if self.boundary == "periodic":
            return tuple((0, 0) for _ in shape)
        widths = []
        for n, k in zip(shape, self.kernel.shape):
            before = k
            total = fast_fft_length(n + 2 * k)
            widths.append((before, total - n - before))
        return tuple(widths)

    def padded_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial shape of the FFT grid used for an image of spatial ``shape``."""
        return tuple(n + b + a for n, (b, a) in zip(shape, self.pad_widths(shape)))

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError when the kernel is larger than the image along any axis."""
        if any(k > n for k, n in zip(self.kernel.shape, shape)):
            raise ValueError(
                f"the kernel ({'x'.join(map(str, self.kernel.shape))}) is larger than the image "
                f"({'x'.join(map(str, shape))})"
            )

    def _spatial(self, x: torch.Tensor) -> tuple[int, ...]:
        if x.ndim < self.ndim:
            raise ValueError(f"expected at least {self.ndim} axes, got shape {tuple(x.shape)}")
        return tuple(x.shape[-self.ndim :])

    def _padding_plan(self, shape: tuple[int, ...]) -> tuple:
        """Cached index arrays and taper window for extending an image of spatial ``shape``."""
        import torch

        if shape not in self._pad_cache:
            widths = self.pad_widths(shape)
            indices = [
                torch.as_tensor(_symmetric_index(n, b, a), device=self.device) for n, (b, a) in zip(shape, widths)
            ]
            window = self.taper_window(shape) if self.boundary == "taper" else None
            self._pad_cache[shape] = (widths, indices, window)
        return self._pad_cache[shape]

    def taper_window(self, shape: tuple[int, ...], margins: tuple[int, ...] | None = None) -> torch.Tensor:
        """The taper mode's window ``w`` (``P x = w M x + (1 - w) mean(x)``, ``M`` the mirror extension) on
        the FFT grid of an image of spatial ``shape``: the product of one raised cosine per axis.

        With ``margins`` (one per axis, each at most that axis's pad width) only the part within ``margins``
        pixels of the image is returned, with the same values.
        """
        import torch

        widths = self.pad_widths(shape)
        window = torch.ones((), dtype=self.dtype, device=self.device)
        for axis, (n, (b, a)) in enumerate(zip(shape, widths)):
            w = _raised_cosine_window(n, b, a)
            if margins is not None:
                w = w[b - margins[axis] : b + n + margins[axis]]
            view = [1] * self.ndim
            view[axis] = -1
            window = window * torch.as_tensor(w, dtype=self.dtype, device=self.device).reshape(view)
        return window

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Extend ``x`` (``..., *spatial``) onto the FFT grid according to the boundary mode (``P x``)."""
        shape = self._spatial(x)
        if self.boundary == "periodic":
            return x
        widths, indices, window = self._padding_plan(shape)
        out = x
        for axis, (index, (before, after)) in enumerate(zip(indices, widths)):
            dim = x.ndim - self.ndim + axis
            n = shape[axis]
            if before <= n and after <= n:  # mirror by slicing: ~10x faster than a gather
                mirrored = [out.narrow(dim, 0, before).flip(dim), out, out.narrow(dim, n - after, after).flip(dim)]
                out = torch_cat(mirrored, dim)
            else:  # pads wider than the image reflect more than once: gather by index
                out = out.index_select(dim, index)
        if window is not None:
            dims = tuple(range(-self.ndim, 0))
            mean = x.mean(dim=dims, keepdim=True)
            out = window * out + (1 - window) * mean
        return out

    def pad_adjoint(self, y: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Adjoint of :meth:`pad`: fold a grid-sized ``y`` back onto an image of spatial ``shape`` (``P^T y``)."""
        if self.boundary == "periodic":
            return y
        widths, indices, window = self._padding_plan(tuple(shape))
        dims = tuple(range(-self.ndim, 0))
        if window is not None:
            mean_part = ((1 - window) * y).sum(dim=dims, keepdim=True) / float(np.prod(shape))
            y = window * y
        out = y
        lead = y.ndim - self.ndim
        for axis in reversed(range(self.ndim)):
            dim = lead + axis
            n = shape[axis]
            before, after = widths[axis]
            if before <= n and after <= n:  # add the mirrored margins back onto the pixels they copy
                folded = out.narrow(dim, before, n).clone()
                folded.narrow(dim, 0, before).add_(out.narrow(dim, 0, before).flip(dim))
                folded.narrow(dim, n - after, after).add_(out.narrow(dim, before + n, after).flip(dim))
            else:
                target_shape = list(out.shape)
                target_shape[dim] = n
                folded = out.new_zeros(target_shape).index_add(dim, indices[axis], out)
            out = folded
        if window is not None:
            out = out + mean_part
        return out

    def crop(self, y: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Cut the image of spatial ``shape`` out of a grid-sized ``y`` (``S y``)."""
        if self.boundary == "periodic":
            return y
        slices = tuple(slice(b, b + n) for n, (b, _) in zip(shape, self.pad_widths(tuple(shape))))
        return y[(Ellipsis, *slices)]

    def crop_adjoint(self, x: torch.Tensor, grid_shape: tuple[int, ...]) -> torch.Tensor:
        """Adjoint of :meth:`crop`: embed ``x`` in a zero grid of spatial ``grid_shape`` (``S^T x``)."""
        if self.boundary == "periodic":
            return x
        shape = self._spatial(x)
        out = x.new_zeros((*x.shape[: x.ndim - self.ndim], *grid_shape))
        slices = tuple(slice(b, b + n) for n, (b, _) in zip(shape, self.pad_widths(shape)))
        out[(Ellipsis, *slices)] = x
        return out

    # ------------------------------------------------------------------------------------ Fourier
    def transfer(self, grid_shape: tuple[int, ...]) -> torch.Tensor:
        """Transfer function ``K = rfftn(k)`` on a grid of spatial ``grid_shape`` (cached).

        The kernel is zero-padded to the grid and rolled so its centre pixel is at index 0, which makes
        ``irfftn(K * rfftn(x))`` the circular convolution ``k * x`` with no shift.
        """
        import torch

        grid_shape = tuple(int(n) for n in grid_shape)
        if grid_shape not in self._transfer_cache:
            self.check_shape(grid_shape)
            grid = np.zeros(grid_shape, dtype=np.float64)
            grid[tuple(slice(0, k) for k in self.kernel.shape)] = self.kernel
            grid = np.roll(grid, [-(k // 2) for k in self.kernel.shape], axis=tuple(range(self.ndim)))
            tensor = torch.as_tensor(grid, dtype=self.dtype, device=self.device)
            self._transfer_cache[grid_shape] = torch.fft.rfftn(tensor, dim=tuple(range(-self.ndim, 0)))
        return self._transfer_cache[grid_shape]

    def to_fourier(self, x: torch.Tensor) -> torch.Tensor:
        """``rfftn(P x)``: the extended image's spectrum on the FFT grid."""
        return torch_fft().rfftn(self.pad(x), dim=tuple(range(-self.ndim, 0)))

    def from_fourier(self, spectrum: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """``S irfftn(spectrum)``: back to an image of spatial ``shape``."""
        grid = self.padded_shape(tuple(shape))
        return self.crop(torch_fft().irfftn(spectrum, s=grid, dim=tuple(range(-self.ndim, 0))), shape)

    def filter(self, x: torch.Tensor, response: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Apply a Fourier filter built from the transfer function: ``S irfftn(F(K) rfftn(P x))``.

        ``response`` maps ``K`` (complex, on the rfft grid) to the filter ``F(K)``; e.g. MMSE is
        ``lambda K: K.conj() / (K.abs()**2 + sigma)``.
        """
        shape = self._spatial(x)
        self.check_shape(shape)
        spectrum = self.to_fourier(self._cast(x))
        return self.from_fourier(response(self.transfer(self.padded_shape(shape))) * spectrum, shape)

    # ---------------------------------------------------------------------------- H and H^T
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``H x = S (k * P x)``: blur ``x`` (``..., *spatial``); same shape out."""
        return self.filter(x, lambda K: K)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``H^T y = P^T (k^- * S^T y)``: the exact adjoint of :meth:`forward` for every boundary mode."""
        shape = self._spatial(y)
        self.check_shape(shape)
        grid = self.padded_shape(shape)
        fft = torch_fft()
        dims = tuple(range(-self.ndim, 0))
        spectrum = fft.rfftn(self.crop_adjoint(self._cast(y), grid), dim=dims)
        correlated = fft.irfftn(self.transfer(grid).conj() * spectrum, s=grid, dim=dims)
        return self.pad_adjoint(correlated, shape)

    __call__ = forward

    def compact(self, shape: tuple[int, ...]) -> CompactBlur:
        """``H`` and ``H^T`` for images of spatial ``shape`` on the smallest FFT grid (see :class:`CompactBlur`)."""
        return CompactBlur(self, shape)

    def _cast(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device, dtype=self.dtype)

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.kernel.shape))
        return f"BlurOperator(kernel {shape}, boundary={self.boundary!r}, device={self.device}, dtype={self.dtype})"


class CompactBlur:
    """:class:`BlurOperator`'s ``H`` and ``H^T`` for images of one spatial shape, on the smallest FFT grid, for
    iterative methods that apply them many times (Richardson-Lucy).

    ``H x = S A P x`` reads the extension ``P x`` only within the kernel's reach of the image, ``r = k // 2``
    pixels along an axis of kernel size ``k`` (a convolution output at ``i`` reads ``i - (k - 1 - k // 2)``
    to ``i + k // 2``), and ``H^T y = P^T A^T S^T y`` only has non-zero values there before ``P^T``. So both
    maps are computed exactly on a box of ``n + 2 r`` pixels per axis: the image, mirrored by ``r`` and, in
    taper mode, faded by the same window values as the full extension, then zero-padded to a fast FFT length
    ``fast_fft_length(n + 2 r)`` (the wrap-around of the circular convolution never reaches the box). The
    results equal :meth:`BlurOperator.forward` and :meth:`BlurOperator.adjoint` to round-off, for every
    boundary mode; the periodic mode has no extension and keeps the image's own grid.

    The transfer function ``K`` and its conjugate are computed once, and the grid-sized buffers are allocated
    once per batch shape and reused: :meth:`forward` and :meth:`adjoint` return *views of an internal buffer*,
    valid until the next call. Use them at once or copy them.

    Parameters
    ----------
    operator : BlurOperator
        The operator whose ``H`` and ``H^T`` are computed (kernel, boundary, device, dtype).
    shape : tuple of int
        Spatial shape of the images (``operator.ndim`` axes).
    """

    def __init__(self, operator: BlurOperator, shape: tuple[int, ...]) -> None:
        shape = tuple(int(n) for n in shape)
        if len(shape) != operator.ndim:
            raise ValueError(f"expected {operator.ndim} spatial axes, got shape {shape}")
        operator.check_shape(shape)
        self.operator = operator
        self.shape = shape
        self.ndim = operator.ndim
        periodic = operator.boundary == "periodic"
        #: Extension ``r`` along each axis (pixels): the kernel's reach, 0 for the periodic mode.
        self.margins = tuple(0 if periodic else k // 2 for k in operator.kernel.shape)
        #: The image and its extension: ``n + 2 r`` pixels per axis, the image at offset ``r``.
        self.box = tuple(n + 2 * r for n, r in zip(shape, self.margins))
        #: FFT grid (spatial shape): the image's for the periodic mode, else fast lengths >= ``n + 2 r``.
        self.grid = shape if periodic else tuple(fast_fft_length(b) for b in self.box)
        self._dims = tuple(range(-self.ndim, 0))
        self._box_slices = tuple(slice(0, b) for b in self.box)
        self._image_slices = tuple(slice(r, r + n) for n, r in zip(shape, self.margins))
        self._transfer = operator.transfer(self.grid)
        self._transfer_conj = self._transfer.conj().resolve_conj()
        # The taper window is 1 on the image, so only the frame around it (the box minus the image) is ever
        # weighted: split it into disjoint slabs, the one of axis a spanning the image along the axes before a
        # and the whole box along the axes after it, and keep the window's complement 1 - w on each.
        self._frames: list[tuple[tuple[slice, ...], torch.Tensor]] = []
        if operator.boundary == "taper":
            window = operator.taper_window(shape, self.margins)
            for axis, (n, r) in enumerate(zip(shape, self.margins)):
                for side in ((slice(0, r), slice(r + n, r + n + r)) if r else ()):
                    slab = (*self._image_slices[:axis], side, *self._box_slices[axis + 1 :])
                    self._frames.append((slab, (1 - window[slab]).contiguous()))
        self._buffers: dict[tuple[int, ...], _CompactBuffers] = {}

    def _buffers_for(self, lead: tuple[int, ...]) -> _CompactBuffers:
        """The grid buffers and their views for a batch of leading shape ``lead`` (one batch shape at a time)."""
        if lead not in self._buffers:
            self._buffers.clear()
            self._buffers[lead] = _CompactBuffers(self, lead)
        return self._buffers[lead]

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < self.ndim or tuple(x.shape[x.ndim - self.ndim :]) != self.shape:
            raise ValueError(f"expected spatial shape {self.shape}, got {tuple(x.shape)}")
        return x.to(device=self.operator.device, dtype=self.operator.dtype)

    def _convolve(self, buffers: _CompactBuffers, source: torch.Tensor, transfer: torch.Tensor) -> None:
        """``work = irfftn(transfer * rfftn(source))`` on the grid, in the preallocated buffers."""
        fft = torch_fft()
        fft.rfftn(source, dim=self._dims, out=buffers.spectrum)
        buffers.spectrum.mul_(transfer)
        fft.irfftn(buffers.spectrum, s=self.grid, dim=self._dims, out=buffers.work)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``H x = S A P x`` (``..., *shape``): a view of an internal buffer, valid until the next call."""
        x = self._check(x)
        buffers = self._buffers_for(tuple(x.shape[: x.ndim - self.ndim]))
        buffers.extended_image.copy_(x)
        for target, source, dim in buffers.mirror:  # M x: the margins copy the pixels next to them, reversed
            target.copy_(source.flip(dim))
        if self._frames:  # P x = w M x + (1 - w) mean(x) = M x + (1 - w) (mean(x) - M x), on the frame only
            mean = x.mean(dim=self._dims, keepdim=True)
            for view, complement in zip(buffers.extended_frames, self._frames):
                view.lerp_(mean, complement[1])
        self._convolve(buffers, buffers.extended, self._transfer)
        return buffers.work_image

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``H^T y = P^T A^T S^T y`` (``..., *shape``): a view of an internal buffer, valid until the next call."""
        y = self._check(y)
        lead = tuple(y.shape[: y.ndim - self.ndim])
        buffers = self._buffers_for(lead)
        buffers.embedded_image.copy_(y)
        self._convolve(buffers, buffers.embedded, self._transfer_conj)
        mean_part = None
        if self._frames:
            # P^T z = M^T (w z) + <1 - w, z> / N on every pixel (N = image size; the adjoint of x -> mean(x))
            mean_part = y.new_zeros((*lead, *([1] * self.ndim)))
            for view, (_, complement) in zip(buffers.work_frames, self._frames):
                weighted = view * complement
                mean_part += weighted.sum(dim=self._dims).reshape(mean_part.shape)
                view.sub_(weighted)  # w z = z - (1 - w) z
            mean_part /= float(np.prod(self.shape))
        for target, source, dim in buffers.fold:  # M^T: the margins add back onto the pixels they copy
            target.add_(source.flip(dim))
        if mean_part is not None:
            buffers.work_image.add_(mean_part)
        return buffers.work_image

    def __repr__(self) -> str:
        grid = "x".join(map(str, self.grid))
        return f"CompactBlur({self.operator!r}, shape={self.shape}, grid={grid})"


class _CompactBuffers:
    """A :class:`CompactBlur`'s grid buffers for one batch shape, and the views its steps work on.

    ``extended`` holds ``P x`` in its box and zeros outside it, ``embedded`` holds ``S^T y`` (``y`` in the
    image's place, zeros elsewhere), ``spectrum`` the rfft and ``work`` the inverse FFT's output. Only the box
    (resp. the image) of the first two is ever written, so the zeros around it stay.
    """

    def __init__(self, blur: CompactBlur, lead: tuple[int, ...]) -> None:
        import torch

        op = blur.operator
        self.extended, self.embedded, self.work = (
            torch.zeros((*lead, *blur.grid), dtype=op.dtype, device=op.device) for _ in range(3)
        )
        self.spectrum = torch_fft().rfftn(self.extended, dim=blur._dims)
        self.extended_image = self.extended[(Ellipsis, *blur._image_slices)]
        self.embedded_image = self.embedded[(Ellipsis, *blur._image_slices)]
        self.work_image = self.work[(Ellipsis, *blur._image_slices)]
        self.extended_frames = [self.extended[(Ellipsis, *slab)] for slab, _ in blur._frames]
        self.work_frames = [self.work[(Ellipsis, *slab)] for slab, _ in blur._frames]
        # Mirroring axis a spans the box along the axes before it and the image along those after it, as
        # BlurOperator.pad does; the fold (its adjoint) visits the same regions in reverse order.
        self.mirror: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        self.fold: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        for axis, (n, r) in enumerate(zip(blur.shape, blur.margins)):
            if r == 0:
                continue
            dim = len(lead) + axis
            region = (Ellipsis, *blur._box_slices[:axis], blur._box_slices[axis], *blur._image_slices[axis + 1 :])
            ext, work = self.extended[region], self.work[region]
            self.mirror += [(ext.narrow(dim, 0, r), ext.narrow(dim, r, r), dim),
                            (ext.narrow(dim, r + n, r), ext.narrow(dim, n, r), dim)]
            self.fold[:0] = [(work.narrow(dim, r, r), work.narrow(dim, 0, r), dim),
                             (work.narrow(dim, n, r), work.narrow(dim, r + n, r), dim)]


def torch_cat(tensors: list, dim: int):
    """``torch.cat`` (imported lazily)."""
    import torch

    return torch.cat(tensors, dim)


def torch_fft():
    """The ``torch.fft`` module (imported lazily)."""
    import torch.fft

    return torch.fft


_OPERATOR_CACHE: OrderedDict[tuple, BlurOperator] = OrderedDict()
_OPERATOR_CACHE_SIZE = 8


def get_operator(
    kernel: Any, boundary: str = DEFAULT_BOUNDARY, device: Any = "auto", dtype: torch.dtype | None = None
) -> BlurOperator:
    """A :class:`BlurOperator`, reused from a small LRU cache keyed by (kernel bytes, boundary, device, dtype).

    Re-running a deconvolution with the same kernel (a widget re-run, a parameter sweep) then skips
    recomputing the transfer function.
    """
    import torch

    kernel = np.ascontiguousarray(kernel, dtype=np.float64)
    device = resolve_device(device)
    dtype = torch.float32 if dtype is None else dtype
    digest = hashlib.sha1(kernel.tobytes()).hexdigest()
    key = (digest, kernel.shape, boundary, str(device), str(dtype))
    if key in _OPERATOR_CACHE:
        _OPERATOR_CACHE.move_to_end(key)
        return _OPERATOR_CACHE[key]
    operator = BlurOperator(kernel, boundary=boundary, device=device, dtype=dtype)
    _OPERATOR_CACHE[key] = operator
    if len(_OPERATOR_CACHE) > _OPERATOR_CACHE_SIZE:
        _OPERATOR_CACHE.popitem(last=False)
    return operator
