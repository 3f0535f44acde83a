"""Hugging Face Hub downloads: weights by ``hf://`` reference, or the single weights file of a
repo (uploads live in :mod:`llenhance.publish`, which builds on this module and on weights).

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
import os
from pathlib import Path

from huggingface_hub import (
    HfApi,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub import errors as hf_errors
from huggingface_hub.utils import validate_repo_id

from llenhance import __version__
from llenhance.errors import UserError

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
