"""A tuned run's model, carried out: the PEFT adapter with its base's reference, a merged
Hugging Face folder (merged in float32: a QLoRA base is the full-precision one the run
served from, never its 4-bit copy), a fully tuned model's folder, or a GGUF file of the
merged weights. Each folder carries the tokenizer (its chat template included) and a
generation_config.json with the run's decoding settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from harness.errors import UserError
from harness.export.gguf import hf_to_gguf, lora_to_gguf
from harness.export.source import Source
from harness.models.loading import GGUF_PREFIX, TINY, converted_gguf_dir, load_model
from harness.system import cache_root

UNMERGEABLE = ("prompt_tuning",)  # virtual tokens: nothing to fold into the weights


def model_cfg(src: Source, **changes: Any) -> dict[str, Any]:
    """The run's model config, with `changes`."""
    cfg = OmegaConf.to_container(src.config.model, resolve=True)
    return {**cfg, **changes}


def base_reference(src: Source, out: Path) -> str:
    """Where the base model's weights can be loaded from: a hub id or a folder as the run
    named it, the de-quantized folder of a packaged GGUF, or (a model built at run time,
    model=tiny-random) its weights saved into the export."""
    name = str(src.config.model.name_or_path)
    if name.startswith(GGUF_PREFIX):
        return str(converted_gguf_dir(name, cache_root(src.config.get("cache_dir"))))
    if name == TINY:
        folder = out / "base"
        if not (folder / "config.json").is_file():
            model, tokenizer = load_model(model_cfg(src, dtype="float32", device="cpu"))
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
        return str(folder.resolve())
    return name


def generation_config(src: Source, folder: Path, tokenizer) -> None:
    """generation_config.json: greedy decoding as the run answered (answer.max_new_tokens)."""
    answer = src.config.get("answer") or {}
    eos = [i for i in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
           if isinstance(i, int) and i >= 0]
    cfg = {"do_sample": False, "max_new_tokens": int(answer.get("max_new_tokens", 24)),
           "eos_token_id": sorted(eos) if len(eos) > 1 else (eos[0] if eos else None),
           "pad_token_id": tokenizer.pad_token_id}
    (folder / "generation_config.json").write_text(json.dumps(cfg, indent=2) + "\n",
                                                   encoding="utf-8")


def _tokenizer(src: Source):
    from transformers import AutoTokenizer

    from harness.models.loading import BUNDLED_GGUF, bundled_tokenizer_dir

    name = str(src.config.model.name_or_path)
    cache = cache_root(src.config.get("cache_dir"))
    if name == TINY or name.startswith(GGUF_PREFIX):
        spec = str(src.config.model.get("tokenizer") or BUNDLED_GGUF) if name == TINY else name
        return AutoTokenizer.from_pretrained(bundled_tokenizer_dir(spec, cache))
    return AutoTokenizer.from_pretrained(name, trust_remote_code=bool(
        src.config.model.get("trust_remote_code")))


def write_tokenizer(src: Source, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(src)
    tok.save_pretrained(folder)
    generation_config(src, folder, tok)


def write_adapter(src: Source, out: Path) -> Path:
    """The PEFT adapter as the run saved it, its base_model_name_or_path pointing at a base
    that loads (transformers and vLLM read it from there)."""
    folder = out / "adapter"
    shutil.copytree(src.artifact_dir, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("train.json", ".complete", "manifest.json",
                                                  "README.md"))
    config = folder / "adapter_config.json"
    data = json.loads(config.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = base_reference(src, out)
    config.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    write_tokenizer(src, folder)
    return folder


def adapter_method(src: Source) -> str:
    adapter = src.config.strategy.get("adapter") or {}
    return "dora" if adapter.get("use_dora") else str(adapter.get("method", "lora"))


def write_merged(src: Source, out: Path) -> Path:
    """The adapter folded into a float32 copy of the base (peft's merge_and_unload)."""
    from peft import PeftModel

    method = adapter_method(src)
    if method in UNMERGEABLE:
        raise UserError(f"{src.run.path}: a {method} adapter adds virtual tokens to the prompt; "
                        "there is nothing to merge into the weights: export it as --format adapter")
    base, _ = load_model(model_cfg(src, dtype="float32", device="cpu"))
    merged = PeftModel.from_pretrained(base, str(src.artifact_dir)).merge_and_unload()
    folder = out / "merged"
    merged.save_pretrained(folder, safe_serialization=True)
    write_tokenizer(src, folder)
    return folder


def write_full(src: Source, out: Path) -> Path:
    """A fully tuned model's folder (saved in float32, as it trained)."""
    folder = out / "model"
    shutil.copytree(src.artifact_dir, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("train.json", ".complete", "manifest.json"))
    write_tokenizer(src, folder)
    return folder


def write_model(src: Source, out: Path, fmt: str, quant: str) -> dict[str, Path]:
    """What `fmt` asks of a tuned run: {"adapter"|"merged"|"model"|"gguf": path}."""
    if not src.trains:
        return {}
    written: dict[str, Path] = {}
    if src.peft:
        if fmt in ("adapter", "auto", "gguf-adapter"):
            written["adapter"] = write_adapter(src, out)
        if fmt in ("merged", "gguf"):
            written["merged"] = write_merged(src, out)
    else:
        written["model"] = write_full(src, out)
    if fmt == "gguf":
        hf = written.get("merged") or written["model"]
        written["gguf"] = hf_to_gguf(hf, out / f"model-{quant}.gguf", quant)
    if fmt == "gguf-adapter":  # llama.cpp's base model plus --lora
        base = local_base(src, out)
        written["gguf_adapter"] = lora_to_gguf(written["adapter"], base,
                                               out / f"adapter-{quant}.gguf", quant)
        written["gguf_base"] = hf_to_gguf(base, out / f"base-{quant}.gguf", quant)
    return written


def local_base(src: Source, out: Path) -> Path:
    """The base model's folder on this machine (the converters read its config and
    weights): the adapter's reference, a hub id resolved in the local cache."""
    ref = base_reference(src, out)
    if Path(ref).is_dir():
        return Path(ref)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, local_files_only=True))
    except Exception as e:  # noqa: BLE001 - not in the cache: say what to do
        raise UserError(f"the base model {ref} is not on this machine ({type(e).__name__}); "
                        "download it first, or export --format gguf (merged)") from None


def folder_dtype(folder: Path) -> torch.dtype:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return getattr(torch, str(config.get("torch_dtype") or config.get("dtype") or "float32"))
