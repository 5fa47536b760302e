"""Several eval datasets reported separately (eval_on_each_dataset): every stage with an eval loop gets one eval
set per dataset and reports eval_<name>_<metric> (its loss and its stage metrics) in eval events; early stopping
watches the set metric_for_best_model names. Without eval_on_each_dataset the sets are merged (LF's default)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.engine.eval_loop_support import OTHER, OVERFIT, eval_values, expected_stop, finished, run, running_best
from tests.engine.pref_support import RowData, one_thread, pair_rows  # noqa: F401 - one_thread: an autouse fixture
from tests.support.train_data import TEXTS, PadCollator, TinyTrainingData, tokenize_rows
from tunery.spec import JobSpec
from tunery.spec.errors import SpecError
from tunery.spec.events import EXIT_SUCCEEDED, BestCheckpointEvent, EvalEvent, Event


def eval_metrics(events: list[Event]) -> list[dict[str, float]]:
    return [event.metrics for event in events if isinstance(event, EvalEvent)]


def near_and_far(spec: JobSpec, tokenizer: Any, template: Any, cache_dir: Path | None) -> TinyTrainingData:
    """Eval set "near" holds training rows (its loss keeps falling), "far" unrelated text (its loss turns)."""
    rows = tokenize_rows(tokenizer, TEXTS, spec.method.stage)
    sets = {"near": rows[:2], "far": tokenize_rows(tokenizer, OTHER, spec.method.stage)}
    return TinyTrainingData(rows * 4, sets, PadCollator(tokenizer.pad_token_id))  # type: ignore[arg-type]


def test_each_eval_set_reports_its_own_metrics_and_early_stopping_watches_one(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, events = run(
        tiny_llama,
        out,
        near_and_far,
        **{**OVERFIT, "eval_dataset": "near,far"},
        eval_on_each_dataset=True,
        compute_accuracy=True,
        early_stopping_steps=2,
        metric_for_best_model="eval_far_loss",
        load_best_model_at_end=True,
        do_eval=True,
        plot_loss=True,
    )
    assert code == EXIT_SUCCEEDED, events[-1]
    reports = eval_metrics(events)
    # one eval event per set and evaluation, each with only its own set's names
    assert all(set(m) & {"eval_loss", "eval_accuracy"} == set() for m in reports)
    near, far = eval_values(events, "eval_near_loss"), eval_values(events, "eval_far_loss")
    assert near.keys() == far.keys() and all("eval_near_accuracy" in m or "eval_far_accuracy" in m for m in reports)
    assert all(near[step] < far[step] for step in near)  # two sets, two different figures: rows it trains on

    done = finished(events)
    assert done.stopped_early and done.step == expected_stop(far, patience=2)
    best = running_best(far)[-1]
    assert done.best_checkpoint == str(out / f"checkpoint-{best}")
    assert {e.metric for e in events if isinstance(e, BestCheckpointEvent)} == {"eval_far_loss"}
    # the final evaluation (do_eval) reports each set, with its perplexity; the loss plot draws each set
    for name in ("near", "far"):
        assert done.metrics[f"eval_{name}_perplexity"] > 1 and f"eval_{name}_accuracy" in done.metrics
        assert (out / f"training_eval_{name}_loss.png").is_file()
    assert done.metrics["eval_far_loss"] == pytest.approx(far[best], rel=1e-4)  # the best model was loaded


def same_and_reversed(spec: JobSpec, tokenizer: Any, template: Any, cache_dir: Path | None) -> RowData:
    held_out = pair_rows(tokenizer, 4, seed=1)
    flipped = [{**row, "chosen_ids": row["rejected_ids"], "rejected_ids": row["chosen_ids"]} for row in held_out]
    return RowData(pair_rows(tokenizer, 16), {"same": held_out, "reversed": flipped})  # type: ignore[arg-type]


@pytest.mark.parametrize(("stage", "metric"), [("dpo", "rewards/accuracies"), ("rm", "accuracy")])
def test_preference_stage_metrics_are_named_per_eval_set(
    tiny_llama: Path, tmp_path: Path, stage: str, metric: str
) -> None:
    code, events = run(
        tiny_llama,
        tmp_path / "out",
        same_and_reversed,
        stage=stage,
        max_steps=8,
        learning_rate=5e-3,
        eval_strategy="steps",
        eval_steps=8,
        eval_dataset="same,reversed",
        eval_on_each_dataset=True,
    )
    assert code == EXIT_SUCCEEDED, events[-1]
    reports = eval_metrics(events)
    assert len(reports) == 2 and all(f"eval_{metric}" not in m for m in reports)  # never one shared name
    merged = {key: value for m in reports for key, value in m.items()}
    # TRL logs each set's stage metrics; here they carry the set's name, so they tell the sets apart
    assert merged[f"eval_same_{metric}"] > 0.5 > merged[f"eval_reversed_{metric}"]
    assert merged["eval_same_loss"] < merged["eval_reversed_loss"]
    assert f"eval_same_{'rewards/margins'}" in merged


@pytest.fixture
def demo_with_copies(demo_data_dir: Path, tmp_path: Path) -> Path:
    """The demo datasets plus a second name for some ("<name>_copy"), so every stage has two small eval sets."""
    info = json.loads((demo_data_dir / "dataset_info.json").read_text(encoding="utf-8"))
    for name in ("dpo_en_demo", "kto_en_demo", "c4_demo"):
        info[f"{name}_copy"] = info[name]
    folder = tmp_path / "data"
    folder.mkdir()
    for entry in info.values():
        source = demo_data_dir / str(entry.get("file_name", ""))
        if entry.get("file_name") and source.is_file() and not (folder / source.name).exists():
            (folder / source.name).symlink_to(source)
    (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("stage", "dataset", "evaluation"),
    [
        ("sft", "alpaca_en_demo", "identity,alpaca_zh_demo"),
        ("pt", "c4_demo", "c4_demo,c4_demo_copy"),
        ("rm", "dpo_en_demo", "dpo_en_demo,dpo_en_demo_copy"),
        ("dpo", "dpo_en_demo", "dpo_en_demo,dpo_en_demo_copy"),
        ("kto", "kto_en_demo", "kto_en_demo,kto_en_demo_copy"),
    ],
)
def test_every_stage_gets_one_eval_set_per_dataset_from_the_pipeline(
    tiny_llama: Path, tmp_path: Path, demo_with_copies: Path, stage: str, dataset: str, evaluation: str
) -> None:
    code, events = run(
        tiny_llama,
        tmp_path / "out",
        None,
        stage=stage,
        dataset=dataset,
        eval_dataset=evaluation,
        eval_on_each_dataset=True,
        dataset_dir=str(demo_with_copies),
        template=None if stage == "pt" else "llama3",
        cutoff_len=64,
        max_samples=4,
        max_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        per_device_eval_batch_size=2,
    )
    assert code == EXIT_SUCCEEDED, events[-1]
    names = evaluation.split(",")
    keys = {key for metrics in eval_metrics(events) for key in metrics}
    assert {f"eval_{name}_loss" for name in names} <= keys and "eval_loss" not in keys
    own = {"rm": "rewards/margins", "dpo": "rewards/accuracies", "kto": "kl"}.get(stage)
    if own is not None:  # the stage's own metrics are per set too
        assert {f"eval_{name}_{own}" for name in names} <= keys and f"eval_{own}" not in keys


def test_merged_eval_sets_report_one_loss(tiny_llama: Path, tmp_path: Path, demo_data_dir: Path) -> None:
    code, events = run(
        tiny_llama,
        tmp_path / "out",
        None,
        dataset="alpaca_en_demo",
        eval_dataset="identity,alpaca_zh_demo",
        dataset_dir=str(demo_data_dir),
        template="llama3",
        cutoff_len=64,
        max_samples=4,
        max_steps=2,
        eval_strategy="steps",
        eval_steps=2,
    )
    assert code == EXIT_SUCCEEDED, events[-1]
    reports = eval_metrics(events)
    assert len(reports) == 1 and "eval_loss" in reports[0] and not any("identity" in key for key in reports[0])


def problems(**keys: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "d", **keys})
    return {problem.field: problem.message for problem in caught.value.problems}


SETS = {"eval_dataset": "a,b_c", "eval_on_each_dataset": True, "eval_strategy": "steps", "eval_steps": 5}


def test_several_eval_sets_need_the_metric_named_after_one() -> None:
    message = problems(early_stopping_steps=2, **SETS)["metric_for_best_model"]
    assert "eval_on_each_dataset" in message and "eval_a_loss" in message
    message = problems(early_stopping_steps=2, metric_for_best_model="eval_loss", **SETS)["metric_for_best_model"]
    assert "eval_<dataset>_<metric>" in message and "a, b_c" in message
    assert "metric_for_best_model" in problems(load_best_model_at_end=True, save_steps=5, **SETS)
    assert "metric_for_best_model" in problems(metric_for_best_model="eval_c_loss", **SETS)

    for metric in ("eval_a_loss", "b_c_loss", "eval_b_c_loss"):
        JobSpec.from_mapping(
            {"model_name_or_path": "m", "dataset": "d", "early_stopping_steps": 2, "metric_for_best_model": metric}
            | SETS
        )
    JobSpec.from_mapping(
        {"model_name_or_path": "m", "dataset": "d", "stage": "dpo", "metric_for_best_model": "eval_a_rewards/margins"}
        | SETS
    )
    # one eval dataset without eval_on_each_dataset is merged: plain eval_loss
    JobSpec.from_mapping(
        {"model_name_or_path": "m", "dataset": "d", "early_stopping_steps": 2, **SETS, "eval_on_each_dataset": False}
    )
