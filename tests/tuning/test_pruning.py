"""What a fair search needs from tuning: a pruner stops training at a validation (never at
the last), a pruned model is not cached under its settings' key, LoRA on the attention
layers of any architecture, and frozen blocks as a share of the model's depth."""

from __future__ import annotations

import copy

import pytest

from harness.prompting import PromptSettings
from harness.tuning import AdapterSettings, DataSettings, FullSettings, Method, build_rows, fit_tuned
from harness.tuning.loop import TrainSettings, train
from harness.tuning.methods import attention_targets
from tests.tuning.test_training import lm, task  # noqa: F401 (the tiny model and task)


@pytest.fixture(scope="module")
def rows(lm, task):  # noqa: F811
    rows, val, _ = build_rows(lm, PromptSettings(), task, DataSettings(paraphrases=0), seed=0)
    return rows, val


def test_a_pruner_stops_training_at_a_validation_but_never_at_the_last(lm, rows, tmp_path):  # noqa: F811
    asked = []

    def always(epoch, loss, last):
        asked.append((epoch, last))
        return True

    settings = TrainSettings(lr=1e-3, epochs=3, batch_size=8)
    result = train(copy.deepcopy(lm.model), lm.tokenizer.pad_token_id, *rows, settings,
                   tmp_path / "a", seed=0, progress=False, pruning=always)
    assert result.pruned_at_epoch == 1.0 and result.epochs_run == 1.0 and result.stopped_early
    assert asked == [(1.0, False)]
    one = TrainSettings(lr=1e-3, epochs=1, batch_size=8)
    asked.clear()
    result = train(copy.deepcopy(lm.model), lm.tokenizer.pad_token_id, *rows, one,
                   tmp_path / "b", seed=0, progress=False, pruning=always)
    assert asked == [(1.0, True)] and result.pruned_at_epoch is None  # done anyway


def test_a_pruned_model_serves_its_trial_but_is_not_cached(lm, rows, tmp_path):  # noqa: F811
    method = Method(AdapterSettings(r=4, alpha=8))
    settings = TrainSettings(lr=1e-3, epochs=2, batch_size=8)
    kw = {"split_hash": "h", "seed": 0, "cache_dir": str(tmp_path), "forgetting": False,
          "progress": False}
    pruned = fit_tuned(lm, method, *rows, settings, **kw,
                       pruning=lambda epoch, loss, last: not last)
    notes = pruned.report.notes
    assert notes["pruned_at_epoch"] == 1.0 and notes["artifact_dir"] is None
    assert notes["epochs_run"] == 1.0 and not pruned.report.cache_hit
    assert pruned.lm.model is not None  # its trial still predicts
    full = fit_tuned(lm, method, *rows, settings, **kw)  # the same settings, not pruned:
    assert not full.report.cache_hit and full.report.notes["epochs_run"] == 2.0  # trained anew
    again = fit_tuned(lm, method, *rows, settings, **kw)
    assert again.report.cache_hit  # and that one is cached


def test_lora_on_the_attention_layers_whatever_they_are_called(lm):  # noqa: F811
    assert attention_targets(lm.model) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    trainable = {}
    for targets in ("attention", "all-linear"):
        model = Method(AdapterSettings(r=4, alpha=8, target_modules=targets)).prepare(lm.model)
        trainable[targets] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        assert all("lora_" in n for n in names)
        if targets == "attention":
            assert not any("mlp" in n for n in names)
    assert 0 < trainable["attention"] < trainable["all-linear"]


def test_frozen_blocks_as_a_share_of_the_depth(lm):  # noqa: F811
    assert FullSettings(0.5).frozen_blocks(30) == 15 and FullSettings(2).frozen_blocks(30) == 2
    model = Method(FullSettings(0.5)).prepare(lm.model)  # 2 blocks: the bottom one frozen
    blocks = model.model.layers
    assert not any(p.requires_grad for p in blocks[0].parameters())
    assert all(p.requires_grad for p in blocks[1].parameters())
    with pytest.raises(ValueError, match="a whole number of blocks >= 0 or a share below 1"):
        FullSettings(1.5)
