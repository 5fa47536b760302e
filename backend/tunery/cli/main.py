"""``tunery`` command line: train, eval, export, validate, preview, env, quickstart."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tunery.engine.data.api import DataError
from tunery.spec import JobSpec, SpecError, load_spec
from tunery.spec.events import EXIT_FAILED, EXIT_INVALID, EXIT_SUCCEEDED, Event

if TYPE_CHECKING:
    from tunery.engine.events import EventSink


def _add_job_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="job file (YAML or JSON; LLaMA-Factory keys accepted)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override keys of the job file")


def _add_events_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events",
        metavar="PATH",
        help="write the JSON-lines event stream to PATH ('-' = stdout; the progress bar is then off)",
    )


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    _add_job_args(parser)
    _add_events_arg(parser)
    parser.add_argument("--cache-dir", type=Path, help="tokenized cache folder (default ~/.cache/tunery)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunery", description="Fine-tune open LLMs.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a job file (do_predict: then predict)")
    _add_run_args(train)
    evaluate = commands.add_parser(
        "eval", help="evaluate a model: predictions with BLEU/ROUGE, a benchmark (task) or an LLM judge"
    )
    _add_run_args(evaluate)
    export = commands.add_parser(
        "export", help="merge adapters into the base; write the merged model, GGUF, ONNX, GPTQ, Modelfile, card"
    )
    _add_job_args(export)
    _add_events_arg(export)
    export.add_argument(
        "--card-context",
        type=Path,
        metavar="FILE",
        help="JSON the model card includes (source job, datasets with versions and hashes, metrics, eval results)",
    )

    validate = commands.add_parser("validate", help="check the job spec and every data row; no training")
    _add_job_args(validate)
    validate.add_argument("--max-errors", type=int, default=50, help="row errors to print (all are counted)")

    preview = commands.add_parser("preview", help="show tokenized examples with trained/masked spans")
    _add_job_args(preview)
    preview.add_argument("--n", type=int, default=3, help="number of examples")
    preview.add_argument("--format", choices=["text", "jsonl"], default="text")

    commands.add_parser("env", help="print versions and devices")

    quick = commands.add_parser("quickstart", help="train a LoRA on the demo data with a local model")
    quick.add_argument("--home", type=Path, default=Path(".tunery"), help="data folder (default ./.tunery)")
    quick.add_argument("--steps", type=int, default=30)

    from tunery.server import cli as service_cli
    from tunery.server import cli_processes
    from tunery.serving import cli as serving_cli

    service_cli.register(commands)
    cli_processes.register(commands)
    serving_cli.register(commands)
    return parser


def _load(args: argparse.Namespace) -> JobSpec:
    return load_spec(args.job, list(args.overrides))


@contextlib.contextmanager
def _event_sink(args: argparse.Namespace, printer: Callable[[Event], None] | None) -> Iterator[EventSink]:
    """The run's event sink: JSON lines to ``--events`` (a file or stdout) and, unless on stdout, a progress bar."""
    from tunery.engine.events import EventSink

    stream: TextIO | None = None
    listeners: list[Callable[[Event], None]] = []
    if args.events == "-":
        stream = sys.stdout
    elif args.events:
        Path(args.events).parent.mkdir(parents=True, exist_ok=True)
        stream = open(args.events, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    if args.events != "-" and printer is not None:
        listeners.append(printer)
    try:
        yield EventSink(stream, keep=False, listeners=listeners)
    finally:
        if stream is not None and stream is not sys.stdout:
            stream.close()


def cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.cli.progress import ProgressPrinter

    spec = _load(args)
    with _event_sink(args, ProgressPrinter(sys.stderr)) as sink:
        if spec.training.do_predict:
            from tunery.evaluation.train_predict import train_then_predict

            return train_then_predict(spec, sink, cache_dir=args.cache_dir)
        from tunery.engine.train.runner import run_training

        return run_training(spec, sink, cache_dir=args.cache_dir)


def cmd_eval(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.evaluation.job import load_eval_spec

    spec = load_eval_spec(args.job, list(args.overrides))
    with _event_sink(args, _eval_printer()) as sink:
        from tunery.evaluation.runner import run_evaluation

        return run_evaluation(spec, sink, cache_dir=args.cache_dir)


def _eval_printer() -> Callable[[Event], None]:
    """The progress bar; an eval job's total grows when a phase starts (the judge after the predictions)."""
    from tunery.cli.progress import ProgressPrinter
    from tunery.spec.events import ProgressEvent

    class EvalPrinter(ProgressPrinter):
        def __call__(self, event: Event) -> None:
            if isinstance(event, ProgressEvent) and self._bar is not None:
                self._bar.total = event.total_steps
            super().__call__(event)

    return EvalPrinter(sys.stderr)


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.engine.export.job import load_export_spec

    spec = load_export_spec(args.job, list(args.overrides))
    card_context = _read_card_context(args.card_context)
    with _event_sink(args, _export_printer()) as sink:
        from tunery.engine.export.runner import run_export

        return run_export(spec, sink, card_context=card_context)


def _read_card_context(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from tunery.spec.errors import SpecProblem

    try:
        context = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError([SpecProblem("--card-context", f"cannot read {path}: {exc}")]) from exc
    if not isinstance(context, dict):
        raise SpecError([SpecProblem("--card-context", f"{path} must hold a JSON object")])
    return context


def _export_printer() -> Callable[[Event], None]:
    """The progress bar over the export's phases, with each phase and written file printed above it."""
    from tqdm import tqdm

    from tunery.cli.progress import ProgressPrinter
    from tunery.spec.events import ArtifactEvent, LogEvent, StartedEvent

    class ExportPrinter(ProgressPrinter):
        def __call__(self, event: Event) -> None:
            if isinstance(event, StartedEvent):
                self._write(f"exporting on {event.device}: {event.total_steps} phases")
                self._bar = tqdm(total=event.total_steps, file=self._stream, unit="phase", dynamic_ncols=True)
            elif isinstance(event, LogEvent) and event.level == "info":
                self._write(event.message)
            elif isinstance(event, ArtifactEvent):
                checks = ", ".join(f"{k}={v:.4g}" for k, v in event.checks.items())
                self._write(f"wrote {event.name} ({event.size_bytes:,} bytes): {event.path}  {checks}".rstrip())
            else:
                super().__call__(event)

    return ExportPrinter(sys.stderr)


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.engine.data.load import validate_datasets

    spec = _load(args)
    out.write(f"spec: ok ({args.job})\n")
    # only the errors shown are kept (the count stays exact): a file of a million bad rows stays small
    report = validate_datasets(spec.data, spec.method.stage, max_errors=args.max_errors)
    for error in report.errors[: args.max_errors]:
        out.write(f"  {error}\n")
    hidden = report.error_count - args.max_errors
    if hidden > 0:
        out.write(f"  ... and {hidden} more row errors\n")
    for warning in report.warnings:
        out.write(f"warning: {warning}\n")
    out.write(f"data: {report.rows_valid}/{report.rows_total} rows valid, {report.error_count} errors\n")
    return EXIT_SUCCEEDED if report.rows_valid > 0 and not report.error_count else EXIT_INVALID


def cmd_preview(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.engine.tokenize.preview import preview
    from tunery.engine.train.data import load_template
    from tunery.engine.train.model import load_tokenizer

    spec = _load(args)
    tokenizer = load_tokenizer(spec.model)
    template = load_template(spec, tokenizer)
    out.write(preview(spec, args.n, tokenizer, template, format=args.format, color=out.isatty()))
    return EXIT_SUCCEEDED


def cmd_env(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.engine.environment import describe_environment

    for key, value in describe_environment().items():
        out.write(f"{key:<22} {value}\n")
    return EXIT_SUCCEEDED


def cmd_quickstart(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.cli.quickstart import quickstart

    return quickstart(args.home, steps=args.steps, out=out)


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "export": cmd_export,
    "validate": cmd_validate,
    "preview": cmd_preview,
    "env": cmd_env,
    "quickstart": cmd_quickstart,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow options (``tunery preview job.yaml --n 2 cutoff_len=64``)
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        code: int = handler(args, sys.stdout)
        return code
    except SpecError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INVALID
    except DataError as exc:
        sys.stderr.write(f"error: invalid data\n{exc}\n")
        return EXIT_INVALID
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
