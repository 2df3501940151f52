"""`harness-make-task`: read a corpus, generate questions, write examples.jsonl and
generation.json into out_dir (see conf/make_task.yaml for every knob)."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from harness.data import make_task, read_corpus
from harness.data.generate.cloze import ClozeSettings, generate_cloze
from harness.data.generate.llm import LLMSettings, generate_llm, prompt_hash
from harness.data.generate.paraphrase import ParaphraseSettings, paraphrase
from harness.data.generate.validity import validity
from harness.errors import ConfigError, UserError, full_errors
from harness.models import get_lm
from harness.run_files import write_json, write_jsonl
from harness.system import cache_root, config_dir, versions
from harness.types import Document, Example

log = logging.getLogger(__name__)
GENERATORS = ("cloze", "llm")


def make_examples(cfg: DictConfig, docs: list[Document]) -> tuple[list[Example], dict[str, Any]]:
    """Generated examples (no split yet) and how they were made."""
    n, k, seed = int(cfg.n_questions), int(cfg.n_choices), int(cfg.seed)
    if n < 1 or k < 0 or k == 1:
        raise ConfigError("n_questions must be >= 1 and n_choices 0 (free-form) or >= 2")
    if cfg.generator not in GENERATORS:
        raise ConfigError(f"unknown generator '{cfg.generator}'; choose one of: "
                          f"{', '.join(GENERATORS)}")
    cloze = ClozeSettings(**OmegaConf.to_container(cfg.cloze, resolve=True))
    how: dict[str, Any] = {"generator": cfg.generator, "cloze_settings": dataclasses.asdict(cloze)}
    if cfg.generator == "cloze":
        items, counts = generate_cloze(docs, n_questions=n, n_choices=k, seed=seed,
                                       settings=cloze, progress=bool(cfg.progress))
        how.update(model=None, prompt_version=None, prompt_hash=None)
        prefix = "Fill in the blank: "
    else:
        lm = get_lm(OmegaConf.to_container(cfg.model, resolve=True))
        lm.cache = cache_root(cfg.get("cache_dir")) / "predictions"
        prompts = OmegaConf.to_container(cfg.qgen, resolve=True)
        settings = LLMSettings(**OmegaConf.to_container(cfg.llm, resolve=True))
        t0 = time.perf_counter()
        items, counts = generate_llm(docs, lm, prompts, n_questions=n, n_choices=k, seed=seed,
                                     settings=settings, cloze=cloze, progress=bool(cfg.progress))
        how.update(model=lm.name, prompt_version=prompts.get("version"),
                   prompt_hash=prompt_hash(prompts), llm_settings=dataclasses.asdict(settings),
                   seconds=round(time.perf_counter() - t0, 2))
        prefix = ""
    if cfg.get("paraphrase"):
        items, more = _paraphrased(cfg, items)
        model = more.pop("model")
        counts = {**counts, **more}
        how.update(paraphrase=True, model=how.get("model") or model,
                   prompt_version=cfg.qgen.get("version"),
                   prompt_hash=prompt_hash(OmegaConf.to_container(cfg.qgen, resolve=True)))
        prefix = ""
    width = len(str(len(items)))
    examples = [Example(id=f"{cfg.generator}-{i:0{width}d}", question=prefix + it.question,
                        answers=(it.answer,), choices=it.choices, source_ids=(it.doc_id,))
                for i, it in enumerate(items, 1)]
    extra = {e.id: {"kind": it.kind} | ({} if it.answerable_without_context is None else
                                        {"answerable_without_context": it.answerable_without_context})
             for e, it in zip(examples, items)}
    return examples, {**how, "counts": counts, "extra": extra,
                      "sources": [(it.question, it.context) for it in items]}


def _paraphrased(cfg: DictConfig, items: list) -> tuple[list, dict[str, Any]]:
    """The items rewritten by the configured model (paraphrase=true), with the counts."""
    from harness.retrieval import get_embedder

    lm = get_lm(OmegaConf.to_container(cfg.model, resolve=True))
    lm.cache = cache_root(cfg.get("cache_dir")) / "predictions"
    embedder = get_embedder(OmegaConf.to_container(cfg.embedder, resolve=True))
    settings = ParaphraseSettings(**OmegaConf.to_container(cfg.paraphrase_settings, resolve=True))
    kept, counts = paraphrase(items, lm, OmegaConf.to_container(cfg.qgen, resolve=True),
                              embedder.embed, settings, progress=bool(cfg.progress))
    return kept, {**counts, "model": lm.name}


def run(cfg: DictConfig) -> Path:
    """Generate and write the question set; returns the examples file."""
    missing = [k for k in ("corpus_path", "out_dir") if OmegaConf.is_missing(cfg, k)]
    if missing:
        raise ConfigError(f"give {' and '.join(f'{k}=...' for k in missing)} "
                          "(harness-make-task corpus_path=<folder or file> out_dir=<dir>)")
    corpus_path = Path(to_absolute_path(str(cfg.corpus_path)))
    out_dir = Path(to_absolute_path(str(cfg.out_dir)))
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    docs, corpus_info = read_corpus(corpus_path, task_cfg, progress=bool(cfg.progress))
    examples, how = make_examples(cfg, docs)
    extra, sources = how.pop("extra"), how.pop("sources")
    record = {**how, "seed": int(cfg.seed), "n_questions_asked": int(cfg.n_questions),
              "n_choices": int(cfg.n_choices), "split_ratios": list(cfg.split_ratios),
              "corpus_path": str(corpus_path), "corpus": corpus_info,
              "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "versions": versions()}
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not examples:
            raise UserError(f"{corpus_path}: no question could be made from {len(docs)} "
                            f"documents (counts: {how['counts']}); give more text or loosen "
                            f"the {cfg.generator} settings")
        # the same split assignment and leakage checks as a user's own examples file
        task = make_task("generated", docs, examples, split_ratios=tuple(cfg.split_ratios),
                         split_seed=int(cfg.seed))
    except UserError as e:  # what was tried is still worth reading
        write_json(out_dir / "generation.json", {**record, "written": 0, "error": str(e)})
        raise
    examples_path = out_dir / "examples.jsonl"
    write_jsonl(examples_path, (
        {"id": e.id, "question": e.question, "answer": e.answer, "choices": list(e.choices),
         "source_ids": list(e.source_ids), "split": e.split, **extra[e.id]}
        for e in task.examples))
    check = validity(examples, sources, docs)
    write_json(out_dir / "generation.json", {
        **record, "written": len(task.examples),
        "split_sizes": {s: len(task.split(s)) for s in ("train", "val", "test")},
        "validity": check})
    for w in check["warnings"]:
        log.warning("question set: %s", w)
    log.info("%d questions from %d documents -> %s (%s)", len(task.examples), len(docs),
             examples_path, ", ".join(f"{k} {v}" for k, v in how["counts"].items()))
    print(f"Wrote {len(task.examples)} questions to {examples_path}\nNext:  harness-run -m "
          f"experiment=quick task=custom task.corpus_path={cfg.corpus_path} "
          f"task.examples_path={examples_path}")
    return examples_path


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="make_task")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except UserError as e:
        if full_errors():
            raise
        print(f"harness-make-task: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
