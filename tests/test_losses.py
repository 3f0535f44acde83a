import pytest
import torch

from llenhance.errors import UserError
from llenhance.losses import build_loss, parse_loss


def test_parse_weighted_sums():
    assert parse_loss("l1+0.2*ssim") == [(1.0, "l1"), (0.2, "ssim")]
    assert parse_loss("charbonnier") == [(1.0, "charbonnier")]
    with pytest.raises(UserError, match="unknown loss 'l3'"):
        parse_loss("l1+l3")
    with pytest.raises(UserError, match="bad loss weight"):
        parse_loss("x*l1")


@pytest.mark.parametrize("name", ["l1", "mse", "charbonnier", "ssim", "tone", "logl1", "l1+ssim"])
def test_losses_are_zero_for_identical_and_positive_otherwise(name):
    torch.manual_seed(0)
    a = torch.rand(2, 3, 24, 24)
    loss = build_loss(name)
    assert float(loss(a, a)) < 2e-3  # charbonnier has an eps floor of 1e-3
    assert float(loss(a * 0.5, a)) > float(loss(a, a)) + 1e-3


def test_weighted_sum_adds_terms():
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    total = build_loss("2*l1+0.5*mse")(a, b)
    expected = 2 * torch.nn.functional.l1_loss(a, b) + 0.5 * torch.nn.functional.mse_loss(a, b)
    assert torch.allclose(total, expected)


def test_tone_loss_ignores_where_values_sit_but_sees_lifted_blacks_and_pale_colour():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 32, 32)
    shuffled = target.view(1, 3, 8, 4, 8, 4).permute(0, 1, 4, 3, 2, 5).reshape(1, 3, 32, 32)
    tone = build_loss("tone")
    assert float(tone(shuffled, target)) < 1e-6  # same 4x4 blocks, other places
    lifted = 0.1 + 0.9 * target
    grey = target.mean(dim=1, keepdim=True)
    pale = 0.5 * target + 0.5 * grey
    assert float(tone(lifted, target)) > 0.02
    assert float(tone(pale, target)) > 0.02


def test_color_loss_ignores_brightness_but_sees_a_cast():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 16, 16) * 0.8 + 0.1
    color = build_loss("color")
    assert float(color(target * 0.5, target)) < 1e-6
    cast = target * torch.tensor([1.0, 1.0, 0.6]).view(1, 3, 1, 1)
    assert float(color(cast, target)) > 0.005


def test_log_l1_charges_lifted_shadows_more_than_the_same_step_in_highlights():
    target = torch.full((1, 3, 8, 8), 0.02)
    bright = torch.full((1, 3, 8, 8), 0.80)
    loss = build_loss("logl1")
    shadow_cost = float(loss(target + 0.03, target))
    highlight_cost = float(loss(bright + 0.03, bright))
    assert shadow_cost > 10 * highlight_cost
    assert float(build_loss("l1")(target + 0.03, target)) == pytest.approx(0.03)  # L1: equal
    pred = torch.zeros(1, 3, 4, 4, requires_grad=True)
    loss(pred, torch.ones(1, 3, 4, 4)).backward()
    assert torch.isfinite(pred.grad).all()  # black predictions keep a finite gradient
