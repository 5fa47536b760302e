"""Stage ppo: rollouts scored by a reward model trained in the same session (stage rm), or by an API."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tests.engine.rl_support import (
    ScoreHandler,
    cached,
    prompt_builder,
    running_score_server,
    single_torch_thread,  # noqa: F401 - an autouse fixture
    train_reward_model,
    warm_start,
)
from tests.support.train_data import tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.runner import run_training
from tunery.spec.checkpoints import is_complete_checkpoint
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_SUCCEEDED,
    CheckpointEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    ProgressEvent,
    StartedEvent,
)

SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_completion_length": 4}
PPO_METRICS = {"reward", "kl", "policy_loss", "value_loss", "completion_length", "ppo/kl_coef", "ppo/clipfrac"}


@pytest.fixture(scope="module")
def warm_model(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached("warm", tiny_llama, lambda: warm_start(tiny_llama, tmp_path_factory.mktemp("warm")))


@pytest.fixture(scope="module")
def reward_model(warm_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA reward model on the warm model's base, trained with stage rm to prefer " yes" over " no"."""
    return cached("rm", warm_model, lambda: train_reward_model(warm_model, tmp_path_factory.mktemp("rm") / "rm"))


def run(model_dir: Path, out: Path, builder: Any = None, callbacks: Any = None, **keys: Any) -> tuple[int, list[Event]]:
    sink = EventSink(io.StringIO())
    code = run_training(tiny_spec(model_dir, out, **keys), sink, build_data=builder, callbacks=callbacks)
    return code, sink.events


def progress(events: list[Event]) -> list[ProgressEvent]:
    return [e for e in events if isinstance(e, ProgressEvent) and e.loss is not None]


def test_ppo_raises_the_mean_reward_of_the_reward_model(warm_model: Path, reward_model: Path, tmp_path: Path) -> None:
    """Full fine-tuning (the reference is a frozen copy): the rm-scored reward of the samples must rise."""
    out = tmp_path / "out"
    code, events = run(
        warm_model,
        out,
        prompt_builder(16),
        stage="ppo",
        finetuning_type="full",
        learning_rate=1e-3,
        reward_model=str(reward_model),
        per_device_train_batch_size=8,
        max_steps=8,
        plot_loss=True,
        **SAMPLING,
    )
    assert code == EXIT_SUCCEEDED, [e for e in events if isinstance(e, FailedEvent)]
    steps = progress(events)
    assert [e.step for e in steps] == list(range(1, 9))
    rewards = [e.metrics["reward"] for e in steps]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.5, rewards  # seeds 1-8 gain 1.5-4.9
    assert set(steps[-1].metrics) >= PPO_METRICS
    assert all(e.grad_norm is not None and e.lr for e in steps)
    assert (out / "model.safetensors").is_file() and (out / "value_head.safetensors").is_file()
    assert set(load_file(str(out / "value_head.safetensors"))) == {"summary.weight", "summary.bias"}
    assert json.loads((out / "config.json").read_text())["use_cache"] is True
    assert (out / "training_loss.png").is_file() and (out / "training_reward.png").is_file()  # LF's PPO plots


class SigtermAfterStep(TrainerCallback):  # type: ignore[misc]
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class ValueHeadAtStart(TrainerCallback):  # type: ignore[misc]
    weight: torch.Tensor | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.weight = model.v_head.summary.weight.detach().clone()


def test_ppo_lora_on_alpaca_cancels_to_a_checkpoint_and_resumes(
    warm_model: Path, reward_model: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    """LoRA (the reference is the adapter disabled) on alpaca_en_demo prompts through the tokenize pipeline;
    SIGTERM saves a checkpoint holding the value head and the KL controller, and the run resumes from it."""
    out = tmp_path / "out"
    keys: dict[str, Any] = {
        "stage": "ppo",
        "reward_model": str(reward_model),
        "reward_model_type": "lora",
        "dataset": "alpaca_en_demo",
        "dataset_dir": str(demo_data_dir),
        "cutoff_len": 96,
        "max_samples": 8,
        "max_steps": 3,
        "per_device_train_batch_size": 2,
        "ppo_epochs": 2,
        **SAMPLING,
    }
    code, events = run(warm_model, out, callbacks=[SigtermAfterStep(1)], **keys)
    assert code == EXIT_CANCELLED, [e for e in events if isinstance(e, FailedEvent)]
    finished = events[-1]
    assert isinstance(finished, FinishedEvent) and finished.outcome == "cancelled" and finished.step == 2
    checkpoint = out / "checkpoint-2"
    assert finished.checkpoint == str(checkpoint) and is_complete_checkpoint(checkpoint)
    assert [e.path for e in events if isinstance(e, CheckpointEvent)] == [str(checkpoint)]
    for name in ("adapter_model.safetensors", "value_head.safetensors", "ppo_state.json", "optimizer.pt"):
        assert (checkpoint / name).is_file(), name
    assert not (out / "adapter_model.safetensors").exists()  # a cancelled run leaves no final artifacts
    assert set(progress(events)[-1].metrics) >= PPO_METRICS

    state = json.loads((checkpoint / "ppo_state.json").read_text())
    (checkpoint / "ppo_state.json").write_text(json.dumps({**state, "kl_coef": 0.5}))  # visible once resumed
    start = ValueHeadAtStart()
    code, events = run(warm_model, out, callbacks=[start], resume_from_checkpoint="auto", **keys)
    assert code == EXIT_SUCCEEDED, [e for e in events if isinstance(e, FailedEvent)]
    started = next(e for e in events if isinstance(e, StartedEvent))
    assert started.resumed_from == str(checkpoint)
    steps = progress(events)
    assert [e.step for e in steps] == [3]
    assert steps[0].metrics["ppo/kl_coef"] == pytest.approx(0.5)
    assert start.weight is not None
    torch.testing.assert_close(start.weight, load_file(str(checkpoint / "value_head.safetensors"))["summary.weight"])
    for name in ("adapter_model.safetensors", "value_head.safetensors", "tokenizer.json", "trainer_state.json"):
        assert (out / name).is_file(), name


def test_ppo_with_an_api_reward_model(warm_model: Path, tmp_path: Path) -> None:
    """reward_model_type api: each prompt and answer go to /v1/score as one text (the server scores lengths);
    ppo_buffer_size multiplies the rollout, ppo_score_norm and ppo_whiten_rewards are applied; freeze + bf16
    (mixed dtypes) runs."""
    with running_score_server() as url:
        code, events = run(
            warm_model,
            tmp_path / "out",
            prompt_builder(16),
            stage="ppo",
            reward_model=f"{url}?model=judge",
            reward_model_type="api",
            per_device_train_batch_size=2,
            ppo_buffer_size=2,
            ppo_epochs=1,
            ppo_score_norm=True,
            ppo_whiten_rewards=True,
            finetuning_type="freeze",  # some layers trained in fp32, the others (and the reference) in bf16
            bf16=True,  # mixed precision reaches generation and the forward passes
            max_steps=2,
            **SAMPLING,
        )
        requests = list(ScoreHandler.requests)
    assert code == EXIT_SUCCEEDED, [e for e in events if isinstance(e, FailedEvent)]
    assert len(requests) == 2 and all(r["model"] == "judge" and len(r["input"]) == 4 for r in requests)
    assert all(text.startswith("Human: Question: ") for r in requests for text in r["input"])
    rewards = [e.metrics["reward"] for e in progress(events)]
    sent = [sum(len(text) for text in r["input"]) / 4 for r in requests]
    assert rewards == pytest.approx(sent)  # the reported reward is the raw score, before normalisation
