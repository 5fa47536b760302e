"""The real ``openai`` SDK runs a DPO fine-tune end to end against a running Tunery (uvicorn, PostgreSQL,
Redis, a real `tunery worker`): upload OpenAI preference JSONL, create a job with method dpo, follow it to
succeeded, read its events and checkpoints, chat with the fine-tuned model. The trained adapter must prefer
the chosen answers: its log-probability margin (chosen minus rejected) grows over the base model's."""

from __future__ import annotations

import json
from pathlib import Path

from openai import OpenAI

from tests.server.factories import Factory
from tests.server.worker_support import Stack
from tests.serving.support import register_model, running_server, serving_app
from tests.serving.test_openai_sdk import stack, wait_finished
from tunery.server.db.models import Job
from tunery.serving.config import ServingConfig
from tunery.serving.manager import EngineManager

__all__ = ["stack"]

PAIRS = [
    ("Say hello.", "Hello there!", "Go away."),
    ("Greet me.", "Hello, friend!", "No."),
    ("How are you?", "I am well, thank you!", "Leave me alone."),
]


def preference_rows() -> bytes:
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": prompt}]},
            "preferred_output": [{"role": "assistant", "content": chosen}],
            "non_preferred_output": [{"role": "assistant", "content": rejected}],
        }
        for prompt, chosen, rejected in PAIRS
    ]
    return "".join(json.dumps(row) + "\n" for row in rows * 4).encode()


def margins(base: Path, adapter: Path | None) -> list[float]:
    """log p(chosen) - log p(rejected) of each pair, the prompt rendered with the llama3 template."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunery.engine.data.types import Message, Role
    from tunery.engine.templates import get_template

    tokenizer = AutoTokenizer.from_pretrained(base)
    template = get_template("llama3", tokenizer)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()

    def logp(prompt: str, answer: str) -> float:
        ((prompt_text, answer_text),) = template.render_turns(
            [Message(Role.USER, prompt), Message(Role.ASSISTANT, answer)]
        )
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + answer_ids])
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].log_softmax(-1)
        return float(logits.gather(1, torch.tensor(answer_ids)[:, None]).sum())

    return [logp(prompt, chosen) - logp(prompt, rejected) for prompt, chosen, rejected in PAIRS]


def test_dpo_fine_tune_with_the_openai_sdk(stack: Stack, tiny_llama: Path) -> None:
    factory = Factory(stack.database, stack.settings)
    project = factory.project()
    register_model(stack.database, project.id, "tiny", tiny_llama)
    stack.worker("ft")
    stack.wait_online("ft")
    app = serving_app(stack.settings)
    app.state.serving_manager = EngineManager(ServingConfig(engine="hf"))
    with running_server(app) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=factory.api_key(project.owner), max_retries=0)
        uploaded = client.files.create(file=("prefs.jsonl", preference_rows()), purpose="fine-tune")
        assert client.files.content(uploaded.id).read() == preference_rows()
        hyper = {"n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 20, "beta": 0.1}
        job = client.fine_tuning.jobs.create(
            model="tiny", training_file=uploaded.id, method={"type": "dpo", "dpo": {"hyperparameters": hyper}}, seed=3
        )
        assert job.method is not None and job.method.type == "dpo"
        done = wait_finished(client, job.id)
        assert done.status == "succeeded", done.error
        assert done.fine_tuned_model == f"ft:tiny:{project.slug}:{job.id.removeprefix('ftjob-')}"
        assert done.method is not None and done.method.dpo is not None
        assert done.method.dpo.hyperparameters is not None and done.method.dpo.hyperparameters.beta == 0.1

        events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
        assert events[0].message == "The job has successfully completed"
        metric_data = [event.data for event in events if event.type == "metrics" and event.data]
        assert any("rewards/accuracies" in data and data.get("train_loss") is not None for data in metric_data)
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
        assert checkpoints and "rewards/accuracies" in checkpoints[0].metrics.model_dump()
        assert done.fine_tuned_model in {model.id for model in client.models.list()}

        answer = client.chat.completions.create(
            model=done.fine_tuned_model,
            messages=[{"role": "user", "content": PAIRS[0][0]}],
            temperature=0,
            max_tokens=8,
        )
        assert answer.choices[0].finish_reason in ("stop", "length") and answer.usage is not None

    with stack.database.session() as session:
        row = session.get(Job, job.id.removeprefix("ftjob-"))
        assert row is not None and row.output_dir is not None
        adapter = stack.settings.storage_root / row.output_dir
    before, after = margins(tiny_llama, None), margins(tiny_llama, adapter)
    assert all(new > old + 1.0 for new, old in zip(after, before, strict=True)), (before, after)
