"""Helpers of the serving tests: the app with the serving routers, a uvicorn server in a thread, LoRA
adapters with random weights, registered models and finished fine-tune jobs made directly in the DB."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from tunery.server.api.app import create_app
from tunery.server.api.routes.openai_routes import OPENAI_ROUTERS
from tunery.server.config import Settings
from tunery.server.db.models import Job, JobStatus, RegisteredModel
from tunery.server.db.session import Database


def serving_app(settings: Settings) -> FastAPI:
    """create_app with the serving routers included, as the lead wires them: before the dashboard's
    catch-all GET route, which must stay last."""
    app = create_app(settings)
    for router in OPENAI_ROUTERS:
        app.include_router(router)
    routes = app.router.routes
    catch_all = [route for route in routes if getattr(route, "path", None) == "/{path:path}"]
    routes[:] = [route for route in routes if route not in catch_all] + catch_all
    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_server(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def make_adapter(base: Path, folder: Path, seed: int, rank: int = 8) -> Path:
    """A LoRA adapter of ``base`` with random (non-zero) weights, so it changes the model's answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (folder / "adapter_config.json").exists():
        return folder
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    return folder


def register_model(database: Database, project_id: str | None, name: str, path: Path, template: str = "llama3") -> str:
    with database.session() as session:
        model = RegisteredModel(project_id=project_id, name=name, path_or_hub_id=str(path), template=template)
        session.add(model)
        session.commit()
        return model.id


def finished_job(
    database: Database, settings: Settings, project_id: str, model_id: str, base: Path, adapter: Path
) -> str:
    """A succeeded LoRA job whose output folder holds ``adapter`` (as a worker leaves it)."""
    import shutil

    from tests.server.worker_support import tiny_spec
    from tunery.server.db.base import new_id, utcnow

    job_id = new_id()
    output = settings.storage_root / "jobs" / job_id / "output"
    shutil.copytree(adapter, output)
    spec: dict[str, Any] = tiny_spec(base)
    with database.session() as session:
        job = Job(
            id=job_id,
            project_id=project_id,
            base_model_id=model_id,
            spec=spec,
            status=JobStatus.SUCCEEDED,
            output_dir=f"jobs/{job_id}/output",
            finished_at=utcnow(),
        )
        session.add(job)
        session.commit()
    return job_id


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_QUESTION = "What is the weather in Paris?"
WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


def tool_calling_model(base: Path, folder: Path, steps: int = 150) -> Path:
    """A copy of the tiny model trained (all weights, in-process) until its greedy answer to
    WEATHER_QUESTION with WEATHER_TOOL is the llama3 tool call of WEATHER_CALL: a model that really calls tools."""
    import json
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunery.engine.data.types import Message, Role
    from tunery.engine.templates import get_template

    if (folder / "done").exists():
        return folder
    shutil.copytree(base, folder, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    template = get_template("llama3", tokenizer)
    turns = [Message(Role.USER, WEATHER_QUESTION), Message(Role.FUNCTION, json.dumps(WEATHER_CALL))]
    ((prompt, answer),) = template.render_turns(turns, None, json.dumps([WEATHER_TOOL]))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = torch.tensor([prompt_ids + answer_ids])
    labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
    model.train()
    for _ in range(steps):
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.eval()
        with torch.inference_mode():
            greedy = model.generate(torch.tensor([prompt_ids]), max_new_tokens=len(answer_ids), do_sample=False)
        model.train()
        if greedy[0, len(prompt_ids) :].tolist() == answer_ids:
            break
    else:
        raise RuntimeError(f"the tiny model did not learn the tool call in {steps} steps")
    model.save_pretrained(folder)
    (folder / "done").write_text("ok")
    return folder
