"""Benchmarks against LLaMA-Factory: the few-shot prompts (messages and token ids, en and zh, several chat
templates including ``fewshot``) equal what LF's evaluator builds, and the accuracy equals a direct computation
of LF's method (choice-letter logits at the answer position) over LF's own prompt ids."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.tiny_models import build_model
from tunery.evaluation.benchmark import SAMPLES_FILE, build_items, encode_prompts, run_benchmark
from tunery.evaluation.benchmark_data import CHOICES, Question, find_benchmark, parse_task
from tunery.evaluation.benchmark_prompt import EVAL_TEMPLATES, pick_shots, subject_rng
from tunery.spec import JobSpec

ROOT = Path(__file__).resolve().parents[2]
LF_PYTHON = ROOT / "bench" / ".venv-lf" / "bin" / "python"

#: Runs in bench/.venv-lf: LF's eval template + chat template for each case -> messages and prompt ids.
LF_CODE = """
import json, sys
from transformers import AutoTokenizer
from llamafactory.data import get_template_and_fix_tokenizer
from llamafactory.eval.template import get_eval_template
from llamafactory.hparams import DataArguments

request = json.loads(open(sys.argv[1], encoding="utf-8").read())
out, loaded = [], {}
for case in request["cases"]:
    if case["template"] not in loaded:  # LF may add tokens to the tokenizer: one per template
        tokenizer = AutoTokenizer.from_pretrained(request["tokenizer"])
        template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=case["template"]))
        loaded[case["template"]] = (tokenizer, template)
    tokenizer, template = loaded[case["template"]]
    messages = get_eval_template(case["lang"]).format_example(
        target_data=case["target"], support_set=case["support"], subject_name=case["subject_name"]
    )
    input_ids, _ = template.encode_oneturn(tokenizer=tokenizer, messages=messages)
    out.append({"messages": messages, "input_ids": input_ids})
