"""What the generating stages (ppo, grpo) share: where an answer ends, and the sampling settings of the spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase

    from tunery.spec import JobSpec


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, template: Any) -> set[int]:
    """The eos token and every template stop word that is a single token: an answer ends at the first one."""
    ids: set[int] = set()
    if isinstance(tokenizer.eos_token_id, int):
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for word in getattr(template, "stop_words", None) or []:
        if word in vocab:
            ids.add(int(vocab[word]))
    return ids


def answer_length(tokens: list[int], stops: set[int]) -> int:
    """Tokens up to and including the first stop token (all of them when none was generated)."""
    for index, token in enumerate(tokens):
        if token in stops:
            return index + 1
    return len(tokens)


def max_answer_tokens(spec: JobSpec) -> int:
    return spec.method.max_completion_length or spec.generation.max_new_tokens


def generation_config(spec: JobSpec, tokenizer: PreTrainedTokenizerBase, stops: set[int]) -> GenerationConfig:
    """Sampling for rollouts from the generation section (LLaMA-Factory passes the same keys to generate)."""
    from transformers import GenerationConfig

    g = spec.generation
    return GenerationConfig(
        do_sample=g.do_sample,
        temperature=g.temperature,
        top_p=g.top_p,
        top_k=g.top_k,
        num_beams=g.num_beams,
        repetition_penalty=g.repetition_penalty,
        length_penalty=g.length_penalty,
        max_new_tokens=max_answer_tokens(spec),
        eos_token_id=sorted(stops),
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
    )
