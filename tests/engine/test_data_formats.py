"""Format conversion: alpaca, sharegpt, openai, pretraining text, preference and KTO rows."""

from __future__ import annotations

import json
from pathlib import Path

from tests.engine.data_support import jsonl, load, write_dataset_dir
from tunery.engine.data.formats import FORMATS
from tunery.engine.data.types import Message, Role

U, A, F, OBS = Role.USER, Role.ASSISTANT, Role.FUNCTION, Role.OBSERVATION


def _roles(messages: list[Message]) -> list[Role]:
    return [m.role for m in messages]


def test_registry_holds_every_format() -> None:
    assert set(FORMATS) == {"alpaca", "sharegpt", "openai"}


def test_alpaca_history_system_tools(tmp_path: Path) -> None:
    columns = {"system": "sys", "history": "history", "tools": "tools"}
    row = {
        "instruction": "And now?", "input": "details", "output": "done", "sys": "be brief",
        "history": [["first q", "first a"], ["second q", "second a"]], "tools": '[{"name": "f"}]',
    }  # fmt: skip
    root = write_dataset_dir(tmp_path, {"a": {"file_name": "a.json", "columns": columns}}, {"a.json": [row]})
    (example,) = load(root, "a").train
    assert [(m.role, m.content) for m in example.prompt] == [
        (U, "first q"), (A, "first a"), (U, "second q"), (A, "second a"), (U, "And now?\ndetails"),
    ]  # fmt: skip
    assert example.response == [Message(A, "done")]
    assert (example.system, example.tools) == ("be brief", '[{"name": "f"}]')
    assert example.messages == [*example.prompt, Message(A, "done")]


def test_alpaca_preference_kto_and_ppo(tmp_path: Path) -> None:
    info = {
        "pref": {"file_name": "p.json", "ranking": True, "columns": {"chosen": "good", "rejected": "bad"}},
        "kto": {"file_name": "k.json", "columns": {"kto_tag": "label"}},
        "plain": {"file_name": "n.json"},
    }
    files = {
        "p.json": [{"instruction": "q", "good": "yes", "bad": "no"}],
        "k.json": [
            {"instruction": "q", "output": "a", "label": False},
            {"instruction": "q", "output": "b", "label": "true"},
        ],
        "n.json": [{"instruction": "q"}, {"instruction": "q2", "output": "a2"}],
    }
    root = write_dataset_dir(tmp_path, info, files)
    (pref,) = load(root, "pref", stage="rm").train
    assert pref.prompt == [Message(U, "q")] and pref.response == [Message(A, "yes"), Message(A, "no")]
    kto = load(root, "kto", stage="kto").train
    assert [(e.kto_label, e.response[0].content) for e in kto] == [(False, "a"), (True, "b")]
    ppo = load(root, "plain", stage="ppo").train  # the answer may be missing for ppo
    assert [e.response for e in ppo] == [[], [Message(A, "a2")]]


def test_sharegpt_system_turn_and_system_column(tmp_path: Path) -> None:
    info = {"s": {"file_name": "s.jsonl", "formatting": "sharegpt", "columns": {"system": "system"}}}
    rows = [
        {"conversations": [{"from": "system", "value": "turn sys"}, {"from": "human", "value": "q"},
                           {"from": "gpt", "value": "a"}], "system": "ignored"},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "system": "column sys"},
    ]  # fmt: skip
    root = write_dataset_dir(tmp_path, info, {"s.jsonl": jsonl(rows)})
    first, second = load(root, "s").train
    assert (first.system, second.system) == ("turn sys", "column sys")
    assert first.prompt == [Message(U, "q")] and first.response == [Message(A, "a")]


def test_openai_messages_with_tool_calls(tmp_path: Path) -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
    call2 = {"type": "function", "function": {"name": "weather", "arguments": {"city": "Rome"}}}
    row = {
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": [call, call2]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "content": "rain"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Paris: sunny. "}, {"type": "text", "text": "Rome: rain."}],
            },
        ],
        "tools": tools,
    }
    bad = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"function": {"name": "weather", "arguments": "{city"}}]}]}  # fmt: skip
    root = write_dataset_dir(
        tmp_path, {"o": {"file_name": "o.jsonl", "formatting": "openai"}}, {"o.jsonl": jsonl([row, bad])}
    )
    loaded = load(root, "o")
    (example,) = loaded.train
    assert example.system == "You are helpful."
    assert _roles(example.prompt) == [U, F, OBS]
    assert json.loads(example.prompt[1].content) == [
        {"name": "weather", "arguments": {"city": "Paris"}}, {"name": "weather", "arguments": {"city": "Rome"}},
    ]  # fmt: skip
    assert example.prompt[2].content == "sunny\n</tool_response>\n<tool_response>\nrain"
    assert example.response == [Message(A, "Paris: sunny. Rome: rain.")]
    assert example.tools is not None and json.loads(example.tools) == tools
    (error,) = loaded.report.errors
    assert (error.row, error.field) == (2, "messages[1].tool_calls[0].function.arguments")


def test_openai_with_explicit_lf_tags(tmp_path: Path) -> None:
    tags = {"role_tag": "r", "content_tag": "c", "user_tag": "u", "assistant_tag": "b", "observation_tag": "t"}
    entry = {"file_name": "o.json", "formatting": "openai", "columns": {"messages": "conv"}, "tags": tags}
    row = {"conv": [{"r": "u", "c": "hi"}, {"r": "b", "c": "", "tool_calls": [{"name": "f", "arguments": {}}]},
                    {"r": "t", "c": "42"}, {"r": "b", "c": "The answer is 42."}]}  # fmt: skip
    root = write_dataset_dir(tmp_path, {"o": entry}, {"o.json": [row]})
    (example,) = load(root, "o").train
    assert _roles(example.prompt) == [U, F, OBS] and example.prompt[1].content == '{"name": "f", "arguments": {}}'


def test_pretraining_text_column(tmp_path: Path) -> None:
    info = {
        "txt": {"file_name": "t.txt"},
        "docs": {"file_name": "d.jsonl"},
        "mapped": {"file_name": "m.json", "columns": {"prompt": "body"}},
        "chat": {"file_name": "c.json", "formatting": "sharegpt"},
    }
    files = {
        "t.txt": "first doc\n\n  \nsecond doc\r\nthird doc",
        "d.jsonl": jsonl([{"text": "doc A", "meta": 1}]),
        "m.json": [{"body": "doc B", "text": "not this"}],
        "c.json": [{"conversations": [{"from": "human", "value": "doc C"}, {"from": "gpt", "value": "x"}]}],
    }
    root = write_dataset_dir(tmp_path, info, files)
    txt = load(root, "txt", stage="pt").train
    assert [(e.response[0].content, e.ref.row if e.ref else 0) for e in txt] == [
        ("first doc", 1), ("second doc", 4), ("third doc", 5),
    ]  # fmt: skip
    assert all(e.prompt == [] and e.response[0].role is A for e in txt)
    assert [e.response[0].content for e in load(root, "docs,mapped,chat", stage="pt").train] == [
        "doc A",
        "doc B",
        "doc C",
    ]
