"""Model files: safetensors weights plus a JSON model card, shipped or user-trained.

A model ``name`` is two files side by side::

    name.safetensors   the weights (a flat dict of tensors; the card is also copied into its metadata)
    name.json          the model card, human readable

The card is a dict with (at least) ``name``, ``description``, ``kernel`` (nested list, the blur kernel the
model was trained for, convolution-oriented, sum 1), ``kernel_sha256`` (see :func:`kernel_sha256`),
``noise`` (std of the Gaussian noise trained for, image in [0, 1] units), ``mmse_sigma`` (the ``sigma``
of the closed-form MMSE estimate fed to ``input="mmse"`` models), ``config`` (the
:class:`~napari_crcnet.models.crcnet.CRCNetConfig` as a dict), ``training`` (dataset, iterations, time...),
``metrics`` (PSNR/SSIM of the model and of MMSE on held-out images) and ``created`` (UTC, ISO 8601).

Safety: weights are read with ``safetensors`` only; nothing a user hands in is ever unpickled
(``torch.load`` is never called). Pickle-based checkpoints (``.pt``, ``.pth``, ``.ckpt``...) are refused.

Lookup: a bare name (no folder, no suffix) is searched in the user models folder
(``$NAPARI_CRCNET_MODELS`` if set, else ``~/.napari-crcnet/models``) and then in the models shipped
with the package (``napari_crcnet/weights``); the user folder comes first so that a retrained model
can replace a shipped one of the same name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .._arrays import resolve_device
from .crcnet import CRCNet, CRCNetConfig

SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
CARD_FORMAT = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")
#: The CRCNet used when none is named (API, CLI) and first offered by the Deblur widget: the shipped model
#: trained over a whole kernel family (training/recipes/any-kernel.json), so it serves any kernel at once.
DEFAULT_MODEL = "any-kernel"
#: Its gray counterpart (training/recipes/any-kernel-gray.json), one input channel, used instead for gray
#: images when installed: the RGB model sees a gray image as three equal channels with the same noise in
#: each, which it never met in training (its gray crops had independent noise per channel), and on gray
#: images it is far below hyper-Laplacian, even below MMSE on microscopy (benchmarks/results/any_kernel.md).
DEFAULT_GRAY_MODEL = "any-kernel-gray"
# Two kernels whose normalised entries differ by at most this much are the same kernel (see kernel_matches).
KERNEL_ATOL = 1e-6


# --------------------------------------------------------------------------------------------- kernels
def normalise_kernel(kernel: Any) -> np.ndarray:
    """Float64 copy of ``kernel`` scaled to sum 1 with all-zero borders trimmed symmetrically.

    Trimming is symmetric (the same number of zero slices on both sides of an axis), so the centre pixel
    stays the centre: a 21x21 kernel and the same kernel zero-padded to 25x25 normalise identically.

    Raises ValueError for an empty, non-2D/3D, non-finite or zero-sum kernel.
    """
    k = np.array(kernel, dtype=np.float64)
    if k.size == 0 or k.ndim not in (2, 3):
        raise ValueError(f"a kernel must be a non-empty 2D or 3D array, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("the kernel contains NaN or infinite values")
    total = k.sum()
    if not total > 0:
        raise ValueError(f"the kernel must have a positive sum, got {total:g}")
    k = k / total
    for axis in range(k.ndim):
        while k.shape[axis] > 2:
            first = np.take(k, 0, axis=axis)
            last = np.take(k, k.shape[axis] - 1, axis=axis)
            if np.any(np.abs(first) > 5e-9) or np.any(np.abs(last) > 5e-9):
                break
            k = np.take(k, np.arange(1, k.shape[axis] - 1), axis=axis)
    return k


def kernel_sha256(kernel: Any) -> str:
    """SHA-256 (hex) of the normalised kernel: shape + entries rounded to 1e-8, as little-endian float64.

    Guarantees: the same hash for the same kernel up to (a) an overall positive scale (it is divided by
    its sum), (b) symmetric zero padding, (c) changes smaller than the 1e-8 rounding step that do not
    cross a rounding boundary (float64 copies, a TIFF/NPY round trip; a float32 copy almost always).
    It does NOT match a kernel that was quantised, e.g. saved as an 8-bit PNG (steps of ~1/255 of the
    peak), resampled or re-centred: those are different kernels to the model. :func:`load_model` also
    accepts a kernel whose normalised entries are within ``KERNEL_ATOL`` = 1e-6 of the card's, so hash
    rounding boundaries never cause a false refusal.
    """
    k = np.round(normalise_kernel(kernel), 8) + 0.0  # + 0.0 turns -0.0 into 0.0
    digest = hashlib.sha256()
    digest.update(("x".join(map(str, k.shape)) + ";").encode())
    digest.update(np.ascontiguousarray(k, dtype="<f8").tobytes())
    return digest.hexdigest()


def kernel_matches(kernel: Any, card: dict[str, Any]) -> bool:
    """True when ``kernel`` is the card's kernel: same hash, or same normalised shape within 1e-6."""
    reference = card.get("kernel")
    if card.get("kernel_sha256") and kernel_sha256(kernel) == card["kernel_sha256"]:
        return True
    if reference is None:
        return False
    a, b = normalise_kernel(kernel), normalise_kernel(reference)
    return a.shape == b.shape and float(np.max(np.abs(a - b))) <= KERNEL_ATOL


