"""Deblurring many files (``crcnet deblur IN... -o OUTDIR/``), in this process or on a dask.distributed cluster.

Each input gives one output, ``OUTDIR/<input stem>.tif`` (float32), or ``OUTDIR/<stem>.zarr`` for a ``.zarr``
store. Images are done one per task: on a cluster the worker reads the file, deblurs it and writes the result
(it loads a CRCNet model by name or path itself: no torch module is sent with a task). A stack (a multi-page
TIFF, or a ``.zarr`` array with axes beyond the image's) is opened as a lazy dask array chunked by planes and
deblurred with :func:`~napari_crcnet.deblur_lazy`, its chunks spread over the workers; a stack never needs to
fit in memory, only one chunk of planes per worker does (and TIFF outputs are written page by page).

Noise-dependent parameters of a stack (MMSE/IRD ``sigma``, hyper-Laplacian ``lam``, the ``noise`` a CRCNet
model is told when its card has no fixed level) are estimated once, from the stack's first plane, when they are
not given, so that every chunk uses the same ones. (The eager call estimates them from the whole stack: give
them explicitly when the two must agree.)

Outputs are written under a temporary name and renamed when complete, so an interrupted batch leaves no
half-written output: run it again and the files already done are skipped (``overwrite=True`` redoes them).
A file that cannot be read or deblurred is reported and the others go on.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Job", "Settings", "Summary", "collect_inputs", "deblur_array", "plan_jobs", "run_batch"]

#: A stack is cut into chunks of whole planes of about this many bytes (as float32; at least one plane).
STACK_CHUNK_BYTES = 16 * 2**20
ZARR = ".zarr"
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True, eq=False)
class Settings:
    """How to deblur: the method and its parameters, as the ``crcnet deblur`` options give them. Plain data
    (a model is a name or a path), so that it travels to cluster workers cheaply."""

    method: str = "mmse"
    kernel: np.ndarray | None = None
    sigma: float | None = None
    prior: str | None = None
    iterations: int | None = None
    tv: float = 0.0
    tol: float | None = None
    lam: float | None = None
    alpha: float = 2 / 3
    model: str | None = None
    force: bool = False
    noise: float | None = None
    boundary: str = "taper"
    channel_axis: str = "auto"
    device: str = "auto"


@dataclass(frozen=True)
class Job:
    """One input file (or ``.zarr`` store) and the output it is deblurred to."""

    source: Path
    target: Path


@dataclass
class Summary:
    """What a batch did; ``failed`` holds ``(source, reason)`` pairs."""

    written: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.written} written, {self.skipped} skipped, {len(self.failed)} failed"


# ------------------------------------------------------------------------------------------ one array
def channel_axis_for(shape: Sequence[int], channel_axis: str) -> int | None:
    """The colour axis that ``--channel-axis`` names for an array of ``shape``: ``auto`` (the last axis when it
    has 3 or 4 entries, RGB/RGBA, and the array is 3D or more), ``none``, or an axis number."""
    ndim = len(shape)
    text = str(channel_axis).strip().lower()
    if text == "none":
        return None
    if text == "auto":
        return -1 if ndim >= 3 and shape[-1] in (3, 4) else None
    try:
        axis = int(text)
    except ValueError:
        raise ValueError(f"--channel-axis must be auto, none or an axis number, not {channel_axis!r}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"--channel-axis {axis} is out of range: the image has shape {tuple(shape)} "
            f"(axes 0 to {ndim - 1}, or -{ndim} to -1)"
        )
    return axis


def prepare(image: Any, channel_axis: str) -> tuple[Any, int | None]:
    """``(image, axis)``: the colour axis of ``image`` and the image without an RGBA alpha channel (it is not
    blurred). Works on NumPy and dask arrays."""
    axis = channel_axis_for(image.shape, channel_axis)
    if axis is not None and image.shape[axis] == 4:
        index = [slice(None)] * image.ndim
        index[axis] = slice(0, 3)
        image = image[tuple(index)]
    return image, axis


def deblur_array(image: Any, channel_axis: int | None, settings: Settings,
                 progress: Callable[[str], Any] | None = None) -> np.ndarray:
    """``image`` deblurred as ``settings`` say. ``progress(label)``, when given, returns the progress callback
    of the iterative methods (labelled by method)."""
    from . import deconv

    s = settings
    bar = progress or (lambda label: None)
    common: dict[str, Any] = {"channel_axis": channel_axis, "device": s.device}
    if s.method == "crcnet":
        from .inference import crcnet

        return crcnet(image, s.model, s.kernel, force=s.force, noise=s.noise, progress=bar("crcnet"), **common)
    common["boundary"] = s.boundary
    if s.method == "mmse":
        return deconv.mmse(image, s.kernel, s.sigma, prior=s.prior, **common)
    if s.method == "ird":
        return deconv.ird(image, s.kernel, s.sigma, 100 if s.iterations is None else s.iterations, **common)
    if s.method == "richardson-lucy":
        from .richardsonlucy import richardson_lucy

        return richardson_lucy(image, s.kernel, 10 if s.iterations is None else s.iterations, tv=s.tv, tol=s.tol,
                               progress=bar("richardson-lucy"), **common)
    if s.method == "hyper-laplacian":
        from .hyperlaplacian import hyper_laplacian

        return hyper_laplacian(image, s.kernel, s.lam, s.alpha, progress=bar("hyper-laplacian"), **common)
    raise ValueError(f"unknown method {s.method!r}")


def _deblur_chunk(chunk: np.ndarray, *, settings: Settings, channel_axis: int | None = None) -> np.ndarray:
    """``deblur_lazy``'s method: one chunk of planes (module level, so workers import it by name)."""
    _tune_allocator()
    return deblur_array(chunk, channel_axis, settings)


