"""The LLM judge against a scripted OpenAI-compatible endpoint (FastAPI in a uvicorn thread, spoken to over
HTTP by the openai SDK): score parsing, log-prob weighting, failures, retries, concurrency, pairwise swapping and
win rates, the errors that stop a run, and the API key never written anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.serving.support import free_port, running_server
from tunery.engine.train.errors import TrainingError
from tunery.evaluation.judge import PAIRWISE_FILE, SINGLE_FILE, judge_pairwise, judge_single
from tunery.evaluation.judge_parse import DEFAULT_RUBRIC, parse_score, parse_verdict
from tunery.spec import JobSpec

SECRET = "sk-test-9f8e7d6c5b4a-never-write-me"
KEY_ENV = "TUNERY_TEST_JUDGE_KEY"

#: handler(prompt, request body, how many times this prompt was asked before) -> (status, JSON body)
Handler = Callable[[str, dict[str, Any], int], tuple[int, dict[str, Any]]]


def completion(content: str | None, logprobs: list[dict[str, Any]] | None = None) -> tuple[int, dict[str, Any]]:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "logprobs": {"content": logprobs} if logprobs is not None else None,
        "finish_reason": "stop",
    }
    return 200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "judge", "choices": [choice]}


def error(status: int, message: str, param: str | None = None) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def tokens(pieces: list[tuple[str, dict[str, float] | None]]) -> list[dict[str, Any]]:
    """OpenAI ``logprobs.content``: each token with its alternatives' probabilities (itself: 1 when not given)."""
    out = []
    for token, alternatives in pieces:
        top = alternatives or {token: 1.0}
        out.append(
            {
                "token": token,
                "logprob": math.log(top.get(token, 1.0)),
                "bytes": None,
                "top_logprobs": [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in top.items()],
            }
        )
    return out


@dataclass
class StubJudge:
    handler: Handler
    requests: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            prompt = body["messages"][-1]["content"]
            self.requests.append({"authorization": request.headers.get("authorization"), "body": body})
            call = self.calls.get(prompt, 0)
            self.calls[prompt] = call + 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay)
                status, payload = self.handler(prompt, body, call)
            finally:
                self.in_flight -= 1
            return JSONResponse(payload, status_code=status, headers={"retry-after-ms": "1"})

        return app

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        with running_server(self.app()) as url:
            yield f"{url}/v1"


