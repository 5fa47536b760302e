"""Multiple-choice benchmarks (MMLU, CMMLU, C-Eval layout) scored as ``llamafactory-cli eval`` scores them.

Each question becomes LF's few-shot conversation (``benchmark_prompt``) rendered by the job's chat template;
the answer is the choice letter (A-D) whose token has the highest logit at the answer position. Accuracy is
reported per subject, per category and overall, in percent. Files: LF's ``results.json`` (the chosen letter
per subject and question) and ``results.log`` (accuracy per category) in ``save_dir`` (default: output_dir),
``benchmark_results.json`` (every accuracy) next to them, and ``benchmark_samples.jsonl`` in output_dir.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunery.engine.data.types import Message
from tunery.engine.templates import ChatTemplate, TemplateError, get_template
from tunery.engine.tokenize.text import encode_texts
from tunery.engine.train.errors import TrainingError, invalid_spec
from tunery.engine.train.model import describe_device, load_frozen_model, load_tokenizer
from tunery.evaluation.benchmark_data import (
    CATEGORY_ORDER,
    CHOICES,
    BenchmarkError,
    Question,
    Subject,
    find_benchmark,
    parse_task,
)
from tunery.evaluation.benchmark_prompt import EVAL_TEMPLATES, pick_shots, subject_rng
from tunery.evaluation.outcome import EvalOutcome, Progress
from tunery.spec import JobSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SAMPLES_FILE = "benchmark_samples.jsonl"
RESULTS_FILE = "benchmark_results.json"


@dataclass
class Item:
    """One question to score: its prompt ids and, once scored, the chosen letter and the choice probabilities."""

    index: int
    subject: Subject
    question: Question
    text: str
    input_ids: list[int]
    predict: str = ""
    probs: tuple[float, ...] = ()

    @property
    def correct(self) -> bool:
        return self.predict == self.question.answer


def run_benchmark(spec: JobSpec, output_dir: Path, progress: Progress) -> EvalOutcome:
    """Score ``evaluation.task`` with the job's model (plus adapters); write the result files; return the figures."""
    evaluation = spec.evaluation
    if not evaluation.task:
        raise invalid_spec("task", "is required for a benchmark run ('<benchmark>_<split>', e.g. mmlu_test)")
    tokenizer = load_tokenizer(spec.model)
    template = _template(spec, tokenizer)
    try:
        items = build_items(spec, tokenizer, template)
    except BenchmarkError as exc:
        # "task: ..." names the spec key; anything else is a benchmark file that cannot be read
        raise TrainingError("invalid_spec" if str(exc).startswith("task:") else "invalid_data", str(exc)) from exc
    if not items:
        raise invalid_spec("task", f"{evaluation.task} has no questions")
    model = load_eval_model(spec, tokenizer)
    logger.info("benchmark %s: %d questions on %s", evaluation.task, len(items), describe_device())
    started = time.perf_counter()
    score_items(model, items, choice_token_ids(tokenizer), evaluation.batch_size, _pad_id(tokenizer), progress)
    elapsed = max(time.perf_counter() - started, 1e-9)
    overall, subjects, categories = accuracies(items)
    save_dir = Path(evaluation.save_dir) if evaluation.save_dir else output_dir
    write_results(save_dir, output_dir, evaluation.task, items, overall, subjects, categories)
    return EvalOutcome(
        name=evaluation.task,
        kind="benchmark",
        metrics={"accuracy": overall, "samples_per_second": round(len(items) / elapsed, 3)},
        breakdown={"subject": subjects, "category": categories},
        samples_file=SAMPLES_FILE,
        samples=len(items),
    )


# ---- prompts -----------------------------------------------------------------------------------


def _template(spec: JobSpec, tokenizer: PreTrainedTokenizerBase) -> ChatTemplate:
    try:
        return get_template(spec.data.template, tokenizer)
    except TemplateError as exc:
        raise invalid_spec("template", str(exc)) from exc


