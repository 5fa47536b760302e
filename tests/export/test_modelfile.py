"""The Ollama Modelfile: Ollama's parser reads it back and its TEMPLATE, rendered by Go's text/template the way
Ollama renders chats, gives exactly the prompt our chat template renders (tests/support/ollama.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.ollama import OllamaRenderer, build_renderer
from tests.support.tiny_models import build_tokenizer
from tunery.engine.data.types import Message, Role
from tunery.engine.export.modelfile import MODELFILE, generation_parameters, pick_gguf, write_modelfile
from tunery.engine.export.ollama_template import build_go_template
from tunery.engine.export.types import ExportContext, WrittenArtifact
from tunery.engine.templates import ChatTemplate, Template, get_template, list_templates
from tunery.engine.train.cancel import CancelRequest
from tunery.spec.generation import GenerationSection
from tunery.spec.job import JobSpec

SYSTEM = 'Answer in one line. Quote "exactly".'
#: (messages, system): one turn and several, with and without a system prompt; texts with quotes, braces that look
#: like Go actions, non-ASCII and inner newlines (data, never template code)
CHATS: list[tuple[list[Message], str | None]] = [
    ([Message(Role.USER, "Hello there!")], None),
    ([Message(Role.USER, "Hello there!")], SYSTEM),
    (
        [
            Message(Role.USER, "What is 2 + 2?"),
            Message(Role.ASSISTANT, "It is 4."),
            Message(Role.USER, 'Say {{ .System }} and """ literally.'),
            Message(Role.ASSISTANT, 'Done: {{ .System }} and """.\nNext line — ✓'),
            Message(Role.USER, "Merci, et 3 × 3 ?"),
        ],
        None,
    ),
    (
        [
            Message(Role.USER, "First question"),
            Message(Role.ASSISTANT, "First answer"),
            Message(Role.USER, "Second question"),
        ],
        SYSTEM,
    ),
]


@pytest.fixture(scope="module")
def ollama(tmp_path_factory: pytest.TempPathFactory) -> OllamaRenderer:
    return build_renderer(tmp_path_factory.mktemp("ollama-render"))


@pytest.fixture(scope="module")
def merged_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer folder standing in for the merged model (bos <|begin_of_text|>, eos <|eot_id|>)."""
    folder = tmp_path_factory.mktemp("merged")
    build_tokenizer(folder, "llama")
    return folder


def write_gguf(path: Path, *, add_bos: bool | None) -> Path:
    """A GGUF file holding only the metadata the Modelfile reads."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    if add_bos is not None:
        writer.add_bool("tokenizer.ggml.add_bos_token", add_bos)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def export_context(merged: Path, out: Path, **keys: Any) -> tuple[ExportContext, list[str]]:
    sections: dict[str, dict[str, Any]] = {"model": {"model_name_or_path": "base"}, "data": {}, "export": {}}
    for key, value in keys.items():
        section = "export" if key.startswith("export_") else "generation" if key in GENERATION_KEYS else "data"
        sections.setdefault(section, {})[key] = value
    spec = JobSpec.model_validate(sections)
    out.mkdir(parents=True, exist_ok=True)
    logs: list[str] = []
    return ExportContext(spec, merged, out, CancelRequest(), logs.append), logs


GENERATION_KEYS = set(GenerationSection.model_fields)


def gguf_artifacts(out: Path, *, add_bos: bool | None = True) -> list[WrittenArtifact]:
    artifacts = []
    for quantization in ("F16", "Q8_0", "Q4_K_M"):
        name = f"model-{quantization}.gguf"
        write_gguf(out / name, add_bos=add_bos)
        artifacts.append(WrittenArtifact(name, "gguf", name, (out / name).stat().st_size, quantization, "gguf"))
    return artifacts


def as_ollama(messages: list[Message], system: str | None) -> list[dict[str, str]]:
    chat = [{"role": "system", "content": system}] if system else []
    return chat + [{"role": m.role.value, "content": m.content} for m in messages]


