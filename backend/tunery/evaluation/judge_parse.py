"""The judge's rubrics and what is read from its replies: a 1-10 score (the reply's text, or the probability-
weighted score over the score tokens when the endpoint returns ``top_logprobs``, G-Eval style) or a pairwise
verdict (A, B or tie)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SCORE_MIN, SCORE_MAX = 1, 10
REASON_CHARS = 300
#: the end of a reasoning judge's thinking; scores and verdicts are read after it
THINK_END = "</think>"

DEFAULT_RUBRIC = """You are a strict and fair judge of an AI assistant's answer.

[Question]
{prompt}

[Reference answer]
{label}

[Assistant's answer]
{prediction}

Rate how correct and helpful the assistant's answer is, using the reference answer as a guide (other correct \
answers are fine). 1 means wrong or useless, 10 means fully correct and helpful.
Reply in exactly this format, the score first:
Score: <an integer from 1 to 10>
Reason: <one short sentence>"""

DEFAULT_PAIRWISE_RUBRIC = """You are a fair judge comparing two AI assistants' answers to the same question.

[Question]
{prompt}

[Reference answer]
{label}

[Answer A]
{prediction_a}

[Answer B]
{prediction_b}

Decide which answer is more correct and helpful, using the reference answer as a guide. Do not let the order \
of the answers or their length decide. Say tie when they are equally good or equally bad.
Reply in exactly this format, the verdict first:
Winner: <A, B or tie>
Reason: <one short sentence>"""

#: placeholders each mode's rubric must contain
REQUIRED = {"single": ("{prediction}",), "pairwise": ("{prediction_a}", "{prediction_b}")}
_PLACEHOLDER = re.compile(r"\{(prompt|label|prediction|prediction_a|prediction_b)\}")
_NUMBER = r"(\d+(?:\.\d+)?)"
_SCORE_PATTERNS = (
    re.compile(r'"score"\s*:\s*"?' + _NUMBER, re.IGNORECASE),  # a JSON object {"score": 7, "reason": ...}
    re.compile(r"(?:score|rating|评分|分数)\W{0,3}?\s*[:：=]\s*\**\s*" + _NUMBER, re.IGNORECASE),  # Score: 7
    re.compile(r"^\s*" + _NUMBER + r"\s*(?:/\s*10)?\s*(?:\n|$)"),  # the reply is (starts with a line of) a number
    re.compile(_NUMBER + r"\s*/\s*10\b"),  # "... 7/10 ..."
)
_VERDICT_PATTERNS = (
    re.compile(r'"winner"\s*:\s*"\s*(A|B|tie)\s*"', re.IGNORECASE),
    re.compile(r"(?:winner|verdict|better)\W{0,3}?\s*[:：=]\s*\**\s*\[*\s*(A|B|tie)\b", re.IGNORECASE),
    re.compile(r"\[\[(A|B|C|tie)\]\]", re.IGNORECASE),  # MT-Bench: [[A]], [[B]], [[C]] (tie)
    re.compile(r"^\W*(A|B|tie)\W*$", re.IGNORECASE),
)
_REASON = re.compile(r"(?:reason|explanation|理由)\s*[:：]\s*(.+)", re.IGNORECASE | re.DOTALL)

Verdict = Literal["A", "B", "tie"]


def check_rubric(rubric: str, mode: Literal["single", "pairwise"]) -> str | None:
    """None when ``rubric`` fits ``mode``, else what is missing."""
    missing = [name for name in REQUIRED[mode] if name not in rubric]
    return f"a {mode} rubric needs the placeholders {', '.join(missing)}" if missing else None


def fill(rubric: str, values: Mapping[str, str]) -> str:
    """The rubric with its placeholders replaced in one pass (text filled in is never filled again)."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), rubric)


@dataclass(frozen=True)
class ScoreReading:
    score: float | None
    reason: str
    #: why no score could be read (None when read)
    error: str | None = None
    #: True when the score is the probability-weighted one from top_logprobs
    weighted: bool = False


def parse_score(content: str | None, logprobs: Sequence[Mapping[str, Any]] | None = None) -> ScoreReading:
    """The score in a reply ("Score: 7", {"score": 7}, a bare "7"), weighted by the score tokens' probabilities
    when ``logprobs`` (the OpenAI ``choices[0].logprobs.content`` list) covers the score as one token."""
    offset, answer = _after_thinking(content)
    if not answer.strip():
        return ScoreReading(None, "", "the judge's reply is empty")
    for pattern in _SCORE_PATTERNS:
        match = pattern.search(answer)
        if match:
            break
    else:
        return ScoreReading(None, _short(answer), "no score found in the judge's reply")
    text = match.group(1)
    value = float(text)
    if not SCORE_MIN <= value <= SCORE_MAX:
        return ScoreReading(None, _short(answer), f"score {text} is outside {SCORE_MIN}-{SCORE_MAX}")
    reason = _reason(answer, match)
    assert content is not None
    weighted = weighted_score(logprobs, content, offset + match.start(1), text) if logprobs else None
    if weighted is not None:
        return ScoreReading(round(weighted, 4), reason, weighted=True)
    return ScoreReading(value, reason)


def weighted_score(logprobs: Sequence[Mapping[str, Any]], content: str, start: int, text: str) -> float | None:
    """Sum of p(k) * k over the score tokens 1-10 among the alternatives at the position of the score, divided
    by their total probability. None when the tokens do not spell ``content`` or the score is not one token."""
    if "".join(str(entry.get("token", "")) for entry in logprobs) != content:
        return None
    position = 0
    for entry in logprobs:
        token = str(entry.get("token", ""))
        if position <= start < position + len(token):
            if token.strip() != text:
                return None  # e.g. "10" split into "1" + "0", or "7.5": keep the score as written
            return _expectation([entry, *(entry.get("top_logprobs") or [])])
        position += len(token)
    return None


def _expectation(candidates: Sequence[Mapping[str, Any]]) -> float | None:
    probabilities: dict[str, float] = {}
    for candidate in candidates:
        token = str(candidate.get("token", ""))
        logprob = candidate.get("logprob")
        if isinstance(logprob, (int, float)) and logprob > -9999:
            probabilities.setdefault(token, math.exp(logprob))  # the sampled token is also among the top ones
    total = weight = 0.0
    for token, probability in probabilities.items():
        stripped = token.strip()
        if stripped.isdigit() and SCORE_MIN <= int(stripped) <= SCORE_MAX:
            total += probability
            weight += probability * int(stripped)
    return weight / total if total > 0 else None


def parse_verdict(content: str | None) -> tuple[Verdict | None, str]:
    """(A, B or tie, the reason) from a pairwise reply; (None, the reply) when there is no verdict."""
    _, answer = _after_thinking(content)
    if not answer.strip():
        return None, ""
    for pattern in _VERDICT_PATTERNS:
        match = pattern.search(answer)
        if match:
            word = match.group(1).upper()
            verdict: Verdict = "tie" if word in ("TIE", "C") else "A" if word == "A" else "B"
            return verdict, _reason(answer, match)
    return None, _short(answer)


def _after_thinking(content: str | None) -> tuple[int, str]:
    """(where the answer starts, the answer): a reasoning judge's ``<think>…</think>`` block is skipped."""
    if not content:
        return 0, ""
    end = content.rfind(THINK_END)
    start = end + len(THINK_END) if end >= 0 else 0
    return start, content[start:]


def _reason(content: str, match: re.Match[str]) -> str:
    try:
        found = json.loads(content[content.index("{") : content.rindex("}") + 1])
        if isinstance(found, dict):
            for key in ("reason", "explanation", "rationale"):
                if isinstance(found.get(key), str):
                    return _short(found[key])
    except ValueError:
        pass
    after = _REASON.search(content)
    if after:
        return _short(after.group(1))
    rest = (content[: match.start()] + content[match.end() :]).strip()
    return _short(rest)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"
