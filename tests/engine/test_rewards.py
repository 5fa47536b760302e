"""GRPO reward functions: the built-ins, user functions, the spec's checks, the reward model and the /v1/score API."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.rl_support import (
    ScoreHandler,
    running_score_server,
    single_torch_thread,  # noqa: F401 - an autouse fixture
)
from tunery.engine.train.errors import TrainingError
from tunery.engine.train.rewards import BUILTIN_REWARDS, RewardContext, build_reward_funcs
from tunery.engine.train.rewards.scoring import ApiRewardSource, post_scores, split_api_url
from tunery.spec import JobSpec
from tunery.spec.errors import SpecError
from tunery.spec.rewards import REWARD_NAMES

GRPO = {"model_name_or_path": "m", "dataset": "d", "stage": "grpo", "per_device_train_batch_size": 4}


def spec_with(reward_funcs: Any, **keys: Any) -> JobSpec:
    return JobSpec.from_mapping({**GRPO, "reward_funcs": reward_funcs, **keys})


def funcs_for(reward_funcs: Any, tokenizer: Any = None, stop_words: list[str] | None = None) -> list[Any]:
    spec = spec_with(reward_funcs)
    funcs, weights = build_reward_funcs(spec, RewardContext(spec, tokenizer, stop_words or []))
    assert weights == [entry.weight for entry in spec.method.reward_funcs]
    return funcs


def problems(**keys: Any) -> str:
    with pytest.raises(SpecError) as info:
        JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "d", **keys})
    return str(info.value)


def test_engine_registry_matches_the_spec_catalog() -> None:
    funcs_for("exact_match")  # imports the built-in modules
    assert sorted(BUILTIN_REWARDS) == sorted(REWARD_NAMES)


def test_exact_match_normalises_case_and_whitespace_and_skips_rows_without_reference() -> None:
    (reward,) = funcs_for([{"name": "exact_match"}], stop_words=["</s>"])
    assert reward.__name__ == "exact_match"
    completions = ["  Yes ", "yes\n</s>", "no", "New   York", "yes"]
    references = ["yes", "YES", "yes", "new york", None]
    assert reward(completions=completions, reference=references) == [1.0, 1.0, 0.0, 1.0, None]


def test_exact_match_args_extract_an_answer_and_keep_case() -> None:
    (strict,) = funcs_for([{"name": "exact_match", "args": {"ignore_case": False}}])
    assert strict(completions=["Yes", "yes"], reference=["yes", "yes"]) == [0.0, 1.0]
    (tagged,) = funcs_for([{"name": "exact_match", "args": {"extract": r"<answer>(.*?)</answer>"}}])
    answers = ["<think>hmm</think><answer> 42 </answer>", "42", "<answer>41</answer>"]
    assert tagged(completions=answers, reference=["42"] * 3) == [1.0, 0.0, 0.0]


def test_regex_format_and_length_rewards() -> None:
    regex, full, fmt, custom, length, longer = funcs_for(
        [
            {"name": "regex", "args": {"pattern": r"\d+"}},
            {"name": "regex", "args": {"pattern": r"\d+", "full": True}},
            "format",
            {"name": "format", "args": {"tags": ["answer"]}},
            {"name": "length", "args": {"target": 4}},
            {"name": "length", "args": {"target": 4, "only_longer": True, "unit": "chars"}},
        ]
    )
    assert [regex.__name__, full.__name__, fmt.__name__, custom.__name__] == ["regex", "regex_2", "format", "format_2"]
    assert regex(completions=["a 12 b", "none"]) == [1.0, 0.0]
    assert full(completions=["a 12 b", "12"]) == [0.0, 1.0]
    thought = "<think>\nsteps\n</think>\n<answer>5</answer>"
    assert fmt(completions=[thought, "<answer>5</answer>", "5"]) == [1.0, 0.0, 0.0]
    assert custom(completions=[thought, " <answer>5</answer> "]) == [0.0, 1.0]
    assert length(completions=["", "", ""], completion_ids=[[1] * 4, [1] * 2, [1] * 8]) == [0.0, -0.5, -1.0]
    assert longer(completions=["ab", "abcdef"], completion_ids=[[], []]) == [0.0, -0.5]


@pytest.mark.parametrize(
    ("entry", "named", "says"),
    [
        ({"name": "regex", "args": {"pattern": "("}}, "reward_funcs[0].args.pattern", "regular expression"),
        ({"name": "length", "args": {"target": "ten"}}, "reward_funcs[0].args.target", "must be a int"),
        ({"name": "length", "args": {"target": 0}}, "reward_funcs[0].args.target", "positive"),
        ({"name": "format", "args": {"tags": []}}, "reward_funcs[0].args.tags", "non-empty"),
    ],
)
def test_bad_builtin_args_are_invalid_spec_errors(entry: dict[str, Any], named: str, says: str) -> None:
    with pytest.raises(TrainingError) as info:
        funcs_for([entry])
    assert info.value.code == "invalid_spec" and named in info.value.message and says in info.value.message


def test_spec_refuses_unknown_names_and_args_listing_the_known_ones() -> None:
    text = problems(stage="grpo", per_device_train_batch_size=4, reward_funcs="exact_match,acuracy")
    assert "reward_funcs[1].name" in text and "'acuracy'" in text
    assert all(name in text for name in REWARD_NAMES) and "package.module:function" in text
    text = problems(
        stage="grpo",
        per_device_train_batch_size=4,
        reward_funcs=[{"name": "regex", "args": {"patern": "x"}}, {"name": "length"}],
    )
    assert "reward_funcs[0].args: regex takes pattern, full; not patern" in text
    assert "reward_funcs[1].args: length needs target" in text


def test_spec_rules_of_the_rl_stages() -> None:
    assert "reward_funcs: stage grpo needs at least one reward function" in problems(stage="grpo", num_generations=2)
    assert "multiple of num_generations (4)" in problems(
        stage="grpo", reward_funcs="exact_match", per_device_train_batch_size=6
    )
    assert "reward_model: the reward_model reward function needs a reward model" in problems(
        stage="grpo", reward_funcs="reward_model", per_device_train_batch_size=4
    )
    assert "do_sample" in problems(
        stage="grpo", reward_funcs="exact_match", per_device_train_batch_size=4, do_sample=False
    )
    assert "reward_model: stage ppo needs a reward model" in problems(stage="ppo")
    assert "must be an http(s) URL" in problems(stage="ppo", reward_model="saves/rm", reward_model_type="api")
    assert "reward_model_type: must be api" in problems(stage="ppo", reward_model="http://localhost:1/v1/score")
    assert "val_size: stage ppo has no evaluation" in problems(stage="ppo", reward_model="rm", val_size=0.1)
    # keys of the RL stages are refused elsewhere, and other stages' keys on an RL stage
    text = problems(stage="sft", ppo_epochs=2, reward_funcs="exact_match", num_generations=8)
    assert "ppo_epochs: does not apply to stage sft (only to: ppo)" in text
    assert "reward_funcs: does not apply to stage sft (only to: grpo)" in text and "num_generations" in text
    text = problems(
        stage="grpo", reward_funcs="exact_match", per_device_train_batch_size=4, ppo_target=3.0, ref_model="other"
    )
    assert "ppo_target: does not apply to stage grpo" in text and "ref_model: does not apply to stage grpo" in text
    JobSpec.from_mapping({**GRPO, "reward_funcs": "exact_match,my_rewards:score"})  # a valid spec


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module in the working folder (the place a job file's own reward code lives)."""
    package = tmp_path / "rl_user_rewards"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scores.py").write_text(
        "LIMIT = 3\n"
        "def short(completions, completion_ids, reference, scale=1.0, **kwargs):\n"
        "    return [scale * float(len(ids) <= LIMIT) for ids in completion_ids]\n"
        "async def loud(completions, **kwargs):\n"
        "    return [float(text.isupper()) for text in completions]\n"
        "class Judge:\n"
        "    @staticmethod\n"
        "    def rate(completions, **kwargs):\n"
        "        return [0.5] * len(completions)\n"
    )
    (package / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.chdir(tmp_path)
    yield "rl_user_rewards"
    for name in [name for name in sys.modules if name.startswith("rl_user_rewards")]:
        del sys.modules[name]


def test_user_functions_are_imported_with_their_args(user_module: str) -> None:
    short, loud, rate = funcs_for(
        [
            {"name": f"{user_module}.scores:short", "weight": 2.0, "args": {"scale": 0.5}},
            f"{user_module}.scores:loud",
            f"{user_module}.scores:Judge.rate",
        ]
    )
    assert [short.__name__, loud.__name__, rate.__name__] == ["short", "loud", "rate"]
    assert short(completions=["a", "b"], completion_ids=[[1, 2], [1, 2, 3, 4]], reference=[None, None]) == [0.5, 0.0]
    assert asyncio.run(loud(completions=["YES", "no"])) == [1.0, 0.0]  # still a coroutine for TRL's async path
    assert rate(completions=["x"]) == [0.5]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("rl_user_rewards.missing:short", "cannot import module 'rl_user_rewards.missing'"),
        ("rl_user_rewards.broken:short", "RuntimeError: boom at import"),
        ("rl_user_rewards.scores:nothing", "has no attribute 'nothing'"),
        ("rl_user_rewards.scores:LIMIT", "is a int, not a function"),
    ],
)
def test_user_function_problems_are_clear_invalid_spec_errors(user_module: str, name: str, says: str) -> None:
    with pytest.raises(TrainingError) as info:
        funcs_for([name])
    assert info.value.code == "invalid_spec"
    assert info.value.message.startswith("reward_funcs[0].name: ") and says in info.value.message


