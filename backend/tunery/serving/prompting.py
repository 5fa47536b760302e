"""OpenAI chat messages -> the training template's conversation -> prompt token ids.

The same chat template that trained the model renders the prompt (``tunery.engine.templates``), so a
fine-tuned model is asked in the format it learnt. Tool results become observation turns, assistant tool
calls function_call turns, like the openai dataset format does for training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tunery.engine.data.types import Message, Role
from tunery.engine.templates import ChatTemplate, TemplateError
from tunery.serving.schemas import ChatCompletionRequest, ChatMessage, NamedToolChoice
from tunery.serving.types import RequestError

#: Consecutive tool results are joined into one observation turn as the openai data format joins them.
TOOL_RESULT_SEPARATOR = "\n</tool_response>\n<tool_response>\n"
QUERY = (Role.USER, Role.OBSERVATION)


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    system: str | None
    tools: list[dict[str, Any]]  # the tools given to the template ([] when none or tool_choice "none")


def content_text(message: ChatMessage, index: int) -> str:
    """A message's text: a string, or text parts joined; other parts (images, audio) are refused."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for position, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise RequestError(
                f"messages[{index}].content[{position}]: only text parts are supported, got type {part.get('type')!r}",
                param=f"messages[{index}].content",
            )
        texts.append(part["text"])
    return "".join(texts)


def _calls_json(message: ChatMessage, index: int) -> str:
    calls = []
    for position, call in enumerate(message.tool_calls or []):
        arguments: Any = call.function.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise RequestError(
                    f"messages[{index}].tool_calls[{position}].function.arguments is not valid JSON: {exc.msg}",
                    param=f"messages[{index}].tool_calls",
                ) from exc
        calls.append({"name": call.function.name, "arguments": arguments})
    return json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)


def to_conversation(messages: list[ChatMessage]) -> tuple[list[Message], str | None]:
    """(turns, system) from OpenAI messages: system/developer messages form the system text, consecutive
    user messages are joined, consecutive tool results form one observation."""
    system_parts: list[str] = []
    turns: list[Message] = []
    for index, message in enumerate(messages):
        role = message.role
        if role in ("system", "developer"):
            if turns:
                raise RequestError(
                    f"messages[{index}]: a {role} message is only allowed before the conversation starts",
                    param="messages",
                )
            system_parts.append(content_text(message, index))
            continue
        if role == "user":
            turn = Message(Role.USER, content_text(message, index))
        elif role == "assistant" and message.tool_calls:
            turn = Message(Role.FUNCTION, _calls_json(message, index))
        elif role == "assistant":
            turn = Message(Role.ASSISTANT, content_text(message, index))
        else:  # tool (or the legacy function role)
            turn = Message(Role.OBSERVATION, content_text(message, index))
        if turns and turns[-1].role == turn.role and turn.role in (Role.USER, Role.OBSERVATION):
            joiner = "\n" if turn.role == Role.USER else TOOL_RESULT_SEPARATOR
            turns[-1] = Message(turn.role, turns[-1].content + joiner + turn.content)
            continue
        turns.append(turn)
    if not turns:
        raise RequestError("messages: at least one user message is needed", param="messages")
    if turns[-1].role not in QUERY:
        raise RequestError("messages: the last message must be from the user or a tool", param="messages")
    return turns, "\n\n".join(system_parts) if system_parts else None


def selected_tools(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    """The tools the template is given: none for tool_choice "none", one for a named tool choice."""
    if not request.tools or request.tool_choice == "none":
        return []
    tools = [tool.model_dump(exclude_none=True) for tool in request.tools]
    if isinstance(request.tool_choice, NamedToolChoice):
        name = request.tool_choice.function.get("name")
        tools = [tool for tool in tools if tool["function"]["name"] == name]
        if not tools:
            raise RequestError(f"tool_choice names the function {name!r}, which is not in tools", param="tool_choice")
    return tools


def render_chat(template: ChatTemplate, request: ChatCompletionRequest) -> ChatPrompt:
    turns, system = to_conversation(request.messages)
    tools = selected_tools(request)
    try:
        text = template.render_prompt(turns, system, json.dumps(tools, ensure_ascii=False) if tools else None)
    except TemplateError as exc:
        raise RequestError(f"messages: {exc}", param="messages") from exc
    return ChatPrompt(text, system, tools)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of rendered template text (its special tokens are in the text, so none are added)."""
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def encode_completion_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a raw completion prompt (the tokenizer adds bos if it is configured to)."""
    ids: list[int] = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    return ids
