"""``include_effective_tokens_per_second``: LLaMA-Factory's ``effective_tokens_per_sec`` train metric.

LF (``extras.misc.calculate_tps``) counts the training rows' real tokens (no padding; a preference pair counts
its prompt once per answer, as the model reads it) times the epochs trained, over the train runtime. Here the
epochs are those of this run only, so a resumed run is not credited with the epochs before its checkpoint (LF
divides every epoch by the resumed run's runtime). Streamed data has no known token count: the tokens the
trainer saw (non-padding) stand in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Token columns of a preference row besides the prompt: each answer is read after the prompt.
_ANSWER_COLUMNS = ("chosen_ids", "rejected_ids", "completion_ids")


def dataset_tokens(data: Any) -> int | None:
    """Real tokens of one pass over the train rows: the tokenizer's statistics, else counted row by row;
    None for a dataset without a length (streaming)."""
    tokens = getattr(getattr(data, "stats", None), "tokens", None)
    if isinstance(tokens, int):
        return tokens
    dataset = data.train_dataset
    try:
        count = len(dataset)
    except TypeError:
        return None
    return sum(row_tokens(dataset[index]) for index in range(count))


def row_tokens(row: Mapping[str, Any]) -> int:
    """pt/sft rows: their input_ids; preference rows: the prompt once per answer plus the answers."""
    if "input_ids" in row:
        return len(row["input_ids"])
    answers = [len(row[key]) for key in _ANSWER_COLUMNS if key in row]
    return len(row.get("prompt_ids", ())) * max(len(answers), 1) + sum(answers)


def effective_tokens_per_second(
    tokens_per_epoch: int | None,
    epochs: float,
    runtime: float,
    tokens_seen: int = 0,
) -> float | None:
    """LF's figure: tokens of one epoch x epochs trained / runtime (``tokens_seen`` when the epoch's tokens are
    unknown), per process; None without a runtime."""
    if runtime <= 0:
        return None
    tokens = tokens_per_epoch * epochs if tokens_per_epoch is not None else float(tokens_seen)
    return tokens / runtime / _world_size()


def _world_size() -> int:
    """Processes sharing the run: LF reports the figure per process."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
