"""Question generation speed (`make bench`, section "questions"): cloze over a ~1 MB corpus
and the llm generator's questions per minute with the benchmark's model.

The corpus is the synthetic task's documents with their paraphrases folded in (formulaic
text, but the same work per byte as any other: sentence splitting, span finding, term
statistics)."""

from __future__ import annotations

import dataclasses
import time

from harness.data.generate.cloze import generate_cloze
from harness.data.generate.llm import LLMSettings, generate_llm
from harness.data.synthetic import generate as synthetic
from harness.system import config_dir
from harness.types import Document

TARGET_BYTES = 1_000_000


def megabyte_corpus(target_bytes: int = TARGET_BYTES) -> list[Document]:
    docs = synthetic(n_entities=1500, n_paraphrases=3, n_choices=4, seed=0,
                     kinds=("company", "person", "town"))[0]
    out, size = [], 0
    for d in docs:
        text = "\n\n".join([d.text, *d.paraphrases])
        out.append(dataclasses.replace(d, text=text, paraphrases=()))
        size += len(text.encode())
        if size >= target_bytes:
            break
    return out


def bench_questions(lm, *, n_cloze: int = 200, llm_passages: int = 16, batch_size: int = 8) -> dict:
    import yaml

    docs = megabyte_corpus()
    t0 = time.perf_counter()
    items, counts = generate_cloze(docs, n_questions=n_cloze, n_choices=4, seed=0)
    cloze_s = time.perf_counter() - t0
    prompts = yaml.safe_load((config_dir() / "qgen" / "v1.yaml").read_text())
    lm_cache, lm.cache = lm.cache, None  # time the model, not the prediction cache
    t0 = time.perf_counter()
    kept, llm_counts = generate_llm(docs[:llm_passages], lm, prompts, n_questions=llm_passages,
                                    seed=0, settings=LLMSettings(oversample=1.0,
                                                                 batch_size=batch_size))
    llm_s = time.perf_counter() - t0
    lm.cache = lm_cache
    return {
        "cloze_corpus_bytes": sum(len(d.text.encode()) for d in docs),
        "cloze_questions": len(items), "cloze_s": cloze_s,
        "cloze_sentences": counts["sentences"],
        "llm_passages": llm_counts["passages"], "llm_kept": len(kept), "llm_s": llm_s,
        "llm_pairs_per_min": 60 * llm_counts["passages"] / llm_s,
        "llm_questions_per_min": 60 * len(kept) / llm_s,
        "llm_dropped": {k: v for k, v in llm_counts.items() if k.startswith("dropped_")},
    }
