"""Generation section of the job spec: decoding defaults for chat, serving and prediction."""

from __future__ import annotations

from pydantic import Field

from tunery.spec.base import Section


class GenerationSection(Section):
    """Sampling settings (LLaMA-Factory's generating arguments)."""

    do_sample: bool = True
    temperature: float = Field(default=0.95, ge=0)
    top_p: float = Field(default=0.7, gt=0, le=1)
    top_k: int = Field(default=50, ge=0)
    num_beams: int = Field(default=1, gt=0)
    max_length: int = Field(default=1024, gt=0)
    max_new_tokens: int = Field(default=1024, gt=0)
    repetition_penalty: float = Field(default=1.0, gt=0)
    length_penalty: float = 1.0
    skip_special_tokens: bool = True
