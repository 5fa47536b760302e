"""Model section of the job spec: which weights, how they are loaded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tunery.spec.base import Section, split_csv

AttnImpl = Literal["auto", "disabled", "sdpa", "fa2", "eager"]


class ModelSection(Section):
    """Base model, adapters to start from, and loading options."""

    model_name_or_path: str = Field(description="Local path or hub id of the base model.")
    gguf_file: str | None = Field(
        default=None, description="GGUF file name inside model_name_or_path to load and dequantize."
    )
    adapter_name_or_path: list[str] | None = Field(
        default=None, description="Adapters to load (and merge, except the last) before training."
    )
    tokenizer_name_or_path: str | None = None
    model_revision: str = "main"
    cache_dir: str | None = None
    trust_remote_code: bool = False
    use_fast_tokenizer: bool = True
    split_special_tokens: bool = False
    add_tokens: list[str] | None = None
    add_special_tokens: list[str] | None = None
    resize_vocab: bool = False
    flash_attn: AttnImpl = Field(
        default="auto", description="Attention kernel: auto, sdpa, fa2, eager or disabled (= eager)."
    )
    disable_gradient_checkpointing: bool = False
    use_reentrant_gc: bool = True
    upcast_layernorm: bool = False
    upcast_lmhead_output: bool = False
    train_from_scratch: bool = False
    low_cpu_mem_usage: bool = Field(
        default=True,
        description="Weights load straight into an empty model (transformers 5 always does; false is refused).",
    )
    rope_scaling: Literal["linear", "dynamic", "yarn", "llama3"] | None = None
    enable_liger_kernel: bool = False
    use_unsloth: bool = False
    shift_attn: bool = False
    mixture_of_depths: Literal["convert", "load"] | None = None
    moe_aux_loss_coef: float | None = Field(
        default=None,
        ge=0,
        description="Mixture-of-experts models: weight of the router's load-balancing loss added to the loss.",
    )
    # Quantized loading (QLoRA): refused for now with quantization_bit; the other keys need quantization_bit.
    quantization_method: Literal["bnb", "gptq", "awq", "aqlm", "quanto", "eetq", "hqq"] = "bnb"
    quantization_bit: int | None = None
    quantization_type: Literal["fp4", "nf4"] = "nf4"
    double_quantization: bool = True
    quantization_device_map: Literal["auto"] | None = None
    infer_backend: Literal["huggingface", "vllm", "sglang", "hf"] = "huggingface"
    infer_dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    use_cache: bool = True
    offload_folder: str = Field(
        default="offload", description="Device-map offloading only; Tunery loads the model on one device."
    )
    hf_hub_token: str | None = Field(
        default=None, repr=False, description="Hugging Face Hub token for private/gated models and datasets."
    )
    ms_hub_token: str | None = Field(default=None, repr=False, description="ModelScope token for its datasets.")
    om_hub_token: str | None = Field(default=None, repr=False, description="Modelers token for its datasets.")
    print_param_status: bool = False
    # Multimodal inputs (LLaMA-Factory's keys): Tunery trains text-only models, so other values are refused.
    image_max_pixels: int = 768 * 768
    image_min_pixels: int = 32 * 32
    video_max_pixels: int = 256 * 256
    video_min_pixels: int = 16 * 16
    video_fps: float = 2.0
    video_maxlen: int = 128

    _split = field_validator("adapter_name_or_path", "add_tokens", "add_special_tokens", mode="before")(split_csv)


#: Options LLaMA-Factory accepts that Tunery does not implement yet, with the value meaning "off".
UNSUPPORTED_MODEL_OPTIONS: dict[str, object] = {
    "use_unsloth": False,
    "shift_attn": False,
    "mixture_of_depths": None,
    "quantization_bit": None,
    "enable_liger_kernel": False,
    "rope_scaling": None,
}
