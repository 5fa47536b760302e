"""Multiple-choice benchmarks in LLaMA-Factory's ``evaluation/`` layout, read without torch (the server lists
them for the catalog).

A benchmark is a folder ``<task_dir>/<name>/`` holding ``mapping.json`` (``{subject: {"name", "category"}}``)
and one CSV per subject and split: ``dev/`` (solved examples for the few-shot prompt), ``val/`` and ``test/``.
The three file layouts LF's loading scripts read are all accepted, unzipped or inside the folder's zip:

- MMLU: ``[data/]{dev,val,test}/<subject>_<split>.csv``, no header: question, A, B, C, D, answer;
- C-Eval: ``{dev,val,test}/<subject>_<split>.csv`` with a header (id, question, A-D, answer, explanation);
- CMMLU: ``{dev,test}/<subject>.csv`` with a header (index, Question, A-D, Answer).

``task`` is ``<name>_<split>`` (``mmlu_test``, ``ceval_validation``); the name is looked up in ``task_dir``
first, then among the small sample sets bundled with Tunery (``benchmarks/``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

#: The answer letters LF scores (its ``CHOICES``).
CHOICES: tuple[str, ...] = ("A", "B", "C", "D")
#: Split names of ``task`` (LF's dataset splits) -> the folder holding that split.
SPLIT_FOLDERS: dict[str, str] = {"test": "test", "validation": "val", "val": "val", "train": "dev", "dev": "dev"}
#: The splits the catalog offers (``dev`` feeds the few-shot examples).
LISTED_SPLITS: tuple[str, ...] = ("test", "validation")
#: LF's category order in results.log (``Average`` is the overall accuracy).
CATEGORY_ORDER: tuple[str, ...] = ("STEM", "Social Sciences", "Humanities", "Other")
BUNDLED_DIR = Path(__file__).resolve().parent / "benchmarks"

_TITLES = {"mmlu": "MMLU", "cmmlu": "CMMLU", "ceval": "C-Eval"}
_LANGUAGES = {"mmlu": "en", "cmmlu": "zh", "ceval": "zh"}
_CJK = re.compile(r"[\u4e00-\u9fff]")


class BenchmarkError(ValueError):
    """A benchmark folder, file or row that cannot be read; the message names the key or the file."""


@dataclass(frozen=True)
class Subject:
    id: str
    name: str
    category: str


@dataclass(frozen=True)
class Question:
    subject: str
    question: str
    choices: dict[str, str]
    answer: str


@dataclass(frozen=True)
class BenchmarkInfo:
    """One benchmark of the catalog: ``task`` is the folder name (run it as ``<task>_<split>``)."""

    task: str
    title: str
    subjects: list[str]
    categories: list[str]
    languages: list[str]
    splits: list[str]
    bundled: bool
    path: str


class Benchmark:
    """A benchmark folder: its subjects and the CSV files of each split (on disk or in a zip)."""

    def __init__(self, folder: Path, *, bundled: bool = False) -> None:
        self.folder = folder
        self.name = folder.name
        self.bundled = bundled
        self.subjects = _read_mapping(folder / "mapping.json")
        self._files = _index_files(folder)

    def info(self) -> BenchmarkInfo:
        prefix = self.name.split("_")[0].lower()
        title = _TITLES.get(prefix, self.name)
        if self.name.lower().endswith("_sample"):
            title += " (sample)"
        names = " ".join(subject.name for subject in self.subjects)
        language = _LANGUAGES.get(prefix) or ("zh" if _CJK.search(names) else "en")
        categories = list(dict.fromkeys(subject.category for subject in self.subjects))
        splits = [split for split in LISTED_SPLITS if self.has_split(split)]
        return BenchmarkInfo(
            task=self.name,
            title=title,
            subjects=[subject.id for subject in self.subjects],
            categories=categories,
            languages=[language],
            splits=splits,
            bundled=self.bundled,
            path=str(self.folder),
        )

    def has_split(self, split: str) -> bool:
        folder = SPLIT_FOLDERS[split]
        return any(key.startswith(f"{folder}/") for key in self._files)

    def questions(self, split: str, subject: Subject) -> list[Question]:
        """The questions of one subject in one split (``dev``/``train``, ``val``/``validation``, ``test``)."""
        folder = SPLIT_FOLDERS[split]
        for key in (f"{folder}/{subject.id}_{folder}.csv", f"{folder}/{subject.id}.csv"):
            if key in self._files:
                where, text = self._read(key)
                return parse_csv(text, where, subject.id)
        raise BenchmarkError(
            f"task: benchmark {self.name!r} has no {folder}/{subject.id}_{folder}.csv (or {folder}/{subject.id}.csv) "
            f"in {self.folder}"
        )

    def _read(self, key: str) -> tuple[str, str]:
        source, member = self._files[key]
        try:
            if member is None:
                return str(source), source.read_text(encoding="utf-8-sig")
            with zipfile.ZipFile(source) as archive:
                return f"{source}:{member}", archive.read(member).decode("utf-8-sig")
        except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise BenchmarkError(f"cannot read {source} ({member or key}): {exc}") from exc


def _read_mapping(path: Path) -> list[Subject]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise BenchmarkError(f"{path}: expected an object {{subject: {{name, category}}}}")
    subjects = []
    for subject_id, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BenchmarkError(f'{path}, subject {subject_id!r}: expected {{"name": ..., "category": ...}}')
        subjects.append(Subject(str(subject_id), entry["name"], str(entry.get("category") or "Other")))
    return subjects


def _index_files(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """``"<split folder>/<file>.csv"`` -> (file, None) on disk or (zip, member); files on disk win."""
    files: dict[str, tuple[Path, str | None]] = {}
    for archive in sorted(folder.glob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as opened:
                members = opened.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise BenchmarkError(f"cannot read {archive}: {exc}") from exc
        for member in members:
            parts = member.strip("/").split("/")
            if len(parts) >= 2 and parts[-1].endswith(".csv"):
                files.setdefault("/".join(parts[-2:]), (archive, member))
    for base in (folder / "data", folder):
        for path in base.glob("*/*.csv"):
            files[f"{path.parent.name}/{path.name}"] = (path, None)
    return files


def parse_csv(text: str, where: str, subject: str) -> list[Question]:
    """Rows of one subject CSV: a header naming question/A-D/answer (any case, extra columns ignored),
    or no header and the columns question, A, B, C, D, answer (MMLU). Cells are read as text."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    wanted = ["question", *(choice.lower() for choice in CHOICES)]
    if all(name in header for name in wanted):
        columns = [header.index(name) for name in wanted]
        answer_column = header.index("answer") if "answer" in header else None
        body, first_line = rows[1:], 2
    else:
        columns, answer_column, body, first_line = [0, 1, 2, 3, 4], 5, rows, 1
    questions = []
    for number, row in enumerate(body, start=first_line):
        if len(row) <= max(columns):
            raise BenchmarkError(f"{where}, row {number}: expected question, A, B, C, D and answer columns")
        answer = row[answer_column].strip().upper() if answer_column is not None and answer_column < len(row) else ""
        if answer and answer not in CHOICES:
            raise BenchmarkError(f"{where}, row {number}: answer {answer!r} is not one of {', '.join(CHOICES)}")
        cells = [row[column] for column in columns]
        questions.append(Question(subject, cells[0], dict(zip(CHOICES, cells[1:], strict=True)), answer))
    return questions


