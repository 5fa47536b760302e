"""Rows of the preference and RL stages: LLaMA-Factory's pairwise / feedback / unsupervised rules token for
token (expected ids written from the rule here, and compared with LLaMA-Factory itself when bench/.venv-lf
exists), the shared cutoff budget, dropped rows, the pipeline, its cache and eval split."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.engine.tokenize_support import load_tokenizer
from tunery.engine.data.types import Example, Message, Role, RowRef
from tunery.engine.templates import get_template
from tunery.engine.tokenize import build_training_data
from tunery.engine.tokenize.columns import ColumnDataset
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.preference import encode_column_rows
from tunery.engine.tokenize.supervised import EncodeOptions
from tunery.spec import JobSpec

ROOT = Path(__file__).resolve().parents[2]
LF_PYTHON = ROOT / "bench" / ".venv-lf" / "bin" / "python"
U, A = Role.USER, Role.ASSISTANT
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return load_tokenizer(tiny_llama)


def lf_infer_seqlen(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """LLaMA-Factory 0.9.5's processor_utils.infer_seqlen, restated as the reference."""
    if target_len * 2 < cutoff_len:
        max_target_len = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target_len = cutoff_len - source_len
    else:
        max_target_len = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target_len = min(max_target_len, target_len)
    new_source_len = min(max(cutoff_len - new_target_len, 0), source_len)
    return new_source_len, new_target_len


def pair(*history: str, chosen: str, rejected: str, system: str | None = None) -> Example:
    turns = [Message(U if i % 2 == 0 else A, text) for i, text in enumerate(history)]
    return Example(turns, [Message(A, chosen), Message(A, rejected)], system, ref=RowRef("t", "t.json", 1))


EXAMPLE = pair("Q1", "A1", "Q2", chosen="Good answer.", rejected="Bad answer, much longer than the good one.")


