"""The CLI as an outsider uses it (issue #16): odd file names, odd option values, outputs that
land on inputs or on each other. Whatever happens: no traceback, no exit 3 for user input, and
no input or pre-existing file is changed or removed (bytes and mtime compared).

The property test at the end: for any set of input names and options, the files a run writes
are disjoint from its inputs and from the files that existed before (unless ``--force``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llenhance.cli import app
from tests.conftest import TINY_UNET, darken, make_pairs, scene, write_png

runner = CliRunner()


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root``: sha256 and mtime in ns."""
    found = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            data = path.read_bytes()
            found[str(path.relative_to(root))] = (
                hashlib.sha256(data).hexdigest(),
                path.stat().st_mtime_ns,
            )
    return found


def _img(path: Path, seed: int = 0, size: tuple[int, int] = (12, 16)) -> Path:
    return write_png(path, darken(scene(*size, seed=seed)))


def run(args: list[str]):
    # wide, so rich never folds a long path: names are checked as typed
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"})


# Each case: (files to make in the work dir, the command line with {d} for the work dir).
NAMES = [
    "[x].png",
    "IMG_0001 [edited].png",
    "[b].png",
    "x [dim]y.png",
    "[red]x.png",
    "x_compare.png",
    "a b.png",
    "--help.png",
    "ünï cödé.png",
    "x_enhanced.png",
    "dots.in.name.png",
]

ENHANCE_CASES = {
    # names that collide with side outputs, or map to one output
    "compare-of-input-is-input": (
        ["x_compare.png"],
        ["enhance", "{d}/x_compare.png", "-o", "{d}/x.png", "--compare"],
    ),
    "compare-onto-existing": (
        ["in.png", "o_compare.png"],
        ["enhance", "{d}/in.png", "-o", "{d}/o.png", "--compare"],
    ),
    "dir-a-and-a_compare": (
        ["in/a.png", "in/a_compare.png"],
        ["enhance", "{d}/in", "-o", "{d}/out", "--compare"],
    ),
    "dir-a-png-and-a-jpg-format-png": (
        ["in/a.png", "in/a.jpg"],
        ["enhance", "{d}/in", "-o", "{d}/out", "--format", "png"],
    ),
    "beside-a-png-and-a-jpg-format-png": (
        ["in/a.png", "in/a.jpg"],
        ["enhance", "{d}/in", "--format", "png"],
    ),
    "output-dir-is-input-dir": (
        ["in/a.png", "in/b.png"],
        ["enhance", "{d}/in", "-o", "{d}/in"],
    ),
    "output-dir-is-input-dir-format": (
        ["in/a.png", "in/a.jpg"],
        ["enhance", "{d}/in", "-o", "{d}/in", "--format", "jpg"],
    ),
    "output-is-input": (["x.png"], ["enhance", "{d}/x.png", "-o", "{d}/x.png"]),
    "output-is-input-force": (["x.png"], ["enhance", "{d}/x.png", "-o", "{d}/x.png", "--force"]),
    "output-exists": (["x.png", "o.png"], ["enhance", "{d}/x.png", "-o", "{d}/o.png"]),
    "compare-is-dir": (
        ["x.png", "o_compare.png/keep.png"],
        ["enhance", "{d}/x.png", "-o", "{d}/o.png", "--compare"],
    ),
    # option values
    "format-markup": (["x.png"], ["enhance", "{d}/x.png", "-o", "{d}/out", "--format", "[/]"]),
    "format-bogus": (["x.png"], ["enhance", "{d}/x.png", "-o", "{d}/out", "--format", "gif"]),
    "subsampling-markup": (
        ["x.png"],
        ["enhance", "{d}/x.png", "-o", "{d}/o.jpg", "--subsampling", "[b]4:1:1[/b]"],
    ),
    "tile-negative": (["x.png"], ["enhance", "{d}/x.png", "-o", "{d}/o.png", "--tile", "-5"]),
    "tile-text": (["x.png"], ["enhance", "{d}/x.png", "-o", "{d}/o.png", "--tile", "[big]"]),
    "overlap-negative": (
        ["x.png"],
        ["enhance", "{d}/x.png", "-o", "{d}/o.png", "--tile-overlap", "-1000"],
    ),
    "overlap-over-tile": (
        ["x.png"],
        ["enhance", "{d}/x.png", "-o", "{d}/o.png", "--tile", "64", "--tile-overlap", "64"],
    ),
    "quality-zero": (["x.png"], ["enhance", "{d}/x.png", "-o", "{d}/o.jpg", "--quality", "0"]),
    "weights-missing-local": (
        ["x.png", "runs/keep.txt"],
        ["enhance", "{d}/x.png", "-o", "{d}/o.png", "--weights", "{d}/runs/last"],
    ),
    "weights-markup": (
        ["x.png"],
        ["enhance", "{d}/x.png", "-o", "{d}/o.png", "--weights", "[bold]w[/bold].safetensors"],
    ),
    "o-markup-ext": (["x.png"], ["enhance", "{d}/x.png", "-o", "{d}/[o].gif"]),
    "missing-input-markup": (["x.png"], ["enhance", "{d}/[nope].png"]),
}
# every case above is the user's mistake: one line, exit 2
USER_ERRORS = set(ENHANCE_CASES)
# an existing folder named like a file is the output folder
ENHANCE_CASES["output-is-dir"] = (
    ["x.png", "o.png/k.png"],
    ["enhance", "{d}/x.png", "-o", "{d}/o.png"],
)
for _name in NAMES:
    ENHANCE_CASES[f"name {_name}"] = (
        [_name],
        ["-v", "enhance", f"{{d}}/{_name}", "-o", "{d}/out"],
    )
    ENHANCE_CASES[f"beside {_name}"] = ([_name], ["-v", "enhance", f"{{d}}/{_name}", "--compare"])
