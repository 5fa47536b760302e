"""Rows with no text to train on are row errors (file, 1-based row, field), in every format: an all-empty alpaca
row, an empty answer (output; chosen or rejected; the last assistant turn), an empty pretraining text. Prompt-only
rows (ppo, grpo) still need no answer; a dataset of empty rows only has no valid row; ``tunery validate`` lists
them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.data_support import jsonl, load, section, write_dataset_dir
from tunery.cli.main import main
from tunery.engine.data.api import DataError
from tunery.engine.data.load import validate_datasets
from tunery.engine.data.types import Message, Role
from tunery.spec.events import EXIT_INVALID

SHAREGPT = {"formatting": "sharegpt", "columns": {"messages": "conversations"}}
OPENAI = {
    "formatting": "openai",
    "columns": {"messages": "messages"},
    "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
}
SHAREGPT_PAIRS = {
    "formatting": "sharegpt",
    "ranking": True,
    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
}
KTO_SHAREGPT = {**OPENAI, "formatting": "sharegpt", "columns": {"messages": "messages", "kto_tag": "label"}}


def _errors(root: Path, name: str, stage: str = "sft") -> list[tuple[str, int, str, str]]:
    report = validate_datasets(section(root, name), stage)
    return [(Path(e.file).name, e.row, e.field, e.message) for e in report.errors]


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": role, "value": text} for role, text in pairs]


def _chat(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": text} for role, text in pairs]


def _dir(tmp_path: Path, entries: dict[str, tuple[dict[str, Any], str, Any]]) -> Path:
    info = {name: {"file_name": file, **attrs} for name, (attrs, file, _) in entries.items()}
    return write_dataset_dir(tmp_path, info, {file: rows for _, file, rows in entries.values()})


def test_alpaca_empty_rows_and_answers(tmp_path: Path) -> None:
    rows = [
        {"instruction": "q", "input": "", "output": "a"},
        {"instruction": "", "input": "", "output": ""},
        {"instruction": "q", "output": "  "},
        {"instruction": "", "input": "", "output": "an answer to no question"},
        {"instruction": None, "output": "\n"},
    ]
    root = _dir(tmp_path, {"a": ({}, "a.json", rows)})
    empty = "the row has no text ('instruction', 'input', 'output' all empty)"
    assert _errors(root, "a") == [
        ("a.json", 2, "output", empty),
        ("a.json", 3, "output", "the answer is empty"),
        ("a.json", 5, "output", "the row has no text ('instruction', 'output' all empty)"),
    ]
    loaded = load(root, "a")
    assert [e.response[0].content for e in loaded.train] == ["a", "an answer to no question"]
    assert loaded.report.error_count == 3


def test_alpaca_custom_columns_are_named(tmp_path: Path) -> None:
    attrs = {"columns": {"prompt": "question", "response": "answer"}}
    rows = [{"question": "q", "answer": ""}, {"question": "", "answer": ""}, {"question": "q", "answer": "a"}]
    root = _dir(tmp_path, {"c": (attrs, "c.jsonl", jsonl(rows))})
    assert _errors(root, "c") == [
        ("c.jsonl", 1, "answer", "the answer is empty"),
        ("c.jsonl", 2, "answer", "the row has no text ('question', 'answer' all empty)"),
    ]


def test_sharegpt_and_openai_empty_last_answer(tmp_path: Path) -> None:
    sharegpt = [
        {"conversations": _turns(("human", "hi"), ("gpt", "hello"))},
        {"conversations": _turns(("human", "hi"), ("gpt", "   "))},
        {"conversations": _turns(("human", "hi"), ("gpt", ""), ("human", "again"), ("gpt", "ok"))},
        {"conversations": [{"from": "system", "value": "s"}, *_turns(("human", ""), ("gpt", ""))]},
    ]
    openai = [
        {"messages": _chat(("system", "be brief"), ("user", "hi"), ("assistant", ""))},
        {"messages": _chat(("user", "hi"), ("assistant", "hello"))},
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": ""}]},
            ]
        },
    ]
    root = _dir(tmp_path, {"s": (SHAREGPT, "s.json", sharegpt), "o": (OPENAI, "o.json", openai)})
    empty = "the answer (last assistant turn) is empty"
    assert _errors(root, "s") == [
        ("s.json", 2, "conversations[1].value", empty),
        ("s.json", 4, "conversations[2].value", empty),
    ]  # an empty earlier answer is left as it is: only the last one is the trained answer
    assert _errors(root, "o") == [
        ("o.json", 1, "messages[2].content", empty),
        ("o.json", 3, "messages[1].content", empty),
    ]
    assert len(load(root, "s").train) == 2 and len(load(root, "o").train) == 1


def test_preference_and_kto_empty_answers(tmp_path: Path) -> None:
    def gpt(text: str) -> dict[str, str]:
        return {"from": "gpt", "value": text}

    pairs = [
        {"conversations": _turns(("human", "q")), "chosen": gpt("yes"), "rejected": gpt("no")},
        {"conversations": _turns(("human", "q")), "chosen": gpt(""), "rejected": gpt("no")},
        {"conversations": _turns(("human", "q")), "chosen": gpt("yes"), "rejected": gpt(" ")},
    ]
    alpaca_pairs = [
        {"instruction": "", "chosen": "", "rejected": ""},
        {"instruction": "q", "chosen": "a", "rejected": "b"},
    ]
    kto = [
        {"messages": _chat(("user", "q"), ("assistant", "a")), "label": True},
        {"messages": _chat(("user", "q"), ("assistant", "")), "label": False},
    ]
    alpaca_kto = [{"instruction": "", "output": "", "label": True}, {"instruction": "q", "output": "a", "label": False}]
    root = _dir(tmp_path, {
        "p": (SHAREGPT_PAIRS, "p.json", pairs),
        "ap": ({"ranking": True, "columns": {"chosen": "chosen", "rejected": "rejected"}}, "ap.json", alpaca_pairs),
        "k": (KTO_SHAREGPT, "k.json", kto),
        "ak": ({"columns": {"kto_tag": "label"}}, "ak.json", alpaca_kto),
    })  # fmt: skip
    assert _errors(root, "p", "dpo") == [
        ("p.json", 2, "chosen.value", "the chosen answer is empty"),
        ("p.json", 3, "rejected.value", "the rejected answer is empty"),
    ]
    assert _errors(root, "ap", "rm") == [("ap.json", 1, "chosen", "the chosen answer is empty")]
    assert _errors(root, "k", "kto") == [
        ("k.json", 2, "messages[1].content", "the answer (last assistant turn) is empty")
    ]
    assert _errors(root, "ak", "kto") == [
        ("ak.json", 1, "output", "the row has no text ('instruction', 'output' all empty)")
    ]


def test_pretraining_rows_need_text(tmp_path: Path) -> None:
    c4 = [{"text": "some words"}, {"text": ""}, {"text": " \n "}, {"text": "more words"}]
    plain = [{"text": "a"}, {"text": ""}]  # no columns mapped: the text column is read
    sharegpt = [{"conversations": _turns(("human", ""))}, {"conversations": _turns(("human", "words"))}]
    root = _dir(tmp_path, {
        "c4": ({"columns": {"prompt": "text"}}, "c4.jsonl", jsonl(c4)),
        "plain": ({}, "plain.jsonl", jsonl(plain)),
        "s": (SHAREGPT, "s.json", sharegpt),
    })  # fmt: skip
    assert _errors(root, "c4", "pt") == [
        ("c4.jsonl", 2, "text", "the text is empty"),
        ("c4.jsonl", 3, "text", "the text is empty"),
    ]
    assert [e.response[0].content for e in load(root, "c4", stage="pt").train] == ["some words", "more words"]
    assert _errors(root, "plain", "pt") == [("plain.jsonl", 2, "text", "the text is empty")]
    assert _errors(root, "s", "pt") == [("s.json", 1, "conversations[0].value", "the text is empty")]


def test_prompt_only_rows_need_no_answer_but_some_text(tmp_path: Path) -> None:
    alpaca = [
        {"instruction": "q1"},
        {"instruction": "q2", "output": ""},
        {"instruction": "", "input": "", "output": ""},
        {"instruction": "", "input": "the question is here"},
    ]
    sharegpt = [
        {"conversations": _turns(("human", "2+2?"))},
        {"conversations": _turns(("human", "3+3?"), ("gpt", ""))},  # an empty reference is no reference
        {"conversations": _turns(("human", " "))},
        {"conversations": _turns(("human", "4+4?"), ("gpt", "8"))},
    ]
    root = _dir(tmp_path, {"a": ({}, "a.json", alpaca), "s": (SHAREGPT, "s.json", sharegpt)})
    assert _errors(root, "a", "ppo") == [
        ("a.json", 3, "instruction", "the row has no text ('instruction', 'input', 'output' all empty)")
    ]
    assert [(e.prompt[-1].content, e.response) for e in load(root, "a", stage="ppo").train] == [
        ("q1", []),
        ("q2", []),
        ("the question is here", []),
    ]
    assert _errors(root, "s", "grpo") == [
        ("s.json", 3, "conversations[0].value", "the row has no text (every turn is empty)")
    ]
    kept = load(root, "s", stage="grpo").train
    assert [(len(e.prompt), e.response) for e in kept] == [(1, []), (1, []), (1, [Message(Role.ASSISTANT, "8")])]


def test_dataset_of_empty_rows_has_no_valid_row(tmp_path: Path) -> None:
    rows = [{"instruction": "", "input": "", "output": ""}] * 2 + [{"instruction": "q", "output": " "}]
    root = _dir(tmp_path, {"e": ({}, "e.json", rows)})
    with pytest.raises(DataError) as caught:
        load(root, "e")
    message = str(caught.value)
    assert "dataset 'e' has no valid row (3 rows checked)" in message
    assert f"{root / 'e.json'}, row 3, field 'output': the answer is empty" in message
    assert [error.row for error in caught.value.errors] == [1, 2, 3]


def test_validate_command_lists_empty_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"instruction": "q", "output": "a"}, {"instruction": "", "input": "", "output": ""}]
    root = _dir(tmp_path / "data", {"d": ({}, "d.json", rows)})
    job = tmp_path / "job.yaml"
    spec = {"model_name_or_path": "/m", "stage": "sft", "dataset": "d", "dataset_dir": str(root), "template": "qwen"}
    job.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(job)]) == EXIT_INVALID
    out = capsys.readouterr().out
    assert f"{root / 'd.json'}, row 2, field 'output': the row has no text" in out
    assert "data: 1/2 rows valid, 1 errors" in out
