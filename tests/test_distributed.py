"""Data-parallel training under torchrun matches one process with the same global batch."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llenhance.archs import create_model
from llenhance.training import TrainConfig, train
from tests.conftest import make_pairs

CONFIG = '{"width": 4, "depth": 2, "norm": "none"}'


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "llenhance",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_torchrun_two_processes_equal_one_process(tmp_path):
    data = make_pairs(tmp_path / "train", 8)
    val = make_pairs(tmp_path / "val", 2, seed=40)
    common = [
        "--data",
        str(data),
        "--val",
        str(val),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--patch",
        "32",
        "--warmup-steps",
        "0",
        "--model-config",
        CONFIG,
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    done = _torchrun("train", *common, "--out", str(tmp_path / "ddp"))
    assert done.stdout.count("training unet-res") == 1  # only rank 0 reports
    assert (tmp_path / "ddp" / "best.safetensors").exists()

    single = train(
        TrainConfig(
            data=str(data),
            val=str(val),
            epochs=2,
            batch_size=4,
            patch=32,
            model_config=json.loads(CONFIG),
            device="cpu",
            seed=3,
            warmup_steps=0,
            out=str(tmp_path / "one"),
        )
    )
    a = load_file(str(tmp_path / "ddp" / "last.safetensors"))
    b = load_file(str(single.last_path))
    assert a.keys() == b.keys()
    # Tolerance: the gradient all-reduce sums in another order than one process does (float
    # rounding ~1e-7), and Adam divides by each weight's running gradient RMS, so for the few
    # weights whose gradient is near zero, rounding can move them by a fraction of an Adam step
    # (lr = 1e-3). So: every weight within half a step, and on average within 2% of one.
    diffs = torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in a])
    assert float(diffs.max()) < 5e-4
    assert float(diffs.mean()) < 2e-5
    torch.manual_seed(3)
    initial = create_model("unet-res", **json.loads(CONFIG)).state_dict()
    moved = max(float((b[k] - initial[k]).abs().max()) for k in b if b[k].is_floating_point())
    assert moved > 2e-3  # the runs trained: equal results are not just equal initialisations


def test_torchrun_enhance_and_eval_shard_by_file(tmp_path, tiny_weights):
    """Each photo once, the same pixels as one process, one summary, resumable."""
    from typer.testing import CliRunner

    from llenhance.cli import app
    from llenhance.io.read import read_rgb
    from tests.conftest import darken, make_pairs, scene, write_png

    for i in range(5):
        write_png(tmp_path / "in" / f"p{i}.png", darken(scene(24 + 4 * i, 40, seed=i)))
    weights = ["--weights", str(tiny_weights), "--device", "cpu"]
    one = CliRunner().invoke(
        app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "one"), *weights]
    )
    assert one.exit_code == 0, one.output

    out = tmp_path / "ddp" / "nested"
    done = _torchrun("enhance", str(tmp_path / "in"), "-o", str(out), *weights)
    assert done.stdout.count("enhanced ") == 1 and "enhanced 5, skipped 0" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [f"p{i}.png" for i in range(5)]
    for i in range(5):
        a, b = read_rgb(out / f"p{i}.png"), read_rgb(tmp_path / "one" / f"p{i}.png")
        assert np.array_equal(a, b)

    # a killed run resumes: what exists is skipped, the rest is done, each once
    for i in (1, 4):
        (out / f"p{i}.png").unlink()
    again = _torchrun("enhance", str(tmp_path / "in"), "-o", str(out), *weights)
    assert "enhanced 2, skipped 3" in again.stdout

    data = make_pairs(tmp_path / "pairs", 5)
    single = CliRunner().invoke(
        app, ["eval", "--data", str(data), *weights, "--json", str(tmp_path / "one.json")]
    )
    assert single.exit_code == 0, single.output
    done = _torchrun("eval", "--data", str(data), *weights, "--json", str(tmp_path / "ddp.json"))
    assert done.stdout.count("mean of 5") == 1
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "ddp.json").read_text())
    assert [r["image"] for r in b["images"]] == [r["image"] for r in a["images"]]
    assert b["mean"] == pytest.approx(a["mean"], abs=1e-9)
