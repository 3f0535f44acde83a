"""llenhance.hub without any network: a real on-disk Hugging Face cache built in tmp_path for the
offline paths, monkeypatched huggingface_hub entry points for the online ones."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx2
import pytest
import torch
import yaml
from huggingface_hub import HfApi, ModelCard
from huggingface_hub import constants as hf_constants
from huggingface_hub import errors as hf_errors
from safetensors.torch import save_file

from llenhance import hub, publish
from llenhance.archs import create_model
from llenhance.errors import UserError
from llenhance.weights import WeightsInfo, load_model, read_info, save_weights

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "owner/repo"
FILE = "unet-res.safetensors"
TINY = {"width": 4, "depth": 2, "unshuffle": 2}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing may reach the Hub: huggingface_hub's own offline switch refuses every request, and
    the environment starts without any offline/cache variables."""
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "ENDPOINT", "http://127.0.0.1:9")
    for name in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HOME",
        "HF_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def weights_bytes(tmp_path) -> bytes:
    torch.manual_seed(0)
    model = create_model("unet-res", **TINY)
    info = WeightsInfo(
        arch="unet-res",
        config=dict(TINY),
        training={"command": "llenhance train data/LOL", "data": "data/LOL", "epochs": 3},
        metrics={"val_psnr": 17.25, "val_ssim": 0.6543, "val_mae": 0.0876},
    )
    return save_weights(tmp_path / FILE, model, info).read_bytes()


