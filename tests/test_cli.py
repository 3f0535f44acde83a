"""The three commands end to end through Typer's CliRunner, and the one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from llenhance.cli import app
from llenhance.io.read import read_rgb
from llenhance.metrics import psnr
from tests.conftest import TINY_TRAIN_ARGS, darken, make_pairs, scene, write_png

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_enhance_one_file_keeps_size_and_refuses_to_overwrite(tmp_path, shipped):
    src = write_png(tmp_path / "dark.png", darken(scene(37, 53)))
    out = tmp_path / "bright.png"
    result = run("enhance", src, "-o", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert read_rgb(out).shape == (37, 53, 3)
    assert "enhanced 1" in result.output
    again = run("enhance", src, "-o", out)
    assert again.exit_code == 2 and "already exists" in again.output
    assert run("enhance", src, "-o", out, "--force").exit_code == 0
    same = run("enhance", src, "-o", src, "--force")
    assert same.exit_code == 2 and "overwrite an input" in same.output


def test_enhance_directory_with_format_and_tiles(tmp_path, shipped):
    for i in range(3):
        write_png(tmp_path / "in" / f"im{i}.png", darken(scene(40 + i, 50, seed=i)))
    out = tmp_path / "out"
    result = run(
        "enhance",
        tmp_path / "in",
        "-o",
        out,
        "--format",
        "jpg",
        "--quality",
        "90",
        "--tile",
        "32",
        "--tile-overlap",
        "8",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["im0.jpg", "im1.jpg", "im2.jpg"]
    rerun = run("enhance", tmp_path / "in", "-o", out, "--format", "jpg")
    assert rerun.exit_code == 0 and "skipped 3" in rerun.output


def test_enhance_with_explicit_weights_and_glob(tmp_path, tiny_weights):
    write_png(tmp_path / "a.png", darken(scene(20, 20)))
    write_png(tmp_path / "b.png", darken(scene(20, 20)))
    result = run(
        "enhance", str(tmp_path / "*.png"), "-o", tmp_path / "out", "--weights", tiny_weights
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_eval_folders_table_json_csv_and_missing_partners(tmp_path):
    ref = scene(32, 40, seed=1)
    write_png(tmp_path / "gt" / "x.png", ref)
    write_png(tmp_path / "pred" / "x.jpg.png", ref)  # stem 'x.jpg' has no partner
    write_png(tmp_path / "pred" / "x.png", np.clip(ref + 0.1, 0, 1))
    result = run(
        "eval",
        "--pred",
        tmp_path / "pred",
        "--gt",
        tmp_path / "gt",
        "--json",
        tmp_path / "s.json",
        "--csv",
        tmp_path / "s.csv",
        "--gt-mean",
    )
    assert result.exit_code == 1, result.output
    assert "no reference" in result.output and "GT-mean" in result.output
    data = json.loads((tmp_path / "s.json").read_text())
    expected = psnr(np.round(np.clip(ref + 0.1, 0, 1) * 255) / 255, np.round(ref * 255) / 255)
    assert data["images"][0]["psnr"] == pytest.approx(expected, abs=0.05)
    assert data["mean_gt_mean"]["psnr"] > data["mean"]["psnr"]
    assert (tmp_path / "s.csv").read_text().startswith("image,psnr,ssim,mae,mse")
    ok = run("eval", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--allow-missing")
    assert ok.exit_code == 0


def test_eval_size_mismatch_is_listed(tmp_path):
    write_png(tmp_path / "gt" / "a.png", scene(32, 32))
    write_png(tmp_path / "pred" / "a.png", scene(32, 30))
    result = run("eval", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt")
    assert result.exit_code == 1 and "differs from reference" in result.output


def test_eval_model_on_lol_folder_and_save(tmp_path, tiny_weights):
    data = make_pairs(tmp_path / "val", 2)
    result = run(
        "eval",
        "--weights",
        tiny_weights,
        "--data",
        data,
        "--save",
        tmp_path / "saved",
        "--json",
        tmp_path / "m.json",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["000.png", "001.png"]
    assert json.loads((tmp_path / "m.json").read_text())["mean"]["ssim"] > 0
    assert "images" in result.output and "2/2" in result.output  # enhance's progress bar


def test_train_command_end_to_end(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    out = tmp_path / "run"
    result = run(
        "train",
        "--data",
        data,
        "--val-split",
        "0.25",
        *TINY_TRAIN_ARGS,
        "--out",
        out,
        "--loss",
        "l1+ssim",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert {"best.safetensors", "last.safetensors", "checkpoint.safetensors"} <= {
        p.name for p in out.iterdir()
    }
    assert "val PSNR" in result.output
    resumed = run(
        "train",
        "--data",
        data,
        "--val-split",
        "0.25",
        *TINY_TRAIN_ARGS,
        "--epochs",  # the last value given wins: resume up to epoch 3
        "3",
        "--out",
        out,
        "--resume",
        "--device",
        "cpu",
    )
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at epoch 3" in resumed.output


def test_models_lists_shipped_metrics(shipped):
    result = run("models")
    assert result.exit_code == 0
    assert "unet-res" in result.output and "12.5" in result.output
    listing = json.loads(run("models", "--json").output)
    entry = next(e for e in listing if e["name"] == "unet-res")
    assert entry["metrics"]["val_psnr"] == 12.5 and entry["parameters"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enhance", "missing.png"], "missing.png"),
        (["enhance", "{img}", "--model", "unet-rse"], "did you mean 'unet-res'"),
        (["enhance", "{img}", "--weights", "{txt}"], "not a valid safetensors file"),
        (["enhance", "{txt}"], "not.png"),
        (["enhance", "{img}", "--device", "tpu"], "expected auto, cpu, cuda"),
        (["train", "--data", "{tmp}"], "not a LOL-layout folder"),
        (["train", "--data", "{tmp}", "--loss", "l7"], "unknown loss 'l7'"),
        (["eval", "--pred", "{tmp}"], "give --pred and --gt"),
        (["eval", "--pred", "{tmp}/nope", "--gt", "{tmp}"], "not a directory"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, shipped, args, message):
    img = write_png(tmp_path / "img.png", scene(16, 16))
    txt = tmp_path / "not.png"
    txt.write_text("hello")
    filled = [a.format(img=img, txt=txt, tmp=tmp_path) for a in args]
    result = run(*filled)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") <= 2  # one message (rich may wrap long lines)


def test_bad_option_value_is_a_usage_error(tmp_path):
    result = run("enhance", "x.png", "--quality", "500")
    assert result.exit_code == 2


def test_python_dash_m_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "llenhance", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("llenhance ")


def test_compare_grid_and_training_pictures(tmp_path, shipped):
    src = write_png(tmp_path / "dark.png", darken(scene(30, 40)))
    result = run("enhance", src, "-o", tmp_path / "bright.png", "--compare")
    assert result.exit_code == 0, result.output
    side = read_rgb(tmp_path / "bright_compare.png")
    assert side.shape[0] == 30 and side.shape[1] > 80
    assert np.abs(side[-5:, -10:] - read_rgb(tmp_path / "bright.png")[-5:, -10:]).max() < 1e-6

    data = make_pairs(tmp_path / "val", 3)
    grid = tmp_path / "grid.png"
    result = run(
        "eval", "--data", data, "--weights", shipped / "unet-res.safetensors", "--save-grid", grid
    )
    assert result.exit_code == 0, result.output
    assert read_rgb(grid).shape[1] > 3 * 200  # three columns: input, prediction, reference

    out = tmp_path / "run"
    result = run(
        "train",
        "--data",
        make_pairs(tmp_path / "train", 4),
        "--val",
        data,
        *TINY_TRAIN_ARGS,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss") and len(lines) == 3
    assert read_rgb(out / "curves.png").shape[2] == 3


def test_public_python_api(tmp_path, tiny_weights):
    import llenhance

    enhancer = llenhance.load_enhancer(weights=tiny_weights, device="cpu")
    image = darken(scene(20, 28))
    out = enhancer(image)
    assert out.shape == image.shape and out.dtype == np.float32
    direct = llenhance.enhance_image(image, weights=tiny_weights, device="cpu")
    assert np.array_equal(out, direct)
    with pytest.raises(AttributeError):
        llenhance.no_such_name  # noqa: B018


def test_jpeg_options_and_verbose(tmp_path, shipped):
    from PIL import Image, JpegImagePlugin

    src = write_png(tmp_path / "in.png", darken(scene(32, 48)))
    for sub, expected in (("4:4:4", 0), ("4:2:0", 2)):
        out = tmp_path / f"o{expected}.jpg"
        result = run("-v", "enhance", src, "-o", out, "--quality", "80", "--subsampling", sub)
        assert result.exit_code == 0, result.output
        assert "in.png ->" in result.output  # --verbose: one line per image
        with Image.open(out) as im:
            assert JpegImagePlugin.get_sampling(im) == expected
    bad = run("enhance", src, "-o", tmp_path / "x.jpg", "--subsampling", "4:1:1")
    assert bad.exit_code == 2 and "subsampling" in bad.output


def test_batch_memory_does_not_grow_with_the_number_of_images(tmp_path, tiny_weights):
    """Peak traced allocation (numpy arrays included) for 12 images is that of 3 images."""
    import tracemalloc

    from llenhance.inference import enhance_files, load_enhancer, plan_jobs

    for i in range(12):
        write_png(tmp_path / "in" / f"{i:02d}.png", darken(scene(256, 320, seed=i)))
    enhancer = load_enhancer(weights=tiny_weights, device="cpu")
    peaks = []
    for count, name in ((3, "a"), (12, "b")):
        jobs = plan_jobs([tmp_path / "in"], tmp_path / name)[:count]
        tracemalloc.start()
        report = enhance_files(jobs, enhancer)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(report.done) == count
    assert peaks[1] < 1.25 * peaks[0]


def test_output_folders_are_made_parents_too(tmp_path, shipped):
    for name in ("a", "b"):
        write_png(tmp_path / "in" / f"{name}.png", darken(scene(20, 24)))
    nested = tmp_path / "out" / "a" / "b" / "c"
    result = run("enhance", tmp_path / "in", "-o", f"{nested}/")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in nested.iterdir()) == ["a.png", "b.png"]
    dotted = tmp_path / "out" / "v1.2"
    result = run("enhance", tmp_path / "in", "-o", f"{dotted}/")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in dotted.iterdir()) == ["a.png", "b.png"]
    single = tmp_path / "newdir" / "sub" / "bright.png"
    result = run("enhance", tmp_path / "in" / "a.png", "-o", single)
    assert result.exit_code == 0, result.output
    assert read_rgb(single).shape == (20, 24, 3)


@pytest.mark.parametrize(
    ("output", "extra", "message"),
    [
        ("new/x.xyz", [], "unknown image extension .xyz"),
        ("new/deeper/", ["--weights", "{tmp}/none.safetensors"], "none.safetensors"),
        ("new/deeper/", ["--format", "gif"], "--format gif"),
        ("new/x.png", ["--model", "unet-rse"], "did you mean 'unet-res'"),
    ],
)
def test_output_checks_come_before_any_work(tmp_path, shipped, output, extra, message):
    src = write_png(tmp_path / "dark.png", darken(scene(20, 24)))
    args = [a.format(tmp=tmp_path) for a in extra]
    result = run("enhance", src, "-o", tmp_path / output, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "new").exists()  # no folder made for a run that cannot start
    assert "images" not in result.output  # no progress bar drawn


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_before_or_after_the_subcommand(tmp_path, shipped, where):
    src = write_png(tmp_path / "dark.png", darken(scene(20, 24)))

    def invoke(flag, *args):
        args = [str(a) for a in args]
        return runner.invoke(app, [flag, *args] if where == "before" else [*args, flag])

    quiet = invoke("--quiet", "enhance", src, "-o", tmp_path / "q.png")
    assert quiet.exit_code == 0, quiet.output
    assert "images" not in quiet.output and "enhanced 1" in quiet.output
    verbose = invoke("--verbose", "enhance", src, "-o", tmp_path / "v.png")
    assert verbose.exit_code == 0 and "dark.png ->" in verbose.output
    debug = invoke("--debug", "enhance", tmp_path / "missing.png")
    assert debug.exit_code != 0 and "missing.png" in str(debug.exception)
    plain = run("enhance", src, "-o", tmp_path / "p.png")  # flags do not stick to the next run
    assert "images" in plain.output and "dark.png ->" not in plain.output


@pytest.mark.parametrize(
    "args", [["--version"], ["--help"], ["enhance", "--help"], ["models", "--help"]]
)
def test_version_and_help_do_not_import_torch(args):
    script = (
        "import sys\n"
        f"sys.argv = ['llenhance', *{args!r}]\n"
        "from llenhance.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = [m for m in ('torch', 'numpy', 'cv2', 'pyvips', 'pygments') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_light_defaults_match_the_library():
    from llenhance import defaults, tiling
    from llenhance.archs import model_names
    from llenhance.catalog import DEFAULT_MODEL
    from llenhance.io import write
    from llenhance.training import TrainConfig

    assert sorted(defaults.MODEL_NAMES) == sorted(model_names())
    assert defaults.MODEL_NAMES[0] == DEFAULT_MODEL == defaults.DEFAULT_MODEL
    assert defaults.DEFAULT_TILE == tiling.DEFAULT_TILE
    assert defaults.PNG_COMPRESSION == write.PNG_COMPRESSION
    assert TrainConfig(data="x").val_split == defaults.DEFAULT_VAL_SPLIT


def test_model_help_names_the_default_and_the_choices():
    text = " ".join(
        runner.invoke(app, ["enhance", "--help"], env={"COLUMNS": "200"}).output.split()
    )
    assert "Default: unet-res" in text
    for name in ("cgnet", "dncnn", "histnet", "llid", "mirnet", "se-resnet"):
        assert name in text


def test_models_marks_the_default_and_aligns_decimals():
    from rich.console import Console

    from llenhance.catalog import ModelEntry
    from llenhance.render import models_table

    entries = [
        ModelEntry(
            "unet-res", "u", 1, "w", {"val_psnr": 23.8, "val_ssim": 0.81, "val_mae": 0.1}, {}
        ),
        ModelEntry("llid", "l", 1, None, {}, {}),
    ]
    console = Console(width=200, record=True)
    console.print(models_table(entries))
    text = console.export_text()
    assert "unet-res*" in text and "* the default" in text and "llid*" not in text
    assert "23.80" in text and "0.8100" in text and "0.1000" in text


def test_models_says_where_the_metrics_were_measured_not_where_the_checkpoint_was_chosen():
    from rich.console import Console

    from llenhance.catalog import ModelEntry
    from llenhance.render import models_table

    chosen_on = {"val": "0.15 of data, by scene"}
    entries = [
        ModelEntry("unet-res", "u", 1, "w", {"measured_on": "sice-pairs/val"}, chosen_on),
        ModelEntry("llid", "l", 1, "w", {}, chosen_on),
    ]
    console = Console(width=200, record=True)
    console.print(models_table(entries))
    rows = {line.split()[1]: line for line in console.export_text().splitlines() if "│" in line}
    assert "sice-pairs/val" in rows["unet-res*"] and "by scene" not in rows["unet-res*"]
    assert "0.15 of data, by scene" in rows["llid"]


def test_train_holds_out_a_default_split_and_prints_one_table(tmp_path):
    data = make_pairs(tmp_path / "train", 6)
    args = ["train", "--data", data, *TINY_TRAIN_ARGS, "--epochs", "3", "--device", "cpu"]
    result = run(*args, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "on 5 pairs, validating on 1 held out (10% of --data by scene, the default" in text
    assert "best weights: -" not in text and (tmp_path / "run" / "best.safetensors").exists()
    lines = result.output.splitlines()
    assert sum("val PSNR" in line for line in lines) == 1  # one header, one row per epoch
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert not any(c in result.output for c in "┏┃└")  # no boxed table per epoch
    assert "[bold]" not in result.output and "[/]" not in result.output  # styled, not markup
    none = run(*args, "--val-split", "0", "--out", tmp_path / "none")
    assert none.exit_code == 0 and "validating on nothing" in none.output
    both = run(*args, "--val", data, "--val-split", "0.2", "--out", tmp_path / "both")
    assert both.exit_code == 2 and "either --val or --val-split" in both.output


def test_an_explicit_val_folder_replaces_the_default_split(tmp_path):
    from llenhance.training import TrainConfig, TrainReporter, train

    data = make_pairs(tmp_path / "train", 4)
    val = make_pairs(tmp_path / "val", 2, seed=30)
    seen = {}

    class Reporter(TrainReporter):
        def start(self, config, n_train, n_val, params):
            seen.update(train=n_train, val=n_val)

    config = TrainConfig(
        data=str(data),
        val=str(val),
        model_config={"width": 4, "depth": 2, "unshuffle": 2},
        epochs=1,
        batch_size=2,
        patch=32,
        out=str(tmp_path / "run"),
        device="cpu",
    )
    assert config.val_split == 0.1
    train(config, Reporter())
    assert seen == {"train": 4, "val": 2}
