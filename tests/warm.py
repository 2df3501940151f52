"""A warm launcher for the suite's command-line runs (ADAPTBENCH_TEST_WARM=0 turns it off).

A `harness-run` of the tiny model spends about 5 of its 7 CPU seconds importing torch,
transformers, sentence-transformers and Hydra, and the suite starts a few hundred such
commands. Each xdist worker therefore keeps one helper process (a "zygote") that has
imported those libraries once and forks a child per command: the child takes the
command's environment, working directory and output files, runs the entry point as
`python -m` would, and exits with its code. `subprocess.run` is wrapped (see conftest) so
that the tests and the benchmark's sections need no change: a command it cannot serve
exactly as a fresh process would (another interpreter, stdin, a different thread or
allocator or Hugging Face setting, which libraries read once at import) goes to the real
`subprocess.run`. Commands that a test signals or waits on (Popen) always start fresh.

The helper never runs a model or a tensor operation itself, so its children inherit no
thread pool, no cache and no state: only imported modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ENTRY_POINTS = {"harness-run": "harness.run.runner", "harness-report": "harness.report.cli",
                "harness-make-task": "harness.data.generate.cli",
                "harness-calibrate": "harness.run.calibrate_cli",
                "harness-track": "harness.tracking.cli", "harness-export": "harness.export.cli"}
# read once when a library is imported or a process starts: a command that changes one
# of them runs in a fresh process
FIXED_AT_START = ("HF_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "OMP_", "MKL_", "CUDA",
                  "MALLOC_", "PYTHON", "SENTENCE_TRANSFORMERS", "TOKENIZERS_", "LD_",
                  "ADAPTBENCH_TEST_WARM")
PRELOAD = ("harness.run.runner", "harness.models.loading", "harness.report.cli",
           "harness.data.generate.cli", "harness.export.cli", "harness.tracking.cli",
           "harness.run.calibrate_cli", "sentence_transformers", "peft", "faiss", "bm25s",
           "transformers.models.llama.modeling_llama")
SERVED_KWARGS = {"capture_output", "text", "universal_newlines", "timeout", "env", "cwd",
                 "check", "stdout", "stderr", "encoding", "errors"}


def module_of(cmd) -> tuple[str, bool] | None:
    """(the harness module a command runs, whether as `python -m`), when this interpreter
    would run it."""
    if not isinstance(cmd, (list, tuple)) or not cmd \
            or not all(isinstance(c, (str, os.PathLike)) for c in cmd):
        return None
    args = [os.fspath(c) for c in cmd]
    if len(args) >= 3 and args[1] == "-m" and args[2].startswith("harness.") \
            and os.path.realpath(args[0]) == os.path.realpath(sys.executable):
        return args[2], True
    name = Path(args[0]).name
    where = shutil.which(args[0]) if os.sep not in args[0] else args[0]
    if name in ENTRY_POINTS and where and \
            Path(where).resolve().parent == Path(sys.executable).parent.resolve():
        return ENTRY_POINTS[name], False
    return None


ROOT = Path(__file__).resolve().parents[1]


def _fixed(env: dict[str, str]) -> dict[str, str]:
    """The settings a command cannot change in a forked child. PYTHONPATH may name this
    checkout (the helper imports it already), nothing else."""
    out = {k: v for k, v in env.items() if k.startswith(FIXED_AT_START)}
    if all(p and Path(p).resolve() == ROOT for p in out.get("PYTHONPATH", "").split(os.pathsep)):
        out.pop("PYTHONPATH", None)
    return out


class Zygote:
    """The client side: one helper per worker, started on first use."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.lock = threading.Lock()
        self.children_cpu_s = 0.0  # the CPU seconds of the commands it ran (for the timeline)
        self.served = 0

    def _start(self) -> None:
        self.env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.warm"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=self.env,
                                     cwd=ROOT)
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the warm launcher did not start: {ready!r}")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None

    def accepts(self, module: tuple[str, bool] | None, kwargs: dict) -> bool:
        """Can the helper run this command as a fresh process would?"""
        if module is None or set(kwargs) - SERVED_KWARGS:
            return False
        if kwargs.get("stdout") not in (None, subprocess.PIPE, subprocess.DEVNULL) or \
                kwargs.get("stderr") not in (None, subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT):
            return False
        env = kwargs.get("env") or os.environ
        if "0" in (os.environ.get("ADAPTBENCH_TEST_WARM"), env.get("ADAPTBENCH_TEST_WARM")):
            return False
        helper = self.env if self.proc is not None else os.environ  # what it started (or will) with
        return _fixed(dict(env)) == _fixed(dict(helper))

    def run(self, module: tuple[str, bool], cmd, kwargs: dict) -> subprocess.CompletedProcess:
        if self.proc is None:
            self._start()
        env = dict(kwargs.get("env") or os.environ)
        capture = kwargs.get("capture_output", False)
        out_mode = subprocess.PIPE if capture else kwargs.get("stdout")
        err_mode = subprocess.PIPE if capture else kwargs.get("stderr")
        with tempfile.TemporaryDirectory(prefix="warm-") as tmp:
            out, err = Path(tmp) / "out", Path(tmp) / "err"
            request = {"module": module[0], "as_module": module[1],
                       "argv": [os.fspath(c) for c in cmd], "env": env,
                       "cwd": os.fspath(kwargs.get("cwd") or os.getcwd()),
                       "stdout": os.devnull if out_mode == subprocess.DEVNULL else str(out),
                       "stderr": (os.devnull if err_mode == subprocess.DEVNULL else
                                  "stdout" if err_mode == subprocess.STDOUT else str(err)),
                       "timeout": kwargs.get("timeout")}
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = json.loads(self.proc.stdout.readline())
            self.children_cpu_s += reply["cpu_s"]
            self.served += 1
            got = {}
            for name, path, mode in (("stdout", out, out_mode), ("stderr", err, err_mode)):
                data = path.read_bytes() if path.exists() else b""
                if mode is None:  # inherited: into this process's own stream (pytest captures it)
                    getattr(sys, name).write(data.decode("utf-8", "replace"))
                    data = None
                elif mode != subprocess.PIPE:
                    data = None
                elif kwargs.get("text") or kwargs.get("universal_newlines") or kwargs.get("encoding"):
                    data = data.decode(kwargs.get("encoding") or "utf-8", kwargs.get("errors") or "strict")
                got[name] = data
        if reply.get("timed_out"):
            raise subprocess.TimeoutExpired(cmd, kwargs["timeout"], got["stdout"], got["stderr"])
        done = subprocess.CompletedProcess(cmd, reply["returncode"], got["stdout"], got["stderr"])
        if kwargs.get("check"):
            done.check_returncode()
        return done