def expected_prompt(template: ChatTemplate, messages: list[Message], system: str | None, *, drop_bos: bool) -> str:
    """Our template's prompt text; without the leading bos when the runtime adds it (as llama.cpp does)."""
    text = template.render_prompt(messages, system)
    bos = getattr(template, "bos_token", "")
    return text[len(bos) :] if drop_bos and bos and text.startswith(bos) else text


def check_renders_like_ours(
    ollama: OllamaRenderer, modelfile: Path, template: ChatTemplate, *, drop_bos: bool, default_system: str | None
) -> None:
    cases = [(modelfile, as_ollama(messages, system)) for messages, system in CHATS]
    for (messages, system), result in zip(CHATS, ollama.run(cases), strict=True):
        assert result.error == ""
        wanted = expected_prompt(template, messages, system or default_system, drop_bos=drop_bos)
        assert result.prompt == wanted, f"{template.name}: {len(messages)} messages, system {system!r}"


def test_every_template_renders_like_ours(ollama: OllamaRenderer, merged_dir: Path, tmp_path: Path) -> None:
    """All registered templates, with bos added by the runtime (most GGUFs) and written by the template."""
    for name in list_templates():
        for add_bos in (True, False):
            out = tmp_path / f"{name}-{add_bos}"
            ctx, _ = export_context(merged_dir, out, template=name)
            written = write_modelfile(ctx, gguf_artifacts(out, add_bos=add_bos))
            assert written is not None
            template = get_template(name, _tokenizer(merged_dir))
            check_renders_like_ours(
                ollama, out / MODELFILE, template, drop_bos=add_bos, default_system=template.default_system
            )


@pytest.mark.parametrize("name", ["llama3", "qwen", "mistral", "gemma", "phi3", "llama2"])
def test_modelfile_parses_with_stops_and_system(
    ollama: OllamaRenderer, merged_dir: Path, tmp_path: Path, name: str
) -> None:
    system = 'You are "Tuna".\nAnswer briefly.'
    ctx, logs = export_context(merged_dir, tmp_path, template=name, default_system=system)
    written = write_modelfile(ctx, gguf_artifacts(tmp_path))
    assert written == WrittenArtifact(MODELFILE, "modelfile", MODELFILE, (tmp_path / MODELFILE).stat().st_size)
    assert not list(tmp_path.glob("*.partial"))
    assert any("Modelfile" in line for line in logs)
    parsed = ollama.render(tmp_path / MODELFILE)
    assert parsed.error == ""
    assert parsed.args("model") == ["./model-Q4_K_M.gguf"]
    assert parsed.args("system") == [system]  # quotes and newlines survive the parser (which has no escapes)
    template = get_template(name, _tokenizer(merged_dir))
    assert isinstance(template, Template)
    assert set(parsed.args("stop")) == {*template.stop_words, template.eos_token}
    assert len(parsed.args("template")) == 1
    check_renders_like_ours(ollama, tmp_path / MODELFILE, template, drop_bos=True, default_system=system)


@pytest.mark.parametrize("name", ["qwen3", "deepseekr1"])
def test_thinking_off_prompt(ollama: OllamaRenderer, merged_dir: Path, tmp_path: Path, name: str) -> None:
    ctx, _ = export_context(merged_dir, tmp_path, template=name, enable_thinking=False)
    write_modelfile(ctx, gguf_artifacts(tmp_path))
    template = get_template(name, None)
    messages, system = CHATS[3]
    result = ollama.render(tmp_path / MODELFILE, as_ollama(messages, system))
    wanted = template.render_prompt(messages, system, enable_thinking=False)
    bos = getattr(template, "bos_token", "")
    assert result.prompt == (wanted[len(bos) :] if bos else wanted)
    assert "</think>" in result.prompt