tokenizer = AutoTokenizer.from_pretrained(request["tokenizer"])
choice_ids = [tokenizer.encode(ch, add_special_tokens=False)[-1] for ch in ["A", "B", "C", "D"]]
open(request["out"], "w", encoding="utf-8").write(json.dumps({"cases": out, "choice_ids": choice_ids}))
"""

#: (task, lang, template, n_shot): English and Chinese, LF eval's fewshot template and chat templates.
RUNS = [
    ("mmlu_sample_test", "en", "fewshot", 3),
    ("cmmlu_sample_test", "zh", "llama3", 2),
    ("ceval_sample_validation", "zh", "qwen", 0),
    ("mmlu_sample_validation", "en", "default", 1),
]


def _spec(model: Path, task: str, lang: str, template: str, n_shot: int, **extra: Any) -> JobSpec:
    raw = {"model_name_or_path": str(model), "do_train": False, "task": task, "lang": lang, "template": template}
    return JobSpec.from_mapping({**raw, "n_shot": n_shot, "batch_size": 4, **extra})


def _as_lf(question: Question) -> dict[str, str]:
    return {"question": question.question, **question.choices, "answer": question.answer}


def _cases(spec: JobSpec) -> list[dict[str, Any]]:
    """The questions of the run with the shots Tunery draws for them (same seeded order as build_items)."""
    evaluation = spec.evaluation
    assert evaluation.task is not None
    name, split = parse_task(evaluation.task)
    benchmark = find_benchmark(name, None)
    cases = []
    for subject in benchmark.subjects:
        dev = benchmark.questions("dev", subject) if evaluation.n_shot else []
        rng = subject_rng(spec.training.seed, subject.id)
        for question in benchmark.questions(split, subject):
            support = pick_shots(dev, evaluation.n_shot, rng)
            cases.append(
                {
                    "template": spec.data.template,
                    "lang": evaluation.lang,
                    "target": _as_lf(question),
                    "support": [_as_lf(shot) for shot in support],
                    "subject_name": subject.name,
                    "question": question,
                    "shots": support,
                }
            )
    return cases


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("bench") / "tiny", "llama", layers=2, seed=3)


@pytest.fixture(scope="module")
def lf(model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """LF's messages and prompt ids for every question of every run (one LF process)."""
    if not LF_PYTHON.exists():
        pytest.skip("bench/.venv-lf is missing (bench/setup_lf.sh installs LLaMA-Factory there)")
    scratch = tmp_path_factory.mktemp("lf-bench")
    runs = {task: _cases(_spec(model, task, lang, template, n_shot)) for task, lang, template, n_shot in RUNS}
    plain = [
        {k: v for k, v in case.items() if k not in ("question", "shots")} for cases in runs.values() for case in cases
    ]
    request = {"tokenizer": str(model), "out": str(scratch / "lf.json"), "cases": plain}
    (scratch / "request.json").write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
    done = subprocess.run(
        [str(LF_PYTHON), "-c", LF_CODE, str(scratch / "request.json")],
        capture_output=True, text=True, timeout=300, cwd=scratch, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads((scratch / "lf.json").read_text(encoding="utf-8"))
    by_task, cursor = {}, 0
    for task, cases in runs.items():
        by_task[task] = [{**case, **answer["cases"][cursor + i]} for i, case in enumerate(cases)]
        cursor += len(cases)
    return {"runs": by_task, "choice_ids": answer["choice_ids"]}


@pytest.mark.parametrize(("task", "lang", "template", "n_shot"), RUNS)
def test_prompts_equal_llamafactory(
    model: Path, lf: dict[str, Any], task: str, lang: str, template: str, n_shot: int
) -> None:
    from transformers import AutoTokenizer

    from tunery.engine.templates import get_template

    spec = _spec(model, task, lang, template, n_shot)
    tokenizer = AutoTokenizer.from_pretrained(model)
    chat = get_template(template, tokenizer)
    cases = lf["runs"][task]
    conversations = [
        EVAL_TEMPLATES[lang].format_example(case["question"], case["shots"], case["subject_name"]) for case in cases
    ]
    for case, messages in zip(cases, conversations, strict=True):
        assert [{"role": m.role.value, "content": m.content} for m in messages] == case["messages"]
        assert len(messages) == 2 * (n_shot + 1)
    ids = encode_prompts(tokenizer, chat, conversations, spec)
    assert ids == [case["input_ids"] for case in cases]
    # build_items (what run_benchmark scores) draws the same shots and builds the same ids
    items = build_items(spec, tokenizer, chat)
    assert [item.input_ids for item in items] == ids
    assert [item.question.answer for item in items] == [case["target"]["answer"] for case in cases]


def _direct_letters(model: Path, prompts: list[list[int]], choice_ids: list[int]) -> list[str]:
    """LF's method one question at a time, no padding: argmax of the choice logits at the last prompt token."""
    from transformers import AutoModelForCausalLM

    network = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    letters = []
    with torch.no_grad():
        for ids in prompts:
            logits = network(input_ids=torch.tensor([ids])).logits[0, -1, choice_ids]
            letters.append(CHOICES[int(torch.argmax(logits))])
    return letters


@pytest.mark.parametrize(("task", "lang", "template", "n_shot"), RUNS[:2])
def test_accuracy_equals_direct_computation(
    model: Path, lf: dict[str, Any], tmp_path: Path, task: str, lang: str, template: str, n_shot: int
) -> None:
    cases = lf["runs"][task]
    letters = _direct_letters(model, [case["input_ids"] for case in cases], lf["choice_ids"])
    seen: list[tuple[int, int]] = []
    spec = _spec(model, task, lang, template, n_shot, batch_size=5)
    outcome = run_benchmark(spec, tmp_path, lambda done, total: seen.append((done, total)))

    rows = [json.loads(line) for line in (tmp_path / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()]
    assert [row["predict"] for row in rows] == letters
    labels = [case["target"]["answer"] for case in cases]
    assert [row["label"] for row in rows] == labels
    right = [letter == label for letter, label in zip(letters, labels, strict=True)]
    assert outcome.metrics["accuracy"] == pytest.approx(100 * sum(right) / len(right), abs=1e-3)
    assert [row["scores"]["accuracy"] for row in rows] == [100.0 if ok else 0.0 for ok in right]
    for row in rows:
        assert sum(row["probs"].values()) == pytest.approx(1, abs=1e-4)
        assert row["predict"] == max(row["probs"], key=row["probs"].get)

    by_subject: dict[str, list[bool]] = {}
    for row, ok in zip(rows, right, strict=True):
        by_subject.setdefault(row["subject"], []).append(ok)
    expected = {name: pytest.approx(100 * sum(v) / len(v), abs=1e-3) for name, v in by_subject.items()}
    assert outcome.breakdown["subject"] == expected
    assert outcome.kind == "benchmark" and outcome.name == task
    assert outcome.samples_file == SAMPLES_FILE and outcome.samples == len(cases)
    assert seen[-1] == (len(cases), len(cases)) and len(seen) == -(-len(cases) // 5)

    # LF's files: results.json (chosen letter per subject and question), results.log (accuracy per category)
    letters_file = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert [letter for subject in letters_file.values() for letter in subject.values()] == letters
    log = (tmp_path / "results.log").read_text(encoding="utf-8").splitlines()
    assert log[0] == f"{'Average':>15}: {outcome.metrics['accuracy']:.2f}"
    assert [line.split(":")[0].strip() for line in log[1:]] == list(outcome.breakdown["category"])


def test_adapter_is_merged_and_save_dir_used(model: Path, tmp_path: Path) -> None:
    """With a LoRA adapter the answers are those of the merged model; LF's files go to save_dir."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    peft = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False)
    )
    with torch.no_grad():
        for name, parameter in peft.named_parameters():
            if "lora_" in name:
                parameter.normal_(0, 1.0)
    peft.save_pretrained(tmp_path / "adapter")
    spec = _spec(
        model, "ceval_sample_test", "zh", "qwen", 1,
        adapter_name_or_path=str(tmp_path / "adapter"), save_dir=str(tmp_path / "saved"), batch_size=3,
    )  # fmt: skip
    outcome = run_benchmark(spec, tmp_path / "out", lambda done, total: None)

    tokenizer = AutoTokenizer.from_pretrained(model)
    from tunery.engine.templates import get_template

    items = build_items(spec, tokenizer, get_template("qwen", tokenizer))
    merged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32), tmp_path / "adapter"
    ).merge_and_unload()
    choice_ids = [tokenizer.encode(ch, add_special_tokens=False)[-1] for ch in CHOICES]
    with torch.no_grad():
        expected = [
            CHOICES[int(torch.argmax(merged(input_ids=torch.tensor([item.input_ids])).logits[0, -1, choice_ids]))]
            for item in items
        ]
    rows = [json.loads(line) for line in (tmp_path / "out" / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()]
    assert [row["predict"] for row in rows] == expected
    assert (tmp_path / "saved" / "results.log").exists() and (tmp_path / "saved" / "results.json").exists()
    assert not (tmp_path / "out" / "results.log").exists()
    assert outcome.samples == len(items) == 15


def test_errors_name_the_key(model: Path, tmp_path: Path) -> None:
    from tunery.engine.train.errors import TrainingError

    with pytest.raises(TrainingError, match=r"task: no benchmark 'nope'.*mmlu_sample"):
        run_benchmark(_spec(model, "nope_test", "en", "llama3", 0), tmp_path, lambda d, t: None)
    with pytest.raises(TrainingError, match="task: expected '<benchmark>_<split>'"):
        run_benchmark(_spec(model, "mmlu_sample_final", "en", "llama3", 0), tmp_path, lambda d, t: None)
    with pytest.raises(TrainingError, match="task: benchmark 'cmmlu_sample' has no val/"):
        run_benchmark(_spec(model, "cmmlu_sample_validation", "zh", "llama3", 0), tmp_path, lambda d, t: None)
    with pytest.raises(TrainingError, match="template: unknown chat template"):
        run_benchmark(_spec(model, "mmlu_sample_test", "en", "no-such", 0), tmp_path, lambda d, t: None)
    broken = tmp_path / "tasks" / "mine"
    (broken / "test").mkdir(parents=True)
    (broken / "mapping.json").write_text('{"s": {"name": "s", "category": "Other"}}', encoding="utf-8")
    (broken / "test" / "s_test.csv").write_text("q,1,2,3,4,A\nq,1,2,3,4,Z\n", encoding="utf-8")
    spec = _spec(model, "mine_test", "en", "llama3", 0, task_dir=str(tmp_path / "tasks"))
    with pytest.raises(TrainingError, match=r"s_test\.csv, row 2: answer 'Z'") as bad_row:
        run_benchmark(spec, tmp_path, lambda d, t: None)
    assert bad_row.value.code == "invalid_data"


def test_infer_dtype_sets_the_precision(model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from tunery.engine.train.errors import TrainingError
    from tunery.evaluation.benchmark import eval_precision, load_eval_model

    tokenizer = AutoTokenizer.from_pretrained(model)
    auto = _spec(model, "mmlu_sample_test", "en", "llama3", 0)
    assert next(load_eval_model(auto, tokenizer).parameters()).dtype == torch.float32  # auto on the CPU
    bf16 = _spec(model, "mmlu_sample_test", "en", "llama3", 0, infer_dtype="bfloat16")
    assert next(load_eval_model(bf16, tokenizer).parameters()).dtype == torch.bfloat16
    outcome = run_benchmark(bf16, tmp_path, lambda done, total: None)
    assert 0 <= outcome.metrics["accuracy"] <= 100 and outcome.samples == 24
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="infer_dtype: float16 needs a CUDA GPU"):
            eval_precision(_spec(model, "mmlu_sample_test", "en", "llama3", 0, infer_dtype="float16"))
