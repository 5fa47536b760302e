"""PPO arithmetic against values computed by hand on a fixed tiny batch (TRL 0.9 / LLaMA-Factory definitions)."""

from __future__ import annotations

import math

import pytest
import torch

from tunery.engine.train.stages import ppo_core


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def close(actual: torch.Tensor, expected: list[list[float]] | list[float] | float) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


def test_rewards_are_the_kl_penalty_per_token_plus_the_score_at_the_last_answer_token() -> None:
    logprobs = t([[-1.0, -2.0, -3.0], [-0.5, -1.0, -7.0]])
    ref_logprobs = t([[-1.5, -2.0, -2.0], [-1.0, -1.0, -1.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    rewards, kl = ppo_core.compute_rewards(t([[1.0, -2.0]])[0], logprobs, ref_logprobs, mask, kl_coef=0.2)
    # kl = logp - ref_logp on answer tokens: [[0.5, 0, -1], [0.5, 0, (masked)]]
    close(kl, [[0.5, 0.0, -1.0], [0.5, 0.0, 0.0]])
    # -0.2 * kl, and the score (1.0 / -2.0) added at each row's last real token (index 2 / index 1)
    close(rewards, [[-0.1, 0.0, 0.2 + 1.0], [-0.1, 0.0 - 2.0, 0.0]])


def test_gae_advantages_and_returns_by_hand() -> None:
    values = t([[0.5, 0.2, -0.1], [0.3, -0.2, 9.0]])  # the 9.0 sits on padding and must not count
    rewards = t([[-0.1, 0.0, 1.2], [-0.1, -2.0, 5.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    advantages, returns = ppo_core.compute_advantages(values, rewards, mask, gamma=1.0, lam=0.95)
    # row 0, backwards: delta2 = 1.2 - (-0.1) = 1.3; delta1 = 0 + (-0.1) - 0.2 = -0.3 -> 0.935;
    # delta0 = -0.1 + 0.2 - 0.5 = -0.4 -> -0.4 + 0.95 * 0.935 = 0.48825; returns = advantages + values.
    # row 1: position 2 masked (value and reward 0); delta1 = -2 - (-0.2) = -1.8; delta0 = -0.1 - 0.2 - 0.3
    # = -0.6 -> -0.6 + 0.95 * -1.8 = -2.31.
    close(returns, [[0.48825 + 0.5, 0.935 + 0.2, 1.3 - 0.1], [-2.31 + 0.3, -1.8 - 0.2, 0.0]])
    raw = torch.tensor([0.48825, 0.935, 1.3, -2.31, -1.8])
    expected = (raw - raw.mean()) / raw.var(unbiased=True).add(1e-8).sqrt()
    close(advantages[mask.bool()], expected.tolist())


def test_single_row_whitened_advantages_by_hand() -> None:
    advantages, _ = ppo_core.compute_advantages(t([[0.5, 0.2, -0.1]]), t([[-0.1, 0.0, 1.2]]), t([[1, 1, 1]]))
    # raw [0.48825, 0.935, 1.3]: mean 0.90775, unbiased variance 0.16529144 (sd 0.4065605)
    close(advantages, [[-1.0318267, 0.0670257, 0.9648010]])


def test_whiten_rewards_keeps_their_mean() -> None:
    rewards, mask = t([[1.0, 3.0, 100.0]]), t([[1, 1, 0]])
    whitened = ppo_core.masked_whiten(rewards, mask, shift_mean=False)
    # mean 2, unbiased variance 2: (x - 2) / sqrt(2) + 2
    close(whitened[:, :2], [[2 - 1 / math.sqrt(2), 2 + 1 / math.sqrt(2)]])


def test_clipped_policy_objective_by_hand() -> None:
    ratios = [1.5, 0.5, 1.1, 1.5, 50.0]
    old = torch.zeros(1, 5)
    logprobs = torch.tensor([[math.log(r) for r in ratios]])
    advantages = t([[1.0, 1.0, -1.0, -1.0, 1.0]])
    mask = t([[1, 1, 1, 1, 0]])  # the last token is padding
    loss, clipfrac, mean_ratio = ppo_core.policy_loss(logprobs, old, advantages, mask, clip_range=0.2)
    # per token max(-A r, -A clip(r, 0.8, 1.2)):
    # A=1, r=1.5: max(-1.5, -1.2) = -1.2 (clipped); A=1, r=0.5: max(-0.5, -0.8) = -0.5;
    # A=-1, r=1.1: 1.1; A=-1, r=1.5: max(1.5, 1.2) = 1.5 (pessimistic, not clipped)
    close(loss, (-1.2 - 0.5 + 1.1 + 1.5) / 4)
    close(clipfrac, 1 / 4)
    close(mean_ratio, (1.5 + 0.5 + 1.1 + 1.5) / 4)


def test_clipped_value_loss_by_hand() -> None:
    values, old, returns = t([[1.0, 0.0, 2.0, 7.0]]), t([[0.5, 0.1, 2.0, 0.0]]), t([[2.0, -1.0, 1.0, 0.0]])
    loss, clipfrac = ppo_core.value_loss(values, old, returns, t([[1, 1, 1, 0]]), clip_range_value=0.2)
    # 1.0 clipped to 0.7: max((1-2)^2, (0.7-2)^2) = 1.69; 0.0 within [-0.1, 0.3]: 1; 2.0 within: 1
    close(loss, 0.5 * (1.69 + 1 + 1) / 3)
    close(clipfrac, 1 / 3)


def test_total_loss_weights_the_value_loss_and_is_zeroed_when_the_ratio_explodes() -> None:
    mask = t([[1, 1]])
    args = dict(values=t([[1.0, 0.0]]), old_values=t([[0.5, 0.1]]), returns=t([[2.0, -1.0]]), mask=mask)
    loss = ppo_core.ppo_loss(t([[0.1, -0.1]]), old_logprobs=t([[0.0, 0.0]]), advantages=t([[1.0, -1.0]]), **args)
    close(loss.total, float(loss.policy + ppo_core.VF_COEF * loss.value))
    close(loss.approx_kl, 0.5 * 0.01)
    blown = ppo_core.ppo_loss(t([[5.0, 5.0]]), old_logprobs=t([[0.0, 0.0]]), advantages=t([[1.0, -1.0]]), **args)
    assert float(blown.ratio) > ppo_core.RATIO_THRESHOLD and float(blown.total) == 0.0


def test_adaptive_kl_controller_moves_towards_the_target() -> None:
    controller = ppo_core.AdaptiveKLController(target=6.0)
    assert controller.value == pytest.approx(0.2)
    controller.update(current_kl=9.0, n_steps=8)  # error clipped to +0.2: x (1 + 0.2 * 8 / 10000)
    assert controller.value == pytest.approx(0.2 * 1.00016)
    controller.update(current_kl=3.0, n_steps=100)  # error clipped to -0.2: x (1 - 0.2 * 100 / 10000)
    assert controller.value == pytest.approx(0.2 * 1.00016 * 0.998)


def test_score_normalisation_uses_running_moments() -> None:
    moments = ppo_core.RunningMoments()
    close(moments.normalise(t([[1.0, 2.0, 3.0]])[0]), [-1.0, 0.0, 1.0])  # mean 2, unbiased sd 1
    moments.update(t([[5.0]])[0])  # 4 scores seen: 1, 2, 3, 5 -> mean 2.75, unbiased variance 2.9166
    assert moments.mean == pytest.approx(2.75)
    assert moments.std == pytest.approx(math.sqrt(2.9166667), rel=1e-5)
