"""Issue #16, class by class: each mechanism on its own (the CLI-wide table is test_outsider)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from llenhance.checkpoint import save_checkpoint
from llenhance.cli import app
from llenhance.errors import UserError, terminate_as_interrupt
from llenhance.io import guard
from llenhance.io.read import read_rgb
from llenhance.io.write import write_image
from llenhance.training import TrainConfig, train
from tests.conftest import (
    TINY_TRAIN_ARGS,
    TINY_UNET,
    darken,
    make_pairs,
    scene,
    tiny_train_config,
    write_png,
)

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"})


def _config(data, out, **overrides) -> TrainConfig:
    return tiny_train_config(data, out, **{"epochs": 1, **overrides})


# ---- 1. one guarded writer: exclusive creation ----


def test_publish_takes_a_name_exclusively(tmp_path):
    target = tmp_path / "out.png"
    fd1, tmp1 = guard.create_temp(target)
    fd2, tmp2 = guard.create_temp(target)
    os.write(fd1, b"first")
    os.write(fd2, b"second")
    os.close(fd1)
    os.close(fd2)
    guard.publish(tmp1, target)
    with pytest.raises(UserError, match="already exists"):
        guard.publish(tmp2, target)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_concurrent_writers_of_one_name_one_wins(tmp_path):
    target = tmp_path / "same.png"
    results: list[object] = []
    barrier = threading.Barrier(4)

    def writer(value: float) -> None:
        barrier.wait()
        try:
            write_image(target, np.full((64, 64, 3), value, np.float32))
            results.append(value)
        except UserError as exc:
            results.append(exc)

    threads = [threading.Thread(target=writer, args=(v,)) for v in (0.1, 0.3, 0.6, 0.9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if not isinstance(r, UserError)]
    assert len(winners) == 1, results
    assert abs(read_rgb(target).mean() - winners[0]) < 0.01
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.png"]


def test_check_outputs_sees_hard_links_and_symlinks_to_inputs(tmp_path):
    source = tmp_path / "in.png"
    source.write_bytes(b"x")
    os.link(source, tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(source)
    for name in ("hard.png", "soft.png"):
        with pytest.raises(UserError, match="overwrite an input"):
            guard.check_outputs([(tmp_path / name, "test")], [source], force=True)


def test_json_and_csv_never_replace_an_existing_file(tmp_path):
    pairs = make_pairs(tmp_path / "p", 2, size=(16, 16))
    (tmp_path / "s.csv").write_text("mine")
    result = run(
        "eval", "--pred", pairs / "low", "--gt", pairs / "high", "--csv", tmp_path / "s.csv"
    )
    assert result.exit_code == 2 and "already exists" in result.output
    assert (tmp_path / "s.csv").read_text() == "mine"
    again = run(
        "eval",
        "--pred",
        pairs / "low",
        "--gt",
        pairs / "high",
        "--csv",
        tmp_path / "s.csv",
        "--force",
    )
    assert again.exit_code == 0, again.output
    assert (tmp_path / "s.csv").read_text().startswith("image,")


# ---- 2. one image's failure never ends the batch; thin and tiny images work ----


def test_any_per_image_exception_is_contained(tmp_path, shipped, monkeypatch):
    from llenhance import inference

    for i in range(3):
        write_png(tmp_path / "in" / f"{i}.png", darken(scene(16, 16, seed=i)))
    real = inference._enhance_one

    def flaky(source, info, job, *args):
        if job.source.name == "1.png":
            raise ValueError("boom inside the model")
        return real(source, info, job, *args)

    monkeypatch.setattr(inference, "_enhance_one", flaky)
    result = run("enhance", tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "1.png: unexpected ValueError: boom inside the model" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png"]


def test_memory_error_of_one_image_is_contained(tmp_path, shipped, monkeypatch):
    from llenhance import inference

    write_png(tmp_path / "in" / "a.png", darken(scene(16, 16)))
    write_png(tmp_path / "in" / "b.png", darken(scene(16, 16, seed=1)))
    real = inference._enhance_one

    def oom(source, info, job, *args):
        if job.source.name == "a.png":
            raise MemoryError
        return real(source, info, job, *args)

    monkeypatch.setattr(inference, "_enhance_one", oom)
    result = run("enhance", tmp_path / "in", "-o", tmp_path / "out", "--tile", "0")
    assert result.exit_code == 1 and "out of memory" in result.output, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["b.png"]


def test_thin_image_context_thumbnail():
    from llenhance.archs.context import global_context, whole_image_context

    for shape in [(1, 2048, 3), (2048, 1, 3), (1, 5000, 3), (3, 9000, 3)]:
        image = np.full(shape, 0.2, np.float32)
        features = whole_image_context(image, global_context)
        assert torch.isfinite(features).all()


@pytest.mark.parametrize("size", [(1, 2048), (2048, 1), (1, 1), (3, 5)])
def test_thin_and_tiny_images_enhance_with_compare(size, tmp_path, shipped):
    write_png(tmp_path / "t.png", np.full((*size, 3), 0.1, np.float32))
    result = run("enhance", tmp_path / "t.png", "-o", tmp_path / "o.png", "--compare")
    assert result.exit_code == 0, result.output
    assert read_rgb(tmp_path / "o.png").shape == (*size, 3)
    assert (tmp_path / "o_compare.png").exists()


def test_eval_on_images_smaller_than_the_ssim_window(tmp_path, tiny_weights):
    data = make_pairs(tmp_path / "lol", 2, size=(5, 7))
    result = run("eval", "--data", data, "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    folders = run("eval", "--pred", data / "low", "--gt", data / "high")
    assert folders.exit_code == 0, folders.output


# ---- 5. interrupted work ----


def test_batch_beside_inputs_resumes(tmp_path, shipped):
    for i in range(2):
        write_png(tmp_path / "in" / f"p{i}.png", darken(scene(16, 16, seed=i)))
    first = run("enhance", tmp_path / "in", "--compare")
    assert first.exit_code == 0, first.output
    (tmp_path / "in" / "p1_enhanced.png").unlink()
    (tmp_path / "in" / "p1_enhanced_compare.png").unlink()
    again = run("enhance", tmp_path / "in", "--compare")
    assert again.exit_code == 0, again.output
    assert "enhanced 1, skipped 1" in " ".join(again.output.split())
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        "p0.png",
        "p0_enhanced.png",
        "p0_enhanced_compare.png",
        "p1.png",
        "p1_enhanced.png",
        "p1_enhanced_compare.png",
    ]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_files_of_dead_processes_are_swept(tmp_path, shipped):
    write_png(tmp_path / "x.png", darken(scene(16, 16)))
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".o.png.tmp-{dead}-0badc0de.png"
    running = tmp_path / f".o.png.tmp-{alive}-0badc0de.png"
    other = tmp_path / f".other.jpg.tmp-{dead}-0badc0de.jpg"
    for path in (stale, running, other):
        path.write_bytes(b"half")
    result = run("enhance", tmp_path / "x.png", "-o", tmp_path / "o.png")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not other.exists()
    assert running.exists()  # a live writer's


def test_sigterm_ends_like_ctrl_c(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with (
        pytest.raises(KeyboardInterrupt),
        terminate_as_interrupt(),
        guard.atomic_path(tmp_path / "f.json") as tmp,
    ):
        tmp.write_text("partial")
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # the handler runs between bytecodes
            pass
    assert list(tmp_path.iterdir()) == []  # the temporary file went with it
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_interrupt_as_the_output_file_opens_removes_it(tmp_path, monkeypatch):
    """The temporary file is guarded from its first moment, not from when its encoder starts."""
    from llenhance.io import write as write_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(write_module.os, "fdopen", interrupted)
        with pytest.raises(KeyboardInterrupt):
            write_module.ImageWriter(tmp_path / "o.png", 4, 4)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_before_the_first_band_leaves_no_temporary_file(tmp_path, tiny_weights):
    """Work done before the first band (here the --compare thumbnail) happens before the
    output's temporary file exists, so an interrupt there leaves nothing behind."""
    from llenhance import inference
    from llenhance.inference import Job, enhance_files, load_enhancer

    write_png(tmp_path / "in.png", darken(scene(32, 32)))
    enhancer = load_enhancer(weights=tiny_weights, device="cpu")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    job = Job(tmp_path / "in.png", tmp_path / "o.png", compare=tmp_path / "c.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inference, "shrink", interrupted)
        with pytest.raises(KeyboardInterrupt):
            enhance_files([job], enhancer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "tiny.safetensors"]


def test_sigterm_during_a_real_run_leaves_no_temporary_file(tmp_path, tiny_weights):
    write_png(tmp_path / "big.png", darken(scene(900, 1200)))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llenhance",
            "-q",
            "enhance",
            str(tmp_path / "big.png"),
            "-o",
            str(tmp_path / "o.png"),
            "--weights",
            str(tiny_weights),
            "--tile",
            "64",
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 120
    while not [p for p in tmp_path.iterdir() if p.name.startswith(".o.png.tmp-")]:
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "tiny.safetensors"]


