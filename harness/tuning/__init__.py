"""Tuning, as parts a strategy composes (the built-in lora, full and hybrid do; so can yours):

    rows.py        training rows from a task: QA pairs, documents, paraphrases, RAFT rows
    loop.py        the training loop (Hugging Face Trainer) and its settings
    methods.py     how a copy of the model is adapted: PEFT adapters or full tuning
    fit.py         train or load from the artifact cache, measure forgetting, report cost;
                   freshness updates (continue, retrain)
    forgetting.py  the control set: perplexity and greedy answers before and after tuning
"""

from harness.tuning.fit import UPDATE_MODES, Tuned, artifact_key, fit_tuned, train_example_ids, update_tuned
from harness.tuning.loop import TrainSettings
from harness.tuning.methods import AdapterSettings, FullSettings, Method
from harness.tuning.rows import DataSettings, TrainRow, build_rows, raft_rows

__all__ = ["UPDATE_MODES", "AdapterSettings", "DataSettings", "FullSettings", "Method",
           "TrainRow", "TrainSettings", "Tuned", "artifact_key", "build_rows", "fit_tuned",
           "raft_rows", "train_example_ids", "update_tuned"]
