"""What a training run depends on: the one place the ``train`` options are declared.

``llenhance train`` builds its command-line options from these fields (name, type, default,
help and bounds), so the CLI and the library cannot drift apart. This module imports nothing
heavy, so ``llenhance --help`` stays fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llenhance.defaults import DEFAULT_MODEL, DEFAULT_VAL_SPLIT, MODEL_NAMES
from llenhance.errors import UserError


def option(help: str, **settings: Any) -> dict[str, Any]:
    """Field metadata that makes a field a ``train`` option: its help and typer settings
    (``min``, ``max``, ``show_default``)."""
    return {"help": help, **settings}


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in the checkpoint so a resume can check it."""

    data: str = field(metadata=option("LOL-layout training folder (low/, high/)."))
    model: str = field(
        default=DEFAULT_MODEL,
        metadata=option(f"Architecture to train: {', '.join(MODEL_NAMES)}."),
    )
    model_config: dict[str, Any] = field(
        default_factory=dict,
        metadata=option("Architecture config as JSON, e.g. '{\"width\": 24}'.", json=True),
    )
    val: str | None = field(default=None, metadata=option("LOL-layout validation folder."))
    val_split: float = field(
        default=DEFAULT_VAL_SPLIT,
        metadata=option(
            "Hold out this fraction of --data, whole scenes, for validation (0: none). "
            f"Default without --val: {DEFAULT_VAL_SPLIT:g}.",
            unset=True,
        ),
    )
    synthesize: bool = field(
        default=False,
        metadata=option("--data is a folder of normal photos: synthesise low-light pairs."),
    )
    photos: str | None = field(
        default=None,
        metadata=option("Also train on low-light pairs synthesised from these photos."),
    )
    unpaired: str | None = field(
        default=None,
        metadata=option(
            "Also train on these real dark photos (no references): --teacher's "
            "output is their target (distillation)."
        ),
    )
    teacher: str | None = field(
        default=None,
        metadata=option("Weights that make the targets of the --unpaired photos."),
    )
    identity_fraction: float = field(
        default=0.1, metadata=option("Share of (reference, reference) pairs.", min=0.0, max=1.0)
    )
    exposure_jitter: float = field(
        default=2.0,
        metadata=option("Scale low exposure by up to this factor either way.", min=1.0),
    )
    darken: float = field(
        default=1.0,
        metadata=option(
            "Extend the jitter's dark end by this factor: inputs darker than the data's.", min=1.0
        ),
    )
    init: str | None = field(
        default=None, metadata=option("Start from these weights (fine-tune; same config).")
    )
    epochs: int = field(default=100, metadata=option("Passes over the training data.", min=1))
    batch_size: int = field(default=4, metadata=option("Crops per step.", min=1))
    patch: int = field(default=256, metadata=option("Random crop size.", min=8))
    lr: float = field(default=1e-3, metadata=option("Peak learning rate (AdamW).", min=0.0))
    weight_decay: float = field(default=1e-4, metadata=option("AdamW weight decay.", min=0.0))
    loss: str = field(
        default="l1+0.2*ssim",
        metadata=option("l1, mse, charbonnier, ssim, tone, color or sums: l1+0.2*ssim."),
    )
    schedule: str = field(default="cosine", metadata=option("cosine (with warm-up) or plateau."))
    warmup_steps: int = field(default=200, metadata=option("Linear warm-up steps (cosine).", min=0))
    out: str = field(
        default="runs/train", metadata=option("Folder for best/last weights and the checkpoint.")
    )
    seed: int = field(default=0, metadata=option("Seed of crops, order, split and init."))
    device: str = field(default="auto", metadata=option("auto, cpu, cuda or cuda:N."))
    workers: int = field(default=0, metadata=option("Data loader processes.", min=0))
    patience: int = field(
        default=0, metadata=option("Stop after N validations without gain; 0 = never.", min=0)
    )
    val_every: int = field(default=1, metadata=option("Validate every N epochs.", min=1))
    tile: int | None = field(
        default=None,
        metadata=option("Validation tile in pixels (0: whole image); default: the model's.", min=0),
    )
    max_bad_steps: int = 10
    """Non-finite losses in a row that end a run as diverged."""
    command: str = ""
    """The command line that started the run (for the weights' metadata)."""

    @classmethod
    def from_options(cls, command: str = "", **options: Any) -> TrainConfig:
        """A config from ``train``'s option values: JSON fields parsed, unset ones defaulted."""
        text = options.get("model_config")
        try:
            parsed = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise UserError(f"--model-config is not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise UserError("--model-config must be a JSON object")
        options["model_config"] = parsed
        if options.get("val") is not None and options.get("val_split"):
            raise UserError("give either --val or --val-split, not both")
        if options.get("val_split") is None:
            options["val_split"] = DEFAULT_VAL_SPLIT
        values = {k: str(v) if hasattr(v, "__fspath__") else v for k, v in options.items()}
        return cls(**values, command=command)
