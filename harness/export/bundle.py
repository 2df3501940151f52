"""What a prompting or retrieval run built, carried out:

    prompt.json      the prompt builder's settings, the answering (decoding) settings, the
                     strategy's shot settings and its shot pool (the train-split examples
                     shots are drawn from), and the model reference
    rag/             corpus.jsonl (the documents indexed), chunks.jsonl (the chunk store, in
                     index order), index.faiss and vectors.npy (dense), bm25/ (BM25: bm25s's
                     own format), retriever.json (retriever, chunker, embedder, k, reranker)
    serve.py         answers questions with retrieval exactly as the run did (RagBundle)

RagBundle rebuilds the run's strategy from recipe.yaml over the exported corpus: the same
chunker and embedder give the same chunks, vectors and index (the parity check compares
every test question's retrieved documents with the run's), so the files under rag/ are for
a team's own serving stack, and the harness path is the reference."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from harness.export.source import Source
from harness.types import Document, Example, Task

RECIPE = "recipe.yaml"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_task_of(config: DictConfig) -> Task:
    from hydra.utils import to_absolute_path  # noqa: F401 - paths as the run gave them

    from harness.data import build_task

    return build_task(_plain(config.task), resolve_path=lambda p: str(Path(p).expanduser()))


def write_prompt(src: Source, out: Path, task: Task | None = None) -> Path:
    strategy = _plain(src.config.strategy)
    k_shot = int(strategy.get("k_shot") or 0)
    pool = []
    if k_shot:
        task = task or build_task_of(src.config)
        pool = [{"id": e.id, "question": e.question, "answer": e.answer}
                for e in task.split("train")]
    data = {"model": _plain(src.config.model), "prompt": _plain(src.config.prompt),
            "answer": _plain(src.config.answer),
            "strategy": {k: strategy.get(k) for k in ("name", "k_shot", "shot_selection")
                         if k in strategy},
            "shot_pool": pool, "seed": int(src.config.get("seed", 0))}
    path = out / "prompt.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _jsonl(path: Path, rows: Sequence[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _index_files(retriever: Any, folder: Path) -> list[str]:
    """The fitted retriever's index as files: FAISS and its vectors, bm25s's folder."""
    written = []
    for part in (retriever, getattr(retriever, "base", None), getattr(retriever, "dense", None),
                 getattr(retriever, "bm25", None)):
        if part is None:
            continue
        if getattr(part, "name", "") == "dense" and getattr(part, "index", None) is not None:
            import faiss

            faiss.write_index(part.index, str(folder / "index.faiss"))
            np.save(folder / "vectors.npy", part.vectors)
            written += ["index.faiss", "vectors.npy"]
        if getattr(part, "name", "") == "bm25" and getattr(part, "index", None) is not None:
            part.index.save(str(folder / "bm25"))
            written.append("bm25/")
    return sorted(set(written))


def write_retrieval(src: Source, out: Path, strategy: Any, task: Task) -> Path:
    """rag/ from the strategy the run's config builds, fitted on the run's corpus."""
    folder = out / "rag"
    folder.mkdir(parents=True, exist_ok=True)
    _jsonl(folder / "corpus.jsonl", [{"id": d.id, "title": d.title, "text": d.text}
                                     for d in task.corpus])
    index = strategy.index
    _jsonl(folder / "chunks.jsonl", [{"row": i, "doc_id": c.doc_id, "text": c.text}
                                     for i, c in enumerate(index.chunks)])
    files = _index_files(index.retriever, folder)
    settings = {"k": strategy.retrieval_k, "retriever": _plain(src.config.get("retriever")),
                "chunker": _plain(src.config.get("chunker")),
                "embedder": _plain(src.config.get("embedder")), "index_files": files,
                "chunks": len(index.chunks), "documents": len(task.corpus)}
    (folder / "retriever.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    (out / "serve.py").write_text(SERVE_PY, encoding="utf-8")
    return folder


SERVE_PY = '''"""Answer questions with retrieval exactly as the exported run did (adaptbench's RagBundle:
the run's chunker, embedder, retriever, prompt and answering settings over rag/corpus.jsonl).

    python serve.py "In which city is Rezejound Systems headquartered?"
    python serve.py < questions.jsonl      one {"question": ..., "choices": [...]} per line

Prints one JSON object per question: the answer, the chosen choice, and the retrieved
documents with their scores and text, in rank order."""

import json
import sys
from pathlib import Path

from harness.export.bundle import RagBundle


def main() -> None:
    if len(sys.argv) > 1:
        items = [{"question": " ".join(sys.argv[1:])}]
    else:
        items = [json.loads(line) for line in sys.stdin if line.strip()]
    # a question without choices is answered in words, whatever the run did
    bundle = RagBundle(Path(__file__).resolve().parent,
                       generate=True if any(not it.get("choices") for it in items) else None)
    for out in bundle.answer(items):
        print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
'''


class RagBundle:
    """A retrieval export, ready to answer: its strategy rebuilt from recipe.yaml (with the
    exported model folder in place of the run's, for a tuned hybrid) and fitted on the
    exported corpus."""

    def __init__(self, folder: Path, *, generate: bool | None = None) -> None:
        """`generate`: also write an answer (None: as the run did; a question without
        choices needs it)."""
        from harness.models import get_lm
        from harness.run.compose import strategy_factory
        from harness.types import Task

        self.folder = folder
        cfg = OmegaConf.load(folder / RECIPE)
        model = _plain(cfg.model)
        for name in ("merged", "model"):  # a tuned hybrid: the exported weights
            if (folder / name / "config.json").is_file():
                model = {**model, "name_or_path": str(folder / name)}
        with open_dict_of(cfg):
            cfg.progress = False
            if generate is not None:
                cfg.answer.generate = generate
        self.lm = get_lm(model)
        self.strategy = strategy_factory(_strategy_for_serving(cfg))(self.lm)
        docs = [Document(r["id"], r["text"], r.get("title", ""))
                for r in map(json.loads, (folder / "rag" / "corpus.jsonl").open(encoding="utf-8"))]
        self.strategy.fit(Task("export", tuple(docs), (), split_hash="export"))

    def answer(self, items: Sequence[dict]) -> list[dict]:
        """Each {"question", "choices"?, "id"?}: the answer, the choice and the documents
        retrieved (rank order, with scores and the text that reached the prompt)."""
        examples = [Example(str(it.get("id", i)), it["question"], ("",),
                            tuple(it.get("choices") or ()), ())
                    for i, it in enumerate(items)]
        preds = self.strategy.predict(examples)
        return [{"id": e.id, "question": e.question, "answer": p.output,
                 "choice": p.choice, "choice_text": e.choices[p.choice] if p.choice is not None else None,
                 "retrieved": [{"source_id": c.source_id, "score": c.score, "text": c.text}
                               for c in p.citations]}
                for e, p in zip(examples, preds)]


def open_dict_of(cfg: DictConfig):
    from omegaconf import open_dict

    return open_dict(cfg)


def _strategy_for_serving(cfg: DictConfig) -> DictConfig:
    """The run's config, a tuned hybrid's strategy replaced by rag over the same retrieval
    settings (its tuned half is the exported model folder)."""
    strategy = cfg.strategy
    if "adapter" not in strategy and "train" not in strategy:
        return cfg
    k = int((strategy.get("retrieval") or {}).get("k", 3))
    with open_dict_of(cfg):
        cfg.strategy = OmegaConf.create({"_target_": "strategies.rag.RAGStrategy",
                                         "name": "rag", "k": k})
    return cfg