def stack_settings(settings: Settings, plane: np.ndarray, channel_axis: int | None) -> Settings:
    """``settings`` with the noise-dependent parameter of its method fixed from ``plane`` (a stack's first
    plane) when it is not given, so that every chunk of the stack is deblurred with the same one."""
    from . import deconv

    s = settings
    if s.method in ("mmse", "ird") and s.sigma is None:
        return replace(s, sigma=deconv._default_sigma(plane, channel_axis, 1.0 if s.method == "ird" else None))
    if s.method == "hyper-laplacian" and s.lam is None:
        from .hyperlaplacian import suggest_lambda

        return replace(s, lam=suggest_lambda(deconv.estimate_noise(plane, channel_axis=channel_axis)))
    if s.method == "crcnet":
        from ._arrays import Layout
        from .models import store

        model = s.model or store.default_model(Layout.of(plane.shape, channel_axis, 2).channels)
        if s.noise is None:
            card = store._read_card(store.resolve_model_path(model))
            fixed = isinstance(card.get("noise"), (int, float)) and not isinstance(card.get("noise"), bool)
            if not fixed:
                noise = float(deconv.estimate_noise(plane, channel_axis=channel_axis))
                return replace(s, model=str(model), noise=noise)
        return replace(s, model=str(model))
    return s


# ------------------------------------------------------------------------------------------ inputs
def is_pattern(text: str) -> bool:
    """Whether ``text`` is a glob pattern (``*``, ``?``, ``[``) rather than a path that exists."""
    return bool(_GLOB_CHARS & set(text)) and not Path(text).exists()