def test_resume_refuses_other_data_and_nothing_to_do(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    other = make_pairs(tmp_path / "other", 4, seed=9)
    train(_config(data, tmp_path / "r"))
    with pytest.raises(UserError, match="--data"):
        train(_config(other, tmp_path / "r", epochs=2), resume=True)
    with pytest.raises(UserError, match="leaves nothing to do"):
        train(_config(data, tmp_path / "r", epochs=1), resume=True)
    notes: list[str] = []

    class Notes:
        def __getattr__(self, name):
            return lambda *a, **k: None

        def note(self, text):
            notes.append(text)

    resumed = train(_config(data, tmp_path / "r", epochs=2), reporter=Notes(), resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2]
    assert any("epochs changed" in n for n in notes)


def test_damaged_checkpoint_record_is_a_user_error(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    train(_config(data, tmp_path / "r"))
    from llenhance.archs import create_model

    model = create_model("unet-res", **TINY_UNET)
    optimizer = torch.optim.AdamW(model.parameters())
    for record in ({}, {"config": {"model": "unet-res"}}, {"config": []}):
        save_checkpoint(tmp_path / "r" / "checkpoint.safetensors", model, optimizer, record)
        with pytest.raises(UserError, match="checkpoint"):
            train(_config(data, tmp_path / "r", epochs=2), resume=True)


# ---- 6. failure is never reported as success ----


def test_infinite_lr_fails_and_writes_no_weights(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    with pytest.raises(UserError, match="diverged|finite"):
        train(_config(data, tmp_path / "inf", lr=float("inf"), epochs=2))
    written = {p.name for p in (tmp_path / "inf").iterdir()}
    assert not {"best.safetensors", "last.safetensors"} & written


def test_epoch_with_every_batch_skipped_fails(tmp_path, monkeypatch):
    from llenhance import training

    def nan_loss(spec):
        return lambda pred, target: (pred - target).abs().mean() * float("nan")

    monkeypatch.setattr(training, "build_loss", nan_loss)
    data = make_pairs(tmp_path / "train", 4)
    with pytest.raises(UserError, match="every batch of epoch 1 had non-finite losses"):
        train(_config(data, tmp_path / "n", max_bad_steps=1000))
    assert not (tmp_path / "n" / "last.safetensors").exists()


def test_lr_inf_on_the_command_line_exits_2(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    args = ["--data", data, "--out", tmp_path / "o", "--lr", "inf", "--device", "cpu"]
    result = run("train", *args, *TINY_TRAIN_ARGS, "--epochs", "1")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "o" / "best.safetensors").exists()


def test_save_weights_refuses_non_finite_tensors(tmp_path):
    from llenhance.archs import create_model
    from llenhance.weights import WeightsInfo, save_weights

    model = create_model("unet-res", **TINY_UNET)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(UserError, match="NaN or Inf"):
        save_weights(tmp_path / "w.safetensors", model, WeightsInfo("unet-res", TINY_UNET))
    assert not list(tmp_path.iterdir())


# ---- 8. user errors are exit 2 everywhere ----


def test_full_disk_in_train_out_is_a_user_error(tmp_path, monkeypatch):
    from safetensors import torch as st_torch

    from llenhance import checkpoint, weights

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights, "save_file", full)
    monkeypatch.setattr(checkpoint, "save_file", full)
    assert st_torch.save_file is not full
    data = make_pairs(tmp_path / "train", 4)
    with pytest.raises(UserError, match="No space left"):
        train(_config(data, tmp_path / "r"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tile", "-5"], "--tile -5"),
        (["--tile-overlap", "-1000"], "--tile-overlap -1000"),
        (["--tile", "64", "--tile-overlap", "64"], "less than the tile"),
        (["--tile", "64", "--tile-overlap", "100"], "less than the tile"),
    ],
)
def test_tiling_options_are_checked(args, message, tmp_path, shipped):
    write_png(tmp_path / "x.png", darken(scene(16, 16)))
    result = run("enhance", tmp_path / "x.png", "-o", tmp_path / "o.png", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o.png").exists()


def test_export_to_a_bad_path_is_a_user_error(tmp_path, tiny_weights):
    for target in (tmp_path / "nope" / "w.safetensors", tmp_path, tiny_weights):
        result = run("export", tiny_weights, target)
        assert result.exit_code == 2, result.output


# ---- 9. answers that do not mislead ----


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    from llenhance import hub
    from llenhance.weights import resolve_weights

    def no_hub(*args, **kwargs):
        raise AssertionError("asked the Hub")

    monkeypatch.setattr(hub, "resolve_repo_weights", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for ref in ("runs/last", "./last", "runs/last.safetensors"):
        with pytest.raises(UserError, match="not found"):
            resolve_weights(ref)
    with pytest.raises(UserError, match="hf://runs/last"):
        resolve_weights("runs/last")


def test_one_damaged_shipped_file_does_not_break_models(shipped):
    (shipped / "dncnn.safetensors").write_bytes(b"garbage")
    result = run("models")
    assert result.exit_code == 0, result.output
    assert "unet-res" in result.output and "dncnn" in result.output
    assert "unreadable" in result.output
    as_json = run("models", "--json")
    assert as_json.exit_code == 0


# ---- 4. weights metadata never decides allocation ----


def _weights_with(tmp_path, config_text: str, dtype=torch.float32):
    import json

    from safetensors.torch import save_file

    from llenhance.archs import create_model

    model = create_model("unet-res", **TINY_UNET)
    path = tmp_path / "w.safetensors"
    save_file(
        {k: v.to(dtype) for k, v in model.state_dict().items()},
        str(path),
        metadata={
            "llenhance.arch": "unet-res",
            "llenhance.config": config_text,
            "llenhance.training": json.dumps({}),
            "llenhance.metrics": json.dumps({}),
        },
    )
    return path


@pytest.mark.parametrize(
    "config, match",
    [
        ('{"width": 4000, "depth": 2, "unshuffle": 2}', "expects"),
        ('{"width": 4, "depth": 40, "unshuffle": 2}', "config does not fit|missing"),
        ('{"width": 4, "depth": -1, "unshuffle": 2}', "config does not fit"),
        ('{"width": -4, "depth": 2, "unshuffle": 2}', "config does not fit"),
        ("[" * 100_000 + "]" * 100_000, "corrupt metadata|not a JSON object|does not fit"),
        ('{"width": "wide"}', "does not fit"),
    ],
)
def test_config_is_checked_against_the_header_before_allocating(
    tmp_path, monkeypatch, config, match
):
    import tracemalloc

    from llenhance.weights import load_model

    path = _weights_with(tmp_path, config)
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match=match) as exc:
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert peak < 50e6  # a width-4000 unet-res would be gigabytes


def test_integer_tensors_are_refused(tmp_path):
    from llenhance.weights import load_model

    path = _weights_with(tmp_path, '{"width": 4, "depth": 2, "unshuffle": 2}', dtype=torch.int32)
    with pytest.raises(UserError, match="expects floating point"):
        load_model(path)


# ---- 7. valid files are not called corrupt ----


@pytest.mark.parametrize("dtype", ["float32", "float16", "int16", "int32"])
@pytest.mark.parametrize("channels", [3, 4])
def test_float_and_signed_tiffs_are_read(tmp_path, dtype, channels):
    tifffile = pytest.importorskip("tifffile")
    from llenhance.io.read import read_image

    rng = np.random.default_rng(0)
    unit = rng.random((12, 10, channels))
    if dtype.startswith("float"):
        data = unit.astype(dtype)
    else:
        data = (unit * np.iinfo(dtype).max).astype(dtype)
    extra = {"extrasamples": ["unassalpha"]} if channels == 4 else {}
    tifffile.imwrite(tmp_path / "x.tif", data, photometric="rgb", **extra)
    rgb, info = read_image(tmp_path / "x.tif")
    assert rgb.shape == (12, 10, 3)
    assert np.abs(rgb - unit[:, :, :3]).max() < 2e-3
    assert (info.alpha is not None) == (channels == 4)


def test_png_with_a_10_mb_icc_profile_is_read(tmp_path):
    """A profile is as long as its header says (bytes past that are no part of it): this one
    declares its 10 MB, and is kept whole."""
    import struct

    from PIL import Image, ImageCms

    from llenhance.io.read import read_image

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    padded = profile + np.random.default_rng(0).bytes(10_000_000)
    padded = struct.pack(">I", len(padded)) + padded[4:]  # the header's profile size
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "icc.png", icc_profile=padded)
    rgb, info = read_image(tmp_path / "icc.png")
    assert rgb.shape == (4, 5, 3)
    assert info.icc_profile == padded


def test_a_strip_libvips_will_not_open_is_decoded_whole(tmp_path, monkeypatch):
    """libvips refuses a side beyond its largest coordinate (100 million pixels), under the
    pixel limit for a strip: Pillow decodes such a file whole instead."""
    from llenhance.io import decode_vips
    from llenhance.io.read import read_image

    pyvips = decode_vips._pyvips()

    def refuses(self, path, *args, **kwargs):
        raise pyvips.Error("unable to call VipsForeignLoadPngFile")

    cv2_grey = np.tile(np.arange(200, dtype=np.uint8), (1, 1))
    import cv2

    assert cv2.imwrite(str(tmp_path / "strip.png"), cv2_grey)
    monkeypatch.setattr(decode_vips.VipsDecoder, "__init__", refuses)
    rgb, _ = read_image(tmp_path / "strip.png", as_float=False)
    assert rgb.shape == (1, 200, 3)
    np.testing.assert_array_equal(rgb[0, :, 1], cv2_grey[0])


def test_a_new_training_run_never_replaces_files_in_out(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.safetensors").write_bytes(b"someone's weights")
    with pytest.raises(UserError, match="already exists; choose another --out"):
        train(_config(data, out))
    assert (out / "best.safetensors").read_bytes() == b"someone's weights"


@pytest.mark.parametrize("size", [(5, 7), (1, 40)])
def test_training_on_tiny_and_thin_pairs(tmp_path, size):
    data = make_pairs(tmp_path / "train", 4, size=size)
    result = train(_config(data, tmp_path / "r", val_split=0.25))
    assert result.history[-1].val_ssim is not None


def test_ssim_loss_on_patches_smaller_than_its_window():
    from llenhance.losses import build_loss

    loss = build_loss("l1+0.2*ssim")
    for shape in [(2, 3, 8, 8), (1, 3, 1, 30), (1, 3, 4, 11)]:
        pred = torch.rand(shape)
        assert torch.isfinite(loss(pred, pred.clamp(0.1, 0.9)))
    big = torch.rand(1, 3, 32, 32)
    from llenhance.losses import ssim_loss

    assert float(ssim_loss(big, big)) == pytest.approx(0.0, abs=1e-5)


def test_eval_goes_on_past_an_unreadable_prediction(tmp_path):
    pairs = make_pairs(tmp_path / "p", 3, size=(16, 16))
    (pairs / "low" / "001.png").write_bytes(b"broken")
    result = run("eval", "--pred", pairs / "low", "--gt", pairs / "high")
    assert result.exit_code == 1, result.output
    assert "mean of 2" in result.output and "001.png" in result.output
