"""One eval job, top to bottom: a prediction run (and the judge of its answers), a benchmark, or the judge
of existing predictions; every outcome is an event and a process exit code, as for training.

Events: ``started`` (stage ``eval``) once the work is counted, ``progress`` (step = units done: rows,
questions, judge calls; over all phases of the job, each phase after the first assumed as large as the
first until it starts), one ``eval_result`` per evaluation, then ``finished`` with every figure flattened
as ``"<evaluation name>/<metric>"`` — or ``failed`` with a stable code (``tunery.engine.train.errors``). A
SIGTERM stops the job at its next progress report: ``finished`` with outcome ``cancelled`` (the results
of evaluations already done included) and exit code 3.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunery.engine.events import EventSink
from tunery.engine.train.cancel import Cancelled, CancelRequest
from tunery.engine.train.errors import classify, exit_code_for
from tunery.evaluation.outcome import EvalOutcome
from tunery.spec import JobSpec
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_SUCCEEDED,
    EvalResultEvent,
    FailedEvent,
    FinishedEvent,
    LogEvent,
    ProgressEvent,
    StartedEvent,
)

logger = logging.getLogger(__name__)
#: seconds between two progress events (the last one of a phase is always sent)
PROGRESS_INTERVAL = 1.0


def job_kind(spec: JobSpec) -> str:
    """What an eval job does: judge (existing predictions), benchmark (task) or predict (eval_dataset)."""
    if spec.evaluation.judge_predictions:
        return "judge"
    if spec.evaluation.task:
        return "benchmark"
    return "predict"


class Reporter:
    """The ``progress(done, total)`` every evaluation calls: cancel checks, started and progress events."""

    def __init__(self, sink: EventSink, spec: JobSpec, cancel: CancelRequest, phases: int = 1) -> None:
        self.sink = sink
        self.spec = spec
        self.cancel = cancel
        self.phases = phases
        self.phase = 0
        self.base = 0  # units of the phases already finished
        self.done = 0
        self.total = 0
        self.started = False
        self._start = time.monotonic()
        self._last = 0.0

    @property
    def step(self) -> int:
        return self.base + self.done

    def next_phase(self) -> None:
        self.base += self.total
        self.done = self.total = 0
        self.phase += 1

    def __call__(self, done: int, total: int) -> None:
        self.cancel.raise_if_requested()
        self.done, self.total = done, total
        self.ensure_started()
        now = time.monotonic()
        if done < total and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        overall = self.base + total * (self.phases - self.phase)
        elapsed = now - self._start
        rate = self.step / elapsed if elapsed > 0 else 0.0
        eta = (overall - self.step) / rate if rate > 0 else None
        self.sink.emit(
            ProgressEvent,
            step=self.step,
            total_steps=overall,
            epoch=0.0,
            elapsed_seconds=round(elapsed, 3),
            eta_seconds=None if eta is None else round(eta, 3),
        )

    def ensure_started(self) -> None:
        if self.started:
            return
        from tunery.engine.train.model import describe_device

        self.started = True
        self.sink.emit(
            StartedEvent,
            stage="eval",
            finetuning_type=self.spec.method.finetuning_type,
            total_steps=self.total * self.phases,
            num_train_examples=None,
            num_eval_examples=self.total,
            trainable_params=0,
            total_params=0,
            device=describe_device(),
        )

    def log(self, level: str, message: str) -> None:
        self.sink.emit(LogEvent, level=level, message=message)


def run_evaluation(spec: JobSpec, sink: EventSink, *, cache_dir: Path | None = None) -> int:
    """Run the eval job; report through ``sink``; return the process exit code (``tunery.spec.events.EXIT_*``)."""
    output_dir = spec.training.output_dir
    results: dict[str, Any] = {}
    with CancelRequest() as cancel:
        kind = job_kind(spec)
        phases = 2 if kind == "predict" and spec.evaluation.judge_model else 1
        reporter = Reporter(sink, spec, cancel, phases)

        def publish(outcome: EvalOutcome) -> None:
            reporter.ensure_started()
            sink.emit(
                EvalResultEvent,
                name=outcome.name,
                kind=outcome.kind,
                metrics=outcome.metrics,
                breakdown=outcome.breakdown,
                samples_file=outcome.samples_file,
                samples=outcome.samples,
            )
            results.update({f"{outcome.name}/{key}": value for key, value in outcome.metrics.items()})

        try:
            cancel.raise_if_requested()
            dispatch(spec, kind, Path(output_dir), reporter, publish, cache_dir)
            sink.emit(FinishedEvent, outcome="succeeded", step=reporter.step, metrics=results, output_dir=output_dir)
            return EXIT_SUCCEEDED
        except Cancelled:
            sink.emit(FinishedEvent, outcome="cancelled", step=reporter.step, metrics=results, output_dir=output_dir)
            return EXIT_CANCELLED
        except Exception as exc:
            code, message = classify(exc)
            logger.error("evaluation failed (%s): %s", code, message, exc_info=code == "internal")
            sink.emit(FailedEvent, code=code, message=message)
            return exit_code_for(code)


def dispatch(
    spec: JobSpec,
    kind: str,
    output_dir: Path,
    reporter: Reporter,
    publish: Callable[[EvalOutcome], None],
    cache_dir: Path | None = None,
) -> None:
    """Run the job's evaluations, handing each outcome to ``publish`` as soon as it is there."""
    from tunery.engine.train.errors import invalid_spec

    evaluation = spec.evaluation
    if kind == "judge":
        from tunery.evaluation import judge

        files = [Path(path) for path in evaluation.judge_predictions or []]
        for path in files:
            if not path.is_file():
                raise invalid_spec("judge_predictions", f"{path} is not a file")
        if evaluation.judge_mode == "pairwise":
            publish(judge.judge_pairwise(spec, files[0], files[1], output_dir, reporter))
        else:
            publish(judge.judge_single(spec, files[0], output_dir, reporter))
        return
    if kind == "benchmark":
        from tunery.evaluation.benchmark import run_benchmark

        publish(run_benchmark(spec, output_dir, reporter))
        return
    from tunery.evaluation.predict import run_predict

    outcomes = run_predict(spec, output_dir, reporter, cache_dir=cache_dir, log=reporter.log)
    for outcome in outcomes:
        publish(outcome)
    if not evaluation.judge_model:
        return
    from tunery.evaluation.judge import judge_single

    several = len(outcomes) > 1
    reporter.phases = 1 + len(outcomes)
    for outcome in outcomes:
        reporter.next_phase()
        assert outcome.samples_file is not None
        folder = output_dir / f"judge_{outcome.name}" if several else output_dir
        judged = judge_single(spec, output_dir / outcome.samples_file, folder, reporter)
        if several:
            judged.name = f"{judged.name}:{outcome.name}"
            if judged.samples_file is not None:
                judged.samples_file = f"{folder.name}/{judged.samples_file}"
        publish(judged)
