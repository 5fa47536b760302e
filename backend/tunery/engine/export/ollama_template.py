"""Our chat templates written as Ollama TEMPLATEs: Go ``text/template`` over ``.System`` and ``.Messages``.

Ollama renders a chat as: the Modelfile's SYSTEM prepended as a system message when the request has none, every
system text joined into ``.System``, then the TEMPLATE executed once over all messages. The Go template written
here renders the same text as our template's ``render_prompt`` (a prompt ending with the assistant's opening
marker); a conversation ending with an assistant message is left open, which is how Ollama continues a prefilled
answer. What Go templates cannot do (trim text, split reasoning out of past answers, write tool JSON the way the
model was trained) is listed in ``GoTemplate.notes`` and written into the Modelfile as comments.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, replace

from tunery.engine.templates import ChatTemplate, Template
from tunery.engine.templates.families.deepseek import THINK_OPEN, THINK_SKIPPED, DeepSeekR1Template
from tunery.engine.templates.families.mistral import MistralTemplate
from tunery.engine.templates.families.qwen3 import EMPTY_THOUGHT, Qwen3Template

_MARK = "\x00"  # stands for {content} while a slot is split into the text before and after it


@dataclass(frozen=True)
class GoLayout:
    """Where our template puts each piece of text; every field is literal text."""

    prefix: str
    #: system block before the first turn: (before, after) the system text; None when merged into a user turn
    system: tuple[str, str] | None
    #: system text merged into a user turn: (before, between system and content, after content)
    merged: tuple[str, str, str] | None
    #: which user turn gets the merged system text: the first one or the last one (Mistral)
    merged_turn: str
    user: tuple[str, str]
    assistant_open: str
    assistant: tuple[str, str]
    #: text after the assistant's opening marker of the generation prompt (reasoning markers)
    generation: str = ""
    #: the first user turn's opening text when it differs (the leading bos the runtime adds itself)
    first_user: str | None = None


@dataclass
class GoTemplate:
    text: str
    notes: list[str] = field(default_factory=list)


class NotExpressible(ValueError):
    """The template needs something Ollama's Go templates cannot do; the message says what."""


def _split(template: Template, slot: str) -> tuple[str, str]:
    filled = template.fill(slot, _MARK)
    if filled.count(_MARK) != 1:
        raise NotExpressible(f"template {template.name!r}: slot {slot!r} has no single {{content}}")
    before, after = filled.split(_MARK)
    return before, after


def _merged(spec: str) -> tuple[str, str, str]:
    before, rest = spec.split("{system}")
    middle, end = rest.split("{content}")
    return before, middle, end


def layout_for(template: ChatTemplate, *, enable_thinking: bool | None, drop_bos: bool) -> tuple[GoLayout, list[str]]:
    """Our template's pieces for the Go template, and notes on what Ollama renders differently.

    ``drop_bos``: the runtime adds bos itself (the GGUF's ``tokenizer.ggml.add_bos_token``), so the template must
    not write the leading one (Ollama would start the prompt with two)."""
    notes: list[str] = []
    kind = type(template)
    if kind is MistralTemplate:
        assert isinstance(template, MistralTemplate)
        layout = GoLayout(
            prefix=template.fill(template.prefix),
            system=None,
            merged=("", "\n\n", ""),
            merged_turn="last",
            user=("[INST] ", "[/INST]"),
            assistant_open="",
            assistant=(" ", template.eos_token),
        )
        notes.append("answers are written as sent; Tunery strips spaces around them (Go templates cannot trim)")
    elif kind in (Template, Qwen3Template, DeepSeekR1Template):
        assert isinstance(template, Template)
        generation = ""
        if kind is Qwen3Template and enable_thinking is False:
            generation = EMPTY_THOUGHT
        elif kind is DeepSeekR1Template:
            generation = THINK_SKIPPED if enable_thinking is False else THINK_OPEN
        layout = GoLayout(
            prefix=template.fill(template.prefix),
            system=None if template.system_in_user is not None else _split(template, template.system),
            merged=None if template.system_in_user is None else _merged(template.system_in_user),
            merged_turn="first",
            user=_split(template, template.user),
            assistant_open=template.fill(template.assistant_open),
            assistant=_split(template, template.assistant),
            generation=generation,
        )
        if template.strip_content:
            notes.append("texts are written as sent; Tunery trims spaces around them (Go templates cannot trim)")
        if template.thought_words is not None:
            notes.append("past answers keep their reasoning; Tunery removes it (Go templates cannot split text)")
    else:
        raise NotExpressible(f"template {template.name!r} renders with its own code, which a Go template cannot run")
    notes.append("tools are not in the template: Go's json writes them unlike the format the model was trained on")
    return _without_bos(layout, template, drop_bos, notes), notes