def _is_input(path: Path) -> bool:
    from .io import IMAGE_EXTENSIONS

    if path.name.startswith("."):
        return False
    if path.suffix.lower() == ZARR:
        return path.is_dir()
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def collect_inputs(arguments: Sequence[str]) -> list[Path]:
    """The input files of ``arguments``: files and ``.zarr`` stores as given, glob patterns (quoted on the
    command line) expanded and sorted, folders replaced by their image files and ``.zarr`` stores (sorted,
    not recursive). ValueError/FileNotFoundError for a pattern or folder that gives nothing or a missing path."""
    from .io import IMAGE_EXTENSIONS

    found: list[Path] = []
    for text in arguments:
        path = Path(text)
        if is_pattern(text):
            matches = [Path(m) for m in sorted(glob.glob(text))]
            matches = [m for m in matches if _is_input(m)]
            if not matches:
                raise FileNotFoundError(f"no image file matches {text}")
            found += matches
        elif path.is_dir() and path.suffix.lower() != ZARR:
            inside = sorted(p for p in path.iterdir() if _is_input(p))
            if not inside:
                raise ValueError(f"{path} holds no image files ({', '.join(IMAGE_EXTENSIONS)}, {ZARR})")
            found += inside
        elif not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        else:
            found.append(path)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def plan_jobs(inputs: Sequence[Path], outdir: Path) -> list[Job]:
    """One job per input: ``outdir/<stem>.tif`` (``.zarr`` for a zarr store). ValueError when two inputs would
    write the same output or an output would replace its input."""
    jobs: list[Job] = []
    by_target: dict[Path, Path] = {}
    for source in inputs:
        suffix = ZARR if source.suffix.lower() == ZARR else ".tif"
        target = outdir / (source.stem + suffix)
        key = target.resolve()
        if key in by_target:
            raise ValueError(f"{by_target[key].name} and {source.name} would both be written to {target}; "
                             "rename one or deblur them into different folders")
        if key == source.resolve():
            raise ValueError(f"{target} would replace its input; write to another folder")
        by_target[key] = source
        jobs.append(Job(source, target))
    return jobs