def test_prefilled_answer_is_continued(ollama: OllamaRenderer, merged_dir: Path, tmp_path: Path) -> None:
    """A chat ending with an assistant message: Ollama continues it, so it stays open (no end-of-turn token)."""
    ctx, _ = export_context(merged_dir, tmp_path, template="llama3")
    write_modelfile(ctx, gguf_artifacts(tmp_path))
    messages, system = CHATS[1]
    prompt = ollama.render(tmp_path / MODELFILE, as_ollama(messages, system)).prompt
    continued = ollama.render(
        tmp_path / MODELFILE, [*as_ollama(messages, system), {"role": "assistant", "content": "Sure, the"}]
    ).prompt
    assert continued == prompt + "Sure, the"


def test_auto_template_is_matched_in_the_registry(ollama: OllamaRenderer, tmp_path: Path) -> None:
    """The tokenizer's own Jinja (no template named): a ChatML one with its own default system prompt, as the
    demo model's, is written as our chatml template with that prompt as SYSTEM."""
    folder = tmp_path / "merged"
    tokenizer = build_tokenizer(folder, "qwen2")
    default = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    tokenizer.chat_template = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\n" + default + "<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    tokenizer.save_pretrained(folder)
    out = tmp_path / "out"
    ctx, _ = export_context(folder, out)
    write_modelfile(ctx, gguf_artifacts(out, add_bos=False))
    text = (out / MODELFILE).read_text()
    assert "'chatml'" in text
    parsed = ollama.render(out / MODELFILE)
    assert parsed.args("system") == [default]
    assert parsed.args("stop") == ["<|im_end|>"]
    for messages, system in CHATS:
        hf = ([{"role": "system", "content": system}] if system else []) + as_ollama(messages, None)
        wanted = tokenizer.apply_chat_template(hf, tokenize=False, add_generation_prompt=True)
        assert ollama.render(out / MODELFILE, as_ollama(messages, system)).prompt == wanted


GEMMA2_JINJA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)


def test_auto_template_refusing_a_system_prompt(ollama: OllamaRenderer, tmp_path: Path) -> None:
    """Gemma 2's Jinja raises on a system message: it is matched on the conversations it renders."""
    folder = tmp_path / "merged"
    tokenizer = build_tokenizer(folder, "gemma")
    tokenizer.chat_template = GEMMA2_JINJA
    tokenizer.save_pretrained(folder)
    out = tmp_path / "out"
    ctx, _ = export_context(folder, out)
    write_modelfile(ctx, gguf_artifacts(out, add_bos=False))
    assert "'gemma'" in (out / MODELFILE).read_text()
    for messages, system in CHATS:
        if system is None:
            wanted = tokenizer.apply_chat_template(
                as_ollama(messages, None), tokenize=False, add_generation_prompt=True
            )
            assert ollama.render(out / MODELFILE, as_ollama(messages, None)).prompt == wanted


def test_unknown_jinja_leaves_the_template_to_the_gguf(ollama: OllamaRenderer, tmp_path: Path) -> None:
    folder = tmp_path / "merged"
    tokenizer = build_tokenizer(folder, "llama")
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] }}\n{% endfor %}"
    tokenizer.save_pretrained(folder)
    out = tmp_path / "out"
    ctx, _ = export_context(folder, out)
    write_modelfile(ctx, gguf_artifacts(out))
    text = (out / MODELFILE).read_text()
    assert "TEMPLATE" not in text.replace("# No TEMPLATE", "")
    assert "matches none of Tunery's templates" in text
    parsed = ollama.render(out / MODELFILE)
    assert parsed.error == ""
    assert parsed.args("stop") == ["<|eot_id|>"]  # the tokenizer's eos


