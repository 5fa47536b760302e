"""Stage rm: a pairwise reward model learns to rank held-out pairs, saves its score head per method, and loads
back through ``load_reward_model`` (the contract the RL stages and /v1/score use)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.engine.pref_support import (
    BAD,
    GOOD,
    eval_before_and_after,
    finished,
    one_thread,  # noqa: F401 - an autouse fixture
    pair_rows,
    prompts,
    row_builder,
    run_stage,
)
from tunery.engine.train.reward_model import REWARD_CONFIG, RewardModelError, is_reward_model, load_reward_model
from tunery.spec.events import EXIT_SUCCEEDED


def test_reward_model_ranks_held_out_pairs_and_loads_for_scoring(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "rm"
    before, after = eval_before_and_after(
        tiny_llama,
        out,
        row_builder("pairwise", 16, eval_rows=6),
        stage="rm",
        max_steps=8,
        per_device_eval_batch_size=6,
    )
    assert after["eval_accuracy"] > 0.5 and after["eval_loss"] < before["eval_loss"]
    assert after["eval_rewards/margins"] > before["eval_rewards/margins"]

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]
    assert any("score" in key for key in load_file(str(out / "adapter_model.safetensors")))
    info = json.loads((out / REWARD_CONFIG).read_text())
    assert info == {"base_model": str(tiny_llama), "finetuning_type": "lora", "template": "default"}
    assert is_reward_model(out)

    scorer = load_reward_model(str(out))
    held_out = pair_rows(scorer.tokenizer, 6, seed=1)
    chosen = scorer.score_ids([row["prompt_ids"] + row["chosen_ids"] for row in held_out])
    rejected = scorer.score_ids([row["prompt_ids"] + row["rejected_ids"] for row in held_out])
    assert all(good > bad for good, bad in zip(chosen, rejected, strict=True))
    eos = scorer.tokenizer.eos_token
    texts = prompts(4, seed=2)
    good = scorer.score_texts(None, [text + GOOD + eos for text in texts])
    bad = scorer.score_texts(None, [text + BAD + eos for text in texts])
    assert all(g > b for g, b in zip(good, bad, strict=True))
    # batching and padding do not change a score
    assert scorer.score_ids([held_out[0]["prompt_ids"] + held_out[0]["chosen_ids"]])[0] == pytest.approx(chosen[0])


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_full_and_freeze_reward_models_train_and_save_the_score_head(
    tiny_llama: Path, tmp_path: Path, method: str
) -> None:
    out = tmp_path / method
    code, events = run_stage(
        tiny_llama,
        out,
        row_builder("pairwise", 8),
        stage="rm",
        finetuning_type=method,
        learning_rate=1e-3,
        max_steps=2,
    )
    assert code == EXIT_SUCCEEDED, finished(events)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"][0].endswith("ForSequenceClassification") and len(config["id2label"]) == 1
    weights = load_file(str(out / "model.safetensors"))
    assert weights["score.weight"].shape[0] == 1 and not any(key.startswith("lm_head") for key in weights)
    assert json.loads((out / REWARD_CONFIG).read_text())["finetuning_type"] == method
    scorer = load_reward_model(str(out))
    assert torch.equal(scorer.model.score.weight.cpu(), weights["score.weight"])
    assert len(scorer.score_ids([[5, 6, 7], [8, 9]])) == 2


def test_rm_trains_on_the_demo_pairs_and_scores_rendered_texts(
    tiny_llama: Path, tmp_path: Path, demo_data_dir: Path
) -> None:
    out = tmp_path / "out"
    code, events = run_stage(
        tiny_llama,
        out,
        None,
        stage="rm",
        dataset="dpo_en_demo",
        dataset_dir=str(demo_data_dir),
        template="llama3",
        cutoff_len=64,
        max_samples=10,
        max_steps=2,
        do_eval=True,
        val_size=2,
    )
    assert code == EXIT_SUCCEEDED, finished(events)
    metrics = finished(events).metrics
    assert 0 <= metrics["eval_accuracy"] <= 1 and "eval_rewards/margins" in metrics
    scorer = load_reward_model(str(out))
    assert scorer.template is not None and scorer.template.name == "llama3"
    ids = scorer.encode("What is 2 + 2?", "4")
    assert scorer.tokenizer.decode(ids).endswith("4<|eot_id|>")  # rendered as the assistant's answer
    scores = scorer.score_texts(["What is 2 + 2?", "Name a colour."], ["4", "Blue."])
    assert len(scores) == 2 and all(isinstance(score, float) for score in scores)


def test_folders_that_are_not_reward_models_are_refused_clearly(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(RewardModelError, match="holds no reward model"):
        load_reward_model(str(tiny_llama))  # a causal LM
    with pytest.raises(RewardModelError, match="not a folder"):
        load_reward_model(str(tmp_path / "missing"))
    assert not is_reward_model(tiny_llama)