def _without_bos(layout: GoLayout, template: ChatTemplate, drop_bos: bool, notes: list[str]) -> GoLayout:
    bos = getattr(template, "bos_token", "")
    if not drop_bos or not bos:
        return layout
    if layout.prefix.startswith(bos):
        return replace(layout, prefix=layout.prefix[len(bos) :])
    if not layout.prefix and layout.system is None and layout.user[0].startswith(bos):
        return replace(layout, first_user=layout.user[0][len(bos) :])
    if layout.prefix.startswith(bos) or (layout.system is not None and layout.system[0].startswith(bos)):
        notes.append(f"the prompt can start with {bos} and the runtime adds another one")
    return layout


# ----- Go text -------------------------------------------------------------------------------------------------


def parser_keeps(text: str) -> bool:
    """True when Ollama's Modelfile parser keeps every character of ``text`` inside quotes (it drops runes Go does
    not consider printable, except newlines and tabs)."""
    return all(ch in "\n\r\t " or unicodedata.category(ch)[0] in "LMNPS" for ch in text)


def _go_string(text: str) -> str:
    """``text`` as a Go string literal (escapes only; no run of three quotes, no dropped runes)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch != " " and unicodedata.category(ch)[0] not in "LMNPS":
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def go_literal(text: str) -> str:
    """``text`` as Go template text: verbatim when it survives the Modelfile and the Go lexer, else an action."""
    if not text:
        return ""
    if "{{" in text or text.endswith("{") or '"""' in text or not parser_keeps(text):
        return "{{ " + _go_string(text) + " }}"
    return text


def _when(condition: str, text: str) -> str:
    return f"{{{{ if {condition} }}}}{go_literal(text)}{{{{ end }}}}" if text else ""


def go_template(layout: GoLayout) -> str:
    """The TEMPLATE text (Ollama's ``.Messages`` form)."""
    lit = go_literal
    text = lit(layout.prefix)
    if layout.system is not None:
        before, after = layout.system
        text += f"{{{{ if .System }}}}{lit(before)}{{{{ .System }}}}{lit(after)}{{{{ end }}}}"
    merged_if = ""
    if layout.merged is not None and layout.merged_turn == "last":
        text += (
            "{{ $lastUser := -1 }}{{ range $i, $m := .Messages }}"
            '{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}'
        )
        merged_if = "and (eq $i $lastUser) $.System"
    elif layout.merged is not None:
        merged_if = "and $first $.System"
    tracks_first = (layout.merged_turn == "first" and layout.merged is not None) or layout.first_user is not None
    if tracks_first:
        text += "{{ $first := true }}"
    text += "{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
    user_before, user_after = layout.user
    if layout.first_user is not None:
        text += f'{{{{ if eq .Role "user" }}}}{{{{ if $first }}}}{lit(layout.first_user)}'
        text += f"{{{{ else }}}}{lit(user_before)}{{{{ end }}}}"
    else:
        text += f'{{{{ if eq .Role "user" }}}}{lit(user_before)}'
    if layout.merged is not None:
        before, middle, end = layout.merged
        text += f"{{{{ if {merged_if} }}}}{lit(before)}{{{{ $.System }}}}{lit(middle)}{{{{ end }}}}"
        text += "{{ .Content }}" + _when(merged_if, end)
    else:
        text += "{{ .Content }}"
    text += lit(user_after) + _when("$last", layout.assistant_open + layout.generation)
    if tracks_first:
        text += "{{ $first = false }}"
    answer_before, answer_after = layout.assistant
    text += f'{{{{ else if eq .Role "assistant" }}}}{lit(layout.assistant_open + answer_before)}{{{{ .Content }}}}'
    text += _when("not $last", answer_after) + "{{ end }}{{ end }}"
    return text


def build_go_template(template: ChatTemplate, *, enable_thinking: bool | None, drop_bos: bool) -> GoTemplate:
    """Raise :class:`NotExpressible` for templates a Go template cannot render."""
    layout, notes = layout_for(template, enable_thinking=enable_thinking, drop_bos=drop_bos)
    return GoTemplate(go_template(layout), notes)
