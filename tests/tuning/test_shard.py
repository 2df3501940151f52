"""train.shard: what is refused before any training, and how a process's model states are
counted (FSDP2 itself runs in tests/tuning/test_multiprocess.py and tests/run/test_slurm.py)."""

from __future__ import annotations

import pytest
import torch

from harness.errors import ConfigError
from harness.tuning import AdapterSettings, FullSettings, Method, TrainSettings, fit_tuned
from harness.tuning.shard import states_mb


def test_an_unknown_shard_and_a_sharded_adapter_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown train.shard 'zero3'; choose one of: none, fsdp"):
        TrainSettings(shard="zero3")
    with pytest.raises(ConfigError, match="set train.checkpoint=last"):
        TrainSettings(shard="fsdp", checkpoint="best", early_stopping_patience=2)
    with pytest.raises(ConfigError, match="train.shard=fsdp shards full tuning"):
        fit_tuned(None, Method(AdapterSettings()), [], [], TrainSettings(shard="fsdp"),
                  split_hash="x", seed=0)
    assert not Method(FullSettings()).peft  # full tuning passes that check


def test_states_are_counted_whole_in_one_process():
    layer = torch.nn.Linear(256, 256)  # 65,792 float32 parameters: 0.251 MB
    opt = torch.optim.AdamW(layer.parameters())
    layer(torch.ones(2, 256)).sum().backward()
    opt.step()
    s = states_mb(layer, opt)
    assert s["weights"] == s["weights_full"] == pytest.approx(65792 * 4 / 2**20, abs=1e-3)
    assert s["optimizer"] == s["optimizer_full"] == pytest.approx(2 * s["weights"], abs=1e-3)  # m, v