def lf_elements(name: str, tokenizer: Any, answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of EXAMPLE as LF's encode_oneturn builds them: each message's template
    elements encoded one by one, the prompt being every message before the answer."""
    enc = tokenizer.encode
    pieces: dict[str, tuple[list[Any], str]] = {
        "qwen": (
            [
                f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n",
                "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n",
                "A1<|im_end|>\n",
                "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n",
            ],
            f"{answer}<|im_end|>\n",
        ),
        "llama3": (
            [
                tokenizer.bos_token_id,
                "<|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                "A1<|eot_id|>",
                "<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            ],
            f"{answer}<|eot_id|>",
        ),
        # efficient eos: answers carry no end token; the processor appends the tokenizer's eos
        "glm4": (["[gMASK]<sop>", "<|user|>\nQ1<|assistant|>", "\nA1", "<|user|>\nQ2<|assistant|>"], f"\n{answer}"),
    }
    elements, answer_text = pieces[name]
    prompt: list[int] = []
    for element in elements:
        prompt += [element] if isinstance(element, int) else enc(element, add_special_tokens=False)
    answer_ids = enc(answer_text, add_special_tokens=False)
    if name == "glm4":
        answer_ids.append(tokenizer.eos_token_id)
    return prompt, answer_ids


@pytest.mark.parametrize("name", ["qwen", "llama3", "glm4"])
@pytest.mark.parametrize("cutoff", [4096, 40, 24, 12])
def test_pairwise_rows_follow_lf_rule(tokenizer: Any, name: str, cutoff: int) -> None:
    prompt, chosen = lf_elements(name, tokenizer, "Good answer.")
    _, rejected = lf_elements(name, tokenizer, "Bad answer, much longer than the good one.")
    source, target = lf_infer_seqlen(len(prompt), max(len(chosen), len(rejected)), cutoff)
    rows = encode_column_rows("pairwise", [EXAMPLE], tokenizer, get_template(name, tokenizer), EncodeOptions(cutoff))
    assert rows.row(0) == {
        "prompt_ids": prompt[:source],
        "chosen_ids": chosen[:target],
        "rejected_ids": rejected[:target],
    }
    full = len(prompt) + max(len(chosen), len(rejected))
    assert int(rows.per_row["full_length"][0]) == full
    stats = rows.stats(1, cutoff)
    assert (stats.rows, stats.truncated, stats.dropped) == (1, int(full > cutoff), 0)
    assert stats.trained_tokens == min(len(chosen), target) + min(len(rejected), target)


def test_answers_end_with_the_turn_end_and_prompt_with_the_opener(tokenizer: Any) -> None:
    rows = encode_column_rows("pairwise", [EXAMPLE], tokenizer, get_template("llama3", tokenizer), EncodeOptions(512))
    item = rows.row(0)
    decode = tokenizer.decode
    assert decode(item["prompt_ids"]).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert decode(item["chosen_ids"]) == "Good answer.<|eot_id|>"
    assert decode(item["rejected_ids"]).endswith("<|eot_id|>")


def test_kto_rows_carry_the_label(tokenizer: Any) -> None:
    desirable = Example([Message(U, "Q1")], [Message(A, "Fine.")], kto_label=True)
    undesirable = Example([Message(U, "Q2")], [Message(A, "Awful.")], kto_label=False)
    template = get_template("glm4", tokenizer)
    rows = encode_column_rows("kto", [desirable, undesirable], tokenizer, template, EncodeOptions(64))
    enc = tokenizer.encode
    eos = tokenizer.eos_token_id
    assert [rows.row(i) for i in range(2)] == [
        {
            "prompt_ids": enc("[gMASK]<sop>", add_special_tokens=False)
            + enc("<|user|>\nQ1<|assistant|>", add_special_tokens=False),
            "completion_ids": [*enc("\nFine.", add_special_tokens=False), eos],
            "label": True,
        },
        {
            "prompt_ids": enc("[gMASK]<sop>", add_special_tokens=False)
            + enc("<|user|>\nQ2<|assistant|>", add_special_tokens=False),
            "completion_ids": [*enc("\nAwful.", add_special_tokens=False), eos],
            "label": False,
        },
    ]


def test_prompt_rows_end_with_the_generation_prefix(tokenizer: Any) -> None:
    template = get_template("qwen", tokenizer)
    with_reference = Example([Message(U, "What is 2+2?")], [Message(A, "4")])
    without = Example([Message(U, "Q1"), Message(A, "A1"), Message(U, "Q2")], [], system="Be brief.")
    too_long = Example([Message(U, "word " * 200)], [])
    rows = encode_column_rows("prompt", [with_reference, without, too_long], tokenizer, template, EncodeOptions(64))
    assert len(rows) == 2 and rows.per_row["source"].tolist() == [0, 1]  # the long prompt leaves no room
    first, second = rows.row(0), rows.row(1)
    assert first["prompt"] == template.render_prompt(with_reference.prompt, QWEN_SYSTEM)
    assert first["prompt"].endswith("<|im_start|>assistant\n") and first["reference"] == "4"
    enc = tokenizer.encode
    assert first["prompt_ids"] == enc(first["prompt"], add_special_tokens=False)
    assert second["prompt"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n"
        "A1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"
    )
    assert second["reference"] is None and tokenizer.decode(second["prompt_ids"]) == second["prompt"]
    assert rows.stats(3, 64).dropped == 1


@pytest.mark.parametrize("thinking", [True, False])
def test_prompt_rows_with_the_tokenizers_own_template(tiny_llama: Path, thinking: bool) -> None:
    tokenizer = load_tokenizer(tiny_llama)
    # Qwen 3's template rewrites past answers, so SFT rows cannot be split by turn; prompts still render
    tokenizer.chat_template = get_template("qwen3", tokenizer).to_jinja()
    example = Example([Message(U, "Q1"), Message(A, "<think>hm</think>A1"), Message(U, "Q2")], [])
    rows = encode_column_rows(
        "prompt", [example], tokenizer, get_template("auto", tokenizer), EncodeOptions(256, enable_thinking=thinking)
    )
    prompt = rows.row(0)["prompt"]
    opener = "<|im_start|>assistant\n" + ("" if thinking else "<think>\n\n</think>\n\n")
    assert prompt.endswith("<|im_start|>user\nQ2<|im_end|>\n" + opener)
    assert rows.row(0)["prompt_ids"] == tokenizer.encode(prompt, add_special_tokens=False)


def test_pairs_without_room_for_an_answer_are_dropped(tokenizer: Any) -> None:
    examples = [pair("word " * 60, chosen="Yes, certainly.", rejected="No."), EXAMPLE]
    template = get_template("llama3", tokenizer)
    whole = encode_column_rows("pairwise", examples, tokenizer, template, EncodeOptions(4096))
    cut = encode_column_rows("pairwise", examples, tokenizer, template, EncodeOptions(8))
    # LF's budget leaves the long prompt's answers int(8 * answer / (prompt + answer)) == 0 tokens
    lengths = [
        (len(r["prompt_ids"]), max(len(r["chosen_ids"]), len(r["rejected_ids"]))) for r in map(whole.row, (0, 1))
    ]
    assert [lf_infer_seqlen(p, a, 8)[1] > 0 for p, a in lengths] == [False, True]
    assert cut.per_row["source"].tolist() == [1] and cut.stats(2, 8).dropped == 1


def test_mismatched_examples_name_their_row(tokenizer: Any) -> None:
    template = get_template("qwen", tokenizer)
    one_answer = Example([Message(U, "q")], [Message(A, "a")], ref=RowRef("d", "p.json", 7))
    with pytest.raises(TokenizeError, match=r"p.json, row 7, field 'response': .* needs a chosen and a rejected"):
        encode_column_rows("pairwise", [one_answer], tokenizer, template, EncodeOptions(64))
    with pytest.raises(TokenizeError, match=r"p.json, row 7, field 'kto_tag'"):
        encode_column_rows("kto", [one_answer], tokenizer, template, EncodeOptions(64))


def make_spec(model: Path, data_dir: Path, stage: str, dataset: str, **keys: Any) -> JobSpec:
    values: dict[str, Any] = {
        "model_name_or_path": str(model),
        "stage": stage,
        "dataset": dataset,
        "dataset_dir": str(data_dir),
        "template": "llama3",
        "cutoff_len": 128,
        "max_samples": 40,
        "per_device_train_batch_size": 4,  # KTO pairs rows in a batch; GRPO's groups of 4 completions
    }
    if stage == "ppo":
        values["reward_model"] = str(model)
    if stage == "grpo":
        values["reward_funcs"] = "exact_match"
    values.update(keys)
    return JobSpec.from_mapping(values)


KEYS = {
    "dpo": {"prompt_ids", "chosen_ids", "rejected_ids"},
    "kto": {"prompt_ids", "completion_ids", "label"},
    "grpo": {"prompt_ids", "prompt", "reference"},
}


@pytest.mark.parametrize(
    ("stage", "dataset"), [("dpo", "dpo_en_demo"), ("kto", "kto_en_demo"), ("grpo", "alpaca_en_demo")]
)
def test_pipeline_rows_cache_and_eval_split(
    tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, tmp_path: Path, stage: str, dataset: str
) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, stage, dataset, val_size=0.1)
    template = get_template("llama3", tokenizer)
    first = build_training_data(spec, tokenizer, template, tmp_path / "cache")
    assert isinstance(first.train_dataset, ColumnDataset) and isinstance(first.eval_dataset, ColumnDataset)
    train = [first.train_dataset[i] for i in range(len(first.train_dataset))]
    assert first.stats is not None and first.stats.examples == 36 and len(first.eval_dataset) <= 4
    assert len(train) == first.stats.rows and all(set(row) == KEYS[stage] for row in train)
    for row in train:
        assert all(isinstance(token, int) for token in row["prompt_ids"])
        assert (
            len(row["prompt_ids"]) + max(len(row.get(k, [])) for k in ("chosen_ids", "rejected_ids", "completion_ids"))
            <= 128
        )
    if stage == "kto":
        assert {row["label"] for row in train} == {True, False}
    if stage == "grpo":
        assert all(row["reference"] and row["prompt"].endswith("assistant<|end_header_id|>\n\n") for row in train)

    again = build_training_data(spec, load_tokenizer(tiny_llama), get_template("llama3", tokenizer), tmp_path / "cache")
    assert again.from_cache and not first.from_cache and again.cache_path == first.cache_path
    assert [again.train_dataset[i] for i in range(len(again.train_dataset))] == train
    assert again.stats == first.stats and again.eval_stats == first.eval_stats
    columns = again.train_dataset.to_columns()  # type: ignore[union-attr]
    assert set(columns) == KEYS[stage] and len(columns["prompt_ids"]) == len(train)


def test_every_row_dropped_is_an_error(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, "ppo", "alpaca_en_demo", cutoff_len=8, max_samples=5)
    with pytest.raises(TokenizeError, match=r"all 5 rows were dropped: the prompt leaves no room .* cutoff_len=8"):
        build_training_data(spec, tokenizer, get_template("llama3", tokenizer), None)


def test_dropped_rows_are_warned_with_their_row(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, "ppo", "alpaca_en_demo", cutoff_len=40, max_samples=30)
    data = build_training_data(spec, tokenizer, get_template("llama3", tokenizer), None)
    assert data.stats is not None and data.stats.dropped > 0
    assert data.report is not None
    (warning,) = data.report.warnings
    assert f"train: {data.stats.dropped} of 30 rows dropped" in warning and "alpaca_en_demo.json, row " in warning


# ----- LLaMA-Factory itself ---------------------------------------------------------------------------
LF_JOBS = [  # (our stage, LF stage, dataset, template, cutoff)
    ("dpo", "dpo", "dpo_en_demo", "qwen", 96),  # most pairs truncated by the shared budget
    ("rm", "rm", "dpo_en_demo", "qwen", 2048),
    ("kto", "kto", "kto_en_demo", "glm4", 96),  # efficient eos
    ("ppo", "ppo", "alpaca_en_demo", "qwen", 1024),
]


@pytest.fixture(scope="module")
def lf_rows(tiny_llama: Path, demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if not LF_PYTHON.exists():
        pytest.skip("bench/.venv-lf is missing (bench/setup_lf.sh installs LLaMA-Factory there)")
    scratch = tmp_path_factory.mktemp("lf")
    jobs = [
        {
            "model_name_or_path": str(tiny_llama), "stage": lf_stage, "dataset": dataset,
            "dataset_dir": str(demo_data_dir), "template": template, "cutoff_len": cutoff, "max_samples": 12,
            **({"reward_model": str(tiny_llama)} if lf_stage == "ppo" else {}),
        }
        for _, lf_stage, dataset, template, cutoff in LF_JOBS
    ]  # fmt: skip
    script = ROOT / "tests" / "engine" / "lf_reference.py"
    request = json.dumps({"scratch": str(scratch), "jobs": jobs})
    done = subprocess.run(
        [str(LF_PYTHON), str(script), request], capture_output=True, text=True, timeout=300, cwd=scratch, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows: list[dict[str, Any]] = json.loads((scratch / "rows.json").read_text())
    return rows


@pytest.mark.parametrize("index", range(len(LF_JOBS)))
def test_rows_equal_llamafactory(
    lf_rows: list[dict[str, Any]], tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, index: int
) -> None:
    stage, _, dataset, name, cutoff = LF_JOBS[index]
    spec = make_spec(tiny_llama, demo_data_dir, stage, dataset, template=name, cutoff_len=cutoff, max_samples=12)
    data = build_training_data(spec, tokenizer, get_template(name, tokenizer), None)
    ours = [data.train_dataset[i] for i in range(len(data.train_dataset))]
    lf = lf_rows[index]
    if stage in ("dpo", "rm"):
        assert len(ours) == len(lf["chosen_input_ids"]) == 12
        for row, chosen, rejected, labels in zip(
            ours, lf["chosen_input_ids"], lf["rejected_input_ids"], lf["chosen_labels"], strict=True
        ):
            assert row["prompt_ids"] + row["chosen_ids"] == chosen
            assert row["prompt_ids"] + row["rejected_ids"] == rejected
            assert labels == [-100] * len(row["prompt_ids"]) + row["chosen_ids"]
        if cutoff < 2048:
            assert data.stats is not None and data.stats.truncated > 0
    elif stage == "kto":
        assert [row["prompt_ids"] + row["completion_ids"] for row in ours] == lf["input_ids"]
        assert [row["label"] for row in ours] == lf["kto_tags"]
    else:  # LF cuts a long prompt's end (losing the assistant opener); we keep prompts whole
        assert len(ours) == len(lf["input_ids"])
        opener = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
        whole = [ids for ids in lf["input_ids"] if ids[-len(opener) :] == opener]
        assert len(whole) >= 10
        for row, ids in zip(ours, lf["input_ids"], strict=True):
            assert row["prompt_ids"][: len(ids)] == ids
            if ids in whole:
                assert row["prompt_ids"] == ids
