"""Data section of the job spec: datasets, template, tokenization and packing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tunery.spec.base import Section, split_csv

MixStrategy = Literal["concat", "interleave_under", "interleave_over"]

#: Tool formats ``tool_format`` can switch a chat template to (the engine's tool format registry has exactly
#: these; LLaMA-Factory's names).
TOOL_FORMATS: tuple[str, ...] = ("default", "glm4", "llama3", "mistral", "qwen")


class DataSection(Section):
    """Which datasets, how they are formatted into token sequences."""

    dataset: list[str] | None = Field(
        default=None, description="Dataset names from dataset_info.json (comma-separated or a list)."
    )
    eval_dataset: list[str] | None = None
    dataset_dir: str = Field(default="data", description="Folder holding dataset_info.json and files.")
    media_dir: str | None = None
    template: str | None = Field(
        default=None, description="Chat template name; 'auto' or none uses the tokenizer's own."
    )
    cutoff_len: int = Field(default=2048, gt=0)
    train_on_prompt: bool = False
    mask_history: bool = False
    streaming: bool = False
    buffer_size: int = Field(default=16384, gt=0)
    mix_strategy: MixStrategy = "concat"
    interleave_probs: list[float] | None = None
    overwrite_cache: bool = False
    preprocessing_batch_size: int = Field(
        default=1000,
        gt=0,
        description="Rows read, converted and tokenized together (one task per worker process); memory "
        "during tokenization grows with it, not with the dataset.",
    )
    preprocessing_num_workers: int | None = Field(
        default=None,
        gt=0,
        description="Processes that tokenize the datasets (from 16384 rows on; fewer rows take one). Streaming: "
        "chunks are tokenized ahead of the trainer in that many processes.",
    )
    max_samples: int | None = Field(default=None, gt=0)
    eval_num_beams: int | None = None
    ignore_pad_token_for_loss: bool = Field(
        default=True,
        description="Padding labels are ignored by the loss; false trains on the pad token there (pt/sft).",
    )
    val_size: float = Field(default=0.0, ge=0)
    eval_on_each_dataset: bool = False
    packing: bool | None = None
    neat_packing: bool = False
    tool_format: str | None = Field(
        default=None,
        description="Write tool definitions and calls in this format instead of the template's own: "
        + ", ".join(TOOL_FORMATS)
        + ".",
    )
    default_system: str | None = None
    enable_thinking: bool | None = True
    tokenized_path: str | None = Field(
        default=None,
        description="Folder for the tokenized data: written when missing or empty, else read instead of the "
        "datasets (as in LLaMA-Factory).",
    )
    data_shared_file_system: bool = Field(
        default=False, description="Multi-node preprocessing only; Tunery trains in one process (leave false)."
    )

    _split = field_validator("dataset", "eval_dataset", mode="before")(split_csv)

    @field_validator("interleave_probs", mode="before")
    @classmethod
    def _probs(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(item) for item in split_csv(value)]
        return value
