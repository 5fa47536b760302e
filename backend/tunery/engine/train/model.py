"""Loading the tokenizer and the model a job trains (a causal LM, or a reward model for stage rm), with
precision, attention, hub access and mixture-of-experts settings."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from tunery.engine.train.errors import TrainingError, invalid_spec, unsupported_hardware
from tunery.spec import JobSpec
from tunery.spec.model import ModelSection
from tunery.spec.training import TrainingSection

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: Which head the trained model has: a causal LM, or a sequence classifier with one output (a reward model).
ModelKind = Literal["causal_lm", "reward"]


@dataclass
class LoadedModel:
    """The model to train and how it was loaded (the methods need some of these facts)."""

    model: PreTrainedModel
    compute_dtype: torch.dtype
    attn_implementation: str
    vocab_resized: bool


# ---- precision and attention -------------------------------------------------------------------


def resolve_compute_dtype(training: TrainingSection) -> torch.dtype:
    """fp32 unless ``bf16``/``fp16`` is set, and only where this machine can train in that precision."""
    if training.bf16:
        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise unsupported_hardware(
                "training.bf16", "this GPU has no bf16 support (Ampere or newer needed); set bf16: false"
            )
        return torch.bfloat16  # on a CPU, torch computes bf16 itself (slower than fp32 without AMX)
    if training.fp16:
        if not torch.cuda.is_available():
            raise unsupported_hardware(
                "training.fp16", "fp16 mixed precision needs a CUDA GPU; set fp16: false to train in fp32"
            )
        return torch.float16
    return torch.float32


def resolve_attention(model: ModelSection) -> str:
    """The transformers ``attn_implementation`` for ``model.flash_attn`` (auto tries sdpa at load time)."""
    choice = model.flash_attn
    if choice in ("disabled", "eager"):
        return "eager"
    if choice == "fa2":
        if not torch.cuda.is_available():
            raise unsupported_hardware("model.flash_attn", "fa2 (FlashAttention-2) needs a CUDA GPU")
        if importlib.util.find_spec("flash_attn") is None:
            raise unsupported_hardware(
                "model.flash_attn", "fa2 needs the flash_attn package, which is not installed; use sdpa"
            )
        return "flash_attention_2"
    return "sdpa"  # "auto" and "sdpa"; auto falls back to eager when the architecture lacks sdpa


def describe_device() -> str:
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return "cpu"


# ---- tokenizer ---------------------------------------------------------------------------------


def load_tokenizer(model: ModelSection) -> PreTrainedTokenizerBase:
    """The tokenizer of the model (or ``tokenizer_name_or_path``), with tokens from the spec added."""
    from transformers import AutoTokenizer

    source = model.tokenizer_name_or_path or model.model_name_or_path
    kwargs: dict[str, Any] = {
        "use_fast": model.use_fast_tokenizer,
        "split_special_tokens": model.split_special_tokens,
        "trust_remote_code": model.trust_remote_code,
        "revision": model.model_revision,
        "cache_dir": model.cache_dir,
        "token": model.hf_hub_token,
        "padding_side": "right",
    }
    if model.gguf_file and model.tokenizer_name_or_path is None:
        kwargs["gguf_file"] = model.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        key = (
            "gguf_file"
            if "gguf_file" in kwargs
            else "tokenizer_name_or_path"
            if model.tokenizer_name_or_path
            else "model_name_or_path"
        )
        raise invalid_spec(key, f"cannot load the tokenizer from {source!r}: {exc}") from exc
    if model.add_tokens:
        tokenizer.add_tokens(model.add_tokens, special_tokens=False)
    if model.add_special_tokens:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": model.add_special_tokens}, replace_extra_special_tokens=False
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# ---- model -------------------------------------------------------------------------------------


def load_model(spec: JobSpec, tokenizer: PreTrainedTokenizerBase, kind: ModelKind = "causal_lm") -> LoadedModel:
    """Load the model in the compute dtype, resize its vocabulary if needed, prepare it for training."""
    dtype = resolve_compute_dtype(spec.training)
    attn = resolve_attention(spec.model)
    model = _from_pretrained(spec.model, dtype, attn, kind)
    if kind == "reward" and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    if spec.model.gguf_file:
        _forget_gguf_quantization(model)
    resized = _resize_vocab(model, tokenizer, spec.model)
    prepare_for_training(model, spec)
    return LoadedModel(model=model, compute_dtype=dtype, attn_implementation=_attn_of(model), vocab_resized=resized)


def load_frozen_model(
    spec: JobSpec, tokenizer: PreTrainedTokenizerBase, model_args: ModelSection | None = None
) -> PreTrainedModel:
    """A causal LM loaded like the trained one (dtype, attention, vocabulary), frozen and in eval mode: the
    reference of the preference stages. ``model_args`` defaults to the job's own model section."""
    args = model_args or spec.model
    model = _from_pretrained(args, resolve_compute_dtype(spec.training), resolve_attention(args), trainable=False)
    if args.gguf_file:
        _forget_gguf_quantization(model)
    _resize_vocab(model, tokenizer, args)
    model.config.use_cache = False
    model.requires_grad_(False)
    model.eval()
    return model


