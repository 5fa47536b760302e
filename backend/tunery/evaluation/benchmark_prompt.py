"""The few-shot conversation of a benchmark question, as LLaMA-Factory's evaluator builds it (its ``eval``
templates ``en`` and ``zh``): solved dev examples as user/assistant turns, the question last, the subject's
instruction in front of the first turn. The chat template of the job then renders the conversation."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tunery.engine.data.types import Message, Role
from tunery.evaluation.benchmark_data import CHOICES, Question


@dataclass(frozen=True)
class EvalTemplate:
    """LF's ``EvalTemplate``: ``system`` (with ``{subject}``), one ``choice`` line, the ``answer`` cue."""

    system: str
    choice: str
    answer: str

    def question_text(self, question: Question) -> str:
        """The question and its choices (what the sample browser shows as the prompt)."""
        lines = [
            self.choice.format(choice=ch, content=question.choices[ch]) for ch in CHOICES if ch in question.choices
        ]
        return "".join([question.question, *lines])

    def parse_example(self, question: Question) -> tuple[str, str]:
        return self.question_text(question) + self.answer, question.answer

    def format_example(self, target: Question, support: Sequence[Question], subject_name: str) -> list[Message]:
        messages: list[Message] = []
        for example in [*support, target]:
            prompt, response = self.parse_example(example)
            messages += [Message(Role.USER, prompt), Message(Role.ASSISTANT, response)]
        messages[0] = Message(Role.USER, self.system.format(subject=subject_name) + messages[0].content)
        return messages


EVAL_TEMPLATES: dict[str, EvalTemplate] = {
    "en": EvalTemplate(
        system="The following are multiple choice questions (with answers) about {subject}.\n\n",
        choice="\n{choice}. {content}",
        answer="\nAnswer:",
    ),
    "zh": EvalTemplate(
        system="以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n",
        choice="\n{choice}. {content}",
        answer="\n答案：",
    ),
}


def pick_shots(dev: Sequence[Question], n_shot: int, rng: random.Random) -> list[Question]:
    """``n_shot`` dev examples in random order, drawn anew for every question (LF shuffles the dev split per
    question; here the draw is seeded, so a run is reproducible and two models see the same prompts)."""
    return rng.sample(list(dev), min(n_shot, len(dev)))


def subject_rng(seed: int, subject: str) -> random.Random:
    return random.Random(f"{seed}:{subject}")
