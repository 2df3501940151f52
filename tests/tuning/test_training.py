"""The shared training loop on the tiny model: it learns, stops early, refuses NaN."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.data import build_task
from harness.models import get_lm
from harness.prompting import PromptSettings
from harness.tuning.loop import TrainingDivergedError, TrainSettings, train
from harness.tuning.rows import (
    IGNORE,
    DataSettings,
    TrainRow,
    build_rows,
    doc_key,
    doc_rows,
    plan_batches,
    qa_row,
)
from harness.types import Document, Example

TINY = {"name_or_path": "tiny-random", "device": "cpu"}
TASK = {"name": "synthetic_facts", "kind": "synthetic_facts", "n_entities": 9, "n_paraphrases": 1}


@pytest.fixture(scope="module")
def lm():
    return get_lm(TINY)


@pytest.fixture(scope="module")
def task():
    return build_task(TASK)


def _fresh(lm):
    return copy.deepcopy(lm.model)


def test_loop_lowers_training_loss(lm, task, tmp_path):
    rows, val, _ = build_rows(lm, PromptSettings(), task, DataSettings(paraphrases=0), seed=0)
    settings = TrainSettings(lr=3e-3, epochs=3, batch_size=8, early_stopping_patience=0,
                             lr_schedule="constant")
    result = train(_fresh(lm), lm.tokenizer.pad_token_id, rows, val, settings, tmp_path,
                   seed=0, progress=False)
    first, last = result.train_loss[:3], result.train_loss[-3:]
    assert sum(last) / 3 < sum(first) / 3 - 1.0, result.train_loss
    assert result.epochs_run == 3 and len(result.val_loss) == 3
    assert result.train_tokens >= 3 * sum(len(r.input_ids) for r in rows)


def _opposite_rows(lm, n: int) -> tuple[list[TrainRow], list[TrainRow]]:
    """Val asks for the opposite answer of train: val loss rises as training learns."""
    qs = [f"What is code {i}?" for i in range(n)]
    rows = [qa_row(lm, PromptSettings(), Example(f"t{i}", q, ("alpha",)), 128)
            for i, q in enumerate(qs)]
    val = [qa_row(lm, PromptSettings(), Example(f"v{i}", q, ("omega",)), 128)
           for i, q in enumerate(qs)]
    return rows, val


def test_early_stopping_stops_and_keeps_the_best(lm, tmp_path):
    rows, val = _opposite_rows(lm, 16)
    settings = TrainSettings(lr=5e-3, max_steps=40, batch_size=8, eval_every=2,
                             early_stopping_patience=2, checkpoint="best", lr_schedule="constant")
    result = train(_fresh(lm), lm.tokenizer.pad_token_id, rows, val, settings, tmp_path,
                   seed=0, progress=False)
    assert result.stopped_early and result.steps < 40
    assert result.best_val_loss == pytest.approx(min(result.val_loss))


def test_checkpoint_last_keeps_the_final_weights(lm, tmp_path):
    rows, val = _opposite_rows(lm, 8)
    settings = TrainSettings(lr=5e-3, max_steps=6, batch_size=8, eval_every=2,
                             early_stopping_patience=0, checkpoint="last", lr_schedule="constant")
    model = _fresh(lm)
    result = train(model, lm.tokenizer.pad_token_id, rows, val, settings, tmp_path, seed=0,
                   progress=False)
    assert result.steps == 6 and len(result.val_loss) == 3
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_nan_loss_stops_with_a_clear_error(lm, task, tmp_path):
    rows, val, _ = build_rows(lm, PromptSettings(), task, DataSettings(paraphrases=0), seed=0)
    model = _fresh(lm)
    model.model.norm.weight.data.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="loss became nan at step 1.*lower train.lr"):
        train(model, lm.tokenizer.pad_token_id, rows, val, TrainSettings(max_steps=3), tmp_path,
              seed=0, progress=False)


def test_long_document_is_cut_into_windows_not_truncated(lm):
    words = " ".join(f"fact{i} is value{i}." for i in range(120))
    doc = Document("long", words)
    ids = lm.tokenizer(words, add_special_tokens=False).input_ids
    rows = doc_rows(lm, doc, paraphrases=0, max_len=64)
    assert len(ids) > 64 and len(rows) == -(-len(ids) // 63)
    assert all(len(r.input_ids) <= 64 for r in rows)
    body = [t for r in rows for t in r.input_ids[:-1]]
    assert body == ids  # every token is trained on, in order
    assert {doc_key(r) for r in rows} == {"long"}


def test_qa_rows_take_loss_on_the_answer_only(lm):
    row = qa_row(lm, PromptSettings(), Example("q", "Who?", ("Ada Lovelace",)), 256)
    trained = [t for t, lab in zip(row.input_ids, row.labels) if lab != IGNORE]
    text = lm.tokenizer.decode(trained)
    assert text.startswith("Ada Lovelace") and text.endswith("<|im_end|>")
    assert len(trained) < len(row.input_ids) / 3


def test_no_test_example_reaches_training_rows(lm, task):
    rows, val, counts = build_rows(lm, PromptSettings(), task, DataSettings(paraphrases=1), 0)
    train_ids = {e.id for e in task.split("train")}
    qa = {r.source.split(":", 1)[1] for r in rows if r.source.startswith("qa:")}
    assert qa == train_ids and counts["qa_rows"] == len(train_ids)
    text = "\n".join(lm.tokenizer.decode(r.input_ids) for r in rows)
    for e in task.split("test") + task.split("val"):
        assert e.question not in text
    assert {r.source.split(":", 1)[1] for r in val} == {e.id for e in task.split("val")}


@pytest.mark.parametrize("batch_size", [4, 8])
def test_one_documents_phrasings_never_share_a_batch(lm, batch_size):
    task = build_task({**TASK, "n_entities": 24, "n_paraphrases": 3})
    rows, _, _ = build_rows(lm, PromptSettings(), task, DataSettings(paraphrases=3), seed=0)
    batches = plan_batches(rows, batch_size, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(len(rows)))
    assert all(len(b) == batch_size for b in batches[:-1])
    for b in batches:
        keys = [doc_key(rows[i]) for i in b if doc_key(rows[i])]
        assert len(keys) == len(set(keys))
    assert plan_batches(rows, batch_size, seed=1) == batches
    assert plan_batches(rows, batch_size, seed=2) != batches


def test_length_grouping_cuts_padding(lm):
    task = build_task({**TASK, "n_entities": 24})
    rows, _, _ = build_rows(lm, PromptSettings(), task, DataSettings(paraphrases=1), seed=0)

    def pad_share(batches):
        lens = [[len(rows[i].input_ids) for i in b] for b in batches]
        return sum(max(x) * len(x) - sum(x) for x in lens) / sum(max(x) * len(x) for x in lens)

    grouped = pad_share(plan_batches(rows, 8, 0, group_by_length=True))
    assert grouped < pad_share(plan_batches(rows, 8, 0, group_by_length=False))


def test_bad_settings_fail_clearly():
    with pytest.raises(ValueError, match="linear, cosine"):
        TrainSettings(lr_schedule="step")
    with pytest.raises(ValueError, match="early_stopping_patience=0"):
        TrainSettings(checkpoint="last", early_stopping_patience=2)
    with pytest.raises(ValueError, match="best, last"):
        TrainSettings(checkpoint="final")
    with pytest.raises(ValueError, match="nothing to train on"):
        DataSettings(qa_pairs=False, documents=False)
    assert isinstance(TrainRow((1,), (1,), "x"), TrainRow)


def test_lr_scale_multiplies_each_methods_own_rate():
    """experiment=learn_forget sweeps one factor over lora's and full's different rates; the
    product is what trains (and what the artifact's cache key holds)."""
    assert TrainSettings.from_config({"lr": 1e-3, "lr_scale": 3.0}).lr == pytest.approx(3e-3)
    assert TrainSettings.from_config({"lr": 1e-4, "lr_scale": 0.3}).lr == pytest.approx(3e-5)
    # scale 1 gives the very settings the strategy had without the knob
    assert TrainSettings.from_config({"lr": 1e-3, "lr_scale": 1.0}) == TrainSettings(lr=1e-3)
    with pytest.raises(ValueError, match="lr_scale must be > 0"):
        TrainSettings.from_config({"lr": 1e-3, "lr_scale": 0})


@pytest.mark.parametrize("adapter", [False, True])
def test_gradient_checkpointing_trains_the_same_weights(lm, task, tmp_path, adapter):
    """Recomputing activations in the backward pass changes memory and time, not the math:
    the same loss curve (float tolerance) and weights, with and without, for full tuning
    and LoRA (non-reentrant checkpointing needs no input gradients for frozen inputs).
    LoRA's dropout is off here: with checkpointing its masks come from the random stream in
    another order, so with dropout the curves agree in distribution, not to the last bit."""
    from harness.tuning.methods import AdapterSettings, FullSettings, Method

    rows, val, _ = build_rows(lm, PromptSettings(), task, DataSettings(paraphrases=0), seed=0)
    method = Method(AdapterSettings(r=4, alpha=8, dropout=0.0) if adapter else FullSettings())
    runs = {}
    for ckpt in (False, True):
        settings = TrainSettings(lr=3e-3, max_steps=4, batch_size=4, lr_schedule="constant",
                                 gradient_checkpointing=ckpt)
        model = method.prepare(_fresh(lm), own=True)
        result = train(model, lm.tokenizer.pad_token_id, rows, val, settings,
                       tmp_path / str(ckpt), seed=0, progress=False)
        runs[ckpt] = (result, {k: v.detach().clone() for k, v in model.named_parameters()
                               if v.requires_grad})
    (plain, w0), (ckpt, w1) = runs[False], runs[True]
    assert ckpt.recomputed and not plain.recomputed
    assert ckpt.train_loss == pytest.approx(plain.train_loss, rel=1e-5)
    assert ckpt.val_loss == pytest.approx(plain.val_loss, rel=1e-5)
    assert w0.keys() == w1.keys() and all(torch.allclose(w0[k], w1[k], atol=1e-6) for k in w0)
    assert 0 <= plain.pad_share < 1 and plain.pad_share_other is not None
