"""A server in a process of its own session: start it with its output in a log file, wait
until a URL answers 200, stop it. llama.cpp's server for an export's parity check
(harness.export.llamacpp), and the vLLM and MLflow servers of the tests and the benches."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx


def launch(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def wait_ready(proc: subprocess.Popen, url: str, log: Path, name: str, timeout_s: float, *,
               interval: float = 0.5, headers: dict[str, str] | None = None) -> None:
    """Until GET url answers 200; a process that exits, or no answer in time, raises with
    the log's tail (the process is stopped first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({proc.returncode}): "
                               + log.read_text(errors="replace")[-3000:])
        try:
            if httpx.get(url, headers=headers or {}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    stop(proc)
    raise RuntimeError(f"{name} did not answer within {timeout_s:.0f} s: "
                       + log.read_text(errors="replace")[-3000:])


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Signal the process's whole session; SIGKILL when it has not exited in 30 s."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
