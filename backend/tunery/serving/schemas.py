"""OpenAI request bodies for chat and text completions (fields Tunery serves; unknown fields are ignored,
fields it cannot honour are refused by :func:`tunery.serving.chat.unsupported`); the /v1/score request and
response; OpenAI's error shape for the OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(_Body):
    include_usage: bool = False


class FunctionCall(_Body):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(_Body):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class ToolFunction(_Body):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Body):
    type: Literal["function"] = "function"
    function: ToolFunction


class NamedToolChoice(_Body):
    type: Literal["function"] = "function"
    function: dict[str, Any]


class SamplingFields(_Body):
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # vLLM's extra sampling fields (sent in the body; the openai SDK's extra_body)
    top_k: int | None = Field(default=None, ge=-1, description="sample among the k most likely tokens (0, -1: all)")
    repetition_penalty: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="divides the logits of tokens seen so far (1: none)"
    )

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class CompletionRequest(SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=None, ge=0)  # 0: with echo, score the prompt only
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None


# ----- /v1/score ----------------------------------------------------------------------------------
#: most texts or pairs one /v1/score request may hold (scored in batches of the engine's max_batch)
MAX_SCORE_ITEMS = 512


class ScorePair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="the user turn")
    response: str = Field(description="the assistant's answer to score")


class ScoreRequest(BaseModel):
    """Texts (``input``) or (prompt, response) ``pairs`` to score with a reward model; exactly one of them."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="a reward model id from GET /v1/models (reward_model: true)")
    input: list[str] | None = Field(
        default=None, min_length=1, max_length=MAX_SCORE_ITEMS, description="texts scored as they are"
    )
    pairs: list[ScorePair] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SCORE_ITEMS,
        description="prompt and response rendered with the model's chat template (prompt as the user turn)",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ScoreRequest:
        if (self.input is None) == (self.pairs is None):
            raise ValueError("give exactly one of input (texts) or pairs (prompt, response)")
        return self


class ScoreData(BaseModel):
    object: Literal["score"] = "score"
    index: int = Field(description="position in input / pairs")
    score: float = Field(description="the reward model's scalar reward (higher: preferred)")


class ScoreUsage(BaseModel):
    prompt_tokens: int = Field(description="tokens scored: the texts as the model reads them (template included)")
    total_tokens: int


class ScoreResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[ScoreData]
    usage: ScoreUsage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    reward_model: bool = Field(
        description="a reward model: /v1/score takes it, chat and completions refuse it (Tunery's extension)"
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error shape, used by every /v1 route."""

    error: ErrorDetail
