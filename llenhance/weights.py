"""Self-describing weights: safetensors tensors plus metadata naming the architecture, its config,
the training data and command, and the measured metrics. Never pickle.

Names resolve in this order: an existing path, a shipped file, a Hugging Face Hub
reference (``hf://owner/repo/file.safetensors``, or ``owner/repo`` holding one weights file).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from llenhance import __version__
from llenhance.archs import arch_names, create_model, get_arch
from llenhance.errors import UserError
from llenhance.io.guard import atomic_path, check_target


def _shipped_dir() -> Path:
    """Where the shipped weights are: ``LLENHANCE_WEIGHTS_DIR`` if set; else the copy a wheel
    installs as ``llenhance/_weights``; else the repository's ``weights/`` (a checkout, or an
    editable install)."""
    if os.environ.get("LLENHANCE_WEIGHTS_DIR"):
        return Path(os.environ["LLENHANCE_WEIGHTS_DIR"])
    package = Path(__file__).resolve().parent
    installed = package / "_weights"
    if any(installed.glob("*.safetensors")):
        return installed
    return package.parent / "weights"


SHIPPED_DIR = _shipped_dir()
_PREFIX = "llenhance."


@dataclass
class WeightsInfo:
    """The metadata stored beside the tensors."""

    arch: str
    config: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    source: str = ""

    def to_metadata(self) -> dict[str, str]:
        return {
            f"{_PREFIX}arch": self.arch,
            f"{_PREFIX}config": json.dumps(self.config, sort_keys=True),
            f"{_PREFIX}training": json.dumps(self.training, sort_keys=True),
            f"{_PREFIX}metrics": json.dumps(self.metrics, sort_keys=True),
            f"{_PREFIX}version": self.version,
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, str] | None, source: str) -> WeightsInfo:
        metadata = metadata or {}
        if f"{_PREFIX}arch" not in metadata:
            raise UserError(f"{source}: not llenhance weights (no '{_PREFIX}arch' in its metadata)")
        arch = metadata[f"{_PREFIX}arch"]
        try:
            config = json.loads(metadata.get(f"{_PREFIX}config", "{}"))
            if arch in arch_names() and isinstance(config, dict):
                config = get_arch(arch).stored_config(config)
            return cls(
                arch=arch,
                config=config,
                training=json.loads(metadata.get(f"{_PREFIX}training", "{}")),
                metrics=json.loads(metadata.get(f"{_PREFIX}metrics", "{}")),
                version=metadata.get(f"{_PREFIX}version", "unknown"),
                source=source,
            )
        except (json.JSONDecodeError, RecursionError) as exc:
            raise UserError(f"{source}: corrupt metadata ({_first_line(exc)})") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise UserError(
                f"{source}: metadata does not fit '{arch}' ({_first_line(exc)})"
            ) from None


def save_weights(
    path: str | Path, model: nn.Module, info: WeightsInfo, *, overwrite: bool = False
) -> Path:
    """Write ``model``'s state dict and ``info`` to ``path`` atomically; an existing file is
    refused unless ``overwrite``, and tensors with NaN or Inf are never written."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{path}: not written, tensor '{key}' contains NaN or Inf values")
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp), metadata=info.to_metadata())
    return path


def read_info(path: str | Path) -> WeightsInfo:
    """Only the metadata of a weights file (cheap: tensors are not read)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a valid safetensors file ({_first_line(exc)})") from None
    return WeightsInfo.from_metadata(metadata, str(path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def resolve_weights(name_or_path: str | Path, offline: bool | None = None) -> Path:
    """A local file for ``name_or_path``: a path, a shipped name, or a Hub reference."""
    text = str(name_or_path)
    if text.startswith("hf://"):
        from llenhance.hub import download_weights

        return download_weights(text, offline=offline)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    shipped = shipped_path(text)
    if shipped.is_file():
        return shipped
    local = text.startswith((".", "/", "~", os.sep)) or (
        path.parent != Path(".") and path.parent.is_dir()
    )
    if local:  # a folder of that name is here: a local path, never a Hub repo
        hub_hint = f"; for a Hugging Face repo write hf://{text}" if text.count("/") == 1 else ""
        raise UserError(f"{text}: weights file not found (no such file){hub_hint}")
    if text.count("/") == 1 and path.suffix != ".safetensors" and not path.exists():
        from llenhance.hub import resolve_repo_weights

        return resolve_repo_weights(text, offline=offline)
    if path.suffix == ".safetensors" or os.sep in text:
        raise UserError(f"{text}: weights file not found")
    raise UserError(
        f"no shipped weights for '{text}' in {SHIPPED_DIR} "
        "(train them with 'llenhance train' or pass --weights PATH)"
    )


def shipped_path(name: str) -> Path:
    """Where the shipped weights of model ``name`` (an architecture or a variant) live."""
    return SHIPPED_DIR / f"{name}.safetensors"


def _match_tensors(
    path: Path, arch: str, expected: dict[str, tuple], found: dict[str, tuple]
) -> None:
    """The file's tensor names and shapes must be the architecture's, or a one-line error."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"{path}: tensors do not match architecture '{arch}' with its config "
            f"(missing {len(missing)}: {', '.join(missing[:3])}; "
            f"unexpected {len(unexpected)}: {', '.join(unexpected[:3])})"
        )
    for key, shape in found.items():
        if shape != expected[key]:
            raise UserError(
                f"{path}: tensor '{key}' has shape {shape}, architecture '{arch}' expects "
                f"{expected[key]}"
            )


