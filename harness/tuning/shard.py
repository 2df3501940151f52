"""Sharded full tuning (`train.shard=fsdp`): PyTorch FSDP2 across the run's processes.

Under a multi-process launcher (harness.ranks) plain data parallelism keeps the weights,
gradients and AdamW states whole in every process; FSDP2 keeps 1/N of each. `fully_shard`
wraps each decoder layer, then the root (the embeddings, final norm and LM head, tied or
not, go with the root), over a one-dimensional device mesh of all processes: gloo on CPU,
NCCL on GPUs, the same code. A layer's weights are all-gathered for its forward and again
for its backward, then freed; gradients are reduce-scattered, so the optimizer steps on
each process's shard only.

Hugging Face's Trainer would wrap the model in DDP; a model sharded by transformers at load
time (`from_pretrained(distributed_config=...)`) it leaves alone, and one sharded here is the
same to it, so it is marked the way transformers marks its own. (accelerate's FSDP plugin
is not used: it is ignored on CPU, where the suite tests this.)

After training every process takes part in gathering the full state dict; rank 0 saves it
as an ordinary checkpoint, and predictions load from that file (rank 0 predicts alone)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel

from harness.ranks import join, world
from harness.tuning.methods import decoder_blocks

SHARD_MODES = ("none", "fsdp")


def shard(model: PreTrainedModel) -> None:
    """FSDP2 in place: each decoder layer, then the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    blocks = decoder_blocks(model, "train.shard=fsdp")
    join()
    device = next(model.parameters()).device.type
    mesh = init_device_mesh(device, (world()[1],))
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    # the flag transformers sets on a model it shards itself: the Trainer then neither
    # wraps it in DDP nor moves it (transformers.Trainer, is_distributed_loading_by_transformers)
    model._is_distributed_loading_by_transformers = True


def full_state_dict(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The whole model's weights on the CPU, gathered from every process (each must call
    this); rank 0 gets them, the others an empty dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    # a tied parameter (embeddings and LM head) comes back as two copies: keep the name an
    # unsharded save keeps, so the artifact is the same file either way
    first = {n for n, _ in model.named_parameters()}
    every = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    return {k: v for k, v in state.items() if k in first or k not in every}


def _local(t: torch.Tensor) -> torch.Tensor:
    to_local = getattr(t, "to_local", None)  # a DTensor: this process's shard
    return to_local() if to_local is not None else t


def states_mb(model: torch.nn.Module, optimizer: Any) -> dict[str, float]:
    """What this process holds of the model states between steps, in MB: weights and
    optimizer states (gradients are freed after each step); `*_full` as if unsharded."""
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():  # a last forward (validation) leaves the root gathered
        if isinstance(m, FSDPModule):
            m.reshard()
    out = {"weights": 0.0, "weights_full": 0.0, "optimizer": 0.0, "optimizer_full": 0.0}
    for p in model.parameters():
        out["weights"] += _local(p).numel() * p.element_size() / 2**20
        out["weights_full"] += p.numel() * p.element_size() / 2**20
    for state in getattr(optimizer, "state", {}).values():
        for t in state.values():
            if isinstance(t, torch.Tensor) and t.dim() > 0:
                out["optimizer"] += _local(t).numel() * t.element_size() / 2**20
                out["optimizer_full"] += t.numel() * t.element_size() / 2**20
    return {k: round(v, 3) for k, v in out.items()}
