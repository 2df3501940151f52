"""Machine facts a run records: device, peak memory, library versions, git commit. torch is
imported where it is used, so what reads run files only (the report) does not load it."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from platformdirs import user_cache_dir

from harness.errors import ConfigError

if TYPE_CHECKING:
    import torch

VERSIONED = ("torch", "transformers", "peft", "sentence-transformers", "faiss-cpu",
             "hydra-core", "numpy", "adaptbench", "bitsandbytes", "accelerate")


def resolve_device(device: str = "auto") -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """The CPU runs bfloat16 matmuls natively (AVX-512 BF16 or AMX), so bf16 is faster.
    ADAPTBENCH_CPU_BF16=0 says no whatever the CPU has: dtype=auto then computes in float32,
    as on an AVX2-only CPU (how the suite's time there is checked on a bf16 machine)."""
    return cpu_bf16_native() and not bf16_forced_off()


def cpu_bf16_native() -> bool:
    """What the CPU itself offers: AVX-512 BF16 or AMX (whatever ADAPTBENCH_CPU_BF16 says)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, c, lambda: False)()) for c in checks)


def bf16_forced_off() -> bool:
    """ADAPTBENCH_CPU_BF16=0: compute in float32 even on a bf16 CPU."""
    return os.environ.get("ADAPTBENCH_CPU_BF16", "").strip() == "0"


def dtype_rule(device_type: str, *, capability: tuple[int, int] | None = None,
               cpu_bf16: bool = False, forced_off: bool = False) -> tuple[str, str]:
    """model.dtype=auto, decided: (dtype, why). A CUDA GPU of compute capability 8.0 or more
    (Ampere on) runs bfloat16 natively; an older one computes in float16 (its tensor cores'
    half type; training then runs float16 autocast with loss scaling, as transformers'
    Trainer does with fp16=True); a CPU with AVX-512 BF16 or AMX runs bfloat16, any other
    CPU float32 (bfloat16 matmuls are emulated there, about 1 GFLOP/s on AVX2)."""
    if device_type == "cuda":
        major, minor = capability or (0, 0)
        if (major, minor) >= (8, 0):
            return "bfloat16", f"GPU compute capability {major}.{minor} runs bfloat16 natively"
        return "float16", (f"GPU compute capability {major}.{minor} (< 8.0) has no native "
                           "bfloat16: float16, training with loss scaling")
    if device_type == "cpu" and cpu_bf16 and not forced_off:
        return "bfloat16", "the CPU runs bfloat16 natively (AVX-512 BF16 or AMX)"
    if device_type == "cpu":
        return "float32", ("ADAPTBENCH_CPU_BF16=0 asks for float32" if cpu_bf16 else
                           "the CPU has no native bfloat16 (no AVX-512 BF16 or AMX): float32")
    return "float32", f"device {device_type}: float32"


def auto_dtype_choice(device: torch.device) -> tuple[str, str]:
    """dtype_rule for this process's device."""
    import torch

    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return dtype_rule(device.type, capability=capability,
                      cpu_bf16=device.type == "cpu" and cpu_bf16_native(),
                      forced_off=bf16_forced_off())


def auto_dtype(device: torch.device) -> torch.dtype:
    """model.dtype=auto: the dtype dtype_rule chooses for the device."""
    import torch

    return getattr(torch, auto_dtype_choice(device)[0])


def dtype_reason(requested: str, device: torch.device) -> str:
    """Why a run computes in its dtype: the rule's reason for auto, else the setting."""
    if str(requested) == "auto":
        return "model.dtype=auto: " + auto_dtype_choice(device)[1]
    return f"model.dtype={requested} (set in the config)"


def resolve_dtype(dtype: str, device: torch.device | None = None) -> torch.dtype:
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype == "auto":
        return auto_dtype(device or resolve_device())
    if dtype not in table:
        raise ConfigError(f"unknown dtype '{dtype}'; choose one of: auto, {', '.join(table)}")
    return table[dtype]


def group_config(group: str, name: str, search_dirs: Sequence[Path],
                 cache_dir: str | None = None) -> dict | None:
    """conf/<group>/<name>.yaml from the first of `search_dirs` that has it, with its
    ${cache_dir} resolved; None when none has it (a config read outside a Hydra run)."""
    from omegaconf import OmegaConf

    for d in search_dirs:
        path = Path(d) / group / f"{name}.yaml"
        if path.is_file():
            node = OmegaConf.create({"cache_dir": cache_dir, "c": OmegaConf.load(path)})
            return OmegaConf.to_container(node, resolve=True)["c"]
    return None


def cache_root(configured: str | None = None) -> Path:
    """Where converted models and embeddings live: config > $ADAPTBENCH_CACHE > user cache."""
    path = configured or os.environ.get("ADAPTBENCH_CACHE") or user_cache_dir("adaptbench")
    return Path(path).expanduser()


def release_freed_memory() -> None:
    """Hand memory freed by Python and torch back to the system (glibc's malloc_trim): the
    allocator otherwise keeps it for reuse, and after a one-time burst (loading a model,
    quantizing a copy) the process would go on holding it. A no-op off glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_memory() -> float:
    """Start a new peak-memory window (each run of a multirun shares one process); returns
    the memory in use now (MB: resident set on CPU, allocated on CUDA), the baseline the
    window's peak is measured from."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    try:  # Linux: writing 5 resets the process's peak resident set size (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_memory_mb() -> float:
    """Peak resident memory of this process since the last reset (CPU), or peak allocated
    CUDA memory, in MB."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return process_peak_mb()


def process_peak_mb() -> float:
    """This process's peak resident set in MB, without importing anything heavy: VmHWM on
    Linux (its own address space: a fresh one after exec), else getrusage's maximum (which on
    Linux would include the forking parent's peak, hence VmHWM first)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["git_commit"] = git_commit()
    return out


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def package_path(spec: str, *, what: str, hint: str) -> Path:
    """'<module>/<relative path>' -> that path inside an installed Python package (how the
    bundled model and embedder ship). `what` and `hint` make the error say what to do."""
    module, _, rel = spec.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        raise FileNotFoundError(f"{what}: Python package '{module}' is not installed; {hint}")
    path = Path(found.origin).parent / rel
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} does not exist in package '{module}'")
    return path


def config_dir() -> Path:
    """The packaged configs (harness/conf in an installed wheel) or the checkout's conf/."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"no configs found: neither {package / 'conf'} (an installed wheel) nor "
                       f"{package.parent / 'conf'} (a checkout) holds config.yaml")


class OtherLoad:
    """How much of the machine's CPU other processes used while this one worked: (busy CPU
    time of the whole machine - this process's CPU time) / (wall time x logical CPUs), from
    psutil. 0: the run had the machine to itself; 0.5 on 2 cores: another process kept one
    core busy. `share` is None where psutil cannot read system CPU times.

        with OtherLoad() as load: ...
        load.share
    """

    def __enter__(self) -> OtherLoad:
        self.share: float | None = None
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        if self._start is None or end is None:
            return
        wall = end[0] - self._start[0]
        if wall <= 0.05:
            return
        others = (end[1] - self._start[1]) - (end[2] - self._start[2])
        self.share = round(min(max(others / (wall * (os.cpu_count() or 1)), 0.0), 1.0), 3)

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        import time

        import psutil

        try:
            sys_t = psutil.cpu_times()
            busy = sys_t.user + sys_t.system + getattr(sys_t, "nice", 0.0) \
                + getattr(sys_t, "irq", 0.0) + getattr(sys_t, "softirq", 0.0)
            own = psutil.Process().cpu_times()
            return time.perf_counter(), busy, own.user + own.system
        except (OSError, AttributeError, psutil.Error):
            return None


def machine_id() -> dict[str, object]:
    """What a machine profile is keyed by: the CPU (or GPU) model, logical CPUs, memory and
    the torch version, not the host name (identical cloud instances share a profile)."""
    import platform

    import psutil
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "gpu": gpu,
            "memory_gb": round(psutil.virtual_memory().total / 2**30),
            "torch": torch.__version__}
