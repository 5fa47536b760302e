"""Stage grpo: TRL's GRPOTrainer on our prompt rows, through run_training."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.engine.rl_support import (
    cached,
    prompt_builder,
    single_torch_thread,  # noqa: F401 - an autouse fixture
    train_reward_model,
    warm_start,
)
from tests.support.train_data import tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.cancel import CancelRequest
from tunery.engine.train.runner import setup_training, train_and_save
from tunery.spec.events import EXIT_INVALID, EXIT_SUCCEEDED, Event, FailedEvent, FinishedEvent, ProgressEvent

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_completion_length": 4}


@pytest.fixture(scope="module")
def warm_model(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached("warm", tiny_llama, lambda: warm_start(tiny_llama, tmp_path_factory.mktemp("warm")))


def train(model_dir: Path, out: Path, builder: Any = None, **keys: Any) -> tuple[int, list[Event], Any]:
    """run_training's steps, keeping the trainer; every generation's prompt ids are recorded."""
    sink = EventSink(io.StringIO())
    seen: list[list[int]] = []
    with CancelRequest() as cancel:
        session = setup_training(tiny_spec(model_dir, out, **keys), sink, cancel, build_data=builder)
        trainer: Any = session.trainer
        generate: Callable[..., Any] = trainer._generate_single_turn

        def recording(prompt_ids: list[list[int]], *args: Any, **kwargs: Any) -> Any:
            seen.extend(list(ids) for ids in prompt_ids)
            return generate(prompt_ids, *args, **kwargs)

        trainer._generate_single_turn = recording
        code = train_and_save(session, sink)
    trainer.seen_prompt_ids = seen
    return code, sink.events, trainer


def rewards(events: list[Event]) -> list[float]:
    return [e.metrics["reward"] for e in events if isinstance(e, ProgressEvent) and e.loss is not None]


def test_grpo_raises_the_mean_exact_match_reward(warm_model: Path, tmp_path: Path) -> None:
    """The warm model answers "yes" to about half the questions; exact_match against "yes" must tilt it."""
    code, events, trainer = train(
        warm_model,
        tmp_path / "out",
        prompt_builder(16),
        stage="grpo",
        finetuning_type="full",
        learning_rate=2e-3,
        max_steps=24,
        reward_funcs="exact_match",
        num_generations=8,
        per_device_train_batch_size=16,
        **SAMPLING,
    )
    assert code == EXIT_SUCCEEDED
    history = rewards(events)
    assert len(history) == 24
    first, last = sum(history[:8]) / 8, sum(history[-8:]) / 8
    assert last > first + 0.15, history  # seeds 1-8 gain 0.27-0.38
    metrics = [e.metrics for e in events if isinstance(e, ProgressEvent) and e.loss is not None][-1]
    assert {"reward", "reward_std", "completion_length", "rewards/exact_match/mean"} <= set(metrics)
    assert 1 <= metrics["completion_length"] <= 4
    # generation started from the rows' own prompt ids, never a re-tokenized prompt text
    rows = {tuple(row["prompt_ids"]) for row in trainer.train_dataset}
    assert trainer.seen_prompt_ids and all(tuple(ids) in rows for ids in trainer.seen_prompt_ids)
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_grpo_trains_lora_on_alpaca_prompts_with_a_kl_term(
    warm_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, events, trainer = train(
        warm_model,
        out,
        None,
        stage="grpo",
        dataset="alpaca_en_demo",
        dataset_dir=str(demo_data_dir),
        cutoff_len=96,
        max_samples=8,
        max_steps=2,
        save_steps=1,
        num_generations=4,
        per_device_train_batch_size=4,
        grpo_beta=0.05,
        reward_funcs=[{"name": "exact_match"}, {"name": "length", "weight": 0.5, "args": {"target": 4}}],
        **SAMPLING,
    )
    assert code == EXIT_SUCCEEDED, [e for e in events if isinstance(e, FailedEvent)]
    metrics = [e.metrics for e in events if isinstance(e, ProgressEvent) and e.loss is not None]
    assert len(metrics) == 2
    assert {"kl", "rewards/exact_match/mean", "rewards/length/mean", "completion_length"} <= set(metrics[-1])
    assert list(trainer.reward_weights.tolist()) == [1.0, 0.5]
    # the reference is the adapter disabled: no frozen "ref" adapter is kept or saved
    assert list(trainer.model.peft_config) == ["default"]
    assert (out / "adapter_model.safetensors").is_file() and not (out / "ref").exists()
    assert (out / "checkpoint-1" / "adapter_model.safetensors").is_file()
    rows = {tuple(row["prompt_ids"]) for row in trainer.train_dataset}
    assert all(tuple(ids) in rows for ids in trainer.seen_prompt_ids)
    finished = events[-1]
    assert isinstance(finished, FinishedEvent) and finished.outcome == "succeeded"


def test_grpo_refuses_exact_match_without_any_reference(warm_model: Path, tmp_path: Path) -> None:
    sink = EventSink(io.StringIO())
    from tunery.engine.train.runner import run_training

    spec = tiny_spec(
        warm_model,
        tmp_path / "out",
        stage="grpo",
        reward_funcs="exact_match",
        per_device_train_batch_size=4,
        max_steps=1,
    )
    assert run_training(spec, sink, build_data=prompt_builder(4, reference=None)) == EXIT_INVALID
    failed = sink.events[-1]
    assert isinstance(failed, FailedEvent) and failed.code == "invalid_data"
    assert "exact_match" in failed.message and "reference" in failed.message


def test_grpo_rewards_with_a_reward_model_trained_by_stage_rm(warm_model: Path, tmp_path: Path) -> None:
    """The reward_model function scores (prompt ids + answer ids) with the rm stage's model, weighted."""
    from tunery.engine.train.reward_model import load_reward_model

    rm = cached("rm", warm_model, lambda: train_reward_model(warm_model, tmp_path / "rm"))
    code, events, trainer = train(
        warm_model,
        tmp_path / "out",
        prompt_builder(8),
        stage="grpo",
        reward_model=str(rm),
        reward_funcs=[{"name": "reward_model", "weight": 2.0}],
        per_device_train_batch_size=4,
        num_generations=4,
        max_steps=1,
        **SAMPLING,
    )
    assert code == EXIT_SUCCEEDED, [e for e in events if isinstance(e, FailedEvent)]
    (metrics,) = [e.metrics for e in events if isinstance(e, ProgressEvent) and e.loss is not None]
    assert metrics["reward"] == pytest.approx(2.0 * metrics["rewards/reward_model/mean"])
    tokenizer, prompt = trainer.processing_class, trainer.train_dataset[0]["prompt_ids"]
    answers = [
        tokenizer(f" {word}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for word in ("yes", "no")
    ]
    yes, no = load_reward_model(str(rm), base_model=str(warm_model)).score_ids([prompt + a for a in answers])
    assert yes > no + 1  # the rm prefers "yes"; the sampled answers score within reach of that range
    assert no - 1 < metrics["rewards/reward_model/mean"] < yes + 1
