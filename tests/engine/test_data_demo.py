"""LLaMA-Factory's demo datasets, loaded through their own dataset_info.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunery.engine.data.api import DataError
from tunery.engine.data.load import load_examples, validate_datasets
from tunery.engine.data.registry import get_dataset_attrs
from tunery.engine.data.types import Example, Role
from tunery.spec.data import DataSection


def _load(demo: Path, names: str, stage: str = "sft") -> list[Example]:
    loaded = load_examples(DataSection(dataset=names, dataset_dir=str(demo)), stage, seed=42)
    assert loaded.report.error_count == 0
    assert loaded.report.rows_valid == loaded.report.rows_total == len(loaded.train)
    assert isinstance(loaded.train, list)
    return loaded.train


def _raw(demo: Path, name: str) -> list[dict]:
    return json.loads((demo / name).read_text(encoding="utf-8"))


def test_alpaca_en_demo(demo_data_dir: Path) -> None:
    examples = _load(demo_data_dir, "alpaca_en_demo")
    raw = _raw(demo_data_dir, "alpaca_en_demo.json")
    assert len(examples) == len(raw) == 999
    first = examples[0]
    assert first.prompt[0].role is Role.USER
    assert first.prompt[0].content == "Describe a process of making crepes."
    assert first.response[0].role is Role.ASSISTANT
    assert first.response[0].content.startswith("Making crepes is an easy and delicious process!")
    assert first.system is None and first.tools is None and first.images == []
    assert first.ref is not None and first.ref.row == 1 and first.ref.file.endswith("alpaca_en_demo.json")
    # row 6 has an input: the user turn is "instruction\ninput"
    sixth = examples[5]
    assert raw[5]["input"]
    assert sixth.prompt[0].content == raw[5]["instruction"] + "\n" + raw[5]["input"]
    assert sixth.response[0].content == raw[5]["output"]
    assert sixth.ref is not None and sixth.ref.row == 6


def test_alpaca_zh_demo_and_identity(demo_data_dir: Path) -> None:
    examples = _load(demo_data_dir, "alpaca_zh_demo,identity")
    zh = [e for e in examples if e.ref and e.ref.dataset == "alpaca_zh_demo"]
    identity = [e for e in examples if e.ref and e.ref.dataset == "identity"]
    assert len(identity) == 91
    assert zh[0].prompt[0].content == "识别并解释给定列表中的两个科学理论：细胞理论和日心说。"
    assert identity[0].prompt[0].content == "hi"
    assert identity[0].response[0].content.startswith("Hello! I am {{name}}, an AI assistant developed by {{author}}.")
    assert examples[: len(zh)] == zh  # concat keeps the dataset order


def test_glaive_toolcall_demo(demo_data_dir: Path) -> None:
    examples = _load(demo_data_dir, "glaive_toolcall_en_demo")
    raw = _raw(demo_data_dir, "glaive_toolcall_en_demo.json")
    assert len(examples) == 300
    first = examples[0]
    roles = [m.role for m in first.prompt]
    assert roles == [Role.USER, Role.ASSISTANT, Role.USER, Role.FUNCTION, Role.OBSERVATION, Role.ASSISTANT, Role.USER]
    assert first.response[0].role is Role.ASSISTANT
    assert first.tools == raw[0]["tools"]
    assert json.loads(first.tools)[0]["name"] == "search_recipes"
    call = json.loads(first.prompt[3].content)
    assert call == {"name": "search_recipes", "arguments": {"ingredients": ["chicken", "bell peppers", "rice"]}}
    assert first.prompt[4].content.startswith('{"recipes": [{"name": "Chicken and Bell Pepper Stir Fry"')


def test_pretraining_demos(demo_data_dir: Path) -> None:
    examples = _load(demo_data_dir, "c4_demo,wiki_demo", stage="pt")
    c4 = [e for e in examples if e.ref and e.ref.dataset == "c4_demo"]
    wiki = [e for e in examples if e.ref and e.ref.dataset == "wiki_demo"]
    assert (len(c4), len(wiki)) == (300, 30)
    first_line = (demo_data_dir / "c4_demo.jsonl").read_text(encoding="utf-8").split("\n")[0]
    assert c4[0].prompt == [] and c4[0].response[0].content == json.loads(first_line)["text"]
    assert wiki[0].response[0].content.startswith("Anarchism is a political philosophy")
    assert wiki[1].response[0].content.startswith("Autism is a neurodevelopmental disorder")
    assert wiki[1].ref is not None and wiki[1].ref.row == 2  # TXT rows are line numbers


def test_dpo_demo(demo_data_dir: Path) -> None:
    examples = _load(demo_data_dir, "dpo_en_demo", stage="dpo")
    raw = _raw(demo_data_dir, "dpo_en_demo.json")
    assert len(examples) == 300
    assert examples[1].system is not None and examples[1].system.startswith("You are a teacher.")
    for example, row in zip(examples[:20], raw[:20], strict=True):
        turns = row["conversations"]
        system = turns[0]["value"] if turns[0]["from"] == "system" else None
        assert example.system == system
        assert [m.content for m in example.prompt] == [t["value"] for t in turns if t["from"] != "system"]
        assert example.prompt[-1].role is Role.USER
        assert [m.content for m in example.response] == [row["chosen"]["value"], row["rejected"]["value"]]


def test_kto_demo(demo_data_dir: Path) -> None:
    examples = _load(demo_data_dir, "kto_en_demo", stage="kto")
    raw = _raw(demo_data_dir, "kto_en_demo.json")
    assert [e.kto_label for e in examples] == [row["label"] for row in raw]
    assert sum(bool(e.kto_label) for e in examples) == 150
    assert all(len(e.response) == 1 for e in examples)
    assert examples[0].response[0].content == raw[0]["messages"][-1]["content"]


def test_mllm_demo_images_resolved(demo_data_dir: Path) -> None:
    examples = _load(demo_data_dir, "mllm_demo")
    assert len(examples) == 6
    first = examples[0]
    assert first.images == [str(demo_data_dir / "mllm_demo_data" / "1.jpg")] * 2
    assert all(Path(path).is_file() for e in examples for path in e.images)
    assert first.prompt[0].content == "<image>Who are they?"
    assert first.response[0].content == "They are celebrating on the soccer field."


def test_stage_needs_matching_dataset_kind(demo_data_dir: Path) -> None:
    with pytest.raises(DataError, match=r"'dpo_en_demo' is preference data \(ranking: true\)"):
        _load(demo_data_dir, "dpo_en_demo", stage="sft")
    with pytest.raises(DataError, match=r"'alpaca_en_demo' is not preference data"):
        _load(demo_data_dir, "alpaca_en_demo", stage="dpo")
    with pytest.raises(DataError, match="needs a 'kto_tag' column"):
        _load(demo_data_dir, "alpaca_en_demo", stage="kto")


def test_attrs_follow_dataset_info(demo_data_dir: Path) -> None:
    attrs, warnings = get_dataset_attrs(["glaive_toolcall_en_demo", "mllm_demo", "dpo_en_demo"], str(demo_data_dir))
    glaive, mllm, dpo = attrs
    assert warnings == []
    assert (glaive.load_from, glaive.formatting, glaive.messages, glaive.tools) == (
        "file", "sharegpt", "conversations", "tools",
    )  # fmt: skip
    assert (glaive.role_tag, glaive.user_tag, glaive.assistant_tag) == ("from", "human", "gpt")
    assert (mllm.role_tag, mllm.content_tag, mllm.user_tag, mllm.images) == ("role", "content", "user", "images")
    assert dpo.ranking and (dpo.chosen, dpo.rejected) == ("chosen", "rejected")
    assert glaive.split == "train" and glaive.prompt == "instruction"


def test_validate_every_demo_dataset(demo_data_dir: Path) -> None:
    for names, stage in (
        ("alpaca_en_demo,alpaca_zh_demo,identity,glaive_toolcall_en_demo,mllm_demo", "sft"),
        ("c4_demo,wiki_demo", "pt"),
        ("dpo_en_demo", "rm"),
        ("kto_en_demo", "kto"),
    ):
        report = validate_datasets(DataSection(dataset=names, dataset_dir=str(demo_data_dir)), stage)
        assert report.errors == [] and report.rows_total == report.rows_valid > 0
        assert set(report.by_dataset) == set(names.split(","))
