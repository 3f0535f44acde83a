import json

import numpy as np
import pytest

from llenhance.evaluation import evaluate_dirs
from llenhance.tone import measure_tone, tone_flags, tone_ratios
from tests.conftest import scene, write_png
from tests.test_cli import run


def washed_out(image: np.ndarray) -> np.ndarray:
    """Lifted blacks and half the saturation: the look the diagnostics must catch."""
    grey = image.mean(axis=2, keepdims=True)
    return np.clip(0.12 + 0.88 * (0.5 * image + 0.5 * grey), 0, 1)


def test_measure_tone_reads_black_level_brightness_and_chroma():
    image = np.zeros((10, 10, 3), np.float32)
    image[..., 0] = 1.0  # pure red: luma 0.299, chroma 1
    tone = measure_tone(image)
    assert tone.black == pytest.approx(0.299) and tone.luma == pytest.approx(0.299)
    assert tone.chroma == pytest.approx(1.0)


def test_flags_name_washed_out_output_and_pass_a_faithful_one():
    ref = scene(48, 48, seed=2)
    assert tone_flags(measure_tone(ref), measure_tone(ref)) == []
    pred, truth = measure_tone(washed_out(ref)), measure_tone(ref)
    ratios = tone_ratios(pred, truth)
    assert ratios["black"] > 1.25 and ratios["chroma"] < 0.9
    assert {"lifted blacks", "dull colour"} <= set(tone_flags(pred, truth))
    dark = measure_tone(ref * 0.5)
    assert "too dark" in tone_flags(dark, truth)


def test_eval_reports_tone_per_image_mean_json_and_csv(tmp_path):
    ref = scene(40, 48, seed=3)
    write_png(tmp_path / "gt" / "a.png", ref)
    write_png(tmp_path / "pred" / "a.png", washed_out(ref))
    write_png(tmp_path / "gt" / "b.png", ref)
    write_png(tmp_path / "pred" / "b.png", ref)
    report = evaluate_dirs(tmp_path / "pred", tmp_path / "gt")
    summary = report.tone_summary()
    assert summary["reference"]["black"] < summary["prediction"]["black"]
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
    )
    assert result.exit_code == 0, result.output
    assert "lifted" in result.output and "black level" in result.output
    data = json.loads((tmp_path / "s.json").read_text())
    rows = {row["image"]: row for row in data["images"]}
    assert "lifted blacks" in rows["a"]["tone_flags"] and rows["b"]["tone_flags"] == ""
    assert rows["b"]["black_ratio"] == pytest.approx(1.0)
    assert data["tone"]["ratio"]["chroma"] < 1.0
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert {"black_pred", "black_ref", "luma_ratio", "chroma_ratio", "tone_flags"} <= set(header)
