"""Reading files: every type, folders, subset/split, num_samples and max_samples."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.engine.data_support import jsonl, load, write_dataset_dir
from tunery.engine.data.api import DataError

ROWS = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(1, 6)]


def _csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _parquet(rows: list[dict[str, str]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def _arrow_stream(rows: list[dict[str, str]]) -> bytes:
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=2)  # several record batches
    return sink.getvalue()


def _arrow_file(rows: list[dict[str, str]]) -> bytes:
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


FILES: dict[str, object] = {
    "d.json": ROWS,
    "d.jsonl": jsonl(ROWS),
    "lines.json": jsonl(ROWS),  # JSON lines saved as .json, as the datasets library accepts
    "d.csv": _csv(ROWS),
    "d.parquet": _parquet(ROWS),
    "d.arrow": _arrow_stream(ROWS),
    "file.arrow": _arrow_file(ROWS),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_file_type_gives_the_same_examples(tmp_path: Path, name: str) -> None:
    root = write_dataset_dir(tmp_path, {"d": {"file_name": name}}, {name: FILES[name]})
    loaded = load(root, "d")
    assert [(e.prompt[0].content, e.response[0].content) for e in loaded.train] == [
        (f"q{i}", f"a{i}") for i in range(1, 6)
    ]
    first_row = 2 if name.endswith(".csv") else 1  # CSV rows are line numbers after the header
    assert [e.ref.row for e in loaded.train if e.ref] == list(range(first_row, first_row + 5))
    assert all(e.ref and e.ref.file == str(root / name) for e in loaded.train)


def test_json_single_object_and_array_of_strings(tmp_path: Path) -> None:
    files = {"one.json": ROWS[0], "texts.json": ["doc one", "doc two"]}
    root = write_dataset_dir(tmp_path, {"o": {"file_name": "one.json"}, "t": {"file_name": "texts.json"}}, files)
    assert [e.prompt[0].content for e in load(root, "o").train] == ["q1"]
    assert [e.response[0].content for e in load(root, "t", stage="pt").train] == ["doc one", "doc two"]


def test_invalid_json_array_names_file_and_line(tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path, {"d": {"file_name": "d.json"}}, {"d.json": '[\n {"a": 1},\n {"a": 2,,}\n]'})
    with pytest.raises(DataError, match=r"d\.json: invalid JSON at line 3, column 10"):
        load(root, "d")


def test_folder_of_mixed_files(tmp_path: Path) -> None:
    files = {
        "mix/a.json": ROWS[:2],
        "mix/b.jsonl": jsonl(ROWS[2:3]),
        "mix/c.csv": _csv(ROWS[3:4]),
        "mix/sub/d.parquet": _parquet(ROWS[4:]),
        "mix/README.md": "# notes",
        "mix/.hidden.json": "not read",
    }
    root = write_dataset_dir(tmp_path, {"m": {"file_name": "mix"}}, files)
    loaded = load(root, "m")
    assert [e.prompt[0].content for e in loaded.train] == ["q1", "q2", "q3", "q4", "q5"]
    assert [(Path(e.ref.file).name, e.ref.row) for e in loaded.train if e.ref] == [
        ("a.json", 1), ("a.json", 2), ("b.jsonl", 1), ("c.csv", 2), ("d.parquet", 1),
    ]  # fmt: skip
    assert loaded.report.warnings == [f"dataset 'm': {root / 'mix' / 'README.md'} is skipped (not a data file type)"]


def test_subset_and_split_of_a_folder(tmp_path: Path) -> None:
    info = {
        "all": {"file_name": "data"},
        "train": {"file_name": "data", "split": "train"},
        "dev": {"file_name": "data", "split": "validation"},
        "zh": {"file_name": "data", "subset": "zh"},
        "missing": {"file_name": "data", "split": "test"},
        "single": {"file_name": "data/train.jsonl", "split": "validation"},
    }
    files = {
        "data/train.jsonl": jsonl(ROWS[:3]),
        "data/validation.jsonl": jsonl(ROWS[3:]),
        "data/zh/train-00000-of-00001.json": [{"instruction": "你好", "output": "好"}],
    }
    root = write_dataset_dir(tmp_path, info, files)

    def prompts(name: str) -> list[str]:
        return [e.prompt[0].content for e in load(root, name).train]

    assert prompts("all") == ["q1", "q2", "q3", "q4", "q5", "你好"]  # no split set: every file, as in LF
    assert prompts("train") == ["q1", "q2", "q3", "你好"]
    assert prompts("dev") == ["q4", "q5"]
    assert prompts("zh") == ["你好"]
    with pytest.raises(DataError, match="no file of split 'test'"):
        load(root, "missing")
    with pytest.raises(DataError, match=r"split 'validation' not found: .* is a single file"):
        load(root, "single")


def test_num_samples_subsamples_and_oversamples(tmp_path: Path) -> None:
    info = {"small": {"file_name": "d.json", "num_samples": 3}, "big": {"file_name": "d.json", "num_samples": 12}}
    root = write_dataset_dir(tmp_path, info, {"d.json": ROWS})
    small = [e.prompt[0].content for e in load(root, "small").train]
    assert len(small) == len(set(small)) == 3
    big = load(root, "big")
    prompts = [e.prompt[0].content for e in big.train]
    assert len(prompts) == 12 and set(prompts) == {f"q{i}" for i in range(1, 6)}  # all rows, then repeats
    assert sorted(prompts[:5]) == [f"q{i}" for i in range(1, 6)]
    assert big.report.rows_total == 5  # each distinct row is checked once
    assert [e.prompt[0].content for e in load(root, "big").train] == prompts  # seeded
    assert [e.prompt[0].content for e in load(root, "big", seed=7).train] != prompts


def test_max_samples_takes_the_first_rows(tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path, {"d": {"file_name": "d.jsonl"}, "e": {"file_name": "e.csv"}}, {
        "d.jsonl": jsonl(ROWS), "e.csv": _csv(ROWS),
    })  # fmt: skip
    loaded = load(root, "d,e", max_samples=2)
    assert [e.prompt[0].content for e in loaded.train] == ["q1", "q2", "q1", "q2"]
    assert loaded.report.rows_total == 4
