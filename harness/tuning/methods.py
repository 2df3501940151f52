"""Tuning methods: how to adapt a copy of the base model (PEFT adapters or full tuning with
optionally frozen bottom blocks), and how each method saves, loads and serves its result."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from harness.errors import ConfigError
from harness.tuning.quantize import QUANTIZE, QuantSettings, check_4bit, quantized_copy

# peft reads `model.is_gradient_checkpointing`, which transformers 5 deprecates with a
# FutureWarning on every adapter; it is peft's to change, not the user's: keep it quiet.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

PEFT_METHODS = ("lora", "ia3", "prompt_tuning")


@dataclass(frozen=True)
class AdapterSettings:
    method: str = "lora"  # lora | ia3 | prompt_tuning
    r: int = 16  # LoRA rank; higher: more capacity, bigger adapter
    alpha: int = 32  # LoRA scale; alpha = 2r works well (Biderman et al. 2024)
    dropout: float = 0.05
    # all-linear | attention (the linear layers inside the attention blocks, whatever the
    # architecture calls them) | a list such as [q_proj, v_proj]
    target_modules: str | tuple[str, ...] = "all-linear"
    use_dora: bool = False  # DoRA: weight-decomposed LoRA (slower steps)
    num_virtual_tokens: int = 20  # prompt tuning: learned tokens prepended to every input
    merge: bool = True  # merge LoRA/IA3 into the weights for predict (no added latency)
    # QLoRA: train the adapter on a 4-bit copy of the base (bitsandbytes); None: full precision
    quantize: str | None = None  # None | 4bit
    quant_type: str = "nf4"  # nf4 | fp4
    double_quant: bool = True  # quantize the quantization constants too (~0.4 bit/weight less)
    quant_compute_dtype: str = "bfloat16"  # the dtype 4-bit layers compute in

    def __post_init__(self) -> None:
        if self.method not in PEFT_METHODS:
            raise ConfigError(f"unknown adapter method '{self.method}'; choose one of: "
                             f"{', '.join(PEFT_METHODS)}")
        if self.quantize not in QUANTIZE:
            raise ConfigError(f"unknown adapter.quantize '{self.quantize}'; choose null or 4bit")
        if self.quantize and self.method != "lora":
            raise ConfigError(f"adapter.quantize=4bit trains LoRA (QLoRA); set "
                             f"adapter.method=lora, not {self.method}")
        if self.r < 1 or self.alpha <= 0 or self.num_virtual_tokens < 1:
            raise ConfigError(f"adapter.r must be >= 1 (got {self.r}), adapter.alpha > 0 and "
                             f"adapter.num_virtual_tokens >= 1")
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))


@dataclass(frozen=True)
class FullSettings:
    # freeze embeddings and the bottom N blocks (tune only the top); a number below 1 is a
    # share of the model's blocks (0.5: the bottom half), so one setting fits any depth
    freeze_layers: int | float = 0

    def __post_init__(self) -> None:
        n = self.freeze_layers
        if n < 0 or (n >= 1 and n != int(n)):
            raise ConfigError(f"freeze_layers must be a whole number of blocks >= 0 or a share "
                              f"below 1, got {n}")
        if n >= 1:
            object.__setattr__(self, "freeze_layers", int(n))

    def frozen_blocks(self, blocks: int) -> int:
        n = self.freeze_layers
        return int(n * blocks) if 0 < n < 1 else int(n)


ATTENTION_PARTS = ("attn", "attention")


def attention_targets(model: torch.nn.Module) -> list[str]:
    """The names (last component) of the linear layers inside attention blocks: q_proj,
    k_proj, v_proj, o_proj in a llama; c_attn, c_proj in GPT-2; query_key_value in GPT-NeoX."""
    from transformers.pytorch_utils import Conv1D

    names = set()
    for name, module in model.named_modules():
        parts = name.lower().split(".")
        if isinstance(module, torch.nn.Linear | Conv1D) and any(
                a in part for part in parts[:-1] for a in ATTENTION_PARTS):
            names.add(name.rsplit(".", 1)[-1])
    if not names:
        raise ConfigError(f"adapter.target_modules=attention: {type(model).__name__} has no "
                          "linear layer inside a module named *attn* or *attention*; list the "
                          "modules instead (adapter.target_modules=[...])")
    return sorted(names)


def _peft_config(s: AdapterSettings, model: torch.nn.Module):
    from peft import IA3Config, LoraConfig, PromptTuningConfig, TaskType

    if s.method == "lora":
        targets = (s.target_modules if s.target_modules == "all-linear"
                   else attention_targets(model) if s.target_modules == "attention"
                   else list(s.target_modules))
        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=s.r, lora_alpha=s.alpha,
                          lora_dropout=s.dropout, target_modules=targets, use_dora=s.use_dora)
    if s.method == "ia3":
        return IA3Config(task_type=TaskType.CAUSAL_LM)  # peft's per-architecture defaults
    return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=s.num_virtual_tokens)


def decoder_blocks(model: PreTrainedModel, why: str) -> Sequence[torch.nn.Module]:
    """The model's decoder layers (`model.layers` of a Hugging Face causal LM); `why`: the
    setting that needs them, for the error when they cannot be found."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ConfigError(f"{why}: cannot find the transformer blocks of {type(model).__name__}")
    return layers


