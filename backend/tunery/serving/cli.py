"""``tunery chat job.yaml`` (terminal chat, streaming) and ``tunery api job.yaml`` (one model behind an
OpenAI-compatible API). The job file names ``model_name_or_path``, optionally ``adapter_name_or_path``,
``template``, ``infer_backend`` (huggingface | vllm), ``infer_dtype`` and generation defaults (LLaMA-Factory
keys: do_sample, temperature, top_p, top_k, max_new_tokens, repetition_penalty; num_beams must be 1)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tunery.spec import JobSpec, load_spec
from tunery.spec.events import EXIT_INVALID, EXIT_SUCCEEDED

if TYPE_CHECKING:
    from tunery.serving.config import ServingConfig
    from tunery.serving.standalone import ServedModel

HELP_LINE = "Type a message; 'clear' starts over, 'exit' quits."


def _job_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="job file with model_name_or_path (adapter, template, infer_backend)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override keys of the job file")
    parser.add_argument(
        "--engine",
        choices=["hf", "vllm", "gguf"],
        help="inference engine (default: the job's infer_backend; gguf with gguf_file)",
    )


def register(subparsers: Any) -> None:
    chat = subparsers.add_parser("chat", help="chat with a model in the terminal (streaming)")
    _job_args(chat)
    chat.add_argument("--system", help="system prompt (default: the template's)")
    chat.set_defaults(handler=cmd_chat)

    api = subparsers.add_parser("api", help="serve one model with an OpenAI-compatible API")
    _job_args(api)
    api.add_argument("--host", default=os.environ.get("API_HOST", "0.0.0.0"), help="default $API_HOST or 0.0.0.0")
    api.add_argument(
        "--port", type=int, default=int(os.environ.get("API_PORT", "8000")), help="default $API_PORT or 8000"
    )
    api.add_argument("--api-key", default=os.environ.get("API_KEY"), help="required bearer key (default $API_KEY)")
    api.add_argument("--model-name", default=os.environ.get("API_MODEL_NAME"), help="model id to report")
    api.set_defaults(handler=cmd_api)


def _spec(args: argparse.Namespace) -> JobSpec:
    return load_spec(args.job, ["do_train=false", *args.overrides])  # serving needs no dataset


def engine_config(model: ServedModel) -> ServingConfig:
    """Serving settings of the environment for one model served until the command ends: engines never idle
    out, and the job's ``infer_dtype`` (unless auto) chooses the weights dtype over ``TUNERY_SERVE_DTYPE``."""
    from tunery.serving.config import ServingConfig

    config = ServingConfig.from_env()
    dtype = model.dtype if model.dtype != "auto" else config.dtype
    return ServingConfig(**{**config.__dict__, "idle_seconds": float("inf"), "dtype": dtype})


def cmd_api(args: argparse.Namespace, out: TextIO) -> int:
    import uvicorn

    from tunery.serving.manager import EngineManager
    from tunery.serving.standalone import create_standalone_app, served_model

    try:
        model = served_model(_spec(args), args.engine, args.model_name)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INVALID
    app = create_standalone_app(model, EngineManager(engine_config(model)), args.api_key)
    out.write(f"serving {model.target.model_id} on http://{args.host}:{args.port}/v1 ({model.engine} engine)\n")
    out.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return EXIT_SUCCEEDED


def cmd_chat(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.serving.standalone import served_model

    try:
        model = served_model(_spec(args), args.engine)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INVALID
    return asyncio.run(_chat_loop(model, args.system, sys.stdin, out))


async def _chat_loop(model: Any, system: str | None, source: TextIO, out: TextIO) -> int:
    from tunery.serving.chat import prepare_chat
    from tunery.serving.errors import OpenAIError
    from tunery.serving.manager import EngineManager
    from tunery.serving.schemas import ChatCompletionRequest

    manager = EngineManager(engine_config(model))
    history: list[dict[str, str]] = []
    try:
        async with manager.lease(model.target, model.engine) as lease:
            out.write(f"{model.target.model_id} ({lease.engine.kind} engine). {HELP_LINE}\n")
            while True:
                out.write("\nUser: ")
                out.flush()
                line = source.readline()
                if not line:  # end of input
                    break
                query = line.strip()
                if query == "exit":
                    break
                if query == "clear":
                    history = []
                    out.write("History has been removed.\n")
                    continue
                if not query:
                    continue
                system_messages = [{"role": "system", "content": system}] if system else []
                messages = [*system_messages, *history, {"role": "user", "content": query}]
                request = ChatCompletionRequest.model_validate({"model": model.target.model_id, "messages": messages})
                out.write("Assistant: ")
                answer = []
                try:
                    prepared = prepare_chat(lease, request, model.target.model_id, model.defaults)
                    async for _index, text, _reason in prepared.runs[0].events():
                        out.write(text)
                        out.flush()
                        answer.append(text)
                except OpenAIError as exc:
                    out.write(f"\n[error: {exc.message}]")
                    continue
                out.write("\n")
                history += [{"role": "user", "content": query}, {"role": "assistant", "content": "".join(answer)}]
    finally:
        await manager.shutdown()
    return EXIT_SUCCEEDED


def main(argv: list[str] | None = None) -> int:
    """``python -m tunery.serving.cli chat|api job.yaml`` (the same commands as ``tunery chat|api``)."""
    from tunery.spec import SpecError

    parser = argparse.ArgumentParser(prog="tunery")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args, sys.stdout)
    except SpecError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INVALID
    except KeyboardInterrupt:
        return EXIT_SUCCEEDED
    return code


if __name__ == "__main__":
    sys.exit(main())
