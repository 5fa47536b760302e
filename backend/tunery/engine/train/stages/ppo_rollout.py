"""PPO's model side: the policy with its value head, sampling answers, and the per-token log-probabilities
and values of (prompt, answer) batches.

A batch is laid out as ``[left-padded prompts | right-padded answers]``: every answer starts at the same
column, so the positions that predict answer tokens are one slice for the whole batch. Position ids come
from the attention mask, as in generation, so the log-probabilities are those of the sampled tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunery.engine.train.stages.generation import answer_length

if TYPE_CHECKING:
    from transformers import GenerationConfig

#: The value head saved next to the adapter or model (LLaMA-Factory's file name).
VALUE_HEAD_FILE = "value_head.safetensors"


class ValueHead(torch.nn.Module):
    """A scalar per position from the last hidden state (TRL's ``ValueHead``: dropout 0.1, then linear)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(0.1)
        self.summary = torch.nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(self.dropout(hidden.to(self.summary.weight.dtype))).squeeze(-1)  # type: ignore[no-any-return]


class PolicyWithValueHead(torch.nn.Module):
    """The trained model (plain or PEFT) and its value head: one module for the optimizer and checkpoints."""

    def __init__(self, policy: torch.nn.Module) -> None:
        super().__init__()
        self.policy = policy
        config: Any = policy.config
        hidden = int(config.get_text_config().hidden_size)
        device = next(policy.parameters()).device
        self.v_head = ValueHead(hidden).to(device=device, dtype=torch.float32)

    @property
    def config(self) -> Any:
        return self.policy.config

    def forward(self, batch: RolloutBatch, with_values: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Answer-token log-probabilities and values (called through the Trainer's prepared module, so mixed
        precision and distributed wrappers apply)."""
        return forward_answers(self.policy, batch, self.v_head if with_values else None)

    @property
    def is_peft(self) -> bool:
        return hasattr(self.policy, "peft_config")

    def save_pretrained(self, folder: str | Path, **kwargs: Any) -> None:
        """The policy as it saves itself (adapter or model), plus ``value_head.safetensors``."""
        from safetensors.torch import save_file

        self.policy.save_pretrained(str(folder), **kwargs)  # type: ignore[operator]
        state = {name: tensor.detach().contiguous().cpu() for name, tensor in self.v_head.state_dict().items()}
        save_file(state, str(Path(folder) / VALUE_HEAD_FILE), metadata={"format": "pt"})

    def load_value_head(self, folder: str | Path) -> bool:
        """Load ``value_head.safetensors`` from ``folder`` when it has one."""
        from safetensors.torch import load_file

        path = Path(folder) / VALUE_HEAD_FILE
        if not path.is_file():
            return False
        self.v_head.load_state_dict(load_file(str(path), device=str(self.v_head.summary.weight.device)))
        return True

    def reference_context(self) -> Any:
        """Inside it the policy is its reference: the adapter disabled (PEFT only)."""
        disable = getattr(self.policy, "disable_adapter", None)
        return disable() if callable(disable) else nullcontext()


@dataclass
class RolloutBatch:
    """Prompts and answers packed as ``[left-padded prompts | right-padded answers]``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor  # [rows, answer width], 1.0 on answer tokens
    query_width: int

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.query_width :]

    def rows(self, index: torch.Tensor) -> RolloutBatch:
        return RolloutBatch(
            self.input_ids[index],
            self.attention_mask[index],
            self.position_ids[index],
            self.response_mask[index],
            self.query_width,
        )


def pack(queries: list[list[int]], responses: list[list[int]], pad_id: int, device: torch.device) -> RolloutBatch:
    query_width = max(len(query) for query in queries)
    response_width = max(len(response) for response in responses)
    rows, masks, answer_masks = [], [], []
    for query, response in zip(queries, responses, strict=True):
        left, right = query_width - len(query), response_width - len(response)
        rows.append([pad_id] * left + query + response + [pad_id] * right)
        masks.append([0] * left + [1] * (len(query) + len(response)) + [0] * right)
        answer_masks.append([1.0] * len(response) + [0.0] * right)
    attention_mask = torch.tensor(masks, device=device)
    return RolloutBatch(
        input_ids=torch.tensor(rows, device=device),
        attention_mask=attention_mask,
        position_ids=(attention_mask.cumsum(dim=1) - 1).clamp(min=0),
        response_mask=torch.tensor(answer_masks, device=device),
        query_width=query_width,
    )


@contextmanager
def _answer_positions(head: torch.nn.Module, start: int, width: int) -> Iterator[list[torch.Tensor]]:
    """Give the output head only the hidden states that predict answer tokens (a vocabulary-sized logit per
    prompt position would be wasted), and keep them for the value head."""
    kept: list[torch.Tensor] = []

    def select(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0][:, start : start + width]
        kept.append(hidden)
        return (hidden, *args[1:])

    handle = head.register_forward_pre_hook(select)
    try:
        yield kept
    finally:
        handle.remove()


def forward_answers(
    model: torch.nn.Module, batch: RolloutBatch, value_head: ValueHead | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probability of each answer token under ``model`` ([rows, answer width]) and, with ``value_head``,
    the value of the state before each answer token."""
    head = model.get_output_embeddings()  # type: ignore[operator]
    width = batch.response_mask.shape[1]
    with _answer_positions(head, batch.query_width - 1, width) as kept:
        output = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
    logits = output.logits[:, -width:].float()  # the head saw only answer positions (or all of them)
    targets = batch.response_ids.unsqueeze(-1)
    logprobs = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    values = value_head(kept[0]) if value_head is not None and kept else None
    return logprobs, values


@torch.no_grad()
def sample_answers(
    policy: torch.nn.Module,
    prompts: list[list[int]],
    config: GenerationConfig,
    stops: set[int],
    pad_id: int,
    chunk_size: int,
) -> list[list[int]]:
    """One sampled answer per prompt (up to and including its first stop token), ``chunk_size`` at a time."""
    device = next(policy.parameters()).device
    answers: list[list[int]] = []
    for start in range(0, len(prompts), chunk_size):
        chunk = prompts[start : start + chunk_size]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in chunk], device=device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in chunk], device=device)
        output = policy.generate(  # type: ignore[operator]
            input_ids=input_ids, attention_mask=mask, generation_config=config
        )
        for row in output[:, width:].tolist():
            answers.append(row[: max(1, answer_length(row, stops))])
    return answers
