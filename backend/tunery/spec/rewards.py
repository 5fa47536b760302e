"""The built-in GRPO reward functions: one catalog, torch-free. The spec validates ``reward_funcs`` against it,
the engine registers one implementation per entry (``tunery.engine.train.rewards``; a test checks both lists
are the same). Any other name must be a user function written ``package.module:function``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RewardInfo:
    name: str
    summary: str
    #: keyword arguments the function takes (``reward_funcs[i].args``)
    args: tuple[str, ...] = ()
    required: tuple[str, ...] = ()


REWARD_CATALOG: tuple[RewardInfo, ...] = (
    RewardInfo(
        "exact_match",
        "1 when the answer equals the row's reference answer (case and whitespace normalised), else 0; "
        "rows without a reference are not scored.",
        args=("ignore_case", "normalize_whitespace", "extract"),
    ),
    RewardInfo(
        "regex",
        "1 when the answer matches the regular expression 'pattern' (anywhere, or all of it with full), else 0.",
        args=("pattern", "full"),
        required=("pattern",),
    ),
    RewardInfo(
        "format",
        "1 when the answer is made of the given tags in order (default <think>...</think><answer>...</answer>), "
        "else 0.",
        args=("tags",),
    ),
    RewardInfo(
        "length",
        "Penalty for missing a target length: -|length - target| / target (tokens or characters).",
        args=("target", "unit", "only_longer"),
        required=("target",),
    ),
    RewardInfo(
        "reward_model",
        "The score of the reward model named by reward_model (trained with stage rm, or an API).",
    ),
)

REWARDS: dict[str, RewardInfo] = {info.name: info for info in REWARD_CATALOG}
REWARD_NAMES: tuple[str, ...] = tuple(REWARDS)

#: ``package.module:function`` (the function may be an attribute path such as ``Class.method``).
USER_FUNCTION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_user_function(name: str) -> bool:
    return USER_FUNCTION.match(name) is not None
