"""Spec rules of prediction runs and the evaluation section: every key is honoured or refused naming it;
the eval job defaults of ``tunery eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tunery.evaluation.job import load_eval_spec, with_eval_defaults
from tunery.spec import JobSpec, SpecError

BASE: dict[str, Any] = {
    "model_name_or_path": "m", "do_train": False, "do_predict": True, "predict_with_generate": True,
    "eval_dataset": "alpaca_en_demo",
}  # fmt: skip


def problems(**keys: Any) -> dict[str, str]:
    try:
        JobSpec.from_mapping({**BASE, **keys})
    except SpecError as exc:
        return {problem.field: problem.message for problem in exc.problems}
    return {}


def test_a_prediction_spec_is_valid() -> None:
    assert problems() == {}
    assert problems(do_sample=True, temperature=0.7, top_k=20, repetition_penalty=1.1, infer_backend="vllm") == {}
    assert problems(eval_dataset=None, dataset="alpaca_en_demo", val_size=0.1) == {}
    assert problems(do_train=True, dataset="alpaca_en_demo", adapter_name_or_path="a") == {}


@pytest.mark.parametrize(
    ("keys", "field", "words"),
    [
        ({"predict_with_generate": False}, "predict_with_generate", "must be true with do_predict"),
        ({"do_predict": False}, "predict_with_generate", "only applies with do_predict"),
        ({"stage": "dpo"}, "do_predict", "only applies to stage sft"),
        ({"eval_dataset": None}, "do_predict", "needs eval_dataset"),
        ({"eval_dataset": None, "val_size": 0.2}, "val_size", "needs dataset"),
        ({"num_beams": 3}, "num_beams", "beam search"),
        ({"eval_num_beams": 2}, "eval_num_beams", "beam search"),
        ({"length_penalty": 0.5}, "length_penalty", "only applies to beam search"),
        ({"max_length": 256}, "max_length", "max_new_tokens"),
        ({"generation_max_length": 256}, "generation_max_length", "max_new_tokens"),
        ({"do_sample": True, "temperature": 0}, "temperature", "must be above 0"),
        ({"infer_backend": "sglang"}, "infer_backend", "not supported"),
        ({"adapter_name_or_path": "a,b"}, "adapter_name_or_path", "one LoRA adapter"),
        ({"gguf_file": "m.gguf"}, "gguf_file", "safetensors"),
        ({"streaming": True, "max_steps": 10}, "streaming", "not supported with do_predict"),
        ({"eval_metrics": "bleu,meteor"}, "eval_metrics", "unknown metric meteor"),
        ({"n_shot": 3}, "n_shot", "only applies to a benchmark"),
        ({"judge_rubric": "be strict"}, "judge_rubric", "only applies to the LLM judge"),
        ({"judge_model": "gpt"}, "judge_base_url", "is required with judge_model"),
        ({"do_train": True, "dataset": "x", "task": "mmlu_test"}, "task", "applies to eval jobs"),
    ],
)
def test_refused_keys_are_named(keys: dict[str, Any], field: str, words: str) -> None:
    found = problems(**keys)
    assert field in found, found
    assert words in found[field]


def test_judge_rules() -> None:
    judge = {"judge_model": "j", "judge_base_url": "http://x/v1"}
    assert problems(**judge) == {}
    pairwise = problems(do_predict=False, predict_with_generate=False, judge_mode="pairwise", **judge)
    assert "compares two predictions files" in pairwise["judge_predictions"]
    single = problems(do_predict=False, predict_with_generate=False, judge_predictions="a.jsonl,b.jsonl", **judge)
    assert "takes 1 predictions file" in single["judge_predictions"]
    both = problems(do_predict=False, predict_with_generate=False, task="mmlu_test", judge_predictions="a", **judge)
    assert "separate eval jobs" in both["task"]


def test_eval_job_defaults(tmp_path: Path) -> None:
    assert with_eval_defaults({"eval_dataset": "x"}) == {
        "eval_dataset": "x", "do_train": False, "do_predict": True, "predict_with_generate": True,
    }  # fmt: skip
    assert with_eval_defaults({"task": "mmlu_test"}) == {"task": "mmlu_test", "do_train": False}
    assert with_eval_defaults({"judge_predictions": ["a"]}) == {"judge_predictions": ["a"], "do_train": False}
    with pytest.raises(SpecError, match="do_train: an eval job does not train"):
        with_eval_defaults({"do_train": True})
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"model": {"model_name_or_path": "m"}, "data": {"eval_dataset": "identity"}}))
    spec = load_eval_spec(job, ["max_new_tokens=7"])
    assert (spec.training.do_train, spec.training.do_predict, spec.generation.max_new_tokens) == (False, True, 7)
    assert load_eval_spec(job, ["task=mmlu_test", "eval_dataset="]).training.do_predict is False
