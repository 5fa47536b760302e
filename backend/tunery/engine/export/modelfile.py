"""The Ollama ``Modelfile`` written next to the GGUF files (``ollama create NAME -f Modelfile``).

FROM the best 4-bit GGUF (Q4_K_M, else Q4_0, else the first written); TEMPLATE is our chat template as a Go
template (:mod:`tunery.engine.export.ollama_template`), SYSTEM its default system prompt, one ``PARAMETER stop``
per stop word and eos, and the generation section's sampling settings written out in full, because Ollama's own
defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1) differ from Tunery's.

When no Go template renders like ours (the tokenizer's own Jinja that matches no registered template, or a family
with its own rendering code) the Modelfile has no TEMPLATE: Ollama then picks its template from the chat template
stored in the GGUF, which beats a guessed template that would silently degrade every answer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tunery.engine.data.types import Message, Role
from tunery.engine.export.ollama_template import NotExpressible, build_go_template, parser_keeps
from tunery.engine.export.types import ExportContext, WrittenArtifact
from tunery.engine.templates import (
    ChatTemplate,
    Template,
    TemplateError,
    TokenizerTemplate,
    get_template,
    list_templates,
)
from tunery.spec.generation import GenerationSection
from tunery.spec.job import JobSpec

MODELFILE = "Modelfile"
#: GGUF types Ollama users run by default, best first
PREFERRED_GGUF = ("Q4_K_M", "Q4_0")
#: conversations on which a tokenizer's Jinja and a registered template must render alike to be taken as equal
_PROBE_SYSTEM = "You are a terse assistant."
_MARK = "\x00system\x00"
_PROBES = (
    [Message(Role.USER, "Hello, who are you?")],
    [
        Message(Role.USER, "What is 2 + 2?"),
        Message(Role.ASSISTANT, "4."),
        Message(Role.USER, "And 3 + 3?"),
    ],
)


def pick_gguf(gguf: list[WrittenArtifact]) -> WrittenArtifact:
    """The GGUF the Modelfile points at: Q4_K_M, else Q4_0, else the first written."""
    for quantization in PREFERRED_GGUF:
        for artifact in gguf:
            if (artifact.quantization or "").upper() == quantization:
                return artifact
    return gguf[0]


def write_modelfile(ctx: ExportContext, gguf: list[WrittenArtifact]) -> WrittenArtifact | None:
    """Write ``Modelfile`` (None when no GGUF was written or ``export_ollama`` is off)."""
    if not gguf or not ctx.spec.export.export_ollama:
        return None
    source = pick_gguf(gguf)
    tokenizer = load_tokenizer(ctx.merged_dir, trust_remote_code=ctx.spec.model.trust_remote_code)
    text = modelfile_text(ctx.spec, tokenizer, source.path, ctx.export_dir / source.path)
    target = ctx.export_dir / MODELFILE
    partial = target.with_name(MODELFILE + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    ctx.log(f"Ollama Modelfile written (FROM ./{source.path}): ollama create NAME -f {MODELFILE}")
    return WrittenArtifact(name=MODELFILE, format="modelfile", path=MODELFILE, size_bytes=target.stat().st_size)


def load_tokenizer(folder: Path, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)


def modelfile_text(spec: JobSpec, tokenizer: Any, gguf_name: str, gguf_path: Path | None = None) -> str:
    """The Modelfile for ``gguf_name`` (relative to the Modelfile); ``gguf_path`` is read for its bos setting."""
    comments = ["Ollama Modelfile written by Tunery. Use: ollama create NAME -f Modelfile && ollama run NAME"]
    template, where = resolve_template(spec, tokenizer)
    system = spec.data.default_system or (template.default_system if template is not None else None)
    lines = [f"FROM ./{gguf_name}"]
    if template is not None:
        try:
            built = build_go_template(
                template, enable_thinking=spec.data.enable_thinking, drop_bos=runtime_adds_bos(gguf_path)
            )
        except NotExpressible as err:
            comments.append(f"No TEMPLATE: {err}; Ollama uses the chat template stored in the GGUF.")
        else:
            comments.append(f"TEMPLATE: {where}, written as a Go template; it renders prompts as Tunery does, except:")
            comments.extend(f"- {note}" for note in built.notes)
            lines.append(f'TEMPLATE """{built.text}"""')
    else:
        comments.append(f"No TEMPLATE: {where}; Ollama uses the chat template stored in the GGUF.")
    if system:
        lines.append(_command("SYSTEM", system, comments))
    for word in stop_words(template, tokenizer):
        lines.append(_command("PARAMETER stop", word, comments))
    params, param_notes = generation_parameters(spec.generation)
    lines.extend(f"PARAMETER {name} {value}" for name, value in params)
    comments.extend(param_notes)
    header = "".join("# " + " ".join(line.splitlines()) + "\n" for line in comments)  # one line each
    return header + "\n" + "\n".join(lines) + "\n"


def resolve_template(spec: JobSpec, tokenizer: Any) -> tuple[ChatTemplate | None, str]:
    """Our template for the export (a named one as is; ``auto``: the registered template that renders like the
    tokenizer's Jinja) and a few words on where it came from (or why there is none)."""
    name = spec.data.template
    if name not in (None, "auto"):
        try:
            return get_template(name, tokenizer), f"Tunery's {name!r} chat template"
        except TemplateError as err:
            return None, str(err)
    try:
        auto = TokenizerTemplate.from_tokenizer(tokenizer)
    except TemplateError:
        return None, "the model has no chat template"
    found = matching_template(auto, tokenizer, spec.data.enable_thinking)
    if found is None:
        return None, "the tokenizer's chat template matches none of Tunery's templates"
    return found, f"Tunery's {found.name!r} chat template (renders like the tokenizer's)"


def matching_template(auto: ChatTemplate, tokenizer: Any, enable_thinking: bool | None) -> ChatTemplate | None:
    """The first registered template rendering the probe conversations exactly like ``auto`` (probes ``auto``
    refuses, e.g. a system message for Gemma 2, are left out); a template that matches once a default system
    prompt is set (ChatML models with their own, e.g. SmolLM2) gets that prompt."""

    def render(template: ChatTemplate, probe: int, system: str | None) -> str:
        return template.render_prompt(list(_PROBES[probe]), system, enable_thinking=enable_thinking)

    wanted: dict[tuple[int, str | None], str] = {}
    for probe in range(len(_PROBES)):
        for system in (None, _PROBE_SYSTEM):
            try:
                wanted[probe, system] = render(auto, probe, system)
            except TemplateError:
                continue
    if not wanted:
        return None

    def matches(template: ChatTemplate, keys: list[tuple[int, str | None]]) -> bool:
        return all(render(template, probe, system) == wanted[probe, system] for probe, system in keys)

    with_system = [key for key in wanted if key[1] is not None]
    for name in list_templates():
        try:
            candidate = get_template(name, tokenizer)
            if matches(candidate, list(wanted)):
                return candidate
            if (
                isinstance(candidate, Template)
                and with_system
                and (0, None) in wanted
                and matches(candidate, with_system)
            ):
                default = _default_system(candidate, wanted[0, None], enable_thinking)
                adjusted = replace(candidate, default_system=default) if default else None
                if adjusted is not None and matches(adjusted, list(wanted)):
                    return adjusted
        except (TemplateError, ValueError):
            continue
    return None


def _default_system(template: Template, rendered: str, enable_thinking: bool | None) -> str | None:
    """The system text that makes ``template`` render the first probe as ``rendered``."""
    marked = template.render_prompt(list(_PROBES[0]), _MARK, enable_thinking=enable_thinking)
    if marked.count(_MARK) != 1:
        return None
    head, tail = marked.split(_MARK)
    if len(rendered) <= len(head) + len(tail) or not rendered.startswith(head) or not rendered.endswith(tail):
        return None
    return rendered[len(head) : len(rendered) - len(tail)]


def stop_words(template: ChatTemplate | None, tokenizer: Any) -> list[str]:
    """Every stop word of the template and its eos (the tokenizer's eos without a template), in order."""
    words = list(template.stop_words) if template is not None else []
    eos = getattr(template, "eos_token", "") if template is not None else getattr(tokenizer, "eos_token", None)
    if eos:
        words.append(eos)
    return list(dict.fromkeys(word for word in words if word))


def runtime_adds_bos(gguf_path: Path | None) -> bool:
    """Whether llama.cpp/Ollama put bos before the prompt themselves (the GGUF's ``tokenizer.ggml.add_bos_token``;
    Ollama's default when the key is missing: yes)."""
    if gguf_path is None or not gguf_path.is_file():
        return True
    try:  # llama.cpp reads the header in C (0.1 s); gguf's Python reader parses every token string (3 s)
        from llama_cpp import Llama

        metadata = Llama(model_path=str(gguf_path), vocab_only=True, verbose=False).metadata
    except (ImportError, ValueError):  # no llama-cpp-python, or a file llama.cpp cannot load as a model
        from gguf import GGUFReader

        field = GGUFReader(gguf_path).get_field("tokenizer.ggml.add_bos_token")
        return True if field is None else bool(field.contents())
    value = metadata.get("tokenizer.ggml.add_bos_token")
    return True if value is None else str(value).lower() in ("true", "1")


def generation_parameters(generation: GenerationSection) -> tuple[list[tuple[str, str]], list[str]]:
    """Ollama PARAMETERs for the generation section, and notes on what has no Ollama equivalent."""
    params: list[tuple[str, str]] = []
    notes: list[str] = []
    if generation.do_sample and generation.temperature > 0:
        params += [
            ("temperature", _number(generation.temperature)),
            ("top_p", _number(generation.top_p)),
            ("top_k", str(generation.top_k)),
        ]
    else:  # greedy decoding; top_p/top_k do nothing then
        params.append(("temperature", "0"))
    params += [
        ("repeat_penalty", _number(generation.repetition_penalty)),
        ("num_predict", str(generation.max_new_tokens)),
    ]
    if generation.num_beams > 1:
        notes.append(f"num_beams {generation.num_beams}: Ollama has no beam search; it samples as set below.")
    return params, notes


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _command(command: str, value: str, comments: list[str]) -> str:
    """``command`` with ``value`` quoted so Ollama's parser reads it back unchanged (it has no escapes)."""
    if '"""' in value or not parser_keeps(value):
        comments.append(f"{command} left out: Ollama's Modelfile parser cannot read back {value!r}.")
        return f"# {command} (see above)"
    return f'{command} """{value}"""' if '"' in value or "\n" in value else f'{command} "{value}"'
