"""Reward models trained by stage ``rm``: what their folder holds, and loading one to score texts.

A trained folder holds either a full ``AutoModelForSequenceClassification`` (``num_labels=1``; its ``score``
layer is the value head) or a PEFT adapter (task ``SEQ_CLS``, the ``score`` head saved with it through
``modules_to_save``), the tokenizer with its chat template, and ``tunery_reward.json``::

    {"base_model": "<path or id>", "finetuning_type": "lora" | "full" | "freeze", "template": "<name>"}

The reward of a sequence is the score at its last non-pad token (transformers' sequence-classification
pooling, as in training).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunery.engine.templates import ChatTemplate

logger = logging.getLogger(__name__)

REWARD_CONFIG = "tunery_reward.json"
ADAPTER_CONFIG = "adapter_config.json"


class RewardModelError(ValueError):
    """A folder that is not a loadable reward model; the message says why."""


@dataclass(frozen=True)
class RewardModelInfo:
    """What ``tunery_reward.json`` records about a trained reward model."""

    base_model: str
    finetuning_type: str
    template: str | None = None


def write_reward_info(folder: Path, info: RewardModelInfo) -> Path:
    path = Path(folder) / REWARD_CONFIG
    path.write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
    return path


def read_reward_info(folder: Path) -> RewardModelInfo | None:
    path = Path(folder) / REWARD_CONFIG
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RewardModelInfo(str(raw["base_model"]), str(raw["finetuning_type"]), raw.get("template"))
    except (ValueError, KeyError, TypeError) as exc:
        raise RewardModelError(f"{path} is not a valid {REWARD_CONFIG}: {exc}") from exc


def is_reward_model(path: str | Path) -> bool:
    """Whether ``path`` looks like a reward model: a Tunery ``rm`` output, or a sequence-classification
    checkpoint with a single label."""
    folder = Path(path)
    if (folder / REWARD_CONFIG).is_file():
        return True
    config = folder / "config.json"
    if not config.is_file():
        return False
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except ValueError:
        return False
    architectures = raw.get("architectures") or []
    single_label = raw.get("num_labels", len(raw.get("id2label") or {}) or 2) == 1
    return single_label and any(str(name).endswith("ForSequenceClassification") for name in architectures)


class RewardScorer:
    """Scores token sequences or (prompt, response) texts with a loaded reward model, in batches."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        template: ChatTemplate | None = None,
        *,
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.batch_size = max(1, batch_size)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise RewardModelError("the reward model's tokenizer has neither a pad nor an eos token")
        self.pad_id = int(pad)
        model.config.pad_token_id = self.pad_id  # the pooling finds the last token that is not padding

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def score_ids(self, sequences: list[list[int]]) -> list[float]:
        """Reward of each token sequence (prompt and response together), at its last non-pad token."""
        scores: list[float] = []
        for start in range(0, len(sequences), self.batch_size):
            chunk = sequences[start : start + self.batch_size]
            width = max((len(ids) for ids in chunk), default=0)
            if width == 0 or any(len(ids) == 0 for ids in chunk):
                raise RewardModelError("cannot score an empty token sequence")
            input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, ids in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, : len(ids)] = 1
            device = self.device
            output = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
            scores.extend(float(value) for value in output.logits[:, 0].float().cpu())
        return scores

    def encode(self, prompt: str | None, response: str) -> list[int]:
        """Token ids of one scored text: with a prompt (and a template), the prompt as a user turn and the
        response as the assistant's answer, rendered like the training pairs; otherwise the text as is."""
        from tunery.engine.tokenize.text import encode_texts

        if prompt is None or self.template is None:
            text = response if prompt is None else prompt + response
            return encode_texts(self.tokenizer, [text])[0]
        from tunery.engine.data.types import Message, Role

        messages = [Message(Role.USER, prompt), Message(Role.ASSISTANT, response)]
        pairs = self.template.render_turns(messages, self.template.default_system)
        texts = [text for pair in pairs for text in pair]
        ids = [token for part in encode_texts(self.tokenizer, texts) for token in part]
        if self.template.efficient_eos and self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        return ids

    def score_texts(self, prompts: list[str] | None, responses: list[str]) -> list[float]:
        """Reward of each response (to its prompt, when prompts are given)."""
        if prompts is not None and len(prompts) != len(responses):
            raise RewardModelError(f"got {len(prompts)} prompts for {len(responses)} responses")
        pairs = zip(prompts if prompts is not None else [None] * len(responses), responses, strict=True)
        return self.score_ids([self.encode(prompt, response) for prompt, response in pairs])


def load_reward_model(
    path: str,
    *,
    base_model: str | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 8,
) -> RewardScorer:
    """Load a reward model folder (full model or adapter; see the module doc) ready to score, in eval mode.

    ``base_model`` overrides the base recorded in ``tunery_reward.json`` / the adapter config (e.g. when the
    model moved). ``dtype`` defaults to float32; ``device`` to the first CUDA device when there is one.
    """
    from transformers import AutoTokenizer

    folder = Path(path)
    if not folder.is_dir():
        raise RewardModelError(f"reward model {path!r} is not a folder")
    info = read_reward_info(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise RewardModelError(f"cannot load the tokenizer of reward model {path!r}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = dtype or torch.float32
    if (folder / ADAPTER_CONFIG).is_file():
        model = _load_adapter_model(folder, base_model or (info.base_model if info else None), tokenizer, dtype)
    else:
        model = _load_full_model(folder, dtype)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.nn.Module.to(model, device)
    model.eval()
    template = _stored_template(info, tokenizer)
    return RewardScorer(model, tokenizer, template, batch_size=batch_size)


def _load_full_model(folder: Path, dtype: torch.dtype) -> PreTrainedModel:
    from transformers import AutoModelForSequenceClassification

    if not is_reward_model(folder):
        raise RewardModelError(
            f"{folder} holds no reward model: expected {REWARD_CONFIG} or a sequence-classification model with "
            "num_labels=1 (train one with stage: rm)"
        )
    try:
        model: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(
            str(folder), num_labels=1, dtype=dtype
        )
    except (OSError, ValueError) as exc:
        raise RewardModelError(f"cannot load reward model {folder}: {exc}") from exc
    return model


def _load_adapter_model(
    folder: Path, base: str | None, tokenizer: PreTrainedTokenizerBase, dtype: torch.dtype
) -> PreTrainedModel:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    adapter = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    if adapter.get("task_type") != "SEQ_CLS":
        raise RewardModelError(
            f"{folder} holds a {adapter.get('task_type')} adapter, not a reward model (task SEQ_CLS from stage: rm)"
        )
    base = base or adapter.get("base_model_name_or_path")
    if not base:
        raise RewardModelError(f"{folder}: the adapter names no base model; pass base_model")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise RewardModelError(f"cannot load the reward model's base {base!r}: {exc}") from exc
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:  # training grew the vocabulary the same way (multiple of 64)
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    try:
        merged: PreTrainedModel = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as exc:
        raise RewardModelError(f"cannot load the reward adapter {folder} onto {base!r}: {exc}") from exc
    return merged


def _stored_template(info: RewardModelInfo | None, tokenizer: Any) -> ChatTemplate | None:
    from tunery.engine.templates import TemplateError, get_template

    name = info.template if info is not None else None
    try:
        return get_template(name, tokenizer) if name or getattr(tokenizer, "chat_template", None) else None
    except TemplateError as exc:
        logger.warning("reward model template %r unavailable (%s); scoring texts as they are", name, exc)
        return None