def load_state(path: Path, model: nn.Module, info: WeightsInfo) -> None:
    """Load tensors into ``model``, checking names, shapes and finiteness first."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read tensors ({_first_line(exc)})") from None
    _match_tensors(
        path,
        info.arch,
        {k: tuple(v.shape) for k, v in model.state_dict().items()},
        {k: tuple(v.shape) for k, v in state.items()},
    )
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{path}: tensor '{key}' contains NaN or Inf values")
    model.load_state_dict(state)


_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def check_header(path: Path, info: WeightsInfo) -> None:
    """Compare the config's tensors with the file's header before anything real is allocated:
    the architecture is built on the ``meta`` device (shapes, no memory), the header is read
    without its tensors. A config that does not build, a missing, extra, mis-shaped or
    non-float tensor is a :class:`UserError` naming ``path``."""
    spec = get_arch(info.arch)
    if not isinstance(info.config, dict):
        raise UserError(f"{path}: config in its metadata is not a JSON object")
    try:
        with torch.device("meta"):
            built = create_model(info.arch, **info.config).state_dict()
        expected = {k: tuple(v.shape) for k, v in built.items()}
    except Exception as exc:  # noqa: BLE001 - any config the architecture cannot build
        raise UserError(
            f"{path}: config does not fit architecture '{spec.name}' "
            f"({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    try:
        with safe_open(str(path), framework="pt") as handle:
            found = {}
            for key in handle.keys():  # noqa: SIM118 - a safe_open handle is not iterable
                piece = handle.get_slice(key)
                found[key] = (tuple(piece.get_shape()), str(piece.get_dtype()))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read tensors ({_first_line(exc)})") from None
    _match_tensors(path, info.arch, expected, {k: shape for k, (shape, _) in found.items()})
    for key, (_, dtype) in found.items():
        if (dtype.upper() in _FLOAT_DTYPES) != built[key].is_floating_point():
            wanted = "floating point" if built[key].is_floating_point() else "integer"
            raise UserError(f"{path}: tensor '{key}' is {dtype}, '{info.arch}' expects {wanted}")


def load_model(
    name_or_path: str | Path, device: str | torch.device = "cpu", offline: bool | None = None
) -> tuple[nn.Module, WeightsInfo]:
    """Build the architecture a weights file names, load its tensors, return it in eval mode.
    The config is checked against the file's tensor shapes first (:func:`check_header`), so
    metadata never decides how much memory is allocated."""
    path = resolve_weights(name_or_path, offline=offline)
    info = read_info(path)
    spec = get_arch(info.arch)
    check_header(path, info)
    try:
        model = create_model(info.arch, **info.config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: config does not fit architecture '{spec.name}' ({exc})") from None
    load_state(path, model, info)
    model.eval().to(device)
    return model, info


def export_weights(
    source: str | Path, target: str | Path, half: bool = True, force: bool = False
) -> Path:
    """Copy a weights file, validated, with floating-point tensors stored as float16 (half the
    size; loading casts them back to float32). Metadata is kept and marked. ``target`` is never
    the source, and an existing one is replaced only with ``force``."""
    from llenhance.io.guard import check_outputs

    path = resolve_weights(source)
    check_outputs([(Path(target), "export")], [path], force=force)
    check_target(target, overwrite=force)
    model, info = load_model(path)
    if half:
        model = model.half()
        info.training = {**info.training, "stored_as": "float16"}
    return save_weights(target, model, info, overwrite=force)
