"""QLoRA's base model: a copy of the model loaded through bitsandbytes in 4 bits (NF4 or
FP4, optionally double-quantized, computing in `compute_dtype`), prepared for adapter
training with peft's `prepare_model_for_kbit_training`.

The copy is made the public way: the float32 weights are saved to a temporary folder and
loaded again with a transformers `BitsAndBytesConfig`, so any model the harness loads
(the bundled GGUF, a hub id or path, the tiny test model) can be quantized.

`check_4bit` runs a real 4-bit round trip on the model's device when the strategy is
built, so a machine whose bitsandbytes cannot run 4-bit fails at once with a message that
says so, not deep inside training."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.utils import logging as hf_logging

from harness.errors import ConfigError
from harness.system import resolve_dtype

QUANTIZE = (None, "4bit")
QUANT_TYPES = ("nf4", "fp4")
INSTALL = "pip install 'adaptbench[qlora]' (or pip install bitsandbytes)"


@dataclass(frozen=True)
class QuantSettings:
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"

    def __post_init__(self) -> None:
        if self.quant_type not in QUANT_TYPES:
            raise ConfigError(f"unknown adapter.quant_type '{self.quant_type}'; choose one of: "
                             f"{', '.join(QUANT_TYPES)}")
        resolve_dtype(self.compute_dtype)  # a clear error for an unknown dtype

    def describe(self) -> str:
        return (f"4-bit {self.quant_type.upper()}"
                f"{' (double quant)' if self.double_quant else ''}, "
                f"{self.compute_dtype} compute")


def _bitsandbytes():
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # optional hub kernels: quiet
    try:
        import bitsandbytes
    except ImportError as e:
        raise ConfigError(f"strategy.adapter.quantize=4bit needs bitsandbytes, which is not "
                          f"installed ({e}); {INSTALL}") from None
    return bitsandbytes


def check_4bit(device: torch.device, settings: QuantSettings) -> str:
    """Quantize and multiply a small matrix in 4 bits on `device`; returns the bitsandbytes
    version, or raises ConfigError saying why this machine cannot train QLoRA."""
    bnb = _bitsandbytes()
    dtype = resolve_dtype(settings.compute_dtype)
    try:
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=dtype,
                                  quant_type=settings.quant_type,
                                  compress_statistics=settings.double_quant)
        layer = layer.to(device)  # quantizes the weight
        out = layer(torch.ones(2, 64, device=device, dtype=dtype))
        if not torch.isfinite(out).all():
            raise RuntimeError("the 4-bit product is not finite")
    except Exception as e:  # any failure of the library on this device
        raise ConfigError(
            f"strategy.adapter.quantize=4bit: bitsandbytes {bnb.__version__} cannot run "
            f"4-bit layers on {device.type} here ({type(e).__name__}: {e}). Use "
            f"strategy.adapter.quantize=null (plain LoRA), or a device and bitsandbytes build "
            f"that support 4-bit (see https://huggingface.co/docs/bitsandbytes).") from e
    return str(bnb.__version__)


def quantized_copy(model: PreTrainedModel, settings: QuantSettings) -> PreTrainedModel:
    """A 4-bit copy of `model` (its own weights, quantized), ready for adapter training."""
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    _bitsandbytes()
    device = next(model.parameters()).device
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=settings.quant_type,
                                bnb_4bit_use_double_quant=settings.double_quant,
                                bnb_4bit_compute_dtype=resolve_dtype(settings.compute_dtype))
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a copy in memory, not a download: no bars
    try:
        with tempfile.TemporaryDirectory(prefix="qlora-") as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            quantized = AutoModelForCausalLM.from_pretrained(
                tmp, quantization_config=config, device_map={"": device},
                dtype=torch.float32)  # what is not quantized stays float32
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    quantized.config.name_or_path = model.config.name_or_path  # not the deleted folder
    # What stays float32 (embeddings, norms) was loaded as views of the temporary file's
    # mapping, which they would keep resident, whole, after the file is deleted: own copies
    with torch.no_grad():
        for tensor in [*quantized.parameters(), *quantized.buffers()]:
            if tensor.dtype.is_floating_point:  # the 4-bit weights are packed uint8
                tensor.data = tensor.data.clone()
    # Gradient checkpointing trades speed for memory: left to the Trainer's own setting.
    return prepare_model_for_kbit_training(quantized, use_gradient_checkpointing=False)


def weights_mb(model: PreTrainedModel) -> float:
    """Memory the model's parameters and buffers hold, in MB: 4-bit weights at their packed
    size plus their quantization constants (per-block scales, double-quant's second level)."""
    extra: dict[int, int] = {}  # by storage: the code tables are shared between layers
    for p in model.parameters():
        state = getattr(p, "quant_state", None)
        if state is None:
            continue
        parts = [state.absmax, state.code]
        if getattr(state, "nested", False) and state.state2 is not None:
            parts += [state.offset, state.state2.absmax, state.state2.code]
        for t in parts:
            if isinstance(t, torch.Tensor):
                extra[t.data_ptr()] = t.numel() * t.element_size()
    return (float(model.get_memory_footprint()) + sum(extra.values())) / 2**20
