"""Benchmark folders without torch: LF's three file layouts (MMLU, C-Eval, CMMLU), unzipped or in the zip,
the bundled samples, the catalog listing and the errors naming file and row."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tunery.evaluation.benchmark_data import (
    BUNDLED_DIR,
    Benchmark,
    BenchmarkError,
    Subject,
    find_benchmark,
    list_benchmarks,
    parse_csv,
    parse_task,
)

ROWS = [
    ["What is 1 + 1?", "1", "2", "3", "4", "B"],
    ['A "quoted", comma', "x, y", "multi\nline", "0.50", "True", "D"],
]


def _csv(header: list[str] | None, rows: list[list[str]], index: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    for number, row in enumerate(rows):
        writer.writerow([number, *row] if index else row)
    return buffer.getvalue()


def _mapping(folder: Path, subjects: dict[str, tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {key: {"name": name, "category": category} for key, (name, category) in subjects.items()}
    (folder / "mapping.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_three_layouts_read_the_same_questions(tmp_path: Path) -> None:
    subject = {"algebra": ("algebra", "STEM")}
    # MMLU: data/<split>/<subject>_<split>.csv without header
    _mapping(tmp_path / "mmlu", subject)
    _write(tmp_path / "mmlu" / "data" / "test" / "algebra_test.csv", _csv(None, ROWS))
    # C-Eval: header id,question,A-D,answer,explanation
    _mapping(tmp_path / "ceval", subject)
    ceval_rows = [[str(i), *row, "because"] for i, row in enumerate(ROWS)]
    header = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]
    _write(tmp_path / "ceval" / "val" / "algebra_val.csv", _csv(header, ceval_rows))
    # CMMLU: <split>/<subject>.csv with an index column and capitalised names
    _mapping(tmp_path / "cmmlu", subject)
    _write(
        tmp_path / "cmmlu" / "test" / "algebra.csv", _csv(["", "Question", "A", "B", "C", "D", "Answer"], ROWS, True)
    )

    algebra = Subject("algebra", "algebra", "STEM")
    read = [
        Benchmark(tmp_path / "mmlu").questions("test", algebra),
        Benchmark(tmp_path / "ceval").questions("validation", algebra),
        Benchmark(tmp_path / "cmmlu").questions("test", algebra),
    ]
    for questions in read:
        assert [q.question for q in questions] == [row[0] for row in ROWS]
        assert [q.choices for q in questions] == [dict(zip("ABCD", row[1:5], strict=True)) for row in ROWS]
        assert [q.answer for q in questions] == ["B", "D"]
    assert read[0][1].choices["C"] == "0.50"  # cells stay text (no float parsing)


def test_zip_as_lf_ships_it_and_files_on_disk_win(tmp_path: Path) -> None:
    folder = tmp_path / "mmlu"
    _mapping(folder, {"algebra": ("algebra", "STEM")})
    with zipfile.ZipFile(folder / "mmlu.zip", "w") as archive:
        archive.writestr("data/dev/algebra_dev.csv", _csv(None, ROWS[:1]))
        archive.writestr("data/test/algebra_test.csv", _csv(None, ROWS))
    benchmark = Benchmark(folder)
    algebra = benchmark.subjects[0]
    assert len(benchmark.questions("test", algebra)) == 2
    assert len(benchmark.questions("train", algebra)) == 1
    assert benchmark.info().splits == ["test"]
    _write(folder / "test" / "algebra_test.csv", _csv(None, ROWS[1:]))
    assert [q.answer for q in Benchmark(folder).questions("test", algebra)] == ["D"]


def test_bad_rows_are_named(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"x\.csv, row 3: answer 'E' is not one of A, B, C, D"):
        parse_csv(_csv(["question", "A", "B", "C", "D", "answer"], [ROWS[0], [*ROWS[0][:5], "e"]]), "x.csv", "s")
    with pytest.raises(BenchmarkError, match=r"x\.csv, row 2: expected question, A, B, C, D"):
        parse_csv(_csv(None, [ROWS[0], ["only", "two"]]), "x.csv", "s")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "mapping.json").write_text("[1]", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"mapping\.json: expected an object"):
        Benchmark(tmp_path / "broken")
    assert parse_csv(_csv(["id", "question", "A", "B", "C", "D"], [["0", *ROWS[0][:5]]]), "t", "s")[0].answer == ""


def test_task_names() -> None:
    assert parse_task("mmlu_test") == ("mmlu", "test")
    assert parse_task("ceval_validation") == ("ceval", "validation")
    assert parse_task("mmlu_sample_val") == ("mmlu_sample", "val")
    for bad in ("mmlu", "mmlu_final", "_test"):
        with pytest.raises(BenchmarkError, match="task: expected '<benchmark>_<split>'"):
            parse_task(bad)


def test_bundled_samples() -> None:
    infos = {info.task: info for info in list_benchmarks(None)}
    assert {"mmlu_sample", "cmmlu_sample", "ceval_sample"} <= set(infos)
    assert infos["mmlu_sample"].languages == ["en"] and infos["ceval_sample"].languages == ["zh"]
    assert infos["cmmlu_sample"].splits == ["test"] and infos["ceval_sample"].splits == ["test", "validation"]
    assert infos["mmlu_sample"].categories == ["STEM", "Social Sciences", "Humanities", "Other"]
    for name in ("mmlu_sample", "cmmlu_sample", "ceval_sample"):
        assert infos[name].bundled and infos[name].title.endswith("(sample)")
        benchmark = find_benchmark(name, None)
        assert len(benchmark.subjects) >= 3
        for subject in benchmark.subjects:
            assert len(benchmark.questions("dev", subject)) >= 5
            for split in infos[name].splits:
                questions = benchmark.questions(split, subject)
                assert 4 <= len(questions) <= 8
                assert all(q.answer in "ABCD" and q.answer for q in questions)
                assert all(all(text.strip() for text in q.choices.values()) for q in questions)


def test_task_dir_first_then_bundled(tmp_path: Path) -> None:
    _mapping(tmp_path / "mmlu_sample", {"mine": ("mine", "Other")})
    _write(tmp_path / "mmlu_sample" / "test" / "mine_test.csv", _csv(None, ROWS))
    _mapping(tmp_path / "ours", {"x": ("某科目", "Other")})
    (tmp_path / "not-a-benchmark").mkdir()
    infos = {info.task: info for info in list_benchmarks(str(tmp_path))}
    assert not infos["mmlu_sample"].bundled and infos["mmlu_sample"].subjects == ["mine"]
    assert infos["ceval_sample"].bundled and "not-a-benchmark" not in infos
    assert infos["ours"].languages == ["zh"] and infos["ours"].splits == []
    assert find_benchmark("mmlu_sample", str(tmp_path)).folder == tmp_path / "mmlu_sample"
    assert find_benchmark("mmlu_sample", str(tmp_path / "missing")).folder == BUNDLED_DIR / "mmlu_sample"
    with pytest.raises(BenchmarkError, match="task: no benchmark 'mmlu'"):
        find_benchmark("mmlu", str(tmp_path))


def test_listing_imports_no_torch() -> None:
    code = (
        "import sys; from tunery.evaluation.benchmark_data import list_benchmarks; "
        "assert list_benchmarks(None); assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