def check_channels(model_channels: int, image_channels: int, name: str = "the model") -> None:
    """Raise ValueError unless a model of ``model_channels`` can run on an image of ``image_channels``.

    A gray model (1 channel) runs on each channel of any image; a colour model runs on images of its own
    channel count, and on gray images as equal channels (the output is their mean, see
    :func:`napari_crcnet.inference.apply_model`).
    """
    if model_channels in (1, image_channels) or image_channels == 1:
        return
    raise ValueError(
        f"{name} takes {model_channels} channels, the image has {image_channels}; "
        "use a gray (1-channel) model for other channel counts"
    )


def check_kernel(card: dict[str, Any], kernel: Any, force: bool = False, name: str | None = None) -> None:
    """Raise ValueError unless the model of ``card`` was trained for ``kernel`` (or ``force``).

    A per-kernel model fits only its own kernel (:func:`kernel_matches`). A model trained over a kernel
    family (card ``kernel_family``) fits any kernel; one larger than the family's ``max_kernel`` only
    warns, since the network never saw blur that wide.
    """
    name = name or card.get("name", "?")
    check_card(card, repr(name))
    family = card.get("kernel_family")
    if family:
        size = max(np.shape(kernel))
        if size > int(family.get("max_kernel", size)):
            warnings.warn(
                f"model {name!r} was trained on kernels up to {family['max_kernel']} px, this one is {size} px: "
                "expect a weaker result", stacklevel=3,
            )
        return
    if force:
        return
    if card.get("kernel") is None and not card.get("kernel_sha256"):
        raise ValueError(f"model {name!r} has no kernel in its card to check against; use force=True")
    if not kernel_matches(kernel, card):
        if card.get("kernel") is not None:
            theirs = _describe_kernel(card["kernel"])
        else:
            theirs = f"sha256 {card['kernel_sha256'][:12]}"
        raise ValueError(
            f"model {name!r} was trained for kernel {theirs}, "
            f"not for the given kernel {_describe_kernel(kernel)}; use force=True to apply it anyway"
        )


def kernel_label(card: dict[str, Any]) -> str:
    """What a model deblurs, for lists: ``"17x17"`` (its kernel), ``"any up to 31x31"`` (a family model)."""
    family = card.get("kernel_family")
    if family:
        size = family.get("max_kernel", "?")
        return f"any up to {size}x{size}"
    shape = card.get("kernel_shape") or (np.shape(card["kernel"]) if card.get("kernel") is not None else None)
    return "x".join(map(str, shape)) if shape else "?"


def _describe_kernel(kernel: Any) -> str:
    k = np.asarray(kernel, dtype=np.float64)
    return f"{'x'.join(map(str, k.shape))} sha256 {kernel_sha256(k)[:12]}"


# ------------------------------------------------------------------------------------------- folders
def shipped_dir() -> Path:
    """Folder of the models shipped with the package (``napari_crcnet/weights``)."""
    return Path(__file__).resolve().parents[1] / "weights"


