"""The ``reward_model`` reward function: the score of the job's reward model (``reward_model``)."""

from __future__ import annotations

from typing import Any

from tunery.engine.train.rewards import RewardContext, RewardFunc, register_reward


@register_reward("reward_model")
def reward_model(args: dict[str, Any], context: RewardContext, where: str) -> RewardFunc:
    source = context.reward_source()  # loaded now, so a bad path fails before training

    def reward(prompt_ids: list[list[int]], completion_ids: list[list[int]], **_: Any) -> list[float]:
        return source.score([list(ids) for ids in prompt_ids], [list(ids) for ids in completion_ids])

    return reward
