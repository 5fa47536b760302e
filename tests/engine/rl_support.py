"""Prompt rows (contract: prompt_ids, prompt, reference) and a warm-started tiny model for the RL stage tests.

The learnable task: prompts are random three-word questions; the wanted answer is "yes". A tiny model from
random weights almost never samples a given word (1 in ~2000), so no reward would ever vary; the warm start
teaches it to answer "yes" or "no" about equally, which RL then has to tilt towards "yes".
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from tunery.engine.data.types import Message, Role
from tunery.engine.templates import get_template
from tunery.spec import JobSpec

WORDS = ["apple", "river", "stone", "cloud", "green", "music", "table", "light", "paper", "dog", "sun", "tree"]
WANTED, OTHER = "yes", "no"


@dataclass
class PromptData:
    """Same fields as the tokenize pipeline's TrainingData (the collator is not used by ppo/grpo)."""

    train_dataset: list[dict[str, Any]]
    eval_dataset: list[dict[str, Any]] | None = None
    collator: Any = None
    stats: dict[str, Any] = field(default_factory=dict)


def questions(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"Question: {' '.join(rng.sample(WORDS, 3))}?" for _ in range(count)]


def prompt_rows(
    tokenizer: Any, template: Any, count: int, seed: int = 0, reference: str | None = WANTED
) -> list[dict[str, Any]]:
    rows = []
    for text in questions(count, seed):
        rendered = template.render_prompt([Message(Role.USER, text)])
        ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        rows.append({"prompt_ids": ids, "prompt": rendered, "reference": reference})
    return rows


def prompt_builder(count: int = 16, reference: str | None = WANTED) -> Any:
    """A DataBuilder for run_training giving prompt rows."""

    def build(spec: JobSpec, tokenizer: Any, template: Any, cache_dir: Path | None) -> PromptData:
        return PromptData(prompt_rows(tokenizer, template, count, reference=reference))

    return build


_BUILT: dict[tuple[str, Path], Path] = {}


def cached(kind: str, model_dir: Path, make: Any) -> Path:
    """Build once per test session (``make()`` returns the folder)."""
    if (kind, model_dir) not in _BUILT:
        _BUILT[(kind, model_dir)] = make()
    return _BUILT[(kind, model_dir)]


def warm_start(model_dir: Path, folder: Path, steps: int = 40, seed: int = 0) -> Path:
    """A copy of the tiny model taught to answer " yes" or " no" (then eos) to the questions, about half each."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (folder / "config.json").exists():
        return folder
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = get_template("default", tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    rows = prompt_rows(tokenizer, template, 16, seed=seed)
    answers = [
        tokenizer(f" {word}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for word in (WANTED, OTHER)
    ]
    model.train()
    for step in range(steps):
        batch = [row["prompt_ids"] + answers[(step + index) % 2] for index, row in enumerate(rows)]
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids in batch])
        labels = torch.full_like(input_ids, -100)
        for index, row in enumerate(rows):
            start, end = len(row["prompt_ids"]), len(batch[index])
            labels[index, start:end] = input_ids[index, start:end]
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def answer_share(model_dir: Path, word: str = WANTED, samples: int = 64, seed: int = 0) -> float:
    """How often the model (sampling at temperature 1) answers exactly ``word``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = get_template("default", tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = prompt_rows(tokenizer, template, samples, seed=seed + 1)
    hits = 0
    for row in rows:
        out = model.generate(
            torch.tensor([row["prompt_ids"]]),
            do_sample=True,
            max_new_tokens=4,
            top_k=0,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        hits += tokenizer.decode(out[0, len(row["prompt_ids"]) :], skip_special_tokens=True).strip() == word
    return hits / samples


def pair_builder(count: int = 16) -> Any:
    """A DataBuilder of preference pairs on the same questions: " yes" is chosen over " no"."""

    def build(spec: JobSpec, tokenizer: Any, template: Any, cache_dir: Path | None) -> PromptData:
        eos = [tokenizer.eos_token_id]
        rows = [
            {
                "prompt_ids": row["prompt_ids"],
                "chosen_ids": tokenizer(f" {WANTED}", add_special_tokens=False)["input_ids"] + eos,
                "rejected_ids": tokenizer(f" {OTHER}", add_special_tokens=False)["input_ids"] + eos,
            }
            for row in prompt_rows(tokenizer, template, count)
        ]
        return PromptData(rows)

    return build


def train_reward_model(model_dir: Path, folder: Path, **keys: Any) -> Path:
    """A LoRA reward model (stage rm) that prefers " yes" to " no", trained through run_training."""
    import io

    from tests.support.train_data import tiny_spec
    from tunery.engine.events import EventSink
    from tunery.engine.train.runner import run_training

    if (folder / "tunery_reward.json").exists():
        return folder
    settings: dict[str, Any] = {"stage": "rm", "max_steps": 12, "learning_rate": 1e-2, "per_device_train_batch_size": 4}
    spec = tiny_spec(model_dir, folder, **{**settings, **keys})
    code = run_training(spec, EventSink(io.StringIO()), build_data=pair_builder())
    assert code == 0, f"reward model training failed ({code})"
    return folder


class ScoreHandler(BaseHTTPRequestHandler):
    """A /v1/score endpoint: the score of a text is its length, of a pair the response's length."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ScoreHandler.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b'{"error": "model crashed"}')
            return
        texts = body["input"] if body["input"] is not None else [pair["response"] for pair in body["pairs"]]
        data = [{"index": index, "score": float(len(text))} for index, text in enumerate(texts)]
        answer = json.dumps({"object": "list", "data": data[::-1]}).encode()  # order by index, not position
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        return None


@contextmanager
def running_score_server() -> Iterator[str]:
    """A local /v1/score endpoint (see ScoreHandler); yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScoreHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ScoreHandler.requests = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/score"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster than two contending
    ones (each matmul is microseconds of work; the thread handoff dominates)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
