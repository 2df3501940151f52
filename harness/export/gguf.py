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