def _spec(base_url: str, **extra: Any) -> JobSpec:
    raw = {"model_name_or_path": "unused", "do_train": False, "judge_model": "judge", "judge_base_url": base_url}
    return JobSpec.from_mapping({**raw, "judge_api_key_env": KEY_ENV, **extra})


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _assert_no_secret(folder: Path, *texts: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(encoding="utf-8", errors="replace"), path
    for text in texts:
        assert SECRET not in text


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


# ---- single ------------------------------------------------------------------------------------

SINGLE_REPLIES: dict[str, Callable[[int], tuple[int, dict[str, Any]]]] = {
    "plain": lambda call: completion("Score: 7\nReason: mostly right"),
    "json": lambda call: completion('{"score": 4, "reason": "half of it is wrong"}'),
    # 7 sampled; p(7)=.5, p(8)=.25, p(6)=.125 and a non-score token: (3.5 + 2 + .75) / .875
    "weighted": lambda call: completion(
        "Score: 7\nReason: ok",
        tokens(
            [
                ("Score", None),
                (":", None),
                (" 7", {" 7": 0.5, " 8": 0.25, " 6": 0.125, " x": 0.125}),
                ("\n", None),
                ("Reason: ok", None),
            ]
        ),
    ),
    # "10" in two tokens: the written score counts, not the weights of "1"
    "split-ten": lambda call: completion(
        "Score: 10", tokens([("Score:", None), (" 1", {" 1": 0.6, " 9": 0.4}), ("0", None)])
    ),
    "flaky": lambda call: error(503, "busy") if call == 0 else completion("Rating: 9"),
    "garbage": lambda call: completion("What a lovely answer."),
    "too-high": lambda call: completion("Score: 11\nReason: amazing"),
    "always-down": lambda call: error(500, "internal error"),
    "too-long": lambda call: error(400, "the prompt is longer than the context"),
    "empty": lambda call: completion(None),
}
SINGLE_SCORES = {"plain": 7.0, "json": 4.0, "weighted": 6.25 / 0.875, "split-ten": 10.0, "flaky": 9.0}


def _case(prompt: str) -> str:
    match = re.search(r"answer-of-([a-z-]+)", prompt)
    assert match, prompt
    return match.group(1)


def test_single_scores_weights_and_failures(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stub = StubJudge(lambda prompt, body, call: SINGLE_REPLIES[_case(prompt)](call))
    rows = [
        {"prompt": f"question {i}", "label": f"label {i}", "predict": f"answer-of-{name}", "scores": {"bleu-4": 1.5}}
        for i, name in enumerate(SINGLE_REPLIES)
    ]
    predictions = _write(tmp_path / "generated_predictions.jsonl", rows)
    seen: list[tuple[int, int]] = []
    caplog.set_level(logging.DEBUG)
    with stub.serve() as url:
        outcome = judge_single(_spec(url), predictions, tmp_path / "out", lambda d, t: seen.append((d, t)))

    judged = _rows(tmp_path / "out" / SINGLE_FILE)
    assert [row["index"] for row in judged] == list(range(len(rows)))
    assert [row["predict"] for row in judged] == [row["predict"] for row in rows]
    scores = {_case(row["predict"]): row["scores"].get("judge_score") for row in judged}
    assert {name: value for name, value in scores.items() if value is not None} == pytest.approx(
        SINGLE_SCORES, abs=1e-4
    )
    failed = {_case(row["predict"]) for row in judged if row.get("judge_failed")}
    assert failed == {"garbage", "too-high", "always-down", "too-long", "empty"}
    assert all(row["scores"]["bleu-4"] == 1.5 for row in judged)  # the prediction run's scores stay
    weighted = {_case(row["predict"]) for row in judged if row.get("judge_weighted")}
    assert weighted == {"weighted"}
    reasons = {_case(row["predict"]): row["judge_reason"] for row in judged}
    assert reasons["plain"] == "mostly right" and reasons["json"] == "half of it is wrong"
    assert "outside 1-10" in reasons["too-high"] and "no score" in reasons["garbage"]
    assert "500" in reasons["always-down"] or "internal error" in reasons["always-down"]

    assert outcome.name == "judge" and outcome.kind == "judge"
    assert outcome.samples_file == SINGLE_FILE and outcome.samples == len(rows)
    assert outcome.metrics["judge_failures"] == 5
    assert outcome.metrics["judge_score"] == pytest.approx(sum(SINGLE_SCORES.values()) / 5, abs=1e-4)
    assert seen[0] == (0, len(rows)) and seen[-1] == (len(rows), len(rows))

    # requests: the default rubric filled in, greedy, log-probs asked for, the key sent as a bearer token
    first = next(r for r in stub.requests if "answer-of-plain" in r["body"]["messages"][0]["content"])
    expected = DEFAULT_RUBRIC.replace("{prompt}", "question 0").replace("{label}", "label 0")
    assert first["body"]["messages"] == [
        {"role": "user", "content": expected.replace("{prediction}", "answer-of-plain")}
    ]
    assert first["body"]["model"] == "judge" and first["body"]["temperature"] == 0
    assert first["body"]["logprobs"] is True and first["body"]["top_logprobs"] == 20
    assert {r["authorization"] for r in stub.requests} == {f"Bearer {SECRET}"}
    assert stub.calls[first["body"]["messages"][0]["content"]] == 1
    flaky = [r for r in stub.requests if "answer-of-flaky" in r["body"]["messages"][0]["content"]]
    assert len(flaky) == 2  # retried once after the 503
    assert len([r for r in stub.requests if "answer-of-always-down" in r["body"]["messages"][0]["content"]]) == 5
    _assert_no_secret(tmp_path, repr(outcome), json.dumps(asdict(outcome)), caplog.text)


def test_logprobs_refused_then_dropped_and_concurrency_bounded(tmp_path: Path) -> None:
    def handler(prompt: str, body: dict[str, Any], call: int) -> tuple[int, dict[str, Any]]:
        if body.get("logprobs"):
            return error(400, "logprobs are not supported by this server", param="logprobs")
        return completion(f"Score: {len(prompt) % 10 + 1}")

    stub = StubJudge(handler, delay=0.05)
    rows = [{"prompt": f"q{i}", "label": "", "predict": "x" * i} for i in range(12)]
    predictions = _write(tmp_path / "p.jsonl", rows)
    rubric = "Q: {prompt} | ref: {label} | answer: {prediction} {not_a_placeholder}"
    with stub.serve() as url:
        outcome = judge_single(
            _spec(url, judge_max_concurrency=3, judge_rubric=rubric), predictions, tmp_path, lambda d, t: None
        )
    assert outcome.metrics["judge_failures"] == 0
    prompts = [rubric.replace("{prompt}", f"q{i}").replace("{label}", "(no reference answer)").replace(
        "{prediction}", "x" * i) for i in range(12)]  # fmt: skip
    assert [row["scores"]["judge_score"] for row in _rows(tmp_path / SINGLE_FILE)] == [
        float(len(p) % 10 + 1) for p in prompts
    ]
    assert stub.most_in_flight == 3
    with_logprobs = [r for r in stub.requests if r["body"].get("logprobs")]
    assert 1 <= len(with_logprobs) <= 3  # only those in flight before the first refusal came back
    assert len(stub.requests) == 12 + len(with_logprobs)


def test_runs_stop_on_key_model_or_url_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    predictions = _write(tmp_path / "p.jsonl", [{"prompt": "q", "label": "l", "predict": "a"}])
    echo = StubJudge(lambda prompt, body, call: error(401, f"Incorrect API key provided: {SECRET}"))
    with echo.serve() as url, pytest.raises(TrainingError) as refused:
        judge_single(_spec(url), predictions, tmp_path / "o1", lambda d, t: None)
    assert refused.value.code == "invalid_spec" and refused.value.message.startswith("judge_api_key_env:")
    assert SECRET not in str(refused.value) and "***" in str(refused.value)

    missing = StubJudge(lambda prompt, body, call: error(404, "The model `judge` does not exist"))
    with missing.serve() as url, pytest.raises(TrainingError, match=r"judge_model: .* has no model 'judge'"):
        judge_single(_spec(url), predictions, tmp_path / "o2", lambda d, t: None)

    monkeypatch.setattr("tunery.evaluation.judge_client.MAX_RETRIES", 0)  # no backoff waits for a closed port
    with pytest.raises(TrainingError, match="judge_base_url: cannot reach the judge"):
        judge_single(_spec(f"http://127.0.0.1:{free_port()}/v1"), predictions, tmp_path / "o3", lambda d, t: None)

    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(TrainingError, match=f"judge_api_key_env: the environment variable {KEY_ENV} .* not set"):
        judge_single(_spec("http://127.0.0.1:1/v1"), predictions, tmp_path / "o4", lambda d, t: None)
    with pytest.raises(TrainingError, match=r"judge_rubric: a single rubric needs the placeholders \{prediction\}"):
        judge_single(_spec("http://x/v1", judge_rubric="Rate {prompt}"), predictions, tmp_path, lambda d, t: None)
    with pytest.raises(TrainingError, match="judge_model: is required"):
        spec = JobSpec.from_mapping({"model_name_or_path": "unused", "do_train": False})
        judge_single(spec, predictions, tmp_path, lambda d, t: None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "predict": "a"}\n{"prompt": "q"}\n', encoding="utf-8")
    with pytest.raises(TrainingError, match=r"bad\.jsonl, row 2: expected an object with a 'predict' text"):
        judge_single(_spec("http://x/v1"), bad, tmp_path, lambda d, t: None)
    for folder in ("o1", "o2", "o3", "o4"):
        assert not (tmp_path / folder / SINGLE_FILE).exists()
    _assert_no_secret(tmp_path)


# ---- pairwise ----------------------------------------------------------------------------------


def _pairwise_handler(prompt: str, body: dict[str, Any], call: int) -> tuple[int, dict[str, Any]]:
    shown_a = prompt.split("[Answer A]\n")[1].split("\n\n[Answer B]")[0]
    shown_b = prompt.split("[Answer B]\n")[1].split("\n\nDecide")[0]
    question = prompt.split("[Question]\n")[1].split("\n\n")[0]
    if question.startswith("fair"):  # prefers the good answer wherever it is shown
        return completion("Winner: A\nReason: A is right" if "good" in shown_a else "Winner: B\nReason: B is right")
    if question.startswith("biased"):  # always the first one shown
        return completion('{"winner": "A", "reason": "first is best"}')
    if question.startswith("even"):
        return completion("[[C]]" if "x" in shown_b else "Verdict: tie")
    return completion("Both answers are interesting.")


PAIRS = [  # (question, answer a, answer b, expected winner)
    ("fair 0", "good answer", "bad answer", "a"),
    ("fair 1", "bad answer", "good answer", "b"),
    ("fair 2", "a good one", "a poor one", "a"),
    ("biased 3", "one answer", "another answer", "tie"),
    ("even 4", "x1", "x2", "tie"),
    ("fair 5", "same answer", "same answer ", "tie"),  # identical after trimming: not sent to the judge
    ("broken 6", "first", "second", None),
]


def test_pairwise_swaps_and_counts(tmp_path: Path) -> None:
    stub = StubJudge(_pairwise_handler)
    rows_a = [{"index": i, "prompt": q, "label": "ref", "predict": a} for i, (q, a, _, _) in enumerate(PAIRS)]
    rows_b = [{"index": i, "prompt": q, "label": "ref", "predict": b} for i, (q, _, b, _) in enumerate(PAIRS)]
    file_a, file_b = _write(tmp_path / "a.jsonl", rows_a), _write(tmp_path / "b.jsonl", rows_b)
    seen: list[tuple[int, int]] = []
    with stub.serve() as url:
        outcome = judge_pairwise(
            _spec(url, judge_mode="pairwise", judge_predictions=[str(file_a), str(file_b)]),
            file_a, file_b, tmp_path / "out", lambda d, t: seen.append((d, t)),
        )  # fmt: skip
    judged = _rows(tmp_path / "out" / PAIRWISE_FILE)
    assert [row["winner"] for row in judged[:-1]] == [winner for *_, winner in PAIRS[:-1]]
    assert judged[-1]["judge_failed"] and judged[-1]["scores"] == {}
    assert [(row["predict"], row["predict_b"]) for row in judged] == [(a, b) for _, a, b, _ in PAIRS]
    assert judged[0]["verdicts"] == ["a", "a"] and judged[3]["verdicts"] == ["a", "b"]
    assert judged[0]["judge_reason"] == "A first: A is right | B first: B is right"
    assert judged[5]["judge_reason"] == "identical answers"
    assert outcome.name == "judge_pairwise" and outcome.samples == len(PAIRS)
    assert outcome.metrics == pytest.approx(
        {"win_rate_a": 100 * 2 / 6, "win_rate_b": 100 / 6, "tie_rate": 50.0, "judge_failures": 1.0}, abs=1e-3
    )
    assert seen[-1] == (2 * len(PAIRS), 2 * len(PAIRS))
    # every judged pair was shown both ways; the identical pair never
    assert len(stub.requests) == 2 * (len(PAIRS) - 1)
    for question, a, b, _ in PAIRS[:5]:
        shown = [r["body"]["messages"][0]["content"] for r in stub.requests if f"[Question]\n{question}\n" in
                 r["body"]["messages"][0]["content"]]  # fmt: skip
        assert sorted(p.index(a) < p.index(b) for p in shown) == [False, True]
    _assert_no_secret(tmp_path, repr(outcome))


def test_pairwise_needs_the_same_prompts(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "label": "", "predict": "p"} for i in range(3)]
    file_a = _write(tmp_path / "a.jsonl", rows)
    other = _write(tmp_path / "b.jsonl", [rows[0], rows[1], {**rows[2], "prompt": "changed"}])
    short = _write(tmp_path / "c.jsonl", rows[:2])
    spec = _spec("http://127.0.0.1:1/v1", judge_mode="pairwise", judge_predictions=[str(file_a), str(other)])
    with pytest.raises(TrainingError, match=r"b\.jsonl, row 3: its prompt differs from .*a\.jsonl, row 3"):
        judge_pairwise(spec, file_a, other, tmp_path, lambda d, t: None)
    with pytest.raises(TrainingError, match=r"c\.jsonl has 2 predictions, .*a\.jsonl has 3"):
        judge_pairwise(spec, file_a, short, tmp_path, lambda d, t: None)
    with pytest.raises(TrainingError, match=r"judge_rubric: a pairwise rubric needs the placeholders \{prediction_a\}"):
        judge_pairwise(spec.model_copy(update={"evaluation": spec.evaluation.model_copy(
            update={"judge_rubric": "{prediction}"})}), file_a, file_a, tmp_path, lambda d, t: None)  # fmt: skip


# ---- reading replies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Score: 8", 8.0), ("**Score:** 6\nReason: x", 6.0), ("score = 7.5", 7.5), ("9", 9.0), ("3/10\nmeh", 3.0),
        ('```json\n{"score": "5", "reason": "r"}\n```', 5.0), ("评分：6", 6.0), ("I would give it 8/10.", 8.0),
        ("Score: 0", None), ("Score: 10", 10.0), ("", None), ("The answer is fine", None),
        ("<think>\nScore: 2 at first, but\n</think>\n\nScore: 8", 8.0), ("<think>Score: 3</think>", None),
    ],
)  # fmt: skip
def test_parse_score(reply: str, score: float | None) -> None:
    assert parse_score(reply).score == score


def test_weighting_needs_matching_tokens() -> None:
    top = {" 3": 0.5, " 5": 0.5}
    assert parse_score("Score: 3", tokens([("Score:", None), (" 3", top)])).score == 4.0
    assert parse_score("Score: 3", tokens([("Score:", None), (" 3", top)])).weighted
    assert parse_score("Score: 3", tokens([("Score", None), (" 3", top)])).score == 3.0  # tokens do not spell it
    assert parse_score("Score: 3", tokens([("Score:", None), (" 3", {" 3": 1.0, "x": 0.0001})])).score == 3.0
    thought = tokens([("<think>", None), ("Score: 9?", None), ("</think>", None), ("Score:", None), (" 3", top)])
    assert parse_score("<think>Score: 9?</think>Score: 3", thought).score == 4.0


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Winner: A", "A"), ("winner: b\nReason: x", "B"), ('{"winner": "tie"}', "tie"), ("[[B]]", "B"),
        ("[[C]]", "tie"), ("B", "B"), ("**Verdict:** Tie", "tie"), ("I cannot decide", None), ("", None),
        ("<think>Winner: A?</think>Winner: B", "B"),
    ],
)  # fmt: skip
def test_parse_verdict(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply)[0] == verdict