def add_to_cache(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = COMMIT) -> Path:
    """Lay files out the way hf_hub_download does: blobs by sha256, refs/main holding the commit
    (no newline), snapshots/<commit>/<file> as relative symlinks to the blobs."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    snapshot = storage / "snapshots" / commit
    for name, data in files.items():
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        pointer = snapshot / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    return snapshot


@pytest.fixture
def cache(tmp_path, monkeypatch, weights_bytes) -> Path:
    """A Hub cache holding owner/repo with one weights file and a README, pointed to by the env."""
    home = tmp_path / "hf"
    cache = home / "hub"
    add_to_cache(cache, REPO, {FILE: weights_bytes, "README.md": b"# card\n"})
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def spy(monkeypatch):
    """Record the keyword arguments of every hf_hub_download call, then run the real one."""
    calls: list[dict] = []
    real = hub.hf_hub_download

    def recording(repo_id, filename, **kwargs):
        calls.append({"repo_id": repo_id, "filename": filename, **kwargs})
        return real(repo_id, filename, **kwargs)

    monkeypatch.setattr(hub, "hf_hub_download", recording)
    return calls


def fake_download(monkeypatch, result=None, error: BaseException | None = None) -> list[dict]:
    calls: list[dict] = []

    def fake(repo_id, filename, **kwargs):
        calls.append({"repo_id": repo_id, "filename": filename, **kwargs})
        if error is not None:
            raise error
        return str(result)

    monkeypatch.setattr(hub, "hf_hub_download", fake)
    return calls


def response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/x"))


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# ---- references


def test_parse_ref():
    assert hub.parse_ref("hf://o/r/w.safetensors") == ("o/r", "w.safetensors", None)
    assert hub.parse_ref("hf://o/r/dir/w.safetensors@v1.0") == ("o/r", "dir/w.safetensors", "v1.0")


@pytest.mark.parametrize(
    "ref",
    [
        "hf://",
        "hf://owner",
        "hf://owner/repo",
        "hf://owner/repo/",
        "hf://owner//w.safetensors",
        "hf://owner/repo/model.bin",
        "hf://owner/repo/w.safetensors@",
        "hf://owner/repo/../w.safetensors",
        "hf://own--er/repo/w.safetensors",
    ],
)
def test_bad_refs_are_user_errors_before_any_download(monkeypatch, ref):
    calls = fake_download(monkeypatch, error=AssertionError("must not be called"))
    message = one_line_error(hub.download_weights, ref)
    assert ref in message
    assert calls == []


# ---- offline, against a real cache


def test_offline_env_uses_the_cache_and_load_model_loads_it(cache, spy, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = hub.download_weights(f"hf://{REPO}/{FILE}")
    assert path == cache.resolve() / f"models--owner--repo/snapshots/{COMMIT}/{FILE}"
    assert read_info(path).metrics["val_psnr"] == 17.25
    assert spy[-1]["local_files_only"] is True
    assert Path(spy[-1]["cache_dir"]) == cache

    model, info = load_model(f"hf://{REPO}/{FILE}")
    assert (info.arch, info.config) == ("unet-res", TINY)
    torch.manual_seed(0)
    reference = create_model("unet-res", **TINY)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # a pinned commit resolves from the snapshot too
    assert hub.download_weights(f"hf://{REPO}/{FILE}@{COMMIT}") == path


def test_offline_and_not_cached_fails_fast(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for ref in (f"hf://{REPO}/other.safetensors", "hf://someone/else/w.safetensors"):
        started = time.perf_counter()
        message = one_line_error(hub.download_weights, ref)
        assert time.perf_counter() - started < 2
        assert message.startswith(f"{ref}: not in the local Hugging Face cache")
        assert "offline mode is on" in message


def test_offline_argument_works_without_the_env(cache, spy):
    assert "HF_HUB_OFFLINE" not in os.environ
    path = hub.download_weights(f"hf://{REPO}/{FILE}", offline=True)
    assert path.name == FILE and path.is_file()
    assert spy[-1]["local_files_only"] is True
    message = one_line_error(hub.download_weights, f"hf://{REPO}/x.safetensors", offline=True)
    assert "offline mode is on" in message
    _, info = load_model(f"hf://{REPO}/{FILE}", offline=True)
    assert info.arch == "unet-res"


def test_cache_location_is_read_from_the_env_at_call_time(cache, tmp_path, monkeypatch):
    ref = f"hf://{REPO}/{FILE}"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    assert "offline mode is on" in one_line_error(hub.download_weights, ref, offline=True)
    monkeypatch.delenv("HF_HUB_CACHE")  # HF_HOME/hub is then the cache
    assert hub.download_weights(ref, offline=True).is_file()


# ---- online, with hf_hub_download replaced


def test_online_download_passes_repo_file_and_revision(cache, monkeypatch, tmp_path):
    calls = fake_download(monkeypatch, result=tmp_path / "w.safetensors")
    assert hub.download_weights("hf://o/r/sub/w.safetensors@v2") == tmp_path / "w.safetensors"
    assert calls[0]["repo_id"] == "o/r"
    assert calls[0]["filename"] == "sub/w.safetensors"
    assert calls[0]["revision"] == "v2"
    assert calls[0]["local_files_only"] is False
    assert Path(calls[0]["cache_dir"]) == cache
    hub.download_weights("hf://o/r/w.safetensors")
    assert calls[1]["revision"] is None and calls[1]["filename"] == "w.safetensors"


def _chained(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            hf_errors.RepositoryNotFoundError("404 Client Error.\n\nmore", response=response(404)),
            "repository o/r not found",
        ),
        (hf_errors.GatedRepoError("403\nx", response=response(403)), "gated repository"),
        (hf_errors.RevisionNotFoundError("404\nx", response=response(404)), "revision 'v9'"),
        (hf_errors.RemoteEntryNotFoundError("404\nx", response=response(404)), "file not found"),
        (hf_errors.HfHubHTTPError("500 Server Error\nx", response=response(500)), "500"),
        (hf_errors.HfHubHTTPError("401 Client Error\nx", response=response(401)), "log in"),
        (
            _chained(
                hf_errors.LocalEntryNotFoundError("An error happened\nmore"),
                httpx2.ConnectError("[Errno -3] Temporary failure in name resolution"),
            ),
            "cannot reach the Hugging Face Hub and it is not in the local cache ([Errno -3]",
        ),
        (httpx2.ConnectError("connection refused"), "cannot reach the Hugging Face Hub"),
        (PermissionError("[Errno 13] Permission denied: '/cache'"), "download failed"),
    ],
)
def test_online_failures_are_one_line_user_errors(monkeypatch, error, expected):
    fake_download(monkeypatch, error=error)
    ref = "hf://o/r/w.safetensors@v9"
    message = one_line_error(hub.download_weights, ref)
    assert message.startswith(ref) and expected in message, message


def test_hub_switched_offline_at_import_reads_as_offline(monkeypatch):
    refusal = hf_errors.OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline")
    fake_download(monkeypatch, error=_chained(hf_errors.LocalEntryNotFoundError("x"), refusal))
    assert "offline mode is on" in one_line_error(hub.download_weights, "hf://o/r/w.safetensors")


# ---- --model owner/repo


def fake_listing(monkeypatch, files=None, error=None) -> list[tuple]:
    calls: list[tuple] = []

    def list_repo_files(self, repo_id, *, revision=None, **kwargs):
        calls.append((repo_id, revision))
        if error is not None:
            raise error
        return list(files)

    monkeypatch.setattr(HfApi, "list_repo_files", list_repo_files)
    return calls


def test_resolve_repo_weights_picks_the_single_safetensors(monkeypatch, tmp_path):
    listing = fake_listing(monkeypatch, ["README.md", "sub/best.safetensors", ".gitattributes"])
    downloads = fake_download(monkeypatch, result=tmp_path / "best.safetensors")
    assert hub.resolve_repo_weights("me/lowlight@v1") == tmp_path / "best.safetensors"
    assert listing == [("me/lowlight", "v1")]
    assert (downloads[0]["repo_id"], downloads[0]["filename"]) == (
        "me/lowlight",
        "sub/best.safetensors",
    )
    assert downloads[0]["revision"] == "v1"


def test_resolve_repo_weights_needs_exactly_one(monkeypatch):
    fake_download(monkeypatch, error=AssertionError("must not download"))
    fake_listing(monkeypatch, ["README.md", "config.json"])
    assert "no .safetensors weights file in me/x" in one_line_error(
        hub.resolve_repo_weights, "me/x"
    )
    fake_listing(monkeypatch, ["b.safetensors", "README.md", "a.safetensors"])
    message = one_line_error(hub.resolve_repo_weights, "me/x")
    assert "2 .safetensors files" in message and "a.safetensors, b.safetensors" in message
    for bad in ("me", "me/x/y", "me/"):
        assert "expected a repository id 'owner/repo'" in one_line_error(
            hub.resolve_repo_weights, bad
        )


def test_resolve_repo_weights_missing_repo(monkeypatch):
    error = hf_errors.RepositoryNotFoundError("404\nx", response=response(404))
    fake_listing(monkeypatch, error=error)
    assert "repository me/none not found" in one_line_error(hub.resolve_repo_weights, "me/none")


def test_resolve_repo_weights_offline_uses_the_cached_snapshot(cache, monkeypatch, weights_bytes):
    fake_listing(monkeypatch, error=AssertionError("offline must not list the Hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = hub.resolve_repo_weights(REPO)
    assert path.name == FILE and read_info(path).arch == "unet-res"
    add_to_cache(cache, "owner/two", {"a.safetensors": weights_bytes, "b.safetensors": b"x"})
    message = one_line_error(hub.resolve_repo_weights, "owner/two")
    assert "a.safetensors, b.safetensors" in message and "cache" in message
    started = time.perf_counter()
    assert "offline mode is on" in one_line_error(hub.resolve_repo_weights, "owner/missing")
    assert time.perf_counter() - started < 2


def test_resolve_repo_weights_falls_back_to_the_cache_when_unreachable(cache, monkeypatch):
    fake_listing(monkeypatch, error=httpx2.ConnectError("connection refused"))
    assert hub.resolve_repo_weights(REPO).name == FILE
    message = one_line_error(hub.resolve_repo_weights, "owner/missing")
    assert "cannot reach the Hugging Face Hub" in message and "connection refused" in message


# ---- model card and push


def _info() -> WeightsInfo:
    return WeightsInfo(
        arch="unet-res",
        config=dict(TINY),
        training={
            "command": "llenhance train data/LOL --model unet-res --epochs 30",
            "data": "data/LOL",
            "epochs": 30,
        },
        metrics={"val_psnr": 21.2345, "val_ssim": 0.81234, "val_mae": 0.05671},
    )


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_card(monkeypatch):
    card = publish.model_card(_info(), repo_id="me/lowlight", filename=FILE, license="apache-2.0")
    meta = _front_matter(card)
    assert meta["library_name"] == "llenhance"
    assert meta["license"] == "apache-2.0"
    assert {"low-light-image-enhancement", "image-to-image"} <= set(meta["tags"])
    assert ModelCard(card).data.library_name == "llenhance"  # the Hub's own parser agrees
    assert f"llenhance enhance photo.jpg -o out.jpg --weights hf://me/lowlight/{FILE}" in card
    for value in ("21.23", "0.8123", "0.0567", "data/LOL", "| epochs | 30 |"):
        assert value in card, value
    assert "```bash\nllenhance train data/LOL --model unet-res --epochs 30\n```" in card
    bare = publish.model_card(WeightsInfo(arch="unet-res", config={}))
    assert _front_matter(bare)["license"] == "mit"
    assert "No metrics were recorded" in bare and "not recorded" in bare


class FakeApi:
    """Stands in for HfApi in push tests: records every call, uploads nothing."""

    calls: list[tuple] = []
    fail_with: BaseException | None = None

    def __init__(self, token=None):
        FakeApi.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_repo", repo_id, kwargs))
        if FakeApi.fail_with is not None:
            raise FakeApi.fail_with

    def create_commit(self, repo_id, operations, **kwargs):
        FakeApi.calls.append(("create_commit", repo_id, list(operations), kwargs))


@pytest.fixture
def fake_api(monkeypatch):
    FakeApi.calls, FakeApi.fail_with = [], None
    monkeypatch.setattr(publish, "HfApi", FakeApi)
    return FakeApi


def test_push_weights_uploads_weights_and_card(fake_api, tiny_weights):
    ref = publish.push_weights(tiny_weights, "me/lowlight", token="hf_x", private=True)
    assert ref == "hf://me/lowlight/tiny.safetensors"
    assert fake_api.calls[0] == ("init", "hf_x")
    _, repo_id, kwargs = fake_api.calls[1]
    assert repo_id == "me/lowlight" and kwargs == {"exist_ok": True, "private": True}
    _, repo_id, operations, kwargs = fake_api.calls[2]
    assert repo_id == "me/lowlight" and "tiny.safetensors" in kwargs["commit_message"]
    uploaded = {op.path_in_repo: op.path_or_fileobj for op in operations}
    assert uploaded["tiny.safetensors"] == str(tiny_weights)
    card = publish.model_card(
        read_info(tiny_weights), repo_id="me/lowlight", filename="tiny.safetensors"
    )
    assert uploaded["README.md"] == card.encode()
    assert "12.50" in card  # the fixture's val_psnr

    ref = publish.push_weights(tiny_weights, "me/lowlight", path_in_repo="v2/best.safetensors")
    assert ref == "hf://me/lowlight/v2/best.safetensors"
    assert (
        b"--weights hf://me/lowlight/v2/best.safetensors"
        in fake_api.calls[-1][2][1].path_or_fileobj
    )


def test_push_refuses_anything_but_llenhance_weights(fake_api, tmp_path, tiny_weights, monkeypatch):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    assert "not llenhance weights" in one_line_error(publish.push_weights, plain, "me/x")
    assert "not found" in one_line_error(
        publish.push_weights, tmp_path / "none.safetensors", "me/x"
    )
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    assert "not a valid safetensors file" in one_line_error(publish.push_weights, junk, "me/x")
    assert "owner/repo" in one_line_error(publish.push_weights, tiny_weights, "noslash")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "offline" in one_line_error(publish.push_weights, tiny_weights, "me/x")
    assert fake_api.calls == []


def test_push_errors_are_one_line(fake_api, tiny_weights):
    fake_api.fail_with = hf_errors.HfHubHTTPError(
        "401 Client Error\nbad token", response=response(401)
    )
    message = one_line_error(publish.push_weights, tiny_weights, "me/x")
    assert message.startswith("hf://me/x/tiny.safetensors: push failed") and "log in" in message
    assert not any(call[0] == "create_commit" for call in fake_api.calls)