def parse_task(task: str) -> tuple[str, str]:
    """``<name>_<split>`` -> (name, split); the name may hold underscores (``mmlu_sample_test``)."""
    name, _, split = task.rpartition("_")
    if not name or split not in SPLIT_FOLDERS:
        splits = ", ".join(dict.fromkeys(SPLIT_FOLDERS))
        raise BenchmarkError(f"task: expected '<benchmark>_<split>' with split one of {splits}; got {task!r}")
    return name, split


def find_benchmark(name: str, task_dir: str | None) -> Benchmark:
    """The benchmark folder ``name``: in ``task_dir`` first, then the bundled samples."""
    if task_dir and (Path(task_dir) / name / "mapping.json").is_file():
        return Benchmark(Path(task_dir) / name)
    if (BUNDLED_DIR / name / "mapping.json").is_file():
        return Benchmark(BUNDLED_DIR / name, bundled=True)
    known = ", ".join(info.task for info in list_benchmarks(task_dir)) or "none"
    where = f"{task_dir}/{name}/mapping.json" if task_dir else f"{name}/mapping.json"
    raise BenchmarkError(f"task: no benchmark {name!r} ({where} not found); known: {known}")


def list_benchmarks(task_dir: str | None) -> list[BenchmarkInfo]:
    """Benchmarks of ``task_dir`` (folders with a mapping.json) and the bundled samples not shadowed by them."""
    found: dict[str, BenchmarkInfo] = {}
    roots = [(Path(task_dir), False)] if task_dir else []
    for root, bundled in [*roots, (BUNDLED_DIR, True)]:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.name in found or not (folder / "mapping.json").is_file():
                continue
            try:
                found[folder.name] = Benchmark(folder, bundled=bundled).info()
            except BenchmarkError:
                continue  # a broken folder is reported when it is run, not when listing
    return list(found.values())