def build_items(spec: JobSpec, tokenizer: PreTrainedTokenizerBase, template: ChatTemplate) -> list[Item]:
    """Every question of the task's split, subject by subject (mapping.json order), with its prompt ids."""
    evaluation = spec.evaluation
    assert evaluation.task is not None
    name, split = parse_task(evaluation.task)
    benchmark = find_benchmark(name, evaluation.task_dir)
    eval_template = EVAL_TEMPLATES[evaluation.lang]
    items: list[Item] = []
    for subject in benchmark.subjects:
        dev = benchmark.questions("dev", subject) if evaluation.n_shot else []
        rng = subject_rng(spec.training.seed, subject.id)
        questions = benchmark.questions(split, subject)
        conversations = [
            eval_template.format_example(question, pick_shots(dev, evaluation.n_shot, rng), subject.name)
            for question in questions
        ]
        prompts = encode_prompts(tokenizer, template, conversations, spec)
        for question, ids in zip(questions, prompts, strict=True):
            items.append(Item(len(items), subject, question, eval_template.question_text(question), ids))
    return items


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase,
    template: ChatTemplate,
    conversations: Sequence[list[Message]],
    spec: JobSpec,
) -> list[list[int]]:
    """Prompt ids of each conversation: every turn but the last answer, each piece tokenized on its own
    (as LF's ``encode_oneturn`` and Tunery's training encoder do)."""
    pieces: list[list[str]] = []
    for messages in conversations:
        pairs = template.render_turns(messages, spec.data.default_system, enable_thinking=spec.data.enable_thinking)
        pieces.append([text for pair in pairs for text in pair][:-1])
    flat = encode_texts(tokenizer, [text for texts in pieces for text in texts])
    prompts, cursor = [], 0
    for texts in pieces:
        prompts.append([token for ids in flat[cursor : cursor + len(texts)] for token in ids])
        cursor += len(texts)
    return prompts


def choice_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The token of each answer letter (LF: the last token of the letter encoded alone)."""
    return [int(tokenizer.encode(choice, add_special_tokens=False)[-1]) for choice in CHOICES]


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad) if pad is not None else 0


# ---- model and scoring -------------------------------------------------------------------------


def load_eval_model(spec: JobSpec, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The job's model in eval mode (dtype: :func:`eval_precision`) with its adapters (``adapter_name_or_path``)
    merged in, on the GPU if any."""
    from peft import PeftModel

    model: Any = load_frozen_model(eval_precision(spec), tokenizer)
    for path in spec.model.adapter_name_or_path or []:
        try:
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        except (OSError, ValueError) as exc:
            raise invalid_spec("adapter_name_or_path", f"cannot load adapter {path!r}: {exc}") from exc
    model.eval()
    return model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))  # type: ignore[no-any-return]


def eval_precision(spec: JobSpec) -> JobSpec:
    """``spec`` with the precision flags the model loader reads set to the benchmark's dtype: ``infer_dtype``,
    or for ``auto`` LF's choice for inference: bf16 on a GPU when the weights are stored in bf16 and the GPU has
    it, fp16 on other GPUs, fp32 on the CPU."""
    choice = spec.model.infer_dtype
    if choice == "auto":
        if not torch.cuda.is_available():
            choice = "float32"
        else:
            stored_bf16 = _stored_dtype(spec).endswith("bfloat16")
            choice = "bfloat16" if stored_bf16 and torch.cuda.is_bf16_supported() else "float16"
    if choice == "float16" and not torch.cuda.is_available():
        raise invalid_spec("infer_dtype", "float16 needs a CUDA GPU; use float32 or bfloat16 on the CPU")
    training = spec.training.model_copy(update={"bf16": choice == "bfloat16", "fp16": choice == "float16"})
    return spec.model_copy(update={"training": training})


def _stored_dtype(spec: JobSpec) -> str:
    from transformers import AutoConfig

    args = spec.model
    try:
        config = AutoConfig.from_pretrained(
            args.model_name_or_path,
            trust_remote_code=args.trust_remote_code,
            revision=args.model_revision,
            cache_dir=args.cache_dir,
        )
    except (OSError, ValueError):
        return ""  # the model loader reports it
    return str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "")


