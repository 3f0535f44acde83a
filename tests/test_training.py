import os
import signal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llenhance import training
from llenhance.errors import UserError
from llenhance.training import TrainConfig, TrainingInterrupted, TrainReporter, train
from llenhance.weights import load_model, read_info
from tests.conftest import TINY_UNET, make_pairs, tiny_train_config


def _config(data, out, **overrides) -> TrainConfig:
    return tiny_train_config(data, out, **overrides)


def test_training_lowers_the_loss_and_writes_self_describing_weights(tmp_path):
    data = make_pairs(tmp_path / "train", 8)
    val = make_pairs(tmp_path / "val", 2, seed=50)
    # the loop is under test: a full-resolution tiny U-Net learns these small pairs fastest
    fast = {**TINY_UNET, "unshuffle": 1}
    result = train(
        _config(data, tmp_path / "run", val=str(val), epochs=6, loss="l1", model_config=fast)
    )
    losses = [r.train_loss for r in result.history]
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0]
    assert all(r.val_psnr is not None for r in result.history)
    info = read_info(result.best_path)
    assert info.arch == "unet-res" and info.config["width"] == 4
    assert info.training["command"] == "test" and info.training["data"] == str(data)
    assert info.metrics["val_images"] == 2
    best_epoch = max(result.history, key=lambda r: r.val_psnr)
    assert info.metrics["epoch"] == best_epoch.epoch
    model, _ = load_model(result.last_path)
    assert sum(p.numel() for p in model.parameters()) > 0


