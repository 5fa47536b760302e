"""Preference, KTO and prompt data: clear errors naming file, row and field; datasets given to the wrong
stage; KTO label balance; the spec keys these stages refuse; ``tunery validate`` on such data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.data_support import load, section, write_dataset_dir
from tunery.cli.main import main
from tunery.engine.data.api import DataError
from tunery.engine.data.load import validate_datasets
from tunery.engine.data.types import Message, Role
from tunery.spec import JobSpec, SpecError
from tunery.spec.events import EXIT_INVALID, EXIT_SUCCEEDED

SHAREGPT_PAIRS = {
    "formatting": "sharegpt",
    "ranking": True,
    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
}
ALPACA_PAIRS = {"ranking": True, "columns": {"chosen": "good", "rejected": "bad"}}
KTO = {"columns": {"kto_tag": "label"}}


def _gpt(text: str) -> dict[str, str]:
    return {"from": "gpt", "value": text}


def _pair_row(chosen: Any, rejected: Any) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": "q"}], "chosen": chosen, "rejected": rejected}


def _errors(root: Path, name: str, stage: str) -> list[tuple[str, int, str, str]]:
    report = validate_datasets(section(root, name), stage)
    return [(Path(e.file).name, e.row, e.field, e.message) for e in report.errors]


def test_pair_sides_must_differ_and_have_text(tmp_path: Path) -> None:
    rows = [
        _pair_row(_gpt("yes"), _gpt("no")),
        _pair_row(_gpt("same"), _gpt("same")),
        _pair_row(_gpt("  "), _gpt("no")),
        _pair_row(_gpt("yes"), _gpt("")),
        {"conversations": [{"from": "human", "value": "q"}], "chosen": _gpt("yes")},
    ]
    alpaca = [
        {"instruction": "q", "good": "a", "bad": "a"},
        {"instruction": "q", "good": "", "bad": "b"},
        {"instruction": "q", "good": "a", "bad": "b"},
    ]
    info = {"s": {"file_name": "s.json", **SHAREGPT_PAIRS}, "a": {"file_name": "a.json", **ALPACA_PAIRS}}
    root = write_dataset_dir(tmp_path, info, {"s.json": rows, "a.json": alpaca})
    same = "the rejected answer equals the chosen one; a preference pair needs two different answers"
    assert _errors(root, "s", "dpo") == [
        ("s.json", 2, "rejected.value", same),
        ("s.json", 3, "chosen.value", "the chosen answer is empty"),
        ("s.json", 4, "rejected.value", "the rejected answer is empty"),
        ("s.json", 5, "rejected", "missing column 'rejected' (the row has: conversations, chosen); "
         "map columns in dataset_info.json"),
    ]  # fmt: skip
    assert _errors(root, "a", "rm") == [
        ("a.json", 1, "bad", same),
        ("a.json", 2, "good", "the chosen answer is empty"),
    ]
    (kept,) = load(root, "a", stage="rm").train
    assert kept.response == [Message(Role.ASSISTANT, "a"), Message(Role.ASSISTANT, "b")]


def test_kto_rows_need_a_boolean_tag_and_an_answer(tmp_path: Path) -> None:
    rows = [
        {"instruction": "q", "output": "a", "label": True},
        {"instruction": "q", "output": "a"},
        {"instruction": "q", "output": "a", "label": "maybe"},
        {"instruction": "q", "output": " ", "label": False},
    ]
    root = write_dataset_dir(tmp_path, {"k": {"file_name": "k.json", **KTO}}, {"k.json": rows})
    assert _errors(root, "k", "kto") == [
        ("k.json", 2, "label", "the KTO label must be true or false, got null"),
        ("k.json", 3, "label", "the KTO label must be true or false, got string"),
        ("k.json", 4, "output", "the answer is empty"),
    ]


def test_kto_with_one_label_only_is_a_warning(tmp_path: Path) -> None:
    rows = [{"instruction": f"q{i}", "output": "a", "label": True} for i in range(3)]
    mixed = [*rows, {"instruction": "q", "output": "b", "label": False}]
    info = {"k": {"file_name": "k.json", **KTO}, "m": {"file_name": "m.json", **KTO}}
    root = write_dataset_dir(tmp_path, info, {"k.json": rows, "m.json": mixed})
    expected = "KTO: all 3 training rows are desirable (kto_tag true)"
    loaded = load(root, "k", stage="kto")
    assert len(loaded.train) == 3 and any(expected in w for w in loaded.report.warnings)
    assert any(expected in w for w in validate_datasets(section(root, "k"), "kto").warnings)
    assert load(root, "m", stage="kto").report.warnings == []


def test_dataset_kind_must_fit_the_stage(demo_data_dir: Path) -> None:
    def check(name: str, stage: str) -> str:
        with pytest.raises(DataError) as caught:
            load(demo_data_dir, name, stage=stage)
        return str(caught.value)

    message = check("alpaca_en_demo", "dpo")
    assert "'alpaca_en_demo' is not preference data, which stage 'dpo' needs" in message
    assert message.endswith("this dataset can feed stages sft, ppo, grpo")
    assert check("kto_en_demo", "rm").endswith("this dataset can feed stages kto")
    assert "its undesirable answers would be trained as good ones; use it with stage kto" in check("kto_en_demo", "sft")
    assert "use it with stage rm or dpo, not 'kto'" in check("dpo_en_demo", "kto")
    message = check("alpaca_en_demo", "kto")
    assert "needs a 'kto_tag' column" in message and message.endswith("stages sft, ppo, grpo")


def test_prompt_only_rows_feed_the_rl_stages(tmp_path: Path) -> None:
    conversations = [
        {"conversations": [{"from": "human", "value": "2+2?"}]},
        {"conversations": [{"from": "human", "value": "3+3?"}, {"from": "gpt", "value": "6"}]},
    ]
    info = {"c": {"file_name": "c.json", "formatting": "sharegpt"}, "a": {"file_name": "a.json"}}
    alpaca = [{"instruction": "q1"}, {"instruction": "q2", "output": ""}, {"instruction": "q3", "output": "r"}]
    root = write_dataset_dir(tmp_path, info, {"c.json": conversations, "a.json": alpaca})
    examples = load(root, "c", stage="grpo").train
    assert [(len(e.prompt), e.response) for e in examples] == [(1, []), (1, [Message(Role.ASSISTANT, "6")])]
    assert [e.response for e in load(root, "a", stage="ppo").train] == [[], [], [Message(Role.ASSISTANT, "r")]]
    ((file, row, field, message),) = _errors(root, "c", "sft")
    assert (file, row, field) == ("c.json", 1, "conversations")
    assert message.endswith("prompt-only data suits stages ppo, grpo")


def _spec(stage: str, **keys: Any) -> dict[str, Any]:
    extra = {"rm": {}, "dpo": {}, "kto": {"per_device_train_batch_size": 2}, "ppo": {"reward_model": "/m"}}
    return {"model_name_or_path": "/m", "stage": stage, "dataset": "d", **extra[stage], **keys}


@pytest.mark.parametrize("stage", ["rm", "dpo", "kto", "ppo"])
@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"packing": True}, "packing"),
        ({"neat_packing": True}, "neat_packing"),
        ({"streaming": True, "max_steps": 5}, "streaming"),
        ({"train_on_prompt": True}, "train_on_prompt"),
        ({"mask_history": True}, "mask_history"),
    ],
)
def test_token_row_options_are_refused(stage: str, keys: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping(_spec(stage, **keys))
    assert [problem.field for problem in caught.value.problems] == [field]
    assert f"stage {stage}" in str(caught.value)
    JobSpec.from_mapping(_spec(stage, packing=False))  # the off value is fine


def _job(tmp_path: Path, root: Path, stage: str, dataset: str) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(_spec(stage, dataset=dataset, dataset_dir=str(root), template="qwen")))
    return job


def test_validate_command_reports_pair_and_label_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = [_pair_row(_gpt("yes"), _gpt("no")), _pair_row(_gpt("same"), _gpt("same"))]
    kto = [{"instruction": "q", "output": "a", "label": False}]
    info = {"p": {"file_name": "p.json", **SHAREGPT_PAIRS}, "k": {"file_name": "k.json", **KTO}}
    root = write_dataset_dir(tmp_path / "data", info, {"p.json": pairs, "k.json": kto})

    assert main(["validate", str(_job(tmp_path, root, "dpo", "p"))]) == EXIT_INVALID
    out = capsys.readouterr().out
    assert "p.json, row 2, field 'rejected.value': the rejected answer equals the chosen one" in out
    assert "data: 1/2 rows valid, 1 errors" in out

    assert main(["validate", str(_job(tmp_path, root, "kto", "k"))]) == EXIT_SUCCEEDED
    assert "warning: KTO: all 1 training rows are undesirable (kto_tag false)" in capsys.readouterr().out

    assert main(["validate", str(_job(tmp_path, root, "dpo", "k"))]) == EXIT_INVALID
    assert "this dataset can feed stages kto\n" in capsys.readouterr().err