@torch.inference_mode()
def score_items(
    model: PreTrainedModel,
    items: list[Item],
    choice_ids: list[int],
    batch_size: int,
    pad_id: int,
    progress: Progress,
) -> None:
    """Fill ``predict`` and ``probs`` of every item: ``batch_size`` prompts per forward pass (right-padded, as
    LF pads; longest first, so memory problems show at once), the logits of the choice letters at each prompt's
    last token, softmax over them, the most likely letter."""
    device = next(model.parameters()).device
    keep_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    order = sorted(range(len(items)), key=lambda index: -len(items[index].input_ids))
    choices = torch.tensor(choice_ids, device=device)
    done = 0
    for start in range(0, len(order), batch_size):
        batch = [items[index] for index in order[start : start + batch_size]]
        width = max(len(item.input_ids) for item in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, item in enumerate(batch):
            input_ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids, dtype=torch.long)
            mask[row, : len(item.input_ids)] = 1
        last = (mask.sum(dim=-1) - 1).to(device)
        logits = _last_logits(model, input_ids.to(device), mask.to(device), last, keep_logits)
        probs = torch.softmax(logits.index_select(-1, choices).float(), dim=-1)
        for item, row in zip(batch, probs.tolist(), strict=True):
            item.probs = tuple(row)
            item.predict = CHOICES[max(range(len(row)), key=row.__getitem__)]
        done += len(batch)
        progress(done, len(items))


def _last_logits(
    model: PreTrainedModel, input_ids: torch.Tensor, mask: torch.Tensor, last: torch.Tensor, keep_logits: bool
) -> torch.Tensor:
    """Logits at each row's last prompt token; only those positions go through the output head when the
    model takes ``logits_to_keep`` per row (transformers' 2-D form)."""
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    if keep_logits:
        logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=last[:, None]).logits
        if logits.dim() == 3 and logits.shape[:2] == (input_ids.shape[0], 1):
            return logits[:, 0]
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    return logits[rows, last]


# ---- results -----------------------------------------------------------------------------------


def _percent(corrects: Sequence[bool]) -> float:
    return round(100.0 * sum(corrects) / len(corrects), 4) if corrects else 0.0


def accuracies(items: Sequence[Item]) -> tuple[float, dict[str, float], dict[str, float]]:
    """(overall, per subject in mapping order, per category in LF's order then others) in percent."""
    by_subject: dict[str, list[bool]] = {}
    by_category: dict[str, list[bool]] = {}
    for item in items:
        by_subject.setdefault(item.subject.id, []).append(item.correct)
        by_category.setdefault(item.subject.category, []).append(item.correct)
    ordered = [name for name in CATEGORY_ORDER if name in by_category]
    ordered += [name for name in by_category if name not in CATEGORY_ORDER]
    subjects = {name: _percent(corrects) for name, corrects in by_subject.items()}
    categories = {name: _percent(by_category[name]) for name in ordered}
    return _percent([item.correct for item in items]), subjects, categories


def write_results(
    save_dir: Path,
    output_dir: Path,
    task: str,
    items: Sequence[Item],
    overall: float,
    subjects: dict[str, float],
    categories: dict[str, float],
) -> None:
    save_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    letters: dict[str, dict[str, str]] = {}
    for item in items:
        per_subject = letters.setdefault(item.subject.id, {})
        per_subject[str(len(per_subject))] = item.predict
    _write_text(save_dir / "results.json", json.dumps(letters, indent=2))
    lines = [f"{'Average':>15}: {overall:.2f}"] + [f"{name:>15}: {value:.2f}" for name, value in categories.items()]
    _write_text(save_dir / "results.log", "\n".join(lines))
    summary = {"task": task, "questions": len(items), "accuracy": overall, "category": categories, "subject": subjects}
    _write_text(save_dir / RESULTS_FILE, json.dumps(summary, indent=2, ensure_ascii=False))
    with (output_dir / SAMPLES_FILE).open("w", encoding="utf-8", newline="\n") as file:
        for item in items:
            row = {
                "index": item.index,
                "subject": item.subject.id,
                "prompt": item.text,
                "label": item.question.answer,
                "predict": item.predict,
                "scores": {"accuracy": 100.0 if item.correct else 0.0},
                "probs": {choice: round(p, 6) for choice, p in zip(CHOICES, item.probs, strict=True)},
            }
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    unanswered = sum(1 for item in items if not item.question.answer)
    if unanswered:
        logger.warning("%d questions of %s have no answer in the file (they count as wrong)", unanswered, task)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")