ZYGOTE = Zygote()
_real_run = subprocess.run


def run(cmd, *args, **kwargs):
    """subprocess.run, through the warm launcher when it can serve the command exactly."""
    module = None if args else module_of(cmd)
    if module is not None and ZYGOTE.accepts(module, kwargs) and ZYGOTE.lock.acquire(blocking=False):
        try:
            return ZYGOTE.run(module, cmd, kwargs)
        finally:
            ZYGOTE.lock.release()
    return _real_run(cmd, *args, **kwargs)


# ---- the helper process ----------------------------------------------------------------

def _child(req: dict, channel: tuple[int, int]) -> None:
    """In the forked child: become the command, then exit as the interpreter would."""
    import atexit
    import importlib
    import runpy
    import traceback

    code = 1
    try:
        for fd in channel:
            os.close(fd)
        os.setpgid(0, 0)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = out if req["stderr"] == "stdout" else \
            os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["cwd"])
        argv = req["argv"]
        if req["as_module"]:  # python -m harness.x ...: the working folder comes first, and
            sys.path[0] = os.getcwd()  # the module runs afresh as __main__ (as it would)
            sys.argv = [argv[0], *argv[3:]]
            sys.modules.pop(req["module"], None)
            runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
            code = 0
        else:  # the console script: sys.exit(main()), its own folder first on the path
            sys.path[0] = str(Path(shutil.which(argv[0]) or argv[0]).resolve().parent)
            sys.argv = argv
            sys.exit(importlib.import_module(req["module"]).main())
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            threading._shutdown()  # non-daemon threads finish, as at a real exit
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid: int, timeout: float | None) -> tuple[int, float, bool]:
    import signal
    import time

    deadline = None if timeout is None else time.monotonic() + float(timeout)
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, False
        if deadline is not None and time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, True
        time.sleep(0.02)


def serve() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library that is not installed
            pass
    rfd, wfd = os.dup(0), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # stray prints go to stderr, never into the channel
    requests, replies = os.fdopen(rfd, "r"), os.fdopen(wfd, "w")
    replies.write("ready\n")
    replies.flush()
    for line in requests:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req, (rfd, wfd))
        code, cpu_s, timed_out = _wait(pid, req["timeout"])
        replies.write(json.dumps({"returncode": code, "cpu_s": cpu_s, "timed_out": timed_out}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
