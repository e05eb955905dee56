"""The GRPO/DPO maths against hand-computed values: advantages, clipping, aggregation, KL, DPO."""

from __future__ import annotations

import math

import pytest
import torch

from salesai_rl.lm import losses


def test_group_advantages_normalise_within_each_group() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    adv, zero = losses.group_advantages(rewards, group_size=4, scale="group")
    std = math.sqrt(4 * 0.25 / 3)  # unbiased std of [1, 0, 0, 1]
    expected = 0.5 / (std + 1e-4)
    torch.testing.assert_close(adv, torch.tensor([expected, -expected, -expected, expected, 0, 0, 0, 0.0]))
    assert zero.tolist() == [False] * 4 + [True] * 4


def test_batch_and_no_scaling() -> None:
    rewards = torch.tensor([2.0, 0.0, 1.0, 1.0])
    adv_none, zero = losses.group_advantages(rewards, group_size=2, scale="none")
    torch.testing.assert_close(adv_none, torch.tensor([1.0, -1.0, 0.0, 0.0]))
    assert zero.tolist() == [False, False, True, True]  # group std, for logging
    adv_batch, zero_b = losses.group_advantages(rewards, group_size=2, scale="batch")
    std = float(rewards.std())  # sqrt(2/3)
    torch.testing.assert_close(adv_batch, torch.tensor([1.0, -1.0, 0.0, 0.0]) / (std + 1e-4))
    assert not zero_b.any()
    with pytest.raises(ValueError, match="scale_rewards 'max'"):
        losses.group_advantages(rewards, 2, "max")


def test_unscorable_completions_leave_the_baseline_and_get_zero_advantage() -> None:
    rewards = torch.tensor([math.nan, 1.0, 0.0, 1.0])
    adv, _ = losses.group_advantages(rewards, group_size=4, scale="none")
    torch.testing.assert_close(adv, torch.tensor([0.0, 1 / 3, -2 / 3, 1 / 3]))


def test_batch_mean_baseline() -> None:
    torch.testing.assert_close(losses.batch_mean_advantages(torch.tensor([1.0, 0.0, 0.0, 3.0])),
                               torch.tensor([0.0, -1.0, -1.0, 2.0]))


def test_clipped_surrogate_hand_values() -> None:
    # ratios 1.5, 0.5, 1.1, 1.25 with advantages +1, -1, +1, +1; eps 0.2, eps_high 0.28
    ratio = torch.tensor([[1.5, 0.5, 1.1, 1.25]])
    old = torch.zeros(1, 4)
    logps = ratio.log()
    adv = torch.tensor([[1.0, -1.0, 1.0, 1.0]])
    loss, r = losses.clipped_surrogate(logps, old, adv, epsilon=0.2)
    torch.testing.assert_close(r, ratio)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, 0.8, -1.1, -1.2]]))
    loss_high, _ = losses.clipped_surrogate(logps, old, adv, epsilon=0.2, epsilon_high=0.28)
    torch.testing.assert_close(loss_high, torch.tensor([[-1.28, 0.8, -1.1, -1.25]]))


def test_aggregation_token_sequence_dr_grpo() -> None:
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert float(losses.aggregate(per_token, mask, "token")) == pytest.approx(10 / 4)
    assert float(losses.aggregate(per_token, mask, "sequence")) == pytest.approx((2.0 + 4.0) / 2)
    dr = losses.aggregate(per_token, mask, "dr_grpo", max_completion_length=5)
    assert float(dr) == pytest.approx(10 / 10)
    with pytest.raises(ValueError, match="loss_type 'x'"):
        losses.aggregate(per_token, mask, "x")


def test_token_level_gradient_at_ratio_one_is_advantage_over_token_count() -> None:
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, stats = losses.grpo_loss(logps, logps.detach(), adv, mask)
    loss.backward()
    expected = torch.tensor([[-2.0, -2.0, -2.0], [1.0, 0.0, 0.0]]) / 4
    torch.testing.assert_close(logps.grad, expected)
    assert (stats.clip_low, stats.clip_high, stats.kl) == (0.0, 0.0, None)


def test_k3_kl() -> None:
    same = torch.tensor([[-1.0, -2.0]])
    torch.testing.assert_close(losses.k3_kl(same, same), torch.zeros(1, 2))
    value = losses.k3_kl(torch.tensor([0.0]), torch.tensor([math.log(2.0)]))
    assert float(value) == pytest.approx(2 - math.log(2) - 1)
    assert bool((losses.k3_kl(torch.randn(50), torch.randn(50)) >= 0).all())


def test_kl_term_is_added_with_beta() -> None:
    logps = torch.tensor([[0.0, 0.0]])
    ref = torch.tensor([[math.log(2.0), 0.0]])
    mask = torch.ones(1, 2)
    loss, stats = losses.grpo_loss(logps, logps, torch.zeros(1), mask, beta=0.5, ref_logps=ref)
    kl = 2 - math.log(2) - 1
    assert float(loss) == pytest.approx(0.5 * kl / 2)
    assert stats.kl == pytest.approx(kl / 2)
    with pytest.raises(ValueError, match="ref_logps"):
        losses.grpo_loss(logps, logps, torch.zeros(1), mask, beta=0.5)


def test_dpo_loss_hand_value() -> None:
    loss, r_c, r_r = losses.dpo_loss(torch.tensor([-4.0]), torch.tensor([-6.0]), torch.tensor([-5.0]),
                                     torch.tensor([-5.0]), beta=0.1)
    assert float(loss) == pytest.approx(-math.log(1 / (1 + math.exp(-0.2))))
    assert (float(r_c), float(r_r)) == (pytest.approx(0.1), pytest.approx(-0.1))
