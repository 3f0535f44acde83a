"""Hugging Face Hub integration: download weights by ``hf://`` reference, find the single weights
file of a repo, and push weights with a generated model card.

References look like ``hf://owner/repo/path/in/repo.safetensors`` with an optional
``@revision`` (branch, tag or commit) at the end. Downloads go through ``hf_hub_download`` into the
normal Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``, read when called, not when imported),
so a file is fetched once and reused. Offline (``offline=True`` or ``HF_HUB_OFFLINE=1``) only the
cache is used and a missing file fails at once, without any network attempt or retry.
Every failure is a one-line :class:`~llenhance.errors.UserError`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub import errors as hf_errors
from huggingface_hub.utils import validate_repo_id

from llenhance import __version__
from llenhance.archs import get_arch
from llenhance.errors import UserError
from llenhance.weights import WeightsInfo, read_info

PREFIX = "hf://"
SUFFIX = ".safetensors"
README = "README.md"
_TRUE = {"1", "ON", "YES", "TRUE"}

RepositoryNotFoundError = hf_errors.RepositoryNotFoundError
GatedRepoError = hf_errors.GatedRepoError
RevisionNotFoundError = hf_errors.RevisionNotFoundError
EntryNotFoundError = hf_errors.EntryNotFoundError
LocalEntryNotFoundError = hf_errors.LocalEntryNotFoundError
HfHubHTTPError = hf_errors.HfHubHTTPError
OfflineModeIsEnabled = hf_errors.OfflineModeIsEnabled
IncompleteSnapshotError = getattr(hf_errors, "IncompleteSnapshotError", None)


def _client_errors() -> tuple[type[BaseException], ...]:
    """Request-level errors of whichever HTTP client this huggingface_hub uses."""
    found: list[type[BaseException]] = []
    for module, name in (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            found.append(getattr(importlib.import_module(module), name))
    return tuple(found)


_CLIENT_ERRORS = _client_errors()
_UNREACHABLE = (LocalEntryNotFoundError, ConnectionError, TimeoutError, *_CLIENT_ERRORS)
_NETWORK_ERRORS = (OSError, *_CLIENT_ERRORS)


def is_offline(offline: bool | None = None) -> bool:
    """Offline when asked to, or when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set now.

    ``offline=False`` cannot switch an offline environment back on: huggingface_hub itself would
    refuse the requests."""
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(offline) or env.strip().upper() in _TRUE


def hub_cache_dir() -> str:
    """The Hub cache folder, from the environment as it is now (huggingface_hub reads it once, at
    import): ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expandvars(os.path.expanduser(os.environ[name]))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expandvars(os.path.expanduser(os.environ["HF_HOME"])), "hub")
    return constants.HF_HUB_CACHE


def _first_line(exc: BaseException) -> str:
    for line in str(exc).strip().splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def _check_repo_id(repo_id: str, what: str) -> None:
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UserError(f"{what}: expected a repository id 'owner/repo', got '{repo_id}'")
    try:
        validate_repo_id(repo_id)
    except ValueError as exc:
        raise UserError(f"{what}: invalid repository id ({_first_line(exc)})") from None


def parse_ref(ref: str) -> tuple[str, str, str | None]:
    """``hf://owner/repo/dir/file.safetensors@rev`` → ``("owner/repo", "dir/file.safetensors",
    "rev")`` (revision ``None`` when not given)."""
    usage = "expected hf://owner/repo/file.safetensors[@revision]"
    if not ref.startswith(PREFIX):
        raise UserError(f"{ref}: not a Hugging Face reference ({usage})")
    body, revision = ref[len(PREFIX) :], None
    if "@" in body:
        body, _, revision = body.rpartition("@")
        if not revision:
            raise UserError(f"{ref}: empty revision after '@' ({usage})")
    parts = body.split("/")
    if len(parts) < 3 or not all(parts):
        raise UserError(f"{ref}: needs an owner, a repository and a file ({usage})")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    _check_repo_id(repo_id, ref)
    if any(part in (".", "..") for part in parts[2:]):
        raise UserError(f"{ref}: '.' and '..' are not allowed in the file path")
    if not filename.endswith(SUFFIX):
        raise UserError(f"{ref}: llenhance weights are {SUFFIX} files ({usage})")
    return repo_id, filename, revision


def _offline_message(what: str, cache_dir: str) -> str:
    return (
        f"{what}: not in the local Hugging Face cache ({cache_dir}) and offline mode is on "
        "(HF_HUB_OFFLINE=1 / --offline)"
    )