def user_dir() -> Path:
    """User models folder: ``$NAPARI_CRCNET_MODELS`` if set, else ``~/.napari-crcnet/models``."""
    env = os.environ.get("NAPARI_CRCNET_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".napari-crcnet" / "models"


def _search_dirs(extra_dirs: Iterable[Any] = ()) -> list[tuple[Path, str]]:
    dirs = [(Path(d).expanduser(), "extra") for d in extra_dirs]
    dirs += [(user_dir(), "user"), (shipped_dir(), "shipped")]
    return dirs


# ---------------------------------------------------------------------------------------------- save
def _jsonable(value: Any) -> Any:
    """Convert NumPy arrays/scalars and Paths in a card to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _weights_path(path: Any) -> Path:
    path = Path(path).expanduser()
    if path.suffix == CARD_SUFFIX:
        path = path.with_suffix(SUFFIX)
    elif path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(
            f"{path.name}: pickle-based checkpoints are not supported (they can run code when loaded); "
            f"use a {SUFFIX} file"
        )
    elif path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    return path


#: Training checkpoints (``crcnet train`` writes ``NAME.ckpt.safetensors`` beside ``NAME.safetensors``) are not
#: models: lookups and listings skip them.
CHECKPOINT_SUFFIX = ".ckpt" + SUFFIX
#: ``atomic_write`` temporary files not touched for this many seconds are leftovers of a killed writer.
STALE_TMP_S = 600.0


def _is_checkpoint(path: Path) -> bool:
    return path.name.endswith(CHECKPOINT_SUFFIX)


def _model_files(folder: Path) -> list[Path]:
    """The model weights in ``folder``, sorted, without training checkpoints."""
    return [p for p in sorted(folder.glob(f"*{SUFFIX}")) if not _is_checkpoint(p)]


#: Keys that load_model/list_models add for the caller (where the file is); never written into a card.
_RUNTIME_KEYS = ("path", "source", "kernel_shape")


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary files of earlier writes of ``path`` that a killed process left behind.

    They are named ``.NAME.XXXXXXXX.tmp`` (see :func:`atomic_write`); only those not modified for
    :data:`STALE_TMP_S` seconds are removed, so a write of the same file still running elsewhere is left alone.
    """
    now = time.time()
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.is_file() and now - leftover.stat().st_mtime > STALE_TMP_S:
                leftover.unlink()


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write ``path`` through ``write(tmp_path)``, fsync, then ``os.replace``: readers see the old or the new file.

    The temporary file lives in the target's folder (``os.replace`` is atomic within one file system) and is
    removed if ``write`` fails; the result is an ordinary 0644 file. A process killed while writing (SIGKILL,
    power loss) leaves its temporary file: the next write of the same target removes it once it is
    :data:`STALE_TMP_S` seconds old.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def save_model(path: Any, model: CRCNet, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``model`` to ``path`` (``.safetensors``) and its card to the same path with ``.json``.

    Both files are written atomically: each goes to a temporary file in the same folder which then
    replaces the target with ``os.replace``, so a crash leaves either the old files or the new ones,
    never a truncated file.

    Parameters
    ----------
    path : str or Path
        Target; ``.safetensors`` is appended when missing (a ``.json`` path is mapped to its weights).
    model : CRCNet
        The network; its ``config`` is written into the card.
    card : dict, optional
        Model card fields (see the module docstring). ``name`` defaults to the file stem, ``created`` to
        now; ``kernel`` (array or nested list) is stored as a nested list with its ``kernel_sha256``.

    Returns
    -------
    dict
        The card as written.
    """
    if not isinstance(model, CRCNet):
        raise TypeError(f"save_model expects a CRCNet, not {type(model).__name__}")
    path = _weights_path(path)
    card = _jsonable({k: v for k, v in (card or {}).items() if k not in _RUNTIME_KEYS})
    card.setdefault("name", path.stem)
    card.setdefault("description", "")
    card["config"] = model.config.to_dict()
    card["n_parameters"] = model.n_parameters
    if card.get("kernel") is not None:
        kernel = np.asarray(card["kernel"], dtype=np.float64)
        card["kernel"] = kernel.tolist()
        card["kernel_sha256"] = kernel_sha256(kernel)
    for key in ("noise", "mmse_sigma"):
        card.setdefault(key, None)
    card.setdefault("training", {})
    card.setdefault("metrics", {})
    card.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    card["format"] = CARD_FORMAT
    text = json.dumps(card, indent=1, allow_nan=True)

    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"card": text}))
    atomic_write(path.with_suffix(CARD_SUFFIX), lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    return card


# ---------------------------------------------------------------------------------------------- load
def _check_safetensors(path: Path) -> None:
    """Refuse anything that is not a safetensors file before any parser sees it (header sanity check).

    A safetensors file starts with an 8-byte little-endian header length followed by a JSON object; a
    torch pickle starts with ``PK`` (zip) or ``0x80`` (raw pickle).
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)
    n = int.from_bytes(head[:8], "little") if len(head) == 9 else -1
    if len(head) < 9 or head[8:9] != b"{" or not 0 < n <= size - 8:
        raise ValueError(
            f"{path.name} is not a safetensors file (a pickle or a damaged file?); it was not loaded"
        )


def _read_card(path: Path) -> dict[str, Any]:
    """The JSON side file, or the copy in the safetensors metadata when the side file is missing."""
    card_path = path.with_suffix(CARD_SUFFIX)
    if card_path.exists():
        with open(card_path, encoding="utf-8") as handle:
            card = json.load(handle)
    else:
        from safetensors import SafetensorError, safe_open

        _check_safetensors(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                text = (handle.metadata() or {}).get("card")
        except SafetensorError as error:
            raise ValueError(f"{path.name} is not a readable safetensors file: {error}") from error
        if text is None:
            raise ValueError(f"{path.name} has no model card ({card_path.name} missing, none in metadata)")
        card = json.loads(text)
    if not isinstance(card, dict) or not isinstance(card.get("config"), dict):
        raise ValueError(f"the model card of {path.name} is not a dict with a 'config'")
    check_card(card, path.name)
    return card


def check_card(card: dict[str, Any], name: str = "the model") -> None:
    """Raise ValueError unless the card's ``kernel`` is inline numbers, ``kernel_family`` a dict and
    ``data_step`` (if any) a rule of :mod:`napari_crcnet.datastep`.

    A card is data: its kernel is a nested list of numbers (never a file name or a spec that would make the
    loader read another file), ``kernel_family`` a dict whose ``max_kernel`` is a whole number.
    """
    kernel = card.get("kernel")
    if kernel is not None:
        if not isinstance(kernel, (list, tuple, np.ndarray)):
            raise ValueError(
                f"the card of {name} has a 'kernel' of type {type(kernel).__name__}; a card holds its kernel "
                "inline, as a nested list of numbers"
            )
        try:
            array = np.array(kernel, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"the card of {name} has a 'kernel' that is not a grid of numbers") from error
        if array.ndim not in (2, 3) or array.size == 0:
            raise ValueError(f"the card of {name} has a {array.ndim}D 'kernel'; it must be a 2D or 3D grid")
    family = card.get("kernel_family")
    if family is not None:
        if not isinstance(family, dict):
            raise ValueError(
                f"the card of {name} has a 'kernel_family' of type {type(family).__name__}; it must be a dict"
            )
        size = family.get("max_kernel")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"the card of {name} has kernel_family.max_kernel {size!r}; it must be a whole number")
    rule = card.get("data_step")
    if rule is not None:
        from ..datastep import check_rule

        try:
            check_rule(rule)
        except ValueError as error:
            raise ValueError(f"the card of {name} has a malformed 'data_step': {error}") from None


def _check_shapes(path: Path, config: CRCNetConfig) -> None:
    """Raise ValueError unless the tensors in ``path`` (names and shapes, read from its header only) are those
    of a CRCNet of ``config``, before anything is allocated: the network is laid out on torch's ``meta``
    device, which holds shapes and no memory, so a card asking for a huge network costs nothing."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            found = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except SafetensorError as error:
        raise ValueError(f"{path.name} is not a readable safetensors file: {error}") from error
    try:
        with torch.device("meta"):
            expected = {key: tuple(t.shape) for key, t in CRCNet(config).state_dict().items()}
    except (RuntimeError, OverflowError, MemoryError) as error:
        raise ValueError(f"the card of {path.name} describes a network that cannot be built: {error}") from error
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or [k for k in expected if found[k] != expected[k]]
        raise ValueError(
            f"the weights in {path.name} do not fit its card's config ({len(found)} tensors, expected "
            f"{len(expected)}; first difference: {wrong[0]})"
        )


def _available_names(extra_dirs: Iterable[Any] = ()) -> list[str]:
    names: list[str] = []
    for folder, _ in _search_dirs(extra_dirs):
        if folder.is_dir():
            names += [p.stem for p in _model_files(folder) if p.stem not in names]
    return names


def resolve_model_path(path_or_name: Any, extra_dirs: Iterable[Any] = ()) -> Path:
    """The weights file of a path (with or without suffix, or its ``.json`` card) or of a bare model name."""
    raw = str(path_or_name)
    path = _weights_path(path_or_name)
    if path.exists():
        return path
    bare = os.sep not in raw and "/" not in raw and Path(raw).suffix in ("", SUFFIX)
    if bare:
        for folder, _ in _search_dirs(extra_dirs):
            candidate = folder / (Path(raw).stem + SUFFIX)
            if candidate.exists():
                return candidate
    names = _available_names(extra_dirs)
    raise FileNotFoundError(
        f"no model {raw!r}: not a file and not a known name (available: {', '.join(names) or 'none'})"
    )


def default_model(channels: int) -> str:
    """The CRCNet used when none is named, for an image of ``channels`` channels: :data:`DEFAULT_GRAY_MODEL`
    for a gray image (``channels == 1``) when it is installed (user folder or shipped), else
    :data:`DEFAULT_MODEL`."""
    if int(channels) == 1:
        with contextlib.suppress(FileNotFoundError):
            resolve_model_path(DEFAULT_GRAY_MODEL)
            return DEFAULT_GRAY_MODEL
    return DEFAULT_MODEL


def read_card(path_or_name: Any, extra_dirs: Iterable[Any] = ()) -> dict[str, Any]:
    """The card of a model (path or name), without loading the weights."""
    return _read_card(resolve_model_path(path_or_name, extra_dirs))


def read_config(path_or_name: Any, extra_dirs: Iterable[Any] = ()) -> CRCNetConfig:
    """The architecture of a model (path or name) from its card, without loading the weights."""
    return CRCNetConfig.from_dict(read_card(path_or_name, extra_dirs)["config"])


def load_model(
    path_or_name: Any,
    kernel: Any = None,
    force: bool = False,
    device: Any = "auto",
    *,
    channels: int | None = None,
    extra_dirs: Iterable[Any] = (),
) -> tuple[CRCNet, dict[str, Any]]:
    """Load a model and its card, checking that it fits the data.

    Parameters
    ----------
    path_or_name : str or Path
        A ``.safetensors`` file (or its ``.json`` card, or the path without suffix), or the bare name of
        a user or shipped model (see :func:`list_models`).
    kernel : array_like, optional
        The blur kernel of the images to deblur. A model only undoes the blur it was trained for, so a
        kernel that is not the card's (see :func:`kernel_matches`) raises ValueError unless ``force``.
    force : bool
        Load even when the kernel does not match.
    device : str or torch.device
        Where to put the model (``"auto"``: CUDA, MPS, else CPU).
    channels : int, optional
        Colour channels of the images (:func:`check_channels`): a model for ``C > 1`` channels runs on
        ``C`` or on 1 (gray), else ValueError; a gray model (1 channel) runs on anything, channel by channel.
    extra_dirs : iterable of paths
        Folders searched first for a bare name.

    Returns
    -------
    (CRCNet, dict)
        The network in eval mode on ``device`` and its card (plus ``path``, not stored in the file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = resolve_model_path(path_or_name, extra_dirs)
    _check_safetensors(path)
    card = _read_card(path)
    config = CRCNetConfig.from_dict(card["config"])
    name = card.get("name", path.stem)
    if kernel is not None:
        check_kernel(card, kernel, force, name)
    if channels is not None:
        check_channels(config.in_channels, int(channels), f"model {name!r}")
    _check_shapes(path, config)
    try:
        state = load_file(str(path), device="cpu")
    except SafetensorError as error:
        raise ValueError(f"{path.name} is not a readable safetensors file: {error}") from error
    bad = [key for key, tensor in state.items() if tensor.is_floating_point() and not bool(tensor.isfinite().all())]
    if bad:
        raise ValueError(f"{path.name} has NaN or infinite weights (in {', '.join(bad[:3])}); it was not loaded")
    model = CRCNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"the weights in {path.name} do not fit its card's config: {error}") from error
    model.eval().to(resolve_device(device))
    card = dict(card)
    card["path"] = str(path)
    return model, card


def list_models(extra_dirs: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Cards of every model found (``extra_dirs``, then the user folder, then the shipped ones).

    Each card gets ``path``, ``source`` ("extra", "user" or "shipped") and ``kernel_shape`` (list or
    None). Files whose card cannot be read are skipped with a warning.
    """
    cards = []
    for folder, source in _search_dirs(extra_dirs):
        if not folder.is_dir():
            continue
        for path in _model_files(folder):
            try:
                card = _read_card(path)
            except (ValueError, OSError, json.JSONDecodeError) as error:
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                warnings.warn(f"skipping model {path}: {message}", stacklevel=2)
                continue
            card = dict(card)
            card.setdefault("name", path.stem)
            card["path"] = str(path)
            card["source"] = source
            kernel = card.get("kernel")
            card["kernel_shape"] = list(np.shape(kernel)) if kernel is not None else None
            cards.append(card)
    return cards


__all__ = [
    "kernel_matches",
    "kernel_sha256",
    "list_models",
    "load_model",
    "normalise_kernel",
    "resolve_model_path",
    "save_model",
    "shipped_dir",
    "user_dir",
]
