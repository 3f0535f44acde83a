"""Upload weights to the Hugging Face Hub with a generated model card (a README with the
metadata the weights file carries), so a pushed model describes itself on the Hub as it does on
disk."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi

from llenhance.archs import get_arch
from llenhance.errors import UserError
from llenhance.hub import (
    _NETWORK_ERRORS,
    PREFIX,
    README,
    SUFFIX,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    _check_repo_id,
    _first_line,
    is_offline,
    parse_ref,
)
from llenhance.weights import WeightsInfo, read_info

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
