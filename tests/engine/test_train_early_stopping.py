"""Evaluation during training: early stopping (early_stopping_steps), the best checkpoint by metric_for_best_model
(events, retention, load_best_model_at_end), resume keeping the patience count, effective tokens per second,
and the rules that name each key. Real runs on the tiny model whose eval loss rises: the eval rows are unlike the
training rows (pt/sft), or their preferences are the reverse of the training ones (rm/dpo/kto)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.engine.eval_loop_support import (
    OVERFIT,
    eval_values,
    expected_stop,
    finished,
    reversed_preferences,
    run,
    running_best,
    same_weights,
    text_builder,
)
from tests.engine.pref_support import one_thread  # noqa: F401 - an autouse fixture
from tests.support.train_data import TEXTS, tokenize_rows
from tunery.engine.train.throughput import dataset_tokens, effective_tokens_per_second, row_tokens
from tunery.spec import JobSpec
from tunery.spec.errors import SpecError
from tunery.spec.events import EXIT_INVALID, EXIT_SUCCEEDED, BestCheckpointEvent, CheckpointEvent, FailedEvent


def test_early_stopping_keeps_and_loads_the_best_checkpoint(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, events = run(
        tiny_llama, out, early_stopping_steps=2, load_best_model_at_end=True, save_total_limit=2, **OVERFIT
    )
    assert code == EXIT_SUCCEEDED
    losses = eval_values(events)
    stop = expected_stop(losses, patience=2)
    best = running_best(losses)
    assert best[-1] > 2 and stop < 16  # it improved for a while, then stopped before max_steps

    done = finished(events)
    assert done.step == stop and done.stopped_early
    assert done.best_checkpoint == str(out / f"checkpoint-{best[-1]}")
    # each new best is announced right after its checkpoint, with the value that made it the best
    marked = [e for e in events if isinstance(e, BestCheckpointEvent)]
    assert [e.step for e in marked] == best
    for event in marked:
        before = events[events.index(event) - 1]
        assert isinstance(before, CheckpointEvent) and before.step == event.step and before.path == event.path
        assert event.metric == "eval_loss" and event.value == pytest.approx(losses[event.step])
    # save_total_limit keeps the newest checkpoint and, beyond the limit, the best one
    assert sorted(p.name for p in out.glob("checkpoint-*")) == sorted([f"checkpoint-{best[-1]}", f"checkpoint-{stop}"])
    # load_best_model_at_end: the saved model is the best checkpoint's, not the last step's
    final, best_weights = out / "model.safetensors", out / f"checkpoint-{best[-1]}" / "model.safetensors"
    assert same_weights(final, best_weights)
    assert not same_weights(final, out / f"checkpoint-{stop}" / "model.safetensors")
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_global_step"] == best[-1] and state["best_metric"] == pytest.approx(min(losses.values()))


def test_without_load_best_the_last_model_is_saved_and_the_best_still_kept(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, events = run(tiny_llama, out, early_stopping_steps=1, save_total_limit=1, **OVERFIT)
    assert code == EXIT_SUCCEEDED
    done, losses = finished(events), eval_values(events)
    best = running_best(losses)[-1]
    assert done.stopped_early and done.step == expected_stop(losses, patience=1)
    assert done.best_checkpoint == str(out / f"checkpoint-{best}")
    # save_total_limit 1 with a best checkpoint: transformers keeps the best one alone once training ends
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{best}"]
    assert not same_weights(out / "model.safetensors", out / f"checkpoint-{best}" / "model.safetensors")


def test_a_resumed_run_keeps_the_patience_count(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    keys = {**OVERFIT, "early_stopping_steps": 3}
    code, events = run(tiny_llama, out, **keys)
    assert code == EXIT_SUCCEEDED
    losses = eval_values(events)
    best, stop = running_best(losses)[-1], finished(events).step
    assert stop == expected_stop(losses, patience=3) and stop + 2 <= 16  # a fresh count would go on past stop
    resume_at = best + 2  # one evaluation without improvement already counted
    saved = json.loads((out / f"checkpoint-{resume_at}" / "trainer_state.json").read_text())
    assert saved["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"] == 1

    for later in out.glob("checkpoint-*"):  # the run was interrupted after checkpoint resume_at
        if int(later.name.split("-")[1]) > resume_at:
            shutil.rmtree(later)
    code, resumed = run(tiny_llama, out, resume_from_checkpoint=str(out / f"checkpoint-{resume_at}"), **keys)
    assert code == EXIT_SUCCEEDED
    done = finished(resumed)
    assert done.step == stop and done.stopped_early
    assert done.best_checkpoint == str(out / f"checkpoint-{best}")  # the best metric came back with the state
    assert eval_values(resumed) == pytest.approx({s: v for s, v in losses.items() if s > resume_at}, rel=1e-4)


@pytest.mark.parametrize(
    ("stage", "metric", "greater"),
    [
        ("pt", None, False),
        ("rm", "eval_accuracy", True),
        ("dpo", "rewards/accuracies", True),
        ("kto", None, False),
    ],
)
def test_every_stage_stops_early_and_ends_with_its_best_model(
    tiny_llama: Path, tmp_path: Path, stage: str, metric: str | None, greater: bool
) -> None:
    out = tmp_path / stage
    keys: dict[str, Any] = {"stage": stage, "early_stopping_steps": 1, "load_best_model_at_end": True}
    if metric:
        keys["metric_for_best_model"] = metric
    if stage == "pt":
        builder, keys = text_builder, {**OVERFIT, **keys}
    else:
        kind = "kto" if stage == "kto" else "pairwise"
        builder = reversed_preferences(kind)
        keys.update(
            max_steps=12, learning_rate=5e-3, eval_strategy="steps", eval_steps=2, save_steps=2, eval_dataset="rev"
        )
    code, events = run(tiny_llama, out, builder, **keys)
    assert code == EXIT_SUCCEEDED, events[-1]
    key = "eval_" + (metric or "loss").removeprefix("eval_")
    values = eval_values(events, key)
    done = finished(events)
    assert done.stopped_early and done.step == expected_stop(values, patience=1, greater=greater)
    best = running_best(values, greater)[-1]
    assert done.best_checkpoint == str(out / f"checkpoint-{best}")
    assert [e.metric for e in events if isinstance(e, BestCheckpointEvent)][-1] == key
    weights = "model.safetensors" if stage == "pt" else "adapter_model.safetensors"
    assert same_weights(out / weights, out / f"checkpoint-{best}" / weights)


def test_a_metric_no_evaluation_reports_fails_as_a_spec_problem(tiny_llama: Path, tmp_path: Path) -> None:
    code, events = run(
        tiny_llama,
        tmp_path / "out",
        reversed_preferences("pairwise"),
        stage="dpo",
        max_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        eval_dataset="rev",
        metric_for_best_model="logps/nothing",  # a stage group the rules accept, but no such metric
    )
    assert code == EXIT_INVALID
    failed = events[-1]
    assert isinstance(failed, FailedEvent) and failed.code == "invalid_spec"
    assert failed.message.startswith("metric_for_best_model:") and "eval_logps/nothing" in failed.message


def test_effective_tokens_per_second_counts_the_real_tokens_of_each_epoch(tiny_llama: Path, tmp_path: Path) -> None:
    code, events = run(tiny_llama, tmp_path / "out", max_steps=6, include_effective_tokens_per_second=True)
    assert code == EXIT_SUCCEEDED
    metrics = finished(events).metrics
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    tokens = sum(len(row["input_ids"]) for row in tokenize_rows(tokenizer, TEXTS, "sft")) * 4  # unpadded rows
    expected = tokens * metrics["epoch"] / metrics["train_runtime"]
    assert metrics["effective_tokens_per_sec"] == pytest.approx(expected, rel=1e-3, abs=0.01)
    results = json.loads((tmp_path / "out" / "train_results.json").read_text())
    assert results["effective_tokens_per_sec"] == metrics["effective_tokens_per_sec"]
    # preference rows: the prompt is read once per answer (LF counts chosen and rejected sequences whole)
    assert row_tokens({"prompt_ids": [1, 2, 3], "chosen_ids": [4], "rejected_ids": [5, 6]}) == 9
    assert row_tokens({"prompt_ids": [1, 2], "completion_ids": [3, 4, 5]}) == 5
    # a resumed run counts only the epochs it trained; without a token count, the tokens seen
    assert effective_tokens_per_second(100, 0.5, 2.0) == 25.0
    assert effective_tokens_per_second(None, 1.0, 2.0, tokens_seen=300) == 150.0
    assert effective_tokens_per_second(100, 1.0, 0.0) is None
    assert dataset_tokens(SimpleNamespace(stats=SimpleNamespace(tokens=123), train_dataset=None)) == 123  # pipeline


def problems(**keys: Any) -> dict[str, str]:
    flat = {"model_name_or_path": "m", "dataset": "d", **keys}
    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping(flat)
    return {problem.field: problem.message for problem in caught.value.problems}


def accepted(**keys: Any) -> JobSpec:
    return JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "d", **keys})


EVALUATES = {"val_size": 0.1, "eval_strategy": "steps", "eval_steps": 5, "save_steps": 10}


def test_rules_name_the_key_and_say_what_is_missing() -> None:
    message = problems(early_stopping_steps=2)["early_stopping_steps"]
    assert "an eval split to watch (set val_size or eval_dataset)" in message and "set eval_strategy" in message
    message = problems(early_stopping_steps=2, val_size=0.1)["early_stopping_steps"]
    assert "set eval_strategy" in message and "val_size" not in message
    assert "at least 1" in problems(early_stopping_steps=0, **EVALUATES)["early_stopping_steps"]
    assert (
        "save_strategy (epoch) must equal eval_strategy (steps)"
        in problems(load_best_model_at_end=True, save_strategy="epoch", **EVALUATES)["load_best_model_at_end"]
    )
    assert (
        "save_steps (7) must be a multiple of eval_steps (5)"
        in problems(load_best_model_at_end=True, **{**EVALUATES, "save_steps": 7})["load_best_model_at_end"]
    )
    assert "needs evaluations" in problems(load_best_model_at_end=True)["load_best_model_at_end"]
    assert "compares evaluations" in problems(metric_for_best_model="loss")["metric_for_best_model"]
    message = problems(metric_for_best_model="eval_accuracy", **EVALUATES)["metric_for_best_model"]
    assert "not reported by stage sft" in message and "compute_accuracy: true" in message
    assert (
        "eval_rewards/accuracies"
        in problems(stage="dpo", metric_for_best_model="kl", **EVALUATES)["metric_for_best_model"]
    )
    assert "only applies with metric_for_best_model" in problems(greater_is_better=True)["greater_is_better"]
    for stage in ("ppo", "grpo"):
        found = problems(stage=stage, early_stopping_steps=2, include_effective_tokens_per_second=True)
        assert f"does not apply to stage {stage}" in found["early_stopping_steps"]
        assert f"does not apply to stage {stage}" in found["include_effective_tokens_per_second"]


def test_rules_accept_the_stage_metrics_and_fill_the_defaults() -> None:
    spec = accepted(early_stopping_steps=2, load_best_model_at_end=True, **EVALUATES)
    assert spec.method.early_stopping_steps == 2
    accepted(compute_accuracy=True, metric_for_best_model="eval_accuracy", early_stopping_steps=1, **EVALUATES)
    accepted(stage="dpo", metric_for_best_model="eval_rewards/accuracies", **EVALUATES)
    accepted(stage="dpo", metric_for_best_model="logps/chosen", greater_is_better=True, **EVALUATES)
    accepted(stage="kto", metric_for_best_model="kl", greater_is_better=False, **EVALUATES)
    accepted(load_best_model_at_end=True, **{**EVALUATES, "eval_steps": 0.1, "save_steps": 0.2})

    from tunery.engine.train.stages.arguments import build_training_arguments

    args = build_training_arguments(accepted(early_stopping_steps=2, **EVALUATES))
    assert (args.metric_for_best_model, args.greater_is_better) == ("loss", False)
    args = build_training_arguments(accepted(stage="rm", metric_for_best_model="accuracy", **EVALUATES))
    assert (args.metric_for_best_model, args.greater_is_better) == ("accuracy", True)
    assert build_training_arguments(accepted(**EVALUATES)).metric_for_best_model is None


def test_logging_dir_is_where_the_tensorboard_callback_writes() -> None:
    from transformers.integrations import TensorBoardCallback

    from tunery.engine.train.runner import set_tensorboard_dir

    callback = TensorBoardCallback.__new__(TensorBoardCallback)  # tensorboard itself is not installed here
    callback.logging_dir = None
    trainer: Any = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[object(), callback]))
    set_tensorboard_dir(trainer, "~/tb/run1")
    assert callback.logging_dir == str(Path("~/tb/run1").expanduser())
    assert "add tensorboard to report_to" in problems(logging_dir="tb")["logging_dir"]
    accepted(logging_dir="tb", report_to="tensorboard")