class _InterruptAt(TrainReporter):
    """Sends the process a real SIGINT after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.seen = 0

    def batch_end(self, loss: float) -> None:
        self.seen += 1
        if self.seen == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupt_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    data = make_pairs(tmp_path / "train", 6)
    straight = train(_config(data, tmp_path / "a", epochs=3))
    with pytest.raises(TrainingInterrupted, match="resume"):
        train(_config(data, tmp_path / "b", epochs=3), reporter=_InterruptAt(4))
    assert (tmp_path / "b" / "checkpoint.safetensors").exists()
    resumed = train(_config(data, tmp_path / "b", epochs=3), resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    a, b = load_file(str(straight.last_path)), load_file(str(resumed.last_path))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_rules(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    with pytest.raises(UserError, match="no checkpoint"):
        train(_config(data, tmp_path / "r", epochs=1), resume=True)
    train(_config(data, tmp_path / "r", epochs=1))
    with pytest.raises(UserError, match="already holds a training run"):
        train(_config(data, tmp_path / "r", epochs=1))
    with pytest.raises(UserError, match="batch-size"):
        train(_config(data, tmp_path / "r", epochs=2, batch_size=4), resume=True)
    with pytest.raises(UserError, match="model-config"):
        train(_config(data, tmp_path / "r", epochs=2, model_config={"width": 6}), resume=True)
    # the same config spelled with defaults left out is the same config
    spelled = {k: v for k, v in TINY_UNET.items() if k != "unshuffle"}
    assert "unshuffle" in TINY_UNET and TINY_UNET["unshuffle"] == 2  # today's default
    resumed = train(_config(data, tmp_path / "r", epochs=2, model_config=spelled), resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2]


class _Notes(TrainReporter):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def test_resume_with_fewer_epochs_ends_on_the_shortened_schedule(tmp_path):
    data = make_pairs(tmp_path / "train", 6)
    straight = train(_config(data, tmp_path / "a", epochs=2))
    with pytest.raises(TrainingInterrupted):
        train(_config(data, tmp_path / "b", epochs=8), reporter=_InterruptAt(2))
    notes = _Notes()
    resumed = train(_config(data, tmp_path / "b", epochs=2), reporter=notes, resume=True)
    assert any("8 epochs changed" in n and "schedule" in n for n in notes.notes)
    assert [r.epoch for r in resumed.history] == [1, 2]
    # the learning rate anneals to the end of the 2-epoch schedule, not an 8-epoch one
    assert resumed.history[-1].lr == pytest.approx(straight.history[-1].lr)
    assert resumed.history[-1].lr < 0.2 * resumed.history[0].lr


def test_non_finite_loss_aborts_clearly_and_keeps_weights_finite(tmp_path, monkeypatch):
    data = make_pairs(tmp_path / "train", 4)

    def nan_loss(spec):
        return lambda pred, target: (pred - target).abs().mean() * float("nan")

    monkeypatch.setattr(training, "build_loss", nan_loss)
    with pytest.raises(UserError, match="non-finite losses"):
        train(_config(data, tmp_path / "n", epochs=50, max_bad_steps=3))
    state = load_file(str(tmp_path / "n" / "checkpoint.safetensors"))
    assert all(torch.isfinite(v).all() for k, v in state.items() if v.is_floating_point())


def test_too_few_pairs_for_a_batch(tmp_path):
    data = make_pairs(tmp_path / "train", 2)
    with pytest.raises(UserError, match="fewer than --batch-size"):
        train(_config(data, tmp_path / "x", batch_size=4))


def test_identity_and_exposure_jitter_augmentation(tmp_path):
    from llenhance.archs import get_arch
    from llenhance.data import PairDataset, find_pairs

    pairs = find_pairs(make_pairs(tmp_path / "d", 4))
    spec = get_arch("unet-res")
    always_identity = PairDataset(pairs, 32, spec.context_fn, identity_fraction=1.0)
    item = always_identity[0]
    assert torch.equal(item["low"], item["high"])
    plain = PairDataset(pairs, 32, spec.context_fn)
    jittered = PairDataset(pairs, 32, spec.context_fn, exposure_jitter=4.0)
    ratios = [float(jittered[i]["low"].mean() / plain[i]["low"].mean()) for i in range(4)]
    assert max(abs(r - 1) for r in ratios) > 0.05  # exposure changed...
    assert all(torch.equal(jittered[i]["high"], plain[i]["high"]) for i in range(4))  # target not
    assert not torch.equal(jittered[0]["context"], plain[0]["context"])  # context follows the input


def test_darken_extends_the_jitter_to_darker_inputs_only(tmp_path):
    from llenhance.data import PairDataset, find_pairs
    from llenhance.synthesis import srgb_to_linear

    pairs = find_pairs(make_pairs(tmp_path / "d", 4))
    darkened = PairDataset(pairs, 32, exposure_jitter=1.0, darken=16.0)

    def light(image: np.ndarray) -> float:
        return float(srgb_to_linear(image / 255.0).mean())

    ratios = [
        light(darkened.full_pair(i, np.random.default_rng([draw, i]))[0]) / light(darkened.lows[i])
        for draw in range(10)
        for i in range(4)
    ]
    assert max(ratios) <= 1.01  # never brighter: the jitter's bright end stays at 1
    assert min(ratios) < 0.25  # ... and much darker than exposure_jitter alone would go
    assert min(ratios) > 1 / 16 / 1.25  # not beyond 1/(jitter * darken), quantisation aside


def test_scale_exposure_acts_in_linear_light_and_requantises():
    from llenhance.synthesis import scale_exposure, srgb_to_linear

    grey = np.full((2, 2, 3), 200, np.uint8)
    assert np.array_equal(scale_exposure(grey, 1.0), grey)
    half = scale_exposure(grey, 0.5)
    assert half.dtype == np.uint8
    linear = srgb_to_linear(half / 255.0) / srgb_to_linear(grey / 255.0)
    assert np.allclose(linear, 0.5, atol=0.01)
    assert not scale_exposure(np.full((1, 1, 3), 3, np.uint8), 1 / 64).any()  # shadows to 0


def test_init_fine_tunes_from_weights_and_checks_the_config(tmp_path):
    data = make_pairs(tmp_path / "train", 4)
    first = train(_config(data, tmp_path / "a", epochs=1))
    tuned = train(
        _config(data, tmp_path / "b", epochs=1, init=str(first.last_path), lr=1e-9, warmup_steps=0)
    )
    a, b = load_file(str(first.last_path)), load_file(str(tuned.last_path))
    conv = next(k for k in a if k.endswith("weight") and a[k].ndim == 4)
    assert torch.allclose(a[conv], b[conv], atol=1e-6)  # started from it, barely moved
    with pytest.raises(UserError, match="--init"):
        train(
            _config(
                data,
                tmp_path / "c",
                epochs=1,
                init=str(first.last_path),
                model_config={"width": 8, "depth": 2},
            )
        )
