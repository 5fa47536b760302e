"""The rows a prediction run generates for equal LLaMA-Factory's own ``do_predict`` rows (its eval split with
``predict_with_generate``: prompt ids and label ids), over templates, tools, multi-turn data, efficient eos,
thinking off and truncation (LF run in bench/.venv-lf)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.evaluation.predict_support import predict_spec
from tunery.engine.train.data import load_template
from tunery.engine.train.model import load_tokenizer
from tunery.evaluation.predict_data import encode_options, encode_predict_rows, load_predict_examples

ROOT = Path(__file__).resolve().parents[2]
LF_PYTHON = ROOT / "bench" / ".venv-lf" / "bin" / "python"
JOBS: list[dict[str, Any]] = [
    {"template": "llama3", "eval_dataset": "alpaca_en_demo"},
    {"template": "qwen", "eval_dataset": "glaive_toolcall_en_demo", "cutoff_len": 96},
    {"template": "qwen", "eval_dataset": "alpaca_zh_demo", "default_system": "You are a careful assistant."},
    {"template": "fewshot", "eval_dataset": "alpaca_en_demo", "cutoff_len": 40},
    {"template": "qwen3", "eval_dataset": "identity", "enable_thinking": False},
]


@pytest.fixture(scope="module")
def lf_rows(tiny_llama: Path, demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if not LF_PYTHON.exists():
        pytest.skip("bench/.venv-lf is missing (bench/setup_lf.sh installs LLaMA-Factory there)")
    scratch = tmp_path_factory.mktemp("lf-predict-rows")
    jobs = [
        {"model_name_or_path": str(tiny_llama), "dataset_dir": str(demo_data_dir), "max_samples": 10, **job}
        for job in JOBS
    ]
    done = subprocess.run(
        [str(LF_PYTHON), str(ROOT / "tests" / "evaluation" / "lf_reference.py"),
         json.dumps({"scratch": str(scratch), "jobs": jobs})],
        capture_output=True, text=True, timeout=600, cwd=scratch, check=False,
    )  # fmt: skip
    if "No module named 'jieba'" in done.stderr or ("jieba" in done.stderr and "mandatory" in done.stderr):
        pytest.skip("bench/.venv-lf lacks jieba/nltk/rouge-chinese (make bench-predict installs them)")
    assert done.returncode == 0, done.stderr[-3000:]
    rows: list[dict[str, Any]] = json.loads((scratch / "reference.json").read_text())["rows"]
    return rows


@pytest.mark.parametrize("index", range(len(JOBS)))
def test_rows_equal_llamafactory(
    lf_rows: list[dict[str, Any]], tiny_llama: Path, demo_data_dir: Path, tmp_path: Path, index: int
) -> None:
    spec = predict_spec(tiny_llama, demo_data_dir, tmp_path, **{"max_samples": 10, **JOBS[index]})
    tokenizer = load_tokenizer(spec.model)
    template = load_template(spec, tokenizer)
    assert template is not None
    examples, _ = load_predict_examples(spec, None)
    (part,) = examples.values()
    rows = encode_predict_rows(part, tokenizer, template, encode_options(spec))
    lf = lf_rows[index]
    assert [row.prompt_ids for row in rows] == lf["input_ids"]
    assert [row.label_ids for row in rows] == lf["labels"]
    if "cutoff_len" in JOBS[index]:
        assert any(len(row.prompt_ids) + len(row.label_ids) == JOBS[index]["cutoff_len"] for row in rows)
