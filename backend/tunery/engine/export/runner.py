"""One export job, top to bottom: checks, merge, the merged model, reference tokens, each format, the Ollama
Modelfile, the model card, the hub push.

``run_export`` never raises: every outcome is an event and a process exit code, as for training. Events:
``started`` (stage ``export``, total_steps = phases), a ``log`` as each phase starts, ``progress`` (step =
phases done) as it ends, one ``artifact`` per complete output, then ``finished`` (``output_dir`` =
export_dir; metrics: seconds, peak RSS and every artifact's checks as ``<name>/<check>``) or ``failed`` with
a stable code. A SIGTERM stops the job between phases (writers also poll ``ctx.cancel``): temporary files are
removed and ``finished`` has outcome ``cancelled`` (exit code 3); complete artifacts stay.

Everything a job could fail on late (a writer's package or GPU, the hub's token and reachability, where the
files go) is checked before any work.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tunery.engine.events import EventSink
from tunery.engine.export import hub, writers
from tunery.engine.export.job import export_dir_problem
from tunery.engine.export.merge import (
    MergedModel,
    copy_side_files,
    load_merged,
    load_tokenizer_and_template,
    merge_device,
    remove_weight_files,
    save_merged,
    to_legacy_format,
)
from tunery.engine.export.types import ExportContext, WrittenArtifact
from tunery.engine.export.verify import greedy_tokens, verify_prompts
from tunery.engine.train.cancel import Cancelled, CancelRequest
from tunery.engine.train.errors import classify, exit_code_for, invalid_spec
from tunery.spec import JobSpec
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_SUCCEEDED,
    ArtifactEvent,
    FailedEvent,
    FinishedEvent,
    LogEvent,
    ProgressEvent,
    StartedEvent,
)

logger = logging.getLogger(__name__)

#: the merged model's folder while it is written (and for the writers when hf is not exported)
SCRATCH_DIR = ".merged-tmp"
#: the legacy (.bin) copy of the merged model while it is written
LEGACY_DIR = ".tmp-hf"
RESULTS_FILE = "export_results.json"


def run_export(
    spec: JobSpec, sink: EventSink, *, card_context: dict[str, Any] | None = None, cancel: CancelRequest | None = None
) -> int:
    """Run the export job; report through ``sink``; return the process exit code (``tunery.spec.events.EXIT_*``)."""
    with cancel or CancelRequest() as request:
        run = ExportRun(spec, sink, request, card_context)
        try:
            run.preflight()
            run.execute()
            outcome, code = "succeeded", EXIT_SUCCEEDED
        except Cancelled:
            outcome, code = "cancelled", EXIT_CANCELLED
        except Exception as exc:
            run.cleanup()
            error, message = classify(exc)
            logger.error("export failed (%s): %s", error, message, exc_info=error == "internal")
            sink.emit(FailedEvent, code=error, message=message)
            return exit_code_for(error)
        run.cleanup()
        run.finish(outcome)
        return code


class ExportRun:
    def __init__(
        self, spec: JobSpec, sink: EventSink, cancel: CancelRequest, card_context: dict[str, Any] | None
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.cancel = cancel
        self.card_context = card_context
        self.export_dir = Path(spec.export.export_dir or ".")
        self.scratch = self.export_dir / SCRATCH_DIR
        self.artifacts: list[WrittenArtifact] = []
        self.merged: MergedModel | None = None
        self.ctx = ExportContext(spec, self.scratch, self.export_dir, cancel, self.log)
        self.started_at = time.monotonic()
        self.done = 0
        self.hub_url: str | None = None
        self.touched = False  # export_dir is only cleaned once this job has written there

    # ---- reporting ------------------------------------------------------------------------------------

    def log(self, message: str, level: str = "info") -> None:
        self.sink.emit(LogEvent, level=level, message=message)

    def publish(self, artifact: WrittenArtifact) -> None:
        self.artifacts.append(artifact)
        self.sink.emit(ArtifactEvent, **asdict(artifact))

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started_at, 3)

    # ---- the job --------------------------------------------------------------------------------------

    def preflight(self) -> None:
        export, model = self.spec.export, self.spec.model
        missing = export_dir_problem(export.export_dir)
        if missing is not None:
            raise invalid_spec(missing.field, missing.message)
        target = self.export_dir.resolve()
        for key, source in [("model_name_or_path", model.model_name_or_path)] + [
            ("adapter_name_or_path", path) for path in model.adapter_name_or_path or []
        ]:
            if Path(source).exists() and Path(source).resolve() == target:
                raise invalid_spec("export_dir", f"is the folder of {key} ({source}); export to another folder")
        writers.preflight(self.spec)
        hub.preflight(export)

    def phases(self) -> list[tuple[str, Callable[[], None]]]:
        export = self.spec.export
        steps: list[tuple[str, Callable[[], None]]] = [
            ("load and merge", self.merge),
            ("save the merged model", self.save),
        ]
        if export.export_verify:
            steps.append(("reference tokens of the merged model", self.reference))
        for name in writers.writers_for(self.spec):
            steps.append((f"write {name}", functools.partial(self.write, name)))
        if "gguf" in export.export_formats and export.export_ollama:
            steps.append(("write the Ollama Modelfile", self.modelfile))
        steps.append(("write the model card", self.card))
        if export.export_hub_model_id:
            steps.append((f"push to {hub.hub_title(export)}", self.push))
        return steps

    def execute(self) -> None:
        from tunery.engine.train.model import describe_device

        phases = self.phases()
        device = merge_device(self.spec)
        adapters = self.spec.model.adapter_name_or_path
        self.sink.emit(
            StartedEvent,
            stage="export",
            finetuning_type="lora" if adapters else self.spec.method.finetuning_type,
            total_steps=len(phases),
            num_train_examples=None,
            num_eval_examples=None,
            trainable_params=0,
            total_params=0,
            device=describe_device() if device.type == "cuda" else "cpu",
        )
        self.touched = True
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self.remove_temporaries()  # of an earlier attempt that was killed
        for index, (title, step) in enumerate(phases, start=1):
            self.cancel.raise_if_requested()
            self.log(f"[{index}/{len(phases)}] {title}")
            step()
            self.done = index
            self.sink.emit(
                ProgressEvent, step=index, total_steps=len(phases), epoch=0.0, elapsed_seconds=self.elapsed()
            )

    def merge(self) -> None:
        tokenizer, template = load_tokenizer_and_template(self.spec)
        if template is None:
            self.log("no chat template (the spec names none and the tokenizer has none)", "warning")
        if self.spec.export.export_verify:
            self.ctx.verify_prompts = verify_prompts(tokenizer, template)
        self.merged = load_merged(self.spec, tokenizer, template, self.ctx.verify_prompts, self.cancel, self.log)

    def reference(self) -> None:
        """The merged model's greedy tokens, computed in float32 from the saved weights: the runtimes the writers
        check in (llama.cpp F32/F16, onnxruntime float32) compute in float32 too."""
        assert self.merged is not None
        model: Any = self.merged.model
        model.float()  # in place; exact for weights saved in half precision
        self.ctx.verify_reference = greedy_tokens(model, self.ctx.verify_prompts)
        self.merged = None
        gc.collect()

    def save(self) -> None:
        assert self.merged is not None
        shutil.rmtree(self.scratch, ignore_errors=True)
        save_merged(self.merged, self.spec, self.scratch)
        diff = self.merged.max_logit_diff
        if not self.spec.export.export_verify:
            self.merged = None  # the writers load the saved files; free the weights first
            gc.collect()
        self.cancel.raise_if_requested()
        if "hf" not in self.spec.export.export_formats:
            # config, tokenizer and chat template still go to export_dir: GGUF files are served with them
            copy_side_files(self.scratch, self.export_dir)
            return
        source = self.scratch
        if self.spec.export.export_legacy_format:
            source = self.export_dir / LEGACY_DIR
            shutil.rmtree(source, ignore_errors=True)
            to_legacy_format(self.scratch, source)
        remove_weight_files(self.export_dir)
        size = 0
        for path in sorted(source.iterdir()):
            size += path.stat().st_size
            path.replace(self.export_dir / path.name)
        if source == self.scratch:
            self.scratch.rmdir()
            self.ctx.merged_dir = self.export_dir
        else:
            source.rmdir()
        checks = {} if diff is None else {"max_logit_diff": diff}
        self.publish(WrittenArtifact("model", "hf", ".", size, serve_engine="hf", checks=checks))

    def write(self, name: str) -> None:
        for artifact in writers.load_writer(name)(self.ctx):
            self.publish(artifact)

    def modelfile(self) -> None:
        from tunery.engine.export.modelfile import write_modelfile

        written = write_modelfile(self.ctx, [item for item in self.artifacts if item.format == "gguf"])
        if written is not None:
            self.publish(written)

    def card(self) -> None:
        from tunery.engine.export.card import write_card

        self.publish(write_card(self.ctx, list(self.artifacts), self.card_context))

    def push(self) -> None:
        self.hub_url = hub.push(self.spec.export, self.export_dir)
        self.log(f"pushed to {self.hub_url}")

    # ---- the end ----------------------------------------------------------------------------------------

    def results(self, outcome: str) -> dict[str, Any]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        results: dict[str, Any] = {
            "outcome": outcome,
            "artifacts": [asdict(artifact) for artifact in self.artifacts],
            "seconds": self.elapsed(),
            # Linux reports KiB; the largest single process (a child exec'ed from this one inherits its
            # high-water mark, so a sum would count the parent twice)
            "peak_rss_bytes": max(own.ru_maxrss, children.ru_maxrss) * 1024,
        }
        if self.hub_url:
            results["hub_url"] = self.hub_url
        return results

    def finish(self, outcome: str) -> None:
        results = self.results(outcome)
        if self.export_dir.is_dir():
            (self.export_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2), encoding="utf-8")
        metrics: dict[str, Any] = {"seconds": results["seconds"], "peak_rss_bytes": results["peak_rss_bytes"]}
        for artifact in self.artifacts:
            metrics.update({f"{artifact.name}/{key}": value for key, value in artifact.checks.items()})
        self.sink.emit(FinishedEvent, outcome=outcome, step=self.done, metrics=metrics, output_dir=str(self.export_dir))

    def cleanup(self) -> None:
        self.merged = None
        if self.touched and self.export_dir.is_dir():
            self.remove_temporaries()

    def remove_temporaries(self) -> None:
        """The scratch model, ``.tmp-*`` files and folders, and writers' unfinished ``.partial`` files."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        for path in [*self.export_dir.glob(".tmp-*"), *self.export_dir.rglob("*.partial")]:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
