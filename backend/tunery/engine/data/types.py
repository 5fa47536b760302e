"""The normalized example every dataset format is converted to."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    FUNCTION = "function_call"  # an assistant turn that calls tools (content is the JSON of the call(s))
    OBSERVATION = "observation"  # the tool result that follows a function call


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class RowRef:
    """Where an example came from, for error messages: file and 1-based row number."""

    dataset: str
    file: str
    row: int


@dataclass
class Example:
    """One training example in LLaMA-Factory's internal shape.

    ``prompt`` holds the turns before the last response: user/observation turns alternate with
    assistant/function turns and it ends with a user or observation turn. ``response`` holds the
    answer(s): one message for SFT, [chosen, rejected] for preference data, the text for pretraining
    (``prompt`` empty), the reference answer or nothing for prompt data (ppo, grpo). ``kto_label`` is set
    for KTO data.
    """

    prompt: list[Message]
    response: list[Message]
    system: str | None = None
    tools: str | None = None  # JSON string of the tool list, as in sharegpt data
    kto_label: bool | None = None
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    audios: list[str] = field(default_factory=list)
    ref: RowRef | None = None

    @property
    def messages(self) -> list[Message]:
        """The whole conversation, prompt then the first response."""
        return self.prompt + self.response[:1]
