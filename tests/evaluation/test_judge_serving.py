"""The judge against Tunery's own OpenAI-compatible serving (`tunery api`'s app with the hf engine, in a uvicorn
thread, behind an API key): the whole path over HTTP, log-probs included. The judge models are tiny models
rewired to answer one fixed token, so the figures are known."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch

from tests.serving.support import running_server
from tunery.evaluation.judge import PAIRWISE_FILE, SINGLE_FILE, judge_pairwise, judge_single
from tunery.serving.config import ServingConfig
from tunery.serving.manager import EngineManager
from tunery.serving.standalone import create_standalone_app, served_model
from tunery.spec import JobSpec, load_spec

SECRET = "tunery-judge-key-5d41402abc4b2a76"
KEY_ENV = "TUNERY_TEST_SERVING_JUDGE_KEY"


def parrot(base: Path, folder: Path, word: str) -> Path:
    """``base`` rewired to answer ``word`` (one token) and stop: its layers add nothing to the residual stream,
    every embedding points along dimension 0 (the head maps it to ``word``), ``word``'s also along dimension 1
    (the head maps that to eos, far stronger)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    (word_id,) = tokenizer.encode(word, add_special_tokens=False)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                parameter.zero_()
        embeddings = model.get_input_embeddings().weight
        embeddings.zero_()
        embeddings[:, 0] = 10.0
        embeddings[word_id, 1] = 10.0
        head = model.get_output_embeddings().weight
        head.zero_()
        head[word_id, 0] = 10.0
        head[tokenizer.eos_token_id, 1] = 100.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _serve(model: Path, folder: Path) -> contextlib.AbstractContextManager[str]:
    job = folder / "serve.yaml"
    job.write_text(f"model_name_or_path: {model}\ntemplate: llama3\n", encoding="utf-8")
    served = served_model(load_spec(job, ["do_train=false"]), "hf", name="judge")
    return running_server(create_standalone_app(served, EngineManager(ServingConfig(engine="hf")), api_key=SECRET))


def _predictions(path: Path, answers: list[str]) -> Path:
    rows = [{"prompt": f"Question {i}?", "label": "ref", "predict": answer} for i, answer in enumerate(answers)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _spec(url: str, **extra: object) -> JobSpec:
    raw = {"model_name_or_path": "unused", "do_train": False, "judge_model": "judge", "judge_base_url": f"{url}/v1"}
    return JobSpec.from_mapping({**raw, "judge_api_key_env": KEY_ENV, "judge_max_concurrency": 3, **extra})


def test_judge_through_tunery_serving(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    a = _predictions(tmp_path / "a.jsonl", ["Paris", "four", "blue", "yes"])
    b = _predictions(tmp_path / "b.jsonl", ["Lyon", "4", "blue", "no"])

    seven = parrot(tiny_llama, tmp_path / "seven", "7")
    with _serve(seven, tmp_path) as url:
        single = judge_single(_spec(url), a, tmp_path / "single", lambda d, t: None)
    rows = [json.loads(line) for line in (tmp_path / "single" / SINGLE_FILE).read_text().splitlines()]
    assert single.metrics["judge_failures"] == 0
    # the reply "7" with its top log-probs from Tunery: the weighted score is 7 (the other tokens are ~0)
    assert single.metrics["judge_score"] == pytest.approx(7.0, abs=1e-3)
    assert [row["scores"]["judge_score"] for row in rows] == pytest.approx([7.0] * 4, abs=1e-3)
    assert all(row["judge_weighted"] for row in rows)

    always_a = parrot(tiny_llama, tmp_path / "always-a", "A")
    with _serve(always_a, tmp_path) as url:
        spec = _spec(url, judge_mode="pairwise", judge_predictions=[str(a), str(b)])
        pairwise = judge_pairwise(spec, a, b, tmp_path / "pairwise", lambda d, t: None)
        # a judge that always picks the first answer shown prefers neither run once the order is swapped
        unscored = judge_single(_spec(url), a, tmp_path / "unscored", lambda d, t: None)
    assert pairwise.metrics == {"judge_failures": 0.0, "win_rate_a": 0.0, "win_rate_b": 0.0, "tie_rate": 100.0}
    rows = [json.loads(line) for line in (tmp_path / "pairwise" / PAIRWISE_FILE).read_text().splitlines()]
    assert [row["winner"] for row in rows] == ["tie"] * 4
    assert [row.get("verdicts") for row in rows] == [["a", "b"], ["a", "b"], None, ["a", "b"]]  # row 2: same answer
    assert unscored.metrics == {"judge_failures": 4.0}  # "A" is no score: every row a failure, none scored

    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".yaml"):
            assert SECRET not in path.read_text(encoding="utf-8", errors="replace")


def test_wrong_key_stops_the_run(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunery.engine.train.errors import TrainingError

    monkeypatch.setenv(KEY_ENV, "not-the-key")
    a = _predictions(tmp_path / "a.jsonl", ["x"])
    with (
        _serve(tiny_llama, tmp_path) as url,
        pytest.raises(TrainingError, match=r"judge_api_key_env: .* refused the API key"),
    ):
        judge_single(_spec(url), a, tmp_path / "out", lambda d, t: None)
