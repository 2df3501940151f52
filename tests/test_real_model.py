"""The bundled SmolLM2-135M generating with retrieval (RAG against zero-shot, and memory:
tests/test_real_model_memory.py)."""

from __future__ import annotations

import pytest

from harness.run.runner import run
from tests.conftest import compose_cfg

pytestmark = pytest.mark.real_model


def test_generation_with_retrieval_copies_some_answers(tmp_path):
    cfg = compose_cfg(["model=smollm2-135m", "task.n_entities=90", "strategy=rag", "limit=12",
                       "answer.score_choices=false"], tmp_path)
    m = run(cfg, tmp_path / "run")
    assert m["choice_accuracy"] is None and m["completion_tokens"] > 0
    assert m["contains"] > 0.0  # some gold answers are copied from the passages (4 of the 12
    # measured, in float32 and in bfloat16)
