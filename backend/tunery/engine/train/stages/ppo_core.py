"""The arithmetic of PPO for language models, as TRL 0.9's ``PPOTrainer`` (which LLaMA-Factory's ``ppo`` stage
runs) defined it; TRL 1.x dropped that trainer, so it is written out here.

Every tensor is ``[batch, response_length]`` over the generated tokens; ``mask`` is 1 on real response tokens
and 0 on padding. Token ``t``'s log-probability, value and reward belong to the state before it was emitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: TRL 0.9 PPOConfig defaults (LF leaves them as they are).
INIT_KL_COEF = 0.2
KL_HORIZON = 10000
GAMMA = 1.0
LAM = 0.95
CLIP_RANGE = 0.2
CLIP_RANGE_VALUE = 0.2
VF_COEF = 0.1
#: A minibatch whose mean policy ratio exceeds this is skipped (loss zeroed): the policy drifted too far.
RATIO_THRESHOLD = 10.0


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum()


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of the masked values."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    count = mask.sum()
    if count <= 1:
        return torch.zeros_like(variance)  # TRL raises here; one token has no spread to whiten away
    return variance * count / (count - 1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Scale to unit variance over the masked values (and centre, unless ``shift_mean`` is False)."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


class AdaptiveKLController:
    """The KL coefficient moves so that the observed KL to the reference approaches ``target``
    (Ziegler et al. 2019; ``ppo_target`` in LF)."""

    def __init__(self, target: float, init_kl_coef: float = INIT_KL_COEF, horizon: int = KL_HORIZON) -> None:
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon


class RunningMoments:
    """Running mean and standard deviation of the reward-model scores (``ppo_score_norm``)."""

    def __init__(self) -> None:
        self.mean = 0.0
        self.std = 1.0
        self.var = 1.0
        self.count = 1e-24

    def update(self, scores: torch.Tensor) -> None:
        count = scores.numel()
        batch_var, batch_mean = torch.var_mean(scores.float(), unbiased=False)
        delta = float(batch_mean) - self.mean
        total = self.count + count
        old_sum = self.var * self.count + delta**2 * self.count * count / total
        new_var = (old_sum + float(batch_var) * count) / total
        self.mean += delta * count / total
        self.std = (new_var * total / (total - 1)) ** 0.5 if total > 1 else 1.0
        self.var = new_var
        self.count = total

    def normalise(self, scores: torch.Tensor) -> torch.Tensor:
        """Update with ``scores``, then centre and scale them with the running moments."""
        self.update(scores)
        return (scores - self.mean) / (self.std + torch.finfo(scores.dtype).eps)


def per_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """TRL's ``kl_penalty="kl"``: log pi(token) - log pi_ref(token), per generated token."""
    return logprobs - ref_logprobs


def compute_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: ``-kl_coef * kl`` at every token, plus the sequence's score at its last token.
    Returns (rewards, kl)."""
    kl = per_token_kl(logprobs, ref_logprobs) * mask
    rewards = -kl_coef * kl
    last_index = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)  # each row's last real token
    rewards = rewards.scatter_add(1, last_index.unsqueeze(1), scores.to(rewards.dtype).unsqueeze(1))
    return rewards, kl


def compute_advantages(
    values: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = GAMMA,
    lam: float = LAM,
    whiten_rewards: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation. Returns (whitened advantages, returns = advantages + values)."""
    values = values * mask
    rewards = rewards * mask
    if whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    length = rewards.shape[-1]
    last_gae = torch.zeros_like(rewards[:, 0])
    reversed_advantages = []
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t < length - 1 else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last_gae = delta + gamma * lam * last_gae
        reversed_advantages.append(last_gae)
    advantages = torch.stack(reversed_advantages[::-1], dim=1)
    returns = advantages + values
    return masked_whiten(advantages, mask).detach(), returns.detach()


@dataclass
class PPOLoss:
    policy: torch.Tensor
    value: torch.Tensor
    #: ``policy + vf_coef * value``, zeroed when the policy ratio blew up (see RATIO_THRESHOLD)
    total: torch.Tensor
    policy_clipfrac: torch.Tensor
    value_clipfrac: torch.Tensor
    approx_kl: torch.Tensor
    ratio: torch.Tensor


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = CLIP_RANGE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The clipped surrogate objective (as a loss). Returns (loss, fraction clipped, mean ratio)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean(torch.gt(clipped, unclipped).float(), mask)
    return loss, clipfrac, masked_mean(ratio, mask)


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range_value: float = CLIP_RANGE_VALUE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped squared error of the value head against the returns. Returns (loss, fraction clipped)."""
    clipped_values = torch.clamp(values, old_values - clip_range_value, old_values + clip_range_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    clipfrac = masked_mean(torch.gt(clipped_error, unclipped_error).float(), mask)
    return loss, clipfrac


def ppo_loss(
    logprobs: torch.Tensor,
    values: torch.Tensor,
    old_logprobs: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    vf_coef: float = VF_COEF,
) -> PPOLoss:
    pg_loss, pg_clipfrac, ratio = policy_loss(logprobs, old_logprobs, advantages, mask)
    ratio = ratio.detach()
    vf_loss, vf_clipfrac = value_loss(values, old_values, returns, mask)
    total = pg_loss + vf_coef * vf_loss
    if float(ratio) > RATIO_THRESHOLD:
        total = total * 0.0
    approx_kl = 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask)
    return PPOLoss(pg_loss, vf_loss, total, pg_clipfrac, vf_clipfrac, approx_kl.detach(), ratio)
