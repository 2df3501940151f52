"""GGUF files through llama.cpp's own converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py
and the gguf-py they ship with), never a GGUF writer of our own.

The converters come from the source package of llama-cpp-python (its vendor/llama.cpp):
`make served-setup` (and `make test`) extracts them, for the llama-cpp-python version
installed, into ~/.cache/adaptbench/tools/llama.cpp-<version>/. Elsewhere, point
ADAPTBENCH_LLAMA_CPP at a llama.cpp checkout (the folder holding convert_hf_to_gguf.py).
They need `sentencepiece` (the `export` extra) besides torch, transformers and numpy."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from harness.errors import UserError

TOOLS = Path.home() / ".cache" / "adaptbench" / "tools"
OUTTYPES = ("f32", "f16", "bf16", "q8_0", "auto")


class ConverterMissing(UserError):
    """llama.cpp's converters are not at hand."""


def converter_dir() -> Path | None:
    """The folder holding llama.cpp's convert_hf_to_gguf.py, or None."""
    configured = os.environ.get("ADAPTBENCH_LLAMA_CPP")
    candidates = [Path(configured).expanduser()] if configured else []
    try:
        candidates.append(TOOLS / f"llama.cpp-{metadata.version('llama-cpp-python')}")
    except metadata.PackageNotFoundError:
        pass
    candidates += sorted(TOOLS.glob("llama.cpp-*"), reverse=True)
    return next((c for c in candidates if (c / "convert_hf_to_gguf.py").is_file()), None)


def missing_reason() -> str | None:
    """Why a GGUF cannot be written here, or None."""
    if converter_dir() is None:
        return ("llama.cpp's converters are not at hand: `make served-setup` extracts them from "
                "llama-cpp-python's source package into ~/.cache/adaptbench/tools/, or set "
                "ADAPTBENCH_LLAMA_CPP to a llama.cpp checkout")
    try:
        import sentencepiece  # noqa: F401 - the converters import it for llama vocabularies
    except ImportError:
        return "llama.cpp's converters need sentencepiece: pip install 'adaptbench[export]'"
    return None


def hf_to_gguf(hf_dir: Path, out: Path, outtype: str = "f32") -> Path:
    """A Hugging Face model folder (config, weights, tokenizer) as one GGUF file `out`, in
    `outtype` (f32 keeps the weights exactly; q8_0 and the rest quantize)."""
    if outtype not in OUTTYPES:
        raise UserError(f"GGUF outtype '{outtype}': choose one of {', '.join(OUTTYPES)}")
    reason = missing_reason()
    if reason:
        raise ConverterMissing(reason)
    tools = converter_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    done = subprocess.run([sys.executable, str(tools / "convert_hf_to_gguf.py"), str(hf_dir),
                           "--outfile", str(tmp), "--outtype", outtype],
                          capture_output=True, text=True, cwd=tools)
    if done.returncode != 0 or not tmp.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise UserError(f"llama.cpp's convert_hf_to_gguf.py could not convert {hf_dir}:\n{tail}")
    tmp.replace(out)
    return out


LORA_OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def lora_refusal(adapter_config: dict) -> str | None:
    """Why llama.cpp's convert_lora_to_gguf.py cannot carry this adapter faithfully, or None.
    It writes one global alpha and plain A/B matrices: it refuses full embedding or lm_head
    tensors, and a per-module rank or alpha, DoRA's magnitudes and rsLoRA's scaling would be
    lost or skipped (llama.cpp #11554, #9065)."""
    if str(adapter_config.get("peft_type", "LORA")).upper() != "LORA":
        return f"a {adapter_config.get('peft_type')} adapter: the converter takes LoRA only"
    if adapter_config.get("use_dora"):
        return "a DoRA adapter: the converter has no place for its magnitude vectors"
    if adapter_config.get("modules_to_save"):
        return ("modules_to_save (whole trained modules) are not LoRA matrices: the converter "
                "refuses full tensors")
    if adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern"):
        return "a per-module rank or alpha: the converter writes one alpha for every module"
    if adapter_config.get("use_rslora"):
        return "rsLoRA's scaling (alpha / sqrt(r)): the converter assumes alpha / r"
    targets = adapter_config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else targets
    if any(str(t).split(".")[-1] in ("lm_head", "embed_tokens") for t in targets):
        return "an adapter on lm_head or the embeddings: the converter skips or refuses it"
    return None


def lora_to_gguf(adapter_dir: Path, base_dir: Path, out: Path, outtype: str = "f16") -> Path:
    """A PEFT LoRA adapter as a GGUF adapter (llama.cpp's --lora) for the base in
    `base_dir`; raises with the reason when the converter cannot carry it."""
    import json

    if outtype not in LORA_OUTTYPES:
        raise UserError(f"a GGUF adapter's type '{outtype}': choose one of "
                        f"{', '.join(LORA_OUTTYPES)}")
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    why = lora_refusal(config)
    if why:
        raise UserError(f"{adapter_dir}: cannot write a GGUF adapter: {why}; export "
                        "--format gguf (the adapter merged into the weights) instead")
    reason = missing_reason()
    if reason:
        raise ConverterMissing(reason)
    tools = converter_dir()
    tmp = out.with_name(out.name + ".tmp")
    done = subprocess.run([sys.executable, str(tools / "convert_lora_to_gguf.py"),
                           str(adapter_dir), "--base", str(base_dir), "--outfile", str(tmp),
                           "--outtype", outtype], capture_output=True, text=True, cwd=tools)
    if done.returncode != 0 or not tmp.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise UserError(f"llama.cpp's convert_lora_to_gguf.py could not convert {adapter_dir}:\n"
                        f"{tail}\nexport --format gguf (merged) instead")
    tmp.replace(out)
    return out
