"""What a run would take on other hardware: a roofline estimate from its work (harness.cost.work)
and a hardware profile (conf/cost/hardware/<name>.yaml: peak bf16 FLOP/s, memory bandwidth,
utilisation factors, launch overhead, price; each a stated assumption with its source).

    compute-bound (prefill, choice scoring, training, validation, embedding):
        seconds = FLOPs / (peak_flops * mfu)
    a decode step at batch B, memory- or compute-bound, whichever is slower:
        seconds = max(FLOPs / (peak_flops * mfu), bytes / (mem_bandwidth * mbu))
        (bytes: every weight once per step + the KV cache the rows read)
    the optimizer (AdamW, float32 state): 28 bytes per trainable parameter per step (param,
        gradient and two moments read; param and moments written) / (mem_bandwidth * mbu)
    launch overhead: layers * launch_s_per_layer per forward pass and decode step, 3x per
        training pass (forward and backward)
    vector search and BM25 stay on the host CPU: this machine's modelled seconds
This is an estimate of what well-used hardware does, not a measurement: the report shows it
apart from measured and modelled seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.system import group_config

OPTIMIZER_BYTES = 28
HOST_KINDS = ("search", "bm25")
FIELDS = ("peak_flops", "mem_bandwidth", "mfu", "mbu", "launch_s_per_layer", "usd_per_hour")


@dataclass(frozen=True)
class Hardware:
    name: str
    peak_flops: float
    mem_bandwidth: float
    mfu: float
    mbu: float
    launch_s_per_layer: float
    usd_per_hour: float
    sources: tuple[str, ...] = ()
    memory_gb: float = 0.0  # one GPU's memory (0: unknown, fits not assessed)

    @classmethod
    def from_dict(cls, d: Mapping, where: str) -> Hardware:
        for f in FIELDS:
            v = d.get(f)
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"{where}: {f} must be a number >= 0, got {v!r}")
        if not (0 < d["mfu"] <= 1 and 0 < d["mbu"] <= 1):
            raise ConfigError(f"{where}: mfu and mbu are shares of peak, in (0, 1]")
        if d["peak_flops"] <= 0 or d["mem_bandwidth"] <= 0:
            raise ConfigError(f"{where}: peak_flops and mem_bandwidth must be > 0")
        memory = d.get("memory_gb", 0)
        if not isinstance(memory, int | float) or isinstance(memory, bool) or memory < 0:
            raise ConfigError(f"{where}: memory_gb must be a number >= 0, got {memory!r}")
        return cls(name=str(d.get("name") or Path(where).stem), memory_gb=float(memory),
                   **{f: float(d[f]) for f in FIELDS},
                   sources=tuple(str(s) for s in d.get("sources") or ()))


def own_hardware(priced_at: Sequence[str], search_dirs: Sequence[Path]) -> list[str]:
    """report.project_to=auto: the hardware profiles named by the GPUs the runs were priced
    on (their cost.hardware: `A100` on an A100), none for runs on a CPU."""
    known = {p.stem for s in search_dirs for p in (Path(s) / "cost" / "hardware").glob("*.yaml")}
    return sorted({str(h) for h in priced_at} & known)


def load_hardware(names: Sequence[str], search_dirs: Sequence[Path]) -> list[Hardware]:
    """Each name: conf/cost/hardware/<name>.yaml (in a search dir) or a path to a YAML file."""
    import yaml

    out = []
    for name in names:
        if str(name).endswith((".yaml", ".yml")):
            path = Path(name)
            if not path.is_file():
                raise ConfigError(f"report.project_to: no such file {path}")
            out.append(Hardware.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {},
                                          str(path)))
            continue
        d = group_config("cost/hardware", name, search_dirs, None)
        if d is None:
            known = sorted({p.stem for s in search_dirs
                            for p in (Path(s) / "cost" / "hardware").glob("*.yaml")})
            raise ConfigError(f"report.project_to: no hardware profile '{name}' "
                              f"(conf/cost/hardware/{name}.yaml); known: {', '.join(known)}")
        out.append(Hardware.from_dict(d, f"conf/cost/hardware/{name}.yaml"))
    return out


def project_seconds(work: Mapping[str, float], shape: Mapping[str, int], hw: Hardware,
                    host_s: float = 0.0) -> float:
    """Seconds the work would take on `hw` (formulas in the module docstring); `host_s`:
    this machine's modelled seconds of the host-side kinds (vector search, BM25)."""
    compute = hw.peak_flops * hw.mfu
    bandwidth = hw.mem_bandwidth * hw.mbu
    launch = shape.get("layers", 0) * hw.launch_s_per_layer
    s = (work.get("fwd_flops", 0) + work.get("fwd_attn_flops", 0)) / compute \
        + work.get("fwd_calls", 0) * launch
    for k, steps in work.items():
        if k.startswith("decode_steps/"):
            b = k.split("/", 1)[1]
            s += max(work.get(f"decode_flops/{b}", 0) / compute,
                     work.get(f"decode_bytes/{b}", 0) / bandwidth) + steps * launch
        elif k.startswith("train_flops/"):
            s += steps / compute
        elif k.startswith("train_passes/"):
            s += 3 * steps * launch
    s += work.get("train_eval_flops", 0) / compute + work.get("train_eval_batches", 0) * launch
    s += OPTIMIZER_BYTES * work.get("optim_params", 0) / bandwidth
    s += work.get("embed_flops", 0) / compute
    return s + host_s


def usd(seconds: float, hw: Hardware) -> float:
    return seconds / 3600.0 * hw.usd_per_hour