ENHANCE_CASES["dir of odd names, compare"] = (
    [f"in/{n}" for n in NAMES],
    ["enhance", "{d}/in", "-o", "{d}/out", "--compare"],
)
ENHANCE_CASES["dir of odd names beside"] = ([f"in/{n}" for n in NAMES], ["enhance", "{d}/in"])


def _make_files(root: Path, files: list[str]) -> None:
    for i, rel in enumerate(files):
        path = root / rel
        if rel.endswith(".txt"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("keep")
        else:
            _img(path, seed=i)


def _check_outsider_run(root: Path, args: list[str]):
    before = snapshot(root)
    inputs = {k for k in before if not k.startswith("weights")}
    result = run([a.replace("{d}", str(root)) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1, 2), result.output
    after = snapshot(root)
    for name in inputs:
        assert after.get(name) == before[name], f"{name} changed or removed\n{result.output}"
    assert not [n for n in after if "/." in "/" + n and ".tmp-" in n], after  # no temps left
    return result, before, after


@pytest.mark.parametrize("case", sorted(ENHANCE_CASES))
def test_enhance_as_an_outsider(case, tmp_path, shipped):
    files, args = ENHANCE_CASES[case]
    root = tmp_path / "work"
    root.mkdir()
    _make_files(root, files)
    result, before, after = _check_outsider_run(root, args)
    written = set(after) - set(before)
    if case in USER_ERRORS:
        assert result.exit_code == 2, result.output
        assert not written, written
        errors = [x for x in result.output.splitlines() if x.startswith("error:")]
        assert len(errors) == 1 or "Usage:" in result.output, result.output
    if case.startswith(("name ", "beside ")):  # an odd but valid name just works
        assert result.exit_code == 0, result.output
        assert written
        assert case.split(" ", 1)[1] in result.output  # shown as typed (-v: one line an image)


def test_odd_names_are_reported_as_typed(tmp_path, shipped):
    (tmp_path / "IMG_0001 [edited].png").write_text("not an image")
    result = run(["enhance", tmp_path / "IMG_0001 [edited].png", "-o", tmp_path / "o.png"])
    assert result.exit_code == 2
    assert "IMG_0001 [edited].png" in result.output


def test_format_markup_is_shown_as_typed(tmp_path, shipped):
    _img(tmp_path / "x.png")
    result = run(["enhance", tmp_path / "x.png", "-o", tmp_path / "out", "--format", "[/]"])
    assert result.exit_code == 2 and "--format [/]" in result.output, result.output


def _eval_setup(root: Path, tiny_weights: Path) -> None:
    make_pairs(root / "lol", 2, size=(16, 16))
    make_pairs(root / "p", 2, size=(16, 16))
    (root / "scores.json").write_text("{}")
    (root / "afile").write_text("x")
    (root / "w.safetensors").write_bytes(tiny_weights.read_bytes())


EVAL_DATA = ["eval", "--data", "{d}/lol", "--weights", "{d}/w.safetensors"]
EVAL_DIRS = ["eval", "--pred", "{d}/p/low", "--gt", "{d}/p/high"]
EVAL_CASES = {
    "save-onto-references": [*EVAL_DATA, "--save", "{d}/lol/high"],
    "save-onto-inputs": [*EVAL_DATA, "--save", "{d}/lol/low"],
    "save-onto-file": [*EVAL_DATA, "--save", "{d}/afile"],
    "json-missing-folder": [*EVAL_DIRS, "--json", "{d}/nope/s.json"],
    "json-onto-dir": [*EVAL_DIRS, "--json", "{d}/p"],
    "json-onto-existing": [*EVAL_DIRS, "--json", "{d}/scores.json"],
    "json-onto-input": [*EVAL_DIRS, "--json", "{d}/p/high/000.png"],
    "csv-onto-input": [*EVAL_DIRS, "--csv", "{d}/p/low/001.png"],
    "json-and-csv-one-name": [*EVAL_DIRS, "--json", "{d}/s.out", "--csv", "{d}/s.out"],
    "grid-onto-input": [*EVAL_DIRS, "--save-grid", "{d}/p/low/000.png"],
    "grid-onto-existing": [*EVAL_DIRS, "--save-grid", "{d}/afile.png"],
    "grid-onto-reference-data": [*EVAL_DATA, "--save-grid", "{d}/lol/high/000.png"],
    "json-markup-name": [*EVAL_DIRS, "--json", "{d}/[x]/s.json"],
    "export-onto-itself": ["export", "{d}/w.safetensors", "{d}/w.safetensors"],
    "export-onto-existing": ["export", "{d}/w.safetensors", "{d}/afile"],
    "export-missing-folder": ["export", "{d}/w.safetensors", "{d}/nope/w.safetensors"],
    "export-onto-dir": ["export", "{d}/w.safetensors", "{d}/p"],
    "export-markup": ["export", "{d}/[w].safetensors", "{d}/x.safetensors"],
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_and_export_as_an_outsider(case, tmp_path, tiny_weights):
    root = tmp_path / "work"
    root.mkdir()
    _eval_setup(root, tiny_weights)
    (root / "afile.png").write_bytes(b"not really a png")
    result, _, _ = _check_outsider_run(root, EVAL_CASES[case])
    assert result.exit_code == 2, result.output  # each of these is the user's mistake


def test_eval_json_is_strict_json(tmp_path):
    import json

    folder = make_pairs(tmp_path / "p", 2, size=(16, 16))
    result = run(
        ["eval", "--pred", folder / "high", "--gt", folder / "high", "--json", tmp_path / "s.json"]
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "s.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["mean"]["psnr"] is None  # identical images: infinite PSNR, no number


def test_force_replaces_existing_outputs_but_never_an_input(tmp_path, shipped):
    _img(tmp_path / "x.png")
    (tmp_path / "o.png").write_bytes(b"old")
    (tmp_path / "o_compare.png").write_bytes(b"old")
    args = ["enhance", tmp_path / "x.png", "-o", tmp_path / "o.png", "--compare", "--force"]
    assert run(args).exit_code == 0
    assert (tmp_path / "o.png").read_bytes() != b"old"
    assert (tmp_path / "o_compare.png").read_bytes() != b"old"
    _img(tmp_path / "y.png", seed=3)
    _img(tmp_path / "y_enhanced.png", seed=4)
    before = snapshot(tmp_path)
    result = run(["enhance", tmp_path / "y.png", tmp_path / "y_enhanced.png", "--force"])
    assert result.exit_code == 2 and "overwrite an input" in result.output, result.output
    assert snapshot(tmp_path) == before
    bad = run(["enhance", tmp_path / "x_compare.png", "-o", tmp_path / "x.png", "--compare"])
    assert bad.exit_code == 2


def test_collisions_are_reported_before_the_first_write(tmp_path, shipped):
    for name in ("a.png", "a_compare.png", "b.png"):
        _img(tmp_path / "in" / name)
    result = run(["enhance", tmp_path / "in", "-o", tmp_path / "out", "--compare"])
    assert result.exit_code == 2
    assert "would both be written" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ---- the property: a run writes only new files, never an input ----

_name = st.sampled_from(
    [
        "a",
        "b",
        "a_compare",
        "a_enhanced",
        "a_enhanced_compare",
        "[x]",
        "IMG 1 [e]",
        "result",
        "result_compare",
        "b_enhanced",
    ]
)
_ext = st.sampled_from([".png", ".jpg"])


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@example(  # the case: --compare of the output lands on the input
    names=[("result_compare", ".png")],
    existing=[],
    layout="file",
    fmt=None,
    compare=True,
    force=True,
)
@example(  # a.png and a_compare.png into one folder: two writers of out/a_compare.png
    names=[("a", ".png"), ("a_compare", ".png")],
    existing=[("b", ".png")],
    layout="dir",
    fmt=None,
    compare=True,
    force=False,
)
@example(  # an existing file where --compare writes
    names=[("a", ".png")],
    existing=[("a_compare", ".png")],
    layout="dir",
    fmt=None,
    compare=True,
    force=False,
)
@given(
    names=st.lists(st.tuples(_name, _ext), min_size=1, max_size=4, unique=True),
    existing=st.lists(st.tuples(_name, _ext), max_size=3, unique=True),
    layout=st.sampled_from(["beside", "dir", "file"]),
    fmt=st.sampled_from([None, "png", "jpg"]),
    compare=st.booleans(),
    force=st.booleans(),
)
def test_writes_are_disjoint_from_inputs_and_existing_files(
    tmp_path_factory, names, existing, layout, fmt, compare, force
):
    import llenhance.weights as weights_module
    from llenhance.archs import create_model
    from llenhance.weights import WeightsInfo, save_weights

    root = tmp_path_factory.mktemp("prop")
    shipped_dir = root.parent / f"{root.name}-weights"
    shipped_dir.mkdir()
    save_weights(
        shipped_dir / "unet-res.safetensors",
        create_model("unet-res", **TINY_UNET),
        WeightsInfo("unet-res", dict(TINY_UNET)),
    )
    old = weights_module.SHIPPED_DIR
    weights_module.SHIPPED_DIR = shipped_dir
    try:
        inputs = [root / "in" / f"{n}{e}" for n, e in names]
        for i, path in enumerate(inputs):
            _img(path, seed=i, size=(8, 8))
        out = root / "out" if layout == "dir" else root / "in"
        out.mkdir(exist_ok=True)
        for n, e in existing:
            if not (out / f"{n}{e}").exists():
                (out / f"{n}{e}").write_bytes(b"existing")
        before = snapshot(root)
        args = ["enhance", root / "in" if layout != "file" else inputs[0]]
        if layout == "dir":
            args += ["-o", out]
        if layout == "file":
            args += ["-o", out / "result.png"]
        if fmt:
            args += ["--format", fmt]
        if compare:
            args.append("--compare")
        if force:
            args.append("--force")
        result = run(args)
        assert "Traceback" not in result.output and result.exit_code in (0, 1, 2), result.output
        after = snapshot(root)
        changed = {k for k in before if after.get(k) != before[k]}
        taken = inputs[:1] if layout == "file" else inputs  # -o FILE: the first one only
        input_keys = {str(p.relative_to(root)) for p in taken}
        if layout == "beside":  # an earlier run's NAME_enhanced files are outputs, not inputs
            ext = {"png": ".png", "jpg": ".jpg"}.get(fmt or "")
            own = set()
            for p in inputs:
                target = f"in/{p.stem}_enhanced{ext or p.suffix}"
                own |= {target, target.replace("_enhanced.", "_enhanced_compare.")}
            input_keys -= own
        assert not changed & input_keys, (changed, result.output)
        if not force:
            assert not changed, (changed, result.output)
    finally:
        weights_module.SHIPPED_DIR = old