@pytest.fixture
def score_server() -> Iterator[str]:
    with running_score_server() as url:
        yield url


def test_score_api_contract(score_server: str) -> None:
    assert post_scores(score_server, "rm", texts=["a", "abc"], api_key="k") == [1.0, 3.0]
    assert post_scores(score_server, "rm", pairs=[("q", "four"), ("q", "")]) == [4.0, 0.0]
    first, second = ScoreHandler.requests
    assert first == {"path": "/v1/score", "auth": "Bearer k", "model": "rm", "input": ["a", "abc"], "pairs": None}
    assert second["pairs"] == [{"prompt": "q", "response": "four"}, {"prompt": "q", "response": ""}]
    assert split_api_url(score_server + "?model=my-rm&x=1") == (score_server + "?x=1", "my-rm")
    assert split_api_url(score_server) == (score_server, "default")
    with pytest.raises(TrainingError) as info:
        post_scores(score_server, "broken", texts=["a"])
    assert info.value.code == "invalid_spec" and "answered 500" in info.value.message
    with pytest.raises(TrainingError) as info:
        post_scores("http://127.0.0.1:9/v1/score", "rm", texts=["a"], timeout=5)
    assert "cannot reach the reward API" in info.value.message


def test_api_reward_source_scores_prompt_and_answer_as_one_text(score_server: str, tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    prompt = tokenizer("Human: hi\nAssistant:", add_special_tokens=False)["input_ids"]
    answer = tokenizer(" hello", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    source = ApiRewardSource(score_server, "rm", tokenizer)
    expected = "Human: hi\nAssistant: hello" + tokenizer.eos_token  # special tokens kept, as LF sends them
    assert source.score([prompt], [answer]) == [float(len(expected))]
    assert ScoreHandler.requests[-1]["input"] == [expected]


def test_reward_model_function_scores_with_the_trained_reward_model(tiny_llama: Path, tmp_path: Path) -> None:
    """A full reward model folder (contract: num_labels=1 sequence classifier + tokenizer) scores the policy's ids."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    spec = spec_with("reward_model", reward_model=str(tmp_path / "rm"), reward_model_type="full")
    (reward,), _ = build_reward_funcs(spec, RewardContext(spec, tokenizer))
    prompts, answers = [[5, 6, 7], [8, 9]], [[10, 11], [12]]
    scores = reward(prompts=["", ""], completions=["", ""], prompt_ids=prompts, completion_ids=answers)
    with torch.no_grad():
        direct = [float(model(torch.tensor([p + a])).logits[0, 0]) for p, a in zip(prompts, answers, strict=True)]
    assert scores == pytest.approx(direct, abs=1e-5)

    bad = spec_with("reward_model", reward_model=str(tmp_path / "nothing"), reward_model_type="full")
    with pytest.raises(TrainingError) as info:
        build_reward_funcs(bad, RewardContext(bad, tokenizer))
    assert info.value.code == "invalid_spec" and info.value.message.startswith("reward_model: ")