class Method:
    """How one tuning method prepares, saves, loads and serves a model."""

    def __init__(self, settings: AdapterSettings | FullSettings) -> None:
        self.settings = settings
        self.peft = isinstance(settings, AdapterSettings)

    @property
    def kind(self) -> str:
        return self.settings.method if self.peft else "full"

    @property
    def quant(self) -> QuantSettings | None:
        """The 4-bit base's settings (QLoRA); None: the base trains in full precision."""
        s = self.settings
        if not (self.peft and s.quantize):
            return None
        return QuantSettings(s.quant_type, s.double_quant, s.quant_compute_dtype)

    def check(self, device: torch.device) -> dict[str, str]:
        """Fail now, not deep inside training, when this machine cannot run the method;
        returns the library versions it depends on."""
        quant = self.quant
        return {"bitsandbytes": check_4bit(device, quant)} if quant else {}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self.settings)}

    def _trainable_base(self, base: PreTrainedModel, own: bool = False) -> PreTrainedModel:
        """What to train on: a 4-bit copy of `base` for QLoRA, else `base` in its precision
        (a copy, unless the caller owns `base`)."""
        quant = self.quant
        if quant:
            return quantized_copy(base, quant)
        return base if own else copy.deepcopy(base)

    def prepare(self, base: PreTrainedModel, own: bool = False) -> PreTrainedModel:
        """The model to train, from `base`. `own`: `base` is the caller's to change (a float32
        copy loaded for training), so it trains in place rather than as a second copy."""
        model = self._trainable_base(base, own)
        if self.peft:
            from peft import get_peft_model

            return get_peft_model(model, _peft_config(self.settings, model))
        return self._freeze(model)

    def resume(self, base: PreTrainedModel, path: Path) -> PreTrainedModel:
        """A trainable copy of the artifact at `path`, to continue training it."""
        if self.peft:
            from peft import PeftModel

            return PeftModel.from_pretrained(self._trainable_base(base), path, is_trainable=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=base.dtype).to(base.device)
        return self._freeze(model)

    def _freeze(self, model: PreTrainedModel) -> PreTrainedModel:
        if self.settings.freeze_layers:
            blocks = decoder_blocks(model, "freeze_layers")
            n = self.settings.frozen_blocks(len(blocks))
            if n > len(blocks):
                raise ConfigError(f"freeze_layers={n} but the model has {len(blocks)} blocks")
            model.get_input_embeddings().requires_grad_(False)
            for block in blocks[:n]:
                block.requires_grad_(False)
            if not model.config.tie_word_embeddings:
                model.get_output_embeddings().requires_grad_(True)
        return model

    def save(self, model: PreTrainedModel, path: Path,
             state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """The artifact; `state_dict`: the weights to write (a sharded model's, gathered)."""
        model.save_pretrained(path, state_dict=state_dict, safe_serialization=True)

    def load(self, base: PreTrainedModel, path: Path) -> PreTrainedModel:
        if self.peft:
            from peft import PeftModel

            return PeftModel.from_pretrained(copy.deepcopy(base), path)
        return AutoModelForCausalLM.from_pretrained(path, dtype=base.dtype).to(base.device)

    def for_inference(self, model: PreTrainedModel) -> tuple[PreTrainedModel, bool]:
        """(model to predict with, merged?)."""
        model.eval()
        if self.peft and self.settings.merge and self.settings.method in ("lora", "ia3"):
            return model.merge_and_unload(), True
        return model, False

    def backward_params(self, total: int, trainable: int) -> int:
        return trainable if (not self.peft and self.settings.freeze_layers) else total

