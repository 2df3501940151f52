"""Several processes, one run: data-parallel training under `accelerate launch` (or
`torchrun`, or a Slurm job of several tasks).

Every process (rank) runs the run's steps up to and through `fit`, and trains its share
of each batch: the Trainer (accelerate) shards the batches and averages the gradients.
Only rank 0 writes anything: the run directory, the artifact and every cache entry. The
other ranks read what rank 0 cached (loading the model and the task waits for rank 0 to
go first), build what they need in a private temporary folder, and stop after `fit`:
rank 0 alone predicts, scores and writes metrics.json.

The rank and world size come from the environment the launcher sets (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). In a Slurm job of several tasks (submitit
`tasks_per_node`, `nodes`) they are derived from Slurm's variables by `from_slurm`."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(this process's rank, number of processes)."""
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)


def distributed() -> bool:
    return world()[1] > 1


def is_main() -> bool:
    return world()[0] == 0


def _state() -> Any:
    """accelerate's process state; joins the process group once (nccl on CUDA GPUs, gloo on
    CPU: accelerate treats processes without an accelerator as one only when told `cpu`)."""
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    if not _CLOSE_AT_EXIT:  # a process group left open at exit can abort the process
        _CLOSE_AT_EXIT.append(atexit.register(_close))
    if state.num_processes != world()[1]:
        raise RuntimeError(f"accelerate sees {state.num_processes} processes, the launcher "
                           f"set WORLD_SIZE={world()[1]}")
    return state


_CLOSE_AT_EXIT: list[object] = []


def _close() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (filling the caches); the others then run it (reading
    them). One process: just the block."""
    if not distributed():
        yield
        return
    with _state().main_process_first():
        yield


def agree(value: T) -> T:
    """Rank 0's `value`, on every rank (a decision all ranks must share)."""
    if not distributed():
        return value
    from accelerate.utils import broadcast_object_list

    _state()
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def join() -> None:
    """Join the process group now (a step that needs it before accelerate would: a device
    mesh for sharding). One process: nothing to join."""
    if distributed():
        _state()


def from_slurm() -> None:
    """In a Slurm job step of several tasks, set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR
    and MASTER_PORT from Slurm's variables (submitit's helper), unless a launcher already
    did. One task: nothing to do."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1") or 1) < 2:
        return
    from submitit.helpers import TorchDistributedEnvironment

    try:
        env = TorchDistributedEnvironment().export()
    except Exception as e:  # not a submitit job (e.g. plain srun): the launcher's business
        log.warning("%s Slurm tasks but no RANK set, and submitit could not derive it (%s); "
                    "each task runs alone", os.environ.get("SLURM_NTASKS"), e)
        return
    log.info("Slurm task %d of %d (master %s:%s)", env.rank, env.world_size,
             env.master_addr, env.master_port)
