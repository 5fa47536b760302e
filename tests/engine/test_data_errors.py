"""Bad rows: each is reported with its dataset, file, row and field; valid rows are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.data_support import jsonl, load, section, write_dataset_dir
from tunery.engine.data.api import DataError, RowError
from tunery.engine.data.load import validate_datasets

SHAREGPT = {"formatting": "sharegpt", "columns": {"messages": "conversations", "tools": "tools"}}


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": role, "value": text} for role, text in pairs]


GOOD = {"conversations": _turns(("human", "hi"), ("gpt", "hello"))}


def _errors(root: Path, name: str, stage: str = "sft") -> list[tuple[str, int, str]]:
    report = validate_datasets(section(root, name), stage)
    return [(Path(e.file).name, e.row, e.field) for e in report.errors]


def _one_error(root: Path, name: str, stage: str = "sft") -> RowError:
    loaded = load(root, name, stage)
    assert loaded.report.error_count == 1 and len(loaded.report.errors) == 1
    return loaded.report.errors[0]


def test_alpaca_missing_column_and_wrong_types(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"instruction": "ok", "output": "fine"},
        {"instruction": "no answer"},
        {"instruction": 5, "output": "x"},
        {"instruction": "h", "output": "x", "history": "not a list"},
        {"instruction": "h", "output": "x", "history": [["q", 3]]},
        {"instruction": "h", "output": None},
        {"question": "wrong keys", "answer": "x"},
    ]
    root = write_dataset_dir(
        tmp_path, {"a": {"file_name": "a.json", "columns": {"history": "history"}}}, {"a.json": rows}
    )
    report = validate_datasets(section(root, "a"), "sft")
    found = [(e.row, e.field, e.message) for e in report.errors]
    assert found[0][:2] == (2, "output") and found[0][2].startswith("missing column 'output'")
    assert found[1] == (3, "instruction", "expected a string or null, got int")
    assert found[2] == (4, "history", "expected a list of [query, answer] pairs, got string")
    assert found[3] == (5, "history[0][1]", "expected a string, got int")
    assert found[4] == (6, "output", "expected a string, got null")
    assert found[5][:2] == (7, "instruction") and "the row has: question, answer" in found[5][2]
    assert (report.rows_total, report.rows_valid, report.error_count) == (7, 1, 6)
    assert str(report.errors[0]).startswith(f"{root / 'a.json'}, row 2, field 'output': missing column")


def test_sharegpt_conversation_errors(tmp_path: Path) -> None:
    rows = [
        GOOD,
        {"conversations": []},
        {"conversations": _turns(("human", "a"), ("human", "b"), ("gpt", "c"))},
        {"conversations": _turns(("human", "a"), ("gpt", "b"), ("human", "c"))},
        {"conversations": _turns(("gpt", "a"), ("human", "b"))},
        {"conversations": _turns(("human", "a"), ("bot", "b"))},
        {"conversations": [{"from": "human", "value": 1}, {"from": "gpt", "value": "b"}]},
        {"conversations": "hi"},
        {"conversations": _turns(("human", "a"), ("system", "s"), ("gpt", "b"))},
        {"conversations": _turns(("human", "a"), ("gpt", "b"), ("gpt", "c"), ("human", "d"))},
    ]
    root = write_dataset_dir(tmp_path, {"s": {"file_name": "s.json", **SHAREGPT}}, {"s.json": rows})
    errors = validate_datasets(section(root, "s"), "sft").errors
    by_row = {e.row: (e.field, e.message) for e in errors}
    assert by_row[2] == ("conversations", "the conversation is empty")
    assert by_row[3] == (
        "conversations[1].from",
        "two user/observation turns in a row; turns must alternate user and assistant",
    )
    assert by_row[4][0] == "conversations" and by_row[4][1].startswith("the conversation ends with a user turn")
    assert by_row[5] == ("conversations[0].from", "the conversation must start with a user turn, got assistant")
    assert by_row[6][0] == "conversations[1].from" and by_row[6][1].startswith("unknown role 'bot'")
    assert by_row[7] == ("conversations[0].value", "expected a string, got int")
    assert by_row[8] == ("conversations", "expected a list of turns, got string")
    assert by_row[9] == ("conversations[1].from", "a system turn is only allowed first")
    assert by_row[10][0] == "conversations[2].from" and by_row[10][1].startswith("two assistant/function_call")
    assert sorted(by_row) == list(range(2, 11))


def test_invalid_json_line_keeps_line_numbers(tmp_path: Path) -> None:
    text = jsonl([GOOD]) + "\n" + '{"conversations": [oops\n' + jsonl([GOOD]) + "[1, 2]\n"
    root = write_dataset_dir(tmp_path, {"s": {"file_name": "s.jsonl", **SHAREGPT}}, {"s.jsonl": text})
    loaded = load(root, "s")
    assert len(loaded.train) == 2
    assert [e.ref.row for e in loaded.train if e.ref] == [1, 4]
    errors = [(e.row, e.field) for e in loaded.report.errors]
    assert errors == [(3, "(row)"), (5, "(row)")]
    assert loaded.report.errors[0].message.startswith("invalid JSON line: Expecting value")
    assert loaded.report.errors[1].message == "expected a JSON object, got array"


def test_bad_tools_json(tmp_path: Path) -> None:
    rows = [
        {**GOOD, "tools": '[{"name": "f"}]'},
        {**GOOD, "tools": '[{"name": "f"'},
        {**GOOD, "tools": '{"name": "f"}'},
        {**GOOD, "tools": [{"name": "g"}]},
        {**GOOD, "tools": ""},
    ]
    root = write_dataset_dir(tmp_path, {"s": {"file_name": "s.json", **SHAREGPT}}, {"s.json": rows})
    loaded = load(root, "s")
    assert [(e.row, e.field) for e in loaded.report.errors] == [(2, "tools"), (3, "tools")]
    assert loaded.report.errors[0].message.startswith("tools is not valid JSON")
    assert loaded.report.errors[1].message == "tools must be a JSON array of tool definitions, got object"
    assert [e.tools for e in loaded.train] == ['[{"name": "f"}]', '[{"name": "g"}]', None]


def test_preference_and_kto_errors(tmp_path: Path) -> None:
    pref = {"formatting": "sharegpt", "ranking": True, "columns": {"chosen": "chosen", "rejected": "rejected"}}
    answer, other = {"from": "gpt", "value": "x"}, {"from": "gpt", "value": "y"}
    rows = [
        {"conversations": _turns(("human", "q")), "chosen": answer, "rejected": other},
        {"conversations": _turns(("human", "q"), ("gpt", "a")), "chosen": answer, "rejected": other},
        {"conversations": _turns(("human", "q")), "chosen": {"from": "human", "value": "x"}, "rejected": other},
        {"conversations": _turns(("human", "q")), "chosen": answer},
    ]
    kto = {"columns": {"kto_tag": "label"}}
    kto_rows = [{"instruction": "q", "output": "a", "label": True}, {"instruction": "q", "output": "a", "label": 1}]
    files = {"p.json": rows, "k.json": kto_rows}
    root = write_dataset_dir(
        tmp_path, {"p": {"file_name": "p.json", **pref}, "k": {"file_name": "k.json", **kto}}, files
    )
    assert _errors(root, "p", "dpo") == [
        ("p.json", 2, "conversations"),
        ("p.json", 3, "chosen.from"),
        ("p.json", 4, "rejected"),
    ]
    error = _one_error(root, "k", "kto")
    assert (error.row, error.field, error.message) == (2, "label", "the KTO label must be true or false, got int")


def test_media_errors(tmp_path: Path) -> None:
    info = {"m": {"file_name": "m.json", "columns": {"images": "images"}}}
    rows = [
        {"instruction": "<image>what?", "output": "a cat", "images": ["cat.png"]},
        {"instruction": "<image>what?", "output": "a dog", "images": ["dog.png"]},
        {"instruction": "what?", "output": "a cat", "images": ["cat.png"]},
        {"instruction": "<image><image>?", "output": "x", "images": "cat.png"},
    ]
    root = write_dataset_dir(tmp_path, info, {"m.json": rows, "cat.png": b"\x89PNG"})
    loaded = load(root, "m")
    assert [(e.row, e.field) for e in loaded.report.errors] == [(2, "images[0]"), (3, "images"), (4, "images")]
    assert loaded.report.errors[0].message == f"file not found: dog.png (looked in media_dir {root})"
    assert loaded.report.errors[1].message == "1 images but 0 <image> placeholders in the conversation"
    assert loaded.train[0].images == [str(root / "cat.png")]


def test_dataset_without_valid_row_fails_loading_but_validates(tmp_path: Path) -> None:
    rows = [{"instruction": "q"}] * 3
    root = write_dataset_dir(tmp_path, {"a": {"file_name": "a.json"}, "b": {"file_name": "b.json"}}, {
        "a.json": rows, "b.json": [{"instruction": "q", "output": "a"}],
    })  # fmt: skip
    with pytest.raises(DataError) as caught:
        load(root, "b,a")
    assert len(caught.value.errors) == 3
    message = str(caught.value)
    assert "dataset 'a' has no valid row (3 rows checked)" in message
    assert f"{root / 'a.json'}, row 1, field 'output': missing column 'output'" in message
    report = validate_datasets(section(root, "b,a"), "sft")
    assert (report.rows_total, report.rows_valid, report.error_count) == (4, 1, 3)
    assert (report.by_dataset["a"].rows_valid, report.by_dataset["b"].rows_valid) == (0, 1)


def test_max_errors_caps_the_list_not_the_count(tmp_path: Path) -> None:
    rows = [{"instruction": "q", "output": "a"}] + [{"instruction": "q"}] * 25
    root = write_dataset_dir(tmp_path, {"a": {"file_name": "a.jsonl"}}, {"a.jsonl": jsonl(rows)})
    report = validate_datasets(section(root, "a"), "sft", max_errors=5)
    assert (len(report.errors), report.error_count, report.rows_total, report.rows_valid) == (5, 25, 26, 1)
    assert [e.row for e in report.errors] == [2, 3, 4, 5, 6]


def test_csv_row_with_wrong_value_count(tmp_path: Path) -> None:
    text = 'instruction,output\nq1,a1\n"multi\nline",a2\nq3,a3,extra\nq4,a4\n'
    root = write_dataset_dir(tmp_path, {"c": {"file_name": "c.csv"}}, {"c.csv": text})
    loaded = load(root, "c")
    assert [e.ref.row for e in loaded.train if e.ref] == [2, 3, 6]
    assert loaded.train[1].prompt[0].content == "multi\nline"
    assert [(e.row, e.field, e.message) for e in loaded.report.errors] == [
        (5, "(row)", "has 3 values, the header has 2")
    ]


def test_odd_values_are_row_errors_not_crashes(tmp_path: Path) -> None:
    rows = [
        GOOD,
        {"conversations": [{"from": ["human"], "value": "a"}, {"from": "gpt", "value": "b"}]},
        {"conversations": [{"from": {"x": 1}, "value": "a"}]},
        {"conversations": [["human", "a"]]},
        {"conversations": None},
    ]
    root = write_dataset_dir(tmp_path, {"s": {"file_name": "s.json", **SHAREGPT}}, {"s.json": rows})
    loaded = load(root, "s")
    assert len(loaded.train) == 1
    assert [(e.row, e.field) for e in loaded.report.errors] == [
        (2, "conversations[0].from"), (3, "conversations[0].from"), (4, "conversations[0]"), (5, "conversations"),
    ]  # fmt: skip
    assert loaded.report.errors[0].message.startswith("unknown role ['human']")
