"""Bad input, end to end through the CLI: one clear line naming the file and the problem, a
non-zero exit code, no traceback; and the odd-but-valid inputs that must simply work."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from llenhance.archs import create_model
from llenhance.cli import app
from llenhance.io.read import read_image
from llenhance.weights import WeightsInfo, save_weights
from tests.conftest import TINY_UNET, darken, make_pairs, scene, write_png

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", (image * 255).astype(np.uint8))
    assert ok
    return data.tobytes()


def _bomb(path: Path) -> Path:
    """A valid PNG header declaring 100000x100000 pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def _make(kind: str, tmp: Path) -> list[str]:
    """Arguments for one failing invocation; files are made in ``tmp``."""
    img = write_png(tmp / "ok.png", darken(scene(24, 24)))
    good = _png_bytes(scene(24, 24))
    if kind == "truncated-png":
        (tmp / "cut.png").write_bytes(good[: len(good) // 2])
        return ["enhance", tmp / "cut.png", "-o", tmp / "o.png"]
    if kind == "truncated-jpeg":
        buf = io.BytesIO()
        Image.fromarray((scene(64, 64) * 255).astype(np.uint8)).save(buf, "JPEG")
        (tmp / "cut.jpg").write_bytes(buf.getvalue()[:300])
        return ["enhance", tmp / "cut.jpg", "-o", tmp / "o.png"]
    if kind == "zero-bytes":
        (tmp / "empty.png").write_bytes(b"")
        return ["enhance", tmp / "empty.png", "-o", tmp / "o.png"]
    if kind == "text-as-png":
        (tmp / "notes.png").write_text("just text")
        return ["enhance", tmp / "notes.png", "-o", tmp / "o.png"]
    if kind == "unsupported-format":
        (tmp / "drawing.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
        return ["enhance", tmp / "drawing.svg", "-o", tmp / "o.png"]
    if kind == "bomb":
        return ["enhance", _bomb(tmp / "bomb.png"), "-o", tmp / "o.png"]
    if kind == "empty-directory":
        (tmp / "nothing").mkdir()
        return ["enhance", tmp / "nothing", "-o", tmp / "out"]
    if kind == "missing-input":
        return ["enhance", tmp / "missing.png"]
    if kind == "output-ancestor-is-file":
        (tmp / "afile2").write_text("x")
        return ["enhance", img, "-o", tmp / "afile2" / "such" / "dir" / "o.png"]
    if kind == "output-parent-is-file":
        (tmp / "afile").write_text("x")
        return ["enhance", img, "-o", tmp / "afile" / "o.png"]
    if kind == "output-is-input":
        return ["enhance", img, "-o", img, "--force"]
    if kind == "output-exists":
        write_png(tmp / "o.png", scene(8, 8))
        return ["enhance", img, "-o", tmp / "o.png"]
    if kind == "unknown-output-format":
        return ["enhance", img, "-o", tmp / "o.xyz"]
    if kind == "bad-format-option":
        return ["enhance", img, "-o", tmp / "out", "--format", "gif"]
    if kind == "many-inputs-one-file":
        write_png(tmp / "two.png", scene(8, 8))
        return ["enhance", img, tmp / "two.png", "-o", tmp / "o.png"]
    if kind == "name-collision":
        write_png(tmp / "in" / "a.png", scene(8, 8))
        cv2.imwrite(str(tmp / "in" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
        return ["enhance", tmp / "in", "-o", tmp / "out", "--format", "png"]
    if kind == "unknown-model":
        return ["enhance", img, "--model", "mirnte"]
    if kind == "wrong-architecture-weights":
        model = create_model("unet-res", **{**TINY_UNET, "width": 6})
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(tmp / "w.safetensors"),
            metadata=WeightsInfo(arch="unet-res", config=TINY_UNET).to_metadata(),
        )
        return ["enhance", img, "-o", tmp / "o.png", "--weights", tmp / "w.safetensors"]
    if kind == "truncated-weights":
        path = save_weights(
            tmp / "w.safetensors",
            create_model("unet-res", **TINY_UNET),
            WeightsInfo(arch="unet-res", config=TINY_UNET),
        )
        path.write_bytes(path.read_bytes()[:-500])
        return ["enhance", img, "-o", tmp / "o.png", "--weights", path]
    if kind == "nan-weights":
        model = create_model("unet-res", **TINY_UNET)
        with torch.no_grad():
            next(model.parameters()).fill_(float("inf"))
        path = tmp / "w.safetensors"  # save_weights refuses to write such a file
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(path),
            metadata=WeightsInfo("unet-res", TINY_UNET).to_metadata(),
        )
        return ["enhance", img, "-o", tmp / "o.png", "--weights", path]
    if kind == "missing-weights-file":
        return ["enhance", img, "--weights", tmp / "none.safetensors"]
    if kind == "no-cuda":
        return (
            ["enhance", img, "-o", tmp / "o.png", "--device", "cuda"]
            if not torch.cuda.is_available()
            else ["enhance", img, "--device", "cuda:99"]
        )
    if kind == "tile-too-small":
        return ["enhance", img, "-o", tmp / "o.png", "--tile", "3"]
    if kind == "eval-missing-partner":
        write_png(tmp / "pred" / "a.png", scene(16, 16))
        write_png(tmp / "gt" / "b.png", scene(16, 16))
        return ["eval", "--pred", tmp / "pred", "--gt", tmp / "gt"]
    if kind == "eval-size-mismatch":
        write_png(tmp / "pred" / "a.png", scene(16, 16))
        write_png(tmp / "gt" / "a.png", scene(16, 20))
        return ["eval", "--pred", tmp / "pred", "--gt", tmp / "gt"]
    if kind == "eval-not-lol":
        (tmp / "flat").mkdir()
        return ["eval", "--data", tmp / "flat"]
    if kind == "train-missing-partner":
        root = make_pairs(tmp / "d", 3)
        (root / "high" / "001.png").unlink()
        return ["train", "--data", root, "--out", tmp / "run"]
    if kind == "train-unreadable-pair":
        root = make_pairs(tmp / "d", 3)
        (root / "high" / "002.png").write_bytes(b"\x89PNG broken")
        return ["train", "--data", root, "--out", tmp / "run"]
    if kind == "train-bad-loss":
        return ["train", "--data", make_pairs(tmp / "d", 3), "--loss", "l1+perceptual"]
    if kind == "train-bad-config-json":
        return ["train", "--data", make_pairs(tmp / "d", 3), "--model-config", "{width: 3"]
    if kind == "train-bad-config-key":
        return [
            "train",
            "--data",
            make_pairs(tmp / "d", 3),
            "--model-config",
            '{"wdth": 3}',
            "--out",
            tmp / "run",
        ]
    if kind == "train-bad-val-split":
        return ["train", "--data", make_pairs(tmp / "d", 3), "--val-split", "1.5"]
    if kind == "bad-option-value":
        return ["enhance", img, "--quality", "500"]
    raise AssertionError(kind)


CASES = {
    "truncated-png": "cut.png",
    "truncated-jpeg": "cut.jpg",
    "zero-bytes": "empty.png",
    "text-as-png": "notes.png",
    "unsupported-format": "drawing.svg",
    "bomb": "decompression bomb",
    "empty-directory": "nothing",
    "missing-input": "missing.png",
    "output-ancestor-is-file": "afile2 is not a directory",
    "output-parent-is-file": "afile",
    "output-is-input": "overwrite an input",
    "output-exists": "already exists",
    "unknown-output-format": ".xyz",
    "bad-format-option": "--format gif",
    "many-inputs-one-file": "need an output directory",
    "name-collision": "would both be written",
    "unknown-model": "did you mean 'mirnet'",
    "wrong-architecture-weights": "has shape",
    "truncated-weights": "w.safetensors",
    "nan-weights": "NaN or Inf",
    "missing-weights-file": "none.safetensors",
    "no-cuda": "cuda",
    "tile-too-small": "too small",
    "eval-missing-partner": "no reference",
    "eval-size-mismatch": "differs from reference",
    "eval-not-lol": "not a LOL-layout folder",
    "train-missing-partner": "without a partner",
    "train-unreadable-pair": "002.png",
    "train-bad-loss": "unknown loss 'perceptual'",
    "train-bad-config-json": "not valid JSON",
    "train-bad-config-key": "wdth",
    "train-bad-val-split": "--val-split 1.5",
    "bad-option-value": "--quality",
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bad_input_fails_with_one_clear_line(kind, tmp_path, shipped):
    result = run(*_make(kind, tmp_path))
    assert result.exit_code != 0, result.output
    assert CASES[kind] in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2 and kind != "bad-option-value":
        error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(error_lines) == 1, result.output


def test_debug_shows_the_traceback(tmp_path, shipped):
    (tmp_path / "notes.png").write_text("x")
    result = runner.invoke(app, ["--debug", "enhance", str(tmp_path / "notes.png")])
    assert result.exit_code != 0
    assert result.exception is not None and "notes.png" in str(result.exception)


# ---- odd but valid inputs: they must work, keeping what they carry ----


def _enhance_one(tmp: Path, src: Path, out_name: str) -> Path:
    out = tmp / out_name
    result = run("enhance", src, "-o", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("size", [(1, 1), (1, 37), (37, 1), (31, 17)])
def test_tiny_and_odd_sizes(size, tmp_path, shipped):
    src = write_png(tmp_path / "s.png", np.full((*size, 3), 0.1, np.float32))
    out = _enhance_one(tmp_path, src, "o.png")
    assert read_image(out)[0].shape == (*size, 3)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK"])
def test_colour_modes(mode, tmp_path, shipped):
    rgb = (darken(scene(20, 30)) * 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    if mode == "LA":
        im = im.convert("L").convert("LA")
    elif mode == "P":
        im = im.convert("P")
    else:
        im = im.convert(mode)
    if mode in ("RGBA", "LA"):
        im.putalpha(Image.fromarray(np.tile(np.arange(30, dtype=np.uint8) * 8, (20, 1))))
    suffix = ".jpg" if mode == "CMYK" else ".png"
    src = tmp_path / f"in{suffix}"
    im.save(src)
    out = _enhance_one(tmp_path, src, "o.png")
    rgb_out, info = read_image(out)
    assert rgb_out.shape == (20, 30, 3)
    if mode in ("RGBA", "LA"):
        assert info.alpha is not None
        expected = np.tile(np.arange(30) * 8, (20, 1)) / 255
        assert np.abs(info.alpha - expected).max() < 1 / 255 + 1e-6
    else:
        assert info.alpha is None


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_in_gives_16_bit_out(suffix, tmp_path, shipped):
    data = (darken(scene(20, 24)) * 65535).astype(np.uint16)
    src = tmp_path / f"deep{suffix}"
    cv2.imwrite(str(src), data)
    out = _enhance_one(tmp_path, src, f"o{suffix}")
    raw = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (20, 24, 3)
    assert read_image(out)[1].bit_depth == 16


def test_exif_rotated_jpeg_comes_out_upright(tmp_path, shipped):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 200  # bright left half, stored sideways
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees clockwise to view
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    out = _enhance_one(tmp_path, tmp_path / "rot.jpg", "o.jpg")
    with Image.open(out) as result:
        assert result.size == (20, 40)  # upright: width and height swapped
        assert result.getexif().get(274, 1) == 1


def test_batch_goes_on_past_bad_files_and_resumes(tmp_path, shipped):
    folder = tmp_path / "in"
    for i in range(3):
        write_png(folder / f"good{i}.png", darken(scene(16, 16, seed=i)))
    (folder / "bad.png").write_text("broken")
    write_png(folder / "--help.png", darken(scene(16, 16)))  # never read as an option
    out = tmp_path / "out"
    result = run("enhance", folder, "-o", out)
    assert result.exit_code == 1
    assert "bad.png" in result.output and "failed 1" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "--help.png",
        "good0.png",
        "good1.png",
        "good2.png",
    ]
    (out / "good1.png").unlink()
    again = run("enhance", folder, "-o", out)
    assert "enhanced 1, skipped 3" in " ".join(again.output.split())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