def test_slots_go_templates_cannot_hold_verbatim(ollama: OllamaRenderer, tmp_path: Path) -> None:
    """Text that would be Go template code, a run of three quotes or characters Ollama's parser drops (no-break
    space, zero-width joiner) is written as Go string actions and still renders unchanged."""
    weird = Template(
        name="weird",
        prefix="<{",
        system='SYS{{x}} """{content}"""\n',
        user="U\u00a0\u200d{content}{",
        assistant_open="}A:",
        assistant="{content}\t<end>",
    )
    built = build_go_template(weird, enable_thinking=True, drop_bos=False)
    modelfile = tmp_path / MODELFILE
    modelfile.write_text(f'FROM ./m.gguf\nTEMPLATE """{built.text}"""\n', encoding="utf-8")
    for messages, system in CHATS:
        result = ollama.render(modelfile, as_ollama(messages, system))
        assert result.error == ""
        assert result.prompt == weird.render_prompt(messages, system)


def test_system_the_parser_cannot_read_back_is_left_out(
    ollama: OllamaRenderer, merged_dir: Path, tmp_path: Path
) -> None:
    ctx, _ = export_context(merged_dir, tmp_path, template="llama3", default_system="Zero\u200bwidth")
    write_modelfile(ctx, gguf_artifacts(tmp_path))
    text = (tmp_path / MODELFILE).read_text(encoding="utf-8")
    assert "SYSTEM left out" in text
    parsed = ollama.render(tmp_path / MODELFILE)
    assert parsed.error == ""
    assert parsed.args("system") == []


def test_nothing_written_without_gguf_or_when_off(merged_dir: Path, tmp_path: Path) -> None:
    ctx, _ = export_context(merged_dir, tmp_path, template="llama3")
    assert write_modelfile(ctx, []) is None
    ctx, _ = export_context(merged_dir, tmp_path, template="llama3", export_ollama=False)
    assert write_modelfile(ctx, gguf_artifacts(tmp_path)) is None
    assert not (tmp_path / MODELFILE).exists()


def test_best_four_bit_gguf_is_picked() -> None:
    def art(quantization: str) -> WrittenArtifact:
        return WrittenArtifact(f"model-{quantization}.gguf", "gguf", f"model-{quantization}.gguf", 1, quantization)

    assert pick_gguf([art("F16"), art("Q4_0"), art("Q4_K_M")]).quantization == "Q4_K_M"
    assert pick_gguf([art("F16"), art("Q8_0"), art("Q4_0")]).quantization == "Q4_0"
    assert pick_gguf([art("F32"), art("F16")]).quantization == "F32"


def test_generation_parameters() -> None:
    params, notes = generation_parameters(GenerationSection())
    assert dict(params) == {
        "temperature": "0.95",
        "top_p": "0.7",
        "top_k": "50",
        "repeat_penalty": "1",  # explicit: Ollama's own default is 1.1
        "num_predict": "1024",
    }
    assert notes == []
    greedy, notes = generation_parameters(GenerationSection(do_sample=False, num_beams=4, max_new_tokens=64))
    assert dict(greedy) == {"temperature": "0", "repeat_penalty": "1", "num_predict": "64"}
    assert "beam" in notes[0]


def test_parameters_reach_ollama(ollama: OllamaRenderer, merged_dir: Path, tmp_path: Path) -> None:
    ctx, _ = export_context(
        merged_dir, tmp_path, template="qwen", temperature=0.3, top_p=0.9, top_k=20, repetition_penalty=1.15
    )
    write_modelfile(ctx, gguf_artifacts(tmp_path))
    parsed = ollama.render(tmp_path / MODELFILE)
    values = {name: args for name, args in parsed.commands if name in ("temperature", "top_p", "top_k")}
    assert values == {"temperature": "0.3", "top_p": "0.9", "top_k": "20"}
    assert parsed.args("repeat_penalty") == ["1.15"]


_TOKENIZERS: dict[Path, Any] = {}


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    if folder not in _TOKENIZERS:
        _TOKENIZERS[folder] = AutoTokenizer.from_pretrained(str(folder))
    return _TOKENIZERS[folder]