def _explain(exc: BaseException, what: str, repo_id: str, revision: str | None) -> str:
    """One line saying why a Hub call about ``what`` failed."""
    at = f" at revision '{revision}'" if revision else ""
    if isinstance(exc, GatedRepoError):
        return (
            f"{what}: {repo_id} is a gated repository; request access on "
            f"https://huggingface.co/{repo_id} and log in (hf auth login or HF_TOKEN)"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"{what}: repository {repo_id} not found on the Hugging Face Hub (if it is private, "
            "log in with 'hf auth login' or set HF_TOKEN)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"{what}: revision '{revision or 'main'}' not found in {repo_id}"
    if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
        return f"{what}: file not found in {repo_id}{at}"
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return f"{what}: not authorised ({status}); log in with 'hf auth login' or set HF_TOKEN"
        return f"{what}: Hugging Face Hub request failed ({_first_line(exc)})"
    if isinstance(exc, _UNREACHABLE):
        cause = exc.__cause__ or exc.__context__
        reason = _first_line(cause if cause is not None else exc)
        return (
            f"{what}: cannot reach the Hugging Face Hub and it is not in the local cache ({reason})"
        )
    return f"{what}: download failed ({_first_line(exc)})"


def _offline_refusal(exc: BaseException) -> bool:
    """Did huggingface_hub refuse the network because it was put offline at import time?"""
    return any(isinstance(e, OfflineModeIsEnabled) for e in (exc, exc.__cause__, exc.__context__))


def download_weights(ref: str, offline: bool | None = None) -> Path:
    """The local path of an ``hf://`` weights reference, downloaded into the Hub cache if needed.

    Offline, only the cache is consulted and a missing file fails immediately."""
    repo_id, filename, revision = parse_ref(ref)
    cache_dir = hub_cache_dir()
    local_only = is_offline(offline)
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_only,
            library_name="llenhance",
            library_version=__version__,
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        if local_only or _offline_refusal(exc):
            raise UserError(_offline_message(ref, cache_dir)) from None
        raise UserError(_explain(exc, ref, repo_id, revision)) from None
    except (HfHubHTTPError, EntryNotFoundError, *_NETWORK_ERRORS) as exc:
        raise UserError(_explain(exc, ref, repo_id, revision)) from None
    except ValueError as exc:  # invalid arguments as huggingface_hub sees them
        raise UserError(f"{ref}: {_first_line(exc)}") from None
    return Path(path)


def _split_repo(text: str) -> tuple[str, str | None]:
    """``owner/repo`` or ``owner/repo@revision`` (an ``hf://`` prefix is accepted)."""
    text = text.removeprefix(PREFIX).rstrip("/")
    repo_id, _, revision = text.partition("@")
    _check_repo_id(repo_id, text)
    return repo_id, revision or None


def _single_weights(files: list[str], what: str, where: str) -> str:
    """The one ``.safetensors`` file among ``files``; none or several is an error naming them."""
    weights = sorted(f for f in files if f.endswith(SUFFIX))
    if not weights:
        raise UserError(f"{what}: no {SUFFIX} weights file {where}")
    if len(weights) > 1:
        raise UserError(
            f"{what}: {len(weights)} {SUFFIX} files {where} ({', '.join(weights)}); "
            f"choose one with --weights hf://{what.split('@')[0]}/FILE"
        )
    return weights[0]


def _cached_repo_files(
    repo_id: str, revision: str | None, cache_dir: str
) -> tuple[Path, list[str]]:
    """The snapshot folder of ``repo_id`` at ``revision`` in the cache and the files it holds."""
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=True,
            allow_patterns=f"*{SUFFIX}",
        )
    except LocalEntryNotFoundError as exc:
        snapshot = getattr(exc, "snapshot_path", None)  # an incomplete snapshot still has files
        if snapshot is None:
            raise
        folder = snapshot
    root = Path(folder)
    files = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
    return root, files


def resolve_repo_weights(repo_id: str, offline: bool | None = None) -> Path:
    """The one weights file of a Hub repo (``owner/repo`` or ``owner/repo@revision``).

    Online the repo's file list decides; offline (or when the Hub cannot be reached) the cached
    snapshot does. Zero or several ``.safetensors`` files is an error naming them."""
    repo, revision = _split_repo(repo_id)
    what = f"{repo}@{revision}" if revision else repo
    cache_dir = hub_cache_dir()
    if is_offline(offline):
        try:
            root, files = _cached_repo_files(repo, revision, cache_dir)
        except LocalEntryNotFoundError:
            raise UserError(_offline_message(what, cache_dir)) from None
        return root / _single_weights(files, what, "in its local Hugging Face cache snapshot")
    try:
        files = HfApi().list_repo_files(repo, revision=revision)
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise UserError(_explain(exc, what, repo, revision)) from None
    except (HfHubHTTPError, *_NETWORK_ERRORS) as exc:  # unreachable Hub: the cache may do
        try:
            root, files = _cached_repo_files(repo, revision, cache_dir)
        except LocalEntryNotFoundError:
            if _offline_refusal(exc):
                raise UserError(_offline_message(what, cache_dir)) from None
            raise UserError(_explain(exc, what, repo, revision)) from None
        return root / _single_weights(files, what, "in its local Hugging Face cache snapshot")
    name = _single_weights(files, what, f"in {what}")
    return download_weights(f"{PREFIX}{repo}/{name}" + (f"@{revision}" if revision else ""))


