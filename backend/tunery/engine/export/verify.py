"""Reference behaviour of the merged model, computed once: the verification prompts (chat-templated like the
serving engines do), the logits the merge check compares, and the greedy tokens every writer's file must
reproduce.

Greedy tokens are plain argmax decoding of exactly ``VERIFY_TOKENS`` tokens: an end-of-turn token does not
stop it (a runtime that stops there would compare fewer tokens, not different ones), so writers decode the
same way, ignoring end tokens."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from tunery.engine.data.types import Message, Role
from tunery.engine.export.types import VERIFY_TOKENS

if TYPE_CHECKING:
    from tunery.engine.templates import ChatTemplate

#: Short user turns, varied enough that a broken file shows (numbers, a list, free text).
VERIFY_MESSAGES: tuple[str, ...] = (
    "Hello! Who are you?",
    "Name three colors of the rainbow.",
    "What is 12 + 30? Answer briefly.",
)


def verify_prompts(tokenizer: Any, template: ChatTemplate | None) -> list[list[int]]:
    """Token ids of each verification prompt: the template's generation prompt, tokenized with no extra
    special tokens (they are in the text); without a chat template the plain text with the tokenizer's."""
    prompts = []
    for text in VERIFY_MESSAGES:
        if template is None:
            ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        else:
            rendered = template.render_prompt([Message(role=Role.USER, content=text)])
            ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        prompts.append([int(token) for token in ids])
    return prompts


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def prompt_logits(model: torch.nn.Module, prompts: list[list[int]]) -> list[torch.Tensor]:
    """The logits of every prompt position, in fp32 on the CPU."""
    device = _device(model)
    out = []
    with torch.inference_mode():
        for prompt in prompts:
            logits = model(input_ids=torch.tensor([prompt], device=device)).logits
            out.append(logits[0].float().cpu())
    return out


def max_logit_diff(reference: list[torch.Tensor], produced: list[torch.Tensor]) -> float:
    """Largest absolute difference between two models' logits on the same prompts."""
    return max(float((ref - out).abs().max()) for ref, out in zip(reference, produced, strict=True))


def greedy_tokens(model: torch.nn.Module, prompts: list[list[int]], count: int = VERIFY_TOKENS) -> list[list[int]]:
    """Argmax continuation of each prompt, ``count`` tokens, with the KV cache."""
    device = _device(model)
    # transformers 5 renamed the cache argument (and output) of newer architectures to ``cache``
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    results = []
    with torch.inference_mode():
        for prompt in prompts:
            out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
            tokens: list[int] = []
            while True:
                token = int(out.logits[0, -1].float().argmax())
                tokens.append(token)
                if len(tokens) == count:
                    break
                step = torch.tensor([[token]], device=device)
                out = model(input_ids=step, use_cache=True, **{name: getattr(out, name)})
            results.append(tokens)
    return results