# ------------------------------------------------------------------------------------------ writing
def _partial(target: Path) -> Path:
    """The temporary name ``target`` is written under (renamed once complete); same suffix, hidden."""
    return target.with_name(f".{target.stem}.part{target.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _publish(partial: Path, target: Path) -> None:
    if target.exists():
        _remove(target)  # --overwrite
    os.replace(partial, target)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


_ALLOCATOR_TUNED = False


def _tune_allocator() -> None:
    """Once per process, where dask's nanny started it with ``MALLOC_TRIM_THRESHOLD_`` (64 KiB) set: that
    setting also freezes glibc's mmap threshold at 128 KiB, so every plane-sized buffer becomes a fresh ``mmap``
    with page faults, and freed heap memory is returned to the system at once (hyper-Laplacian on 256x256 ran
    6x slower in a dask worker, MMSE on 512x512 4x). Here the mmap threshold is raised to 32 MiB and the trim
    threshold to 128 MiB (``mallopt``), so freed buffers are reused; dask's memory monitor still trims a
    worker whose memory runs high."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return
    _ALLOCATOR_TUNED = True
    if "MALLOC_TRIM_THRESHOLD_" in os.environ and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        with contextlib.suppress(Exception):  # not glibc: nothing to do
            import ctypes

            libc = ctypes.CDLL(None)
            libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
            libc.mallopt(-1, 128 * 2**20)  # M_TRIM_THRESHOLD


def deblur_file(job: Job, settings: Settings, threads: int | None = None) -> tuple[str, str]:
    """Read, deblur and write one image file: ``("written", description)`` or ``("failed", reason)``. Runs on
    a cluster worker as one task; never raises for a bad file."""
    from . import io

    try:
        _tune_allocator()
        _set_threads(threads)
        image, axis = prepare(io.read_image(job.source), settings.channel_axis)
        result = deblur_array(image, axis, settings)
        partial = _partial(job.target)
        io.write_image(partial, np.asarray(result, dtype=np.float32))
        _publish(partial, job.target)
        return "written", f"shape {'x'.join(map(str, result.shape))}"
    except Exception as error:  # one bad file is reported, the others go on
        return "failed", _reason(error)


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text or type(error).__name__


# ------------------------------------------------------------------------------------------ stacks
def _read_pages(path: str, start: int, stop: int, shape: tuple[int, ...]) -> np.ndarray:
    """Pages ``start:stop`` of a TIFF's first series (runs where the chunk is computed)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return np.asarray(tif.asarray(key=range(start, stop), series=0)).reshape(shape)


def _planes_per_chunk(plane_shape: Sequence[int]) -> int:
    return max(1, STACK_CHUNK_BYTES // max(1, 4 * math.prod(plane_shape)))


def _tiff_pages(path: Path) -> Any | None:
    """A multi-page TIFF as a lazy array of its first series' shape, read in chunks of pages where each chunk
    is computed; None for a single page (read whole) or pages that do not tile the series."""
    import dask
    import dask.array as da
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, page, dtype = tuple(series.shape), tuple(series.keyframe.shape), series.dtype
        count = len(series.pages)
    if count <= 1 or shape[len(shape) - len(page):] != page or math.prod(shape) != count * math.prod(page):
        return None
    step = _planes_per_chunk(page)
    blocks = []
    for start in range(0, count, step):
        stop = min(start + step, count)
        read = dask.delayed(_read_pages, pure=True)(str(path), start, stop, (stop - start, *page))
        blocks.append(da.from_delayed(read, shape=(stop - start, *page), dtype=dtype))
    return da.concatenate(blocks, axis=0).reshape(shape)


def _first_plane(array: Any, axis: int | None, spatial_ndim: int) -> np.ndarray:
    colour = None if axis is None else axis % array.ndim
    plain = [a for a in range(array.ndim) if a != colour]
    leading = set(plain[:-spatial_ndim])
    return np.asarray(array[tuple(0 if a in leading else slice(None) for a in range(array.ndim))].compute())


def _plane_axis(ndim: int, axis: int | None, spatial_ndim: int) -> int | None:
    """The colour axis of one plane of an array of ``ndim`` axes whose colour axis is ``axis``."""
    if axis is None:
        return None
    colour = axis % ndim
    plain = [a for a in range(ndim) if a != colour]
    kept = sorted([colour, *plain[-spatial_ndim:]])
    return kept.index(colour)


@dataclass
class Stack:
    """A lazy input: the dask array (chunks of whole planes: 1 along every leading axis but the last), its
    colour axis and the number of spatial axes of a plane."""

    array: Any
    axis: int | None
    spatial_ndim: int

    @property
    def leading(self) -> list[int]:
        colour = None if self.axis is None else self.axis % self.array.ndim
        return [a for a in range(self.array.ndim) if a != colour][:-self.spatial_ndim]


def open_stack(path: Path, settings: Settings) -> Stack | None:
    """``path`` as a lazy stack (a ``.zarr`` store, or a TIFF of several pages holding more than one plane),
    or None when it is one image (read and deblurred whole)."""
    import dask.array as da

    spatial_ndim = 3 if settings.kernel is not None and np.ndim(settings.kernel) == 3 else 2
    if path.suffix.lower() == ZARR:
        try:
            import zarr  # noqa: F401
        except ImportError:
            raise ValueError("reading .zarr needs the zarr package: pip install zarr") from None
        array = da.from_zarr(str(path))
    elif path.suffix.lower() in (".tif", ".tiff"):
        array = _tiff_pages(path)
        if array is None:
            return None
    else:
        return None
    array, axis = prepare(array, settings.channel_axis)
    stack = Stack(array, axis, spatial_ndim)
    leading = stack.leading
    if not leading and path.suffix.lower() != ZARR:
        return None  # one plane (or volume) in several pages: read whole
    whole = [a for a in range(array.ndim) if a not in leading]
    chunks = {a: 1 for a in leading}
    if leading:
        chunks[leading[-1]] = min(array.shape[leading[-1]], _planes_per_chunk([array.shape[a] for a in whole]))
    chunks.update({a: -1 for a in whole})
    stack.array = array.rechunk(chunks)
    return stack


def _blocks_in_order(array: Any, client: Any, ahead: int) -> Iterator[np.ndarray]:
    """The chunks of ``array``, computed and yielded in C order; on a cluster up to ``ahead`` at once."""
    blocks = [array.blocks[index] for index in np.ndindex(*array.numblocks)]
    if client is None:
        for block in blocks:
            yield np.asarray(block.compute(scheduler="sync"))
        return
    pending: list[Any] = []
    for block in blocks:
        pending.append(client.compute(block))
        if len(pending) >= ahead:
            yield np.asarray(pending.pop(0).result())
    while pending:
        yield np.asarray(pending.pop(0).result())


def _write_tiff(path: Path, lazy: Any, stack: Stack, client: Any, ahead: int) -> None:
    """Write a lazy result to a TIFF page by page (chunks computed in order), or whole when its colour axis
    lies before a leading axis (pages of one chunk would not be consecutive)."""
    import tifffile

    colour = None if stack.axis is None else stack.axis % lazy.ndim
    rgb = colour == lazy.ndim - 1 and lazy.shape[-1] == 3
    path.parent.mkdir(parents=True, exist_ok=True)
    if colour is not None and stack.leading and colour < stack.leading[-1]:
        data = lazy.compute(scheduler="sync") if client is None else client.compute(lazy).result()
        tifffile.imwrite(path, np.asarray(data), photometric="rgb" if rgb else "minisblack")
        return
    page = lazy.shape[-3:] if rgb else lazy.shape[-2:]

    def pages() -> Iterator[np.ndarray]:
        for block in _blocks_in_order(lazy, client, ahead):
            yield from block.reshape((-1, *page))

    tifffile.imwrite(path, pages(), shape=lazy.shape, dtype=np.float32, photometric="rgb" if rgb else "minisblack")


def deblur_stack(job: Job, stack: Stack, settings: Settings, client: Any = None, ahead: int = 2) -> str:
    """Deblur a lazy stack chunk by chunk (on ``client``'s cluster when given) and write its output."""
    import dask

    from .lazy import deblur_lazy

    plane = _first_plane(stack.array, stack.axis, stack.spatial_ndim)
    fixed = stack_settings(settings, plane, _plane_axis(stack.array.ndim, stack.axis, stack.spatial_ndim))
    lazy = deblur_lazy(_deblur_chunk, stack.array, settings=fixed, channel_axis=stack.axis,
                       spatial_ndim=stack.spatial_ndim)
    partial = _partial(job.target)
    _remove(partial)
    if job.target.suffix == ZARR:
        store = lazy.to_zarr(str(partial), compute=False)
        if client is None:
            dask.compute(store, scheduler="sync")
        else:
            client.compute(store).result()
    else:
        _write_tiff(partial, lazy, stack, client, ahead)
    _publish(partial, job.target)
    return f"shape {'x'.join(map(str, lazy.shape))}, {math.prod(lazy.numblocks)} chunks"


# ------------------------------------------------------------------------------------------ clusters
def _connect(cluster: str, timeout: float) -> tuple[Any, Any, int | None]:
    """``(client, local_cluster_or_None, torch_threads_per_worker)`` for ``local:N`` or a scheduler address."""
    try:
        import distributed
    except ImportError:
        raise ValueError('dask.distributed is not installed: pip install "napari-crcnet[distributed]"') from None
    if cluster.startswith("local:"):
        workers = int(cluster.split(":", 1)[1])
        local = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
        client = distributed.Client(local)
        return client, local, max(1, (os.cpu_count() or 1) // workers)
    try:
        client = distributed.Client(cluster, timeout=timeout)
    except (OSError, TimeoutError):
        raise ConnectionError(
            f"no dask scheduler answered at {cluster} within {timeout:g} s; start one with `dask scheduler` "
            "(and workers with `dask worker ADDRESS`), or use a local cluster (local:N)"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError):
        client.close()
        raise ConnectionError(f"the dask scheduler at {cluster} has no workers (start some with "
                              f"`dask worker {cluster}`)") from None
    return client, None, None


def parse_cluster(text: str) -> str:
    """``local:N`` (N >= 1) or a scheduler address ``tcp://HOST:PORT`` (any ``scheme://``); ValueError else."""
    if text.startswith("local:"):
        count = text.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--cluster local:N needs a number of workers N >= 1, not {count!r}")
        return text
    if "://" in text and text.split("://", 1)[1]:
        return text
    raise ValueError(f"--cluster must be local:N (N worker processes here) or a scheduler address "
                     f"tcp://HOST:PORT, not {text!r}")


# ------------------------------------------------------------------------------------------ the batch
def run_batch(
    jobs: Sequence[Job],
    settings: Settings,
    *,
    cluster: Any = None,
    overwrite: bool = False,
    connect_timeout: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
    report: Callable[[str], None] = print,
    report_failure: Callable[[Path, str], None] | None = None,
) -> Summary:
    """Deblur every job's input into its output, skipping outputs that exist unless ``overwrite``.

    Without ``cluster`` the files are done one after another here; ``cluster="local:N"`` starts N worker
    processes for the run, ``"tcp://HOST:PORT"`` uses an existing scheduler (ConnectionError when none answers
    within ``connect_timeout`` seconds), and a ``distributed.Client`` is used as it is (and left open).
    ``progress(done, total)`` after each file; ``report(line)`` for the skipped files;
    ``report_failure(source, reason)`` for each failed one (the batch goes on)."""
    summary = Summary()
    todo: list[Job] = []
    existing: list[Job] = []
    for job in jobs:
        (existing if job.target.exists() and not overwrite else todo).append(job)
    summary.skipped = len(existing)
    if existing:
        names = ", ".join(job.target.name for job in existing[:5]) + (", ..." if len(existing) > 5 else "")
        report(f"skipped {len(existing)} existing output(s) in {existing[0].target.parent} ({names}); "
               "--overwrite redoes them")
    if not todo:
        return summary

    done = 0

    def finished(job: Job, status: str, text: str) -> None:
        nonlocal done
        done += 1
        if status == "written":
            summary.written += 1
        else:
            summary.failed.append((job.source, text))
            if report_failure is not None:
                report_failure(job.source, text)
        if progress is not None:
            progress(done, len(todo))

    def split(job: Job) -> Stack | str | None:
        try:
            return open_stack(job.source, settings)
        except Exception as error:
            return _reason(error)

    if progress is not None:
        progress(0, len(todo))
    client = local = None
    own = isinstance(cluster, str)
    threads = None
    if own:
        client, local, threads = _connect(cluster, connect_timeout)
    elif cluster is not None:
        client = cluster  # a distributed.Client set up by the caller (kept open)
    try:
        for folder in {job.target.parent for job in todo}:
            folder.mkdir(parents=True, exist_ok=True)
        if client is None:
            for job in todo:
                stack = split(job)
                if isinstance(stack, str):
                    finished(job, "failed", stack)
                elif stack is None:
                    finished(job, *deblur_file(job, settings))
                else:
                    finished(job, *_stack_status(job, stack, settings, None))
            return summary
        import distributed

        if threads:
            client.run(_set_threads, threads)
        ahead = 2 * max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
        futures = {}
        stacks: list[tuple[Job, Stack]] = []
        for job in todo:
            stack = split(job)
            if isinstance(stack, str):
                finished(job, "failed", stack)
            elif stack is None:
                futures[client.submit(deblur_file, job, settings, pure=False)] = job
            else:
                stacks.append((job, stack))
        for job, stack in stacks:
            finished(job, *_stack_status(job, stack, settings, client, ahead))
        for future in distributed.as_completed(list(futures)):
            try:
                status, text = future.result()
            except Exception as error:  # a worker died (e.g. out of memory)
                status, text = "failed", _reason(error)
            finished(futures[future], status, text)
        return summary
    finally:
        if own and client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if local is not None:
            with contextlib.suppress(Exception):
                local.close()


def _stack_status(job: Job, stack: Stack, settings: Settings, client: Any, ahead: int = 2) -> tuple[str, str]:
    try:
        return "written", deblur_stack(job, stack, settings, client, ahead)
    except Exception as error:
        with contextlib.suppress(OSError):
            _remove(_partial(job.target))
        return "failed", _reason(error)