_METRIC_LABELS = {
    "val_psnr": ("PSNR (dB) ↑", "{:.2f}"),
    "val_ssim": ("SSIM ↑", "{:.4f}"),
    "val_mae": ("MAE ↓", "{:.4f}"),
}


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _yaml_str(value: str) -> str:
    """``value`` as a YAML scalar: bare when plainly safe, else a JSON (= valid YAML) string."""
    return value if re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", value) else json.dumps(value)


def model_card(
    info: WeightsInfo,
    *,
    repo_id: str | None = None,
    filename: str | None = None,
    license: str = "mit",
) -> str:
    """A Hub model card (README.md with YAML front matter) describing llenhance weights."""
    repo_id = repo_id or "OWNER/REPO"
    filename = filename or f"{info.arch}{SUFFIX}"
    ref = f"{PREFIX}{repo_id}/{filename}"
    try:
        description = get_arch(info.arch).description
    except UserError:  # weights of an architecture this llenhance does not know
        description = ""
    front = [
        "---",
        "library_name: llenhance",
        f"license: {_yaml_str(license)}",
        "pipeline_tag: image-to-image",
        "tags:",
        "- low-light-image-enhancement",
        "- image-to-image",
        f"- {_yaml_str(info.arch)}",
        "---",
    ]
    lines = [
        *front,
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        "Low-light photo enhancement weights for the llenhance library,"
        f" architecture `{info.arch}`" + (f": {description}" if description else "."),
        "",
        "## Usage",
        "",
        "```bash",
        f"llenhance enhance photo.jpg -o out.jpg --weights {ref}",
        "```",
        "",
        "```python",
        "from llenhance.inference import load_enhancer",
        "",
        f'enhancer = load_enhancer(weights="{ref}")',
        "enhanced = enhancer(image)  # HxWx3 float32 RGB in [0, 1]",
        "```",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| Architecture | `{_cell(info.arch)}` |",
        f"| Config | `{_cell(info.config)}` |",
        f"| llenhance version | {_cell(info.version)} |",
        "",
        "## Validation metrics",
        "",
    ]
    if info.metrics:
        lines += ["| Metric | Value |", "|---|---|"]
        for key, value in info.metrics.items():
            label, fmt = _METRIC_LABELS.get(key, (key, "{}"))
            try:
                shown = fmt.format(value)
            except (TypeError, ValueError):
                shown = str(value)
            lines.append(f"| {_cell(label)} | {_cell(shown)} |")
    else:
        lines.append("No metrics were recorded with these weights.")
    lines += ["", "## Training", ""]
    details = {k: v for k, v in info.training.items() if k != "command" and v is not None}
    if details:
        lines += ["| | |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in details.items()]
        lines.append("")
    command = info.training.get("command")
    if command:
        if isinstance(command, (list, tuple)):
            command = " ".join(str(part) for part in command)
        lines += ["Trained with:", "", "```bash", str(command), "```"]
    else:
        lines.append("The training command was not recorded.")
    return "\n".join(lines) + "\n"


def push_weights(
    path: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    path_in_repo: str | None = None,
    commit_message: str | None = None,
    license: str = "mit",
) -> str:
    """Upload llenhance weights and a generated README.md to ``repo_id`` (created if missing) in
    one commit; returns the ``hf://`` reference of the uploaded weights."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    info = read_info(path)  # only real llenhance weights are pushed
    _check_repo_id(repo_id, repo_id)
    target = path_in_repo or path.name
    ref = f"{PREFIX}{repo_id}/{target}"
    parse_ref(ref)  # the uploaded file must be addressable as a reference
    if is_offline():
        raise UserError(f"{ref}: cannot push while offline mode is on (HF_HUB_OFFLINE=1)")
    card = model_card(info, repo_id=repo_id, filename=target, license=license)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        api.create_commit(
            repo_id,
            operations=[
                CommitOperationAdd(path_in_repo=target, path_or_fileobj=str(path)),
                CommitOperationAdd(path_in_repo=README, path_or_fileobj=card.encode("utf-8")),
            ],
            commit_message=commit_message or f"Upload {target} ({info.arch}) with llenhance",
        )
    except OfflineModeIsEnabled:
        raise UserError(f"{ref}: cannot push while offline mode is on (HF_HUB_OFFLINE=1)") from None
    except (HfHubHTTPError, *_NETWORK_ERRORS) as exc:
        raise UserError(f"{ref}: push failed ({_explain_push(exc)})") from None
    return ref


def _explain_push(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return f"not authorised ({status}); log in with 'hf auth login' or set HF_TOKEN"
    return _first_line(exc)