def _from_pretrained(
    model_args: ModelSection, dtype: torch.dtype, attn: str, kind: ModelKind = "causal_lm", *, trainable: bool = True
) -> PreTrainedModel:
    """The model from its folder or hub id; ``trainable``: the model is trained (mixture-of-experts models then
    add the router's load-balancing loss weighted by ``moe_aux_loss_coef``, as in LLaMA-Factory)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    auto_class: Any = AutoModelForCausalLM
    common: dict[str, Any] = {
        "trust_remote_code": model_args.trust_remote_code,
        "revision": model_args.model_revision,
        "cache_dir": model_args.cache_dir,
        "token": model_args.hf_hub_token,
    }
    if model_args.gguf_file:
        from transformers import GgufConfig

        if importlib.util.find_spec("gguf") is None:
            raise invalid_spec("gguf_file", "loading GGUF files needs the gguf package")
        common["gguf_file"] = model_args.gguf_file
        common["quantization_config"] = GgufConfig(dequantize=True)  # train dense weights
    if kind == "reward":  # a causal LM checkpoint gets a new one-output score head (LF's value head)
        auto_class = AutoModelForSequenceClassification
        common["num_labels"] = 1
    source = model_args.model_name_or_path
    try:
        moe: dict[str, Any] = {}
        if model_args.moe_aux_loss_coef and trainable:
            moe = moe_config_values(AutoConfig.from_pretrained(source, **common), model_args.moe_aux_loss_coef)
        if model_args.train_from_scratch:
            config = AutoConfig.from_pretrained(source, **common, **moe)
            return auto_class.from_config(config, dtype=dtype, attn_implementation=attn)  # type: ignore[no-any-return]
        common.update(moe)  # config attributes: from_pretrained sets them on the model's config
        try:
            return auto_class.from_pretrained(  # type: ignore[no-any-return]
                source, dtype=dtype, attn_implementation=attn, **common
            )
        except ValueError as exc:
            if attn != "sdpa" or "scaled_dot_product_attention" not in str(exc):
                raise
            if model_args.flash_attn == "sdpa":
                raise invalid_spec("model.flash_attn", f"{source} does not support sdpa; use auto or eager") from exc
            logger.warning("%s does not support sdpa; using eager attention", source)
            return auto_class.from_pretrained(  # type: ignore[no-any-return]
                source, dtype=dtype, attn_implementation="eager", **common
            )
    except TrainingError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        key = "gguf_file" if model_args.gguf_file else "model_name_or_path"
        what = "a reward model" if kind == "reward" else "a causal LM"
        raise invalid_spec(key, f"cannot load {what} from {source!r}: {exc}") from exc


# ---- mixture of experts ------------------------------------------------------------------------

#: Config attributes that switch the router's load-balancing loss on, and the one holding its weight, by
#: ``model_type`` (LLaMA-Factory's ``configure_moe``).
MOE_ROUTER_LOGITS = frozenset(
    {
        "dbrx",
        "ernie4_5_moe",
        "granitemoe",
        "jamba",
        "jetmoe",
        "llama4",
        "mixtral",
        "olmoe",
        "phimoe",
        "qwen2_moe",
        "qwen3_moe",
    }
)
MOE_COEF_ATTRIBUTE: dict[str, str] = {
    **{
        name: "router_aux_loss_coef"
        for name in (
            "ernie4_5_moe",
            "granitemoe",
            "jamba",
            "llama4",
            "mixtral",
            "olmoe",
            "phimoe",
            "qwen2_moe",
            "qwen3_moe",
        )
    },
    "deepseek": "aux_loss_alpha",
    "jetmoe": "aux_loss_coef",
}


def moe_config_values(config: Any, coef: float) -> dict[str, Any]:
    """Config values that make a mixture-of-experts model add ``coef`` x its load-balancing loss to the loss.
    Other models have no such loss: LLaMA-Factory then trains as usual, and so do we, with a warning."""
    model_type = str(getattr(config, "model_type", ""))
    values: dict[str, Any] = {}
    if model_type in MOE_ROUTER_LOGITS:
        values["output_router_logits"] = True
    if model_type in MOE_COEF_ATTRIBUTE:
        values[MOE_COEF_ATTRIBUTE[model_type]] = coef
    if not values:
        logger.warning(
            "moe_aux_loss_coef has no effect: %s models have no router load-balancing loss (known: %s)",
            model_type or "these",
            ", ".join(sorted(set(MOE_COEF_ATTRIBUTE) | MOE_ROUTER_LOGITS)),
        )
    return values


def _forget_gguf_quantization(model: PreTrainedModel) -> None:
    """A GGUF file loaded with ``dequantize`` holds dense weights: make it a plain model, so every method can
    train it and it is saved without a GGUF quantization config."""
    if not all(param.is_floating_point() for param in model.parameters()):
        raise invalid_spec("gguf_file", "some GGUF weights stayed quantized; convert the file to safetensors first")
    setattr(model, "hf_quantizer", None)  # noqa: B010 - nn.Module's typing hides these attributes
    setattr(model, "is_quantized", False)  # noqa: B010
    for owner, name in ((model.config, "quantization_config"), (model, "quantization_method")):
        if hasattr(owner, name):
            delattr(owner, name)


def _attn_of(model: PreTrainedModel) -> str:
    return str(getattr(model.config, "_attn_implementation", None) or "eager")


def _resize_vocab(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, args: ModelSection) -> bool:
    """Grow the embeddings when the tokenizer has more tokens than the model (LF: multiple of 64)."""
    weight = getattr(model.get_input_embeddings(), "weight", None)
    rows = int(weight.shape[0]) if isinstance(weight, torch.Tensor) else len(tokenizer)
    if len(tokenizer) <= rows:
        return False
    if not args.resize_vocab:
        logger.warning("tokenizer has %d tokens, model %d embeddings: resizing the vocabulary", len(tokenizer), rows)
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    return True


def prepare_for_training(model: PreTrainedModel, spec: JobSpec) -> None:
    """KV cache off, gradient checkpointing (LF: on unless disabled), optional fp32 upcasts."""
    model.config.use_cache = False
    if gradient_checkpointing_wanted(spec):
        if not getattr(model, "supports_gradient_checkpointing", False):
            logger.warning("%s does not support gradient checkpointing", type(model).__name__)
        else:
            model.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": spec.model.use_reentrant_gc}
            )
            model.enable_input_require_grads()
    if spec.model.upcast_layernorm:
        for name, param in model.named_parameters():
            if param.ndim == 1 and "norm" in name:
                param.data = param.data.to(torch.float32)
    if spec.model.upcast_lmhead_output:
        head = model.get_output_embeddings()
        if head is not None:
            head.register_forward_hook(_output_to_fp32)


def gradient_checkpointing_wanted(spec: JobSpec) -> bool:
    """LLaMA-Factory turns it on for training unless ``disable_gradient_checkpointing``;
    ``training.gradient_checkpointing: true`` forces it on."""
    return spec.training.gradient_checkpointing or not spec.model.disable_gradient_checkpointing


def _output_to_fp32(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    return output.to(torch.float32)
