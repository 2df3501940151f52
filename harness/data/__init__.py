"""Tasks: a corpus plus examples split into train/val/test, validated and hashed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.data.boilerplate import BoilerplateSettings, strip_boilerplate
from harness.data.documents import DEFAULT_INCLUDE, load_folder
from harness.data.errors import TaskDataError
from harness.data.loaders import load_corpus, load_examples
from harness.data.splits import assign_splits, check_splits, split_hashes
from harness.data.synthetic import generate as generate_synthetic
from harness.errors import ConfigError
from harness.types import Document, Example, Task

TASK_KINDS = ("synthetic_facts", "files")

__all__ = ["TASK_KINDS", "TaskDataError", "build_task", "load_task_files", "make_task",
           "read_corpus"]


def make_task(
    name: str,
    corpus: Sequence[Document],
    examples: Sequence[Example],
    *,
    split_ratios: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    examples_path: str | Path | None = None,
    lines: dict[str, int] | None = None,
) -> Task:
    splits_given = any(e.split for e in examples)
    examples = assign_splits(examples, split_ratios, split_seed, path=examples_path, lines=lines)
    # A val split is required only when the ratios ask for one.
    require_val = not splits_given and len(split_ratios) == 3 and split_ratios[1] > 0
    check_splits(
        examples, task_name=name, require_val=require_val, path=examples_path, lines=lines
    )
    overall, per = split_hashes(examples)
    return Task(
        name=name,
        corpus=tuple(corpus),
        examples=tuple(examples),
        split_hash=overall,
        split_ids_hash=per,
    )


def read_corpus(path: str | Path, cfg: Mapping[str, Any] | None = None, *,
                progress: bool = False) -> tuple[list[Document], dict[str, Any]]:
    """A corpus from a folder of documents or a data file (.jsonl/.json/.csv/.parquet), with
    the task config's `columns`, `folder.include` and `on_bad_file`; also says how it was read."""
    cfg = cfg or {}
    path = Path(path)
    if path.is_dir():
        folder = cfg.get("folder") or {}
        docs, info = load_folder(path, include=tuple(folder.get("include") or DEFAULT_INCLUDE),
                                 on_bad_file=str(cfg.get("on_bad_file") or "error"),
                                 progress=progress)
    else:
        docs = load_corpus(path, columns=dict(cfg.get("columns") or {}))
        info = {"source": path.suffix.lower().lstrip(".") or "file", "documents": len(docs)}
    try:
        settings = BoilerplateSettings(**dict(cfg.get("boilerplate") or {}))
    except TypeError as e:
        raise ConfigError(f"task.boilerplate: {e}") from None
    docs, info["boilerplate"] = strip_boilerplate(docs, settings)
    for key in ("page_chrome_elements", "pages_with_chrome"):  # HTML pages' own chrome
        if key in info:
            info["boilerplate"][key] = info.pop(key)
    return docs, info


def load_task_files(
    name: str,
    corpus_path: str | Path,
    examples_path: str | Path,
    *,
    split_ratios: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    corpus_cfg: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Task:
    corpus, info = read_corpus(corpus_path, corpus_cfg, progress=progress)
    examples, lines = load_examples(examples_path, {d.id for d in corpus})
    task = make_task(
        name,
        corpus,
        examples,
        split_ratios=split_ratios,
        split_seed=split_seed,
        examples_path=examples_path,
        lines=lines,
    )
    return dataclasses.replace(task, corpus_info={**info, **question_set(examples_path)})


def question_set(examples_path: str | Path) -> dict[str, Any]:
    """How a generated question set was made and whether it gives answers away: the
    generator and validity block of the generation.json beside it (harness-make-task)."""
    path = Path(examples_path).parent / "generation.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or "validity" not in record:
        return {}
    return {"question_set": {"generator": record.get("generator"),
                             "paraphrased": bool(record.get("paraphrase")),
                             "validity": record["validity"]}}


def synthetic_args(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The generator's arguments from a `synthetic_facts` task config."""
    return {"n_entities": int(cfg.get("n_entities", 270)),
            "n_paraphrases": int(cfg.get("n_paraphrases", 3)),
            "n_choices": int(cfg.get("n_choices", 4)), "seed": int(cfg.get("seed", 0)),
            "kinds": tuple(cfg.get("kinds", ("company", "person", "town")))}


def build_task(cfg: Mapping[str, Any], resolve_path=lambda p: p, progress: bool = False) -> Task:
    """Build the task a `conf/task/*.yaml` describes."""
    kind = cfg.get("kind")
    ratios = tuple(cfg.get("split_ratios", (0.7, 0.15, 0.15)))
    split_seed = int(cfg.get("split_seed", 0))
    if kind == "synthetic_facts":
        corpus, examples = generate_synthetic(**synthetic_args(cfg))
        return make_task(cfg["name"], corpus, examples, split_ratios=ratios, split_seed=split_seed)
    if kind == "files":
        for key in ("corpus_path", "examples_path"):
            if not cfg.get(key) or str(cfg.get(key)) == "???":
                raise TaskDataError(
                    f"task '{cfg.get('name')}' needs task.{key}",
                    hint=f"run with task.{key}=/path/to/file.jsonl",
                )
        return load_task_files(
            cfg["name"],
            resolve_path(cfg["corpus_path"]),
            resolve_path(cfg["examples_path"]),
            split_ratios=ratios,
            split_seed=split_seed,
            corpus_cfg=cfg,
            progress=progress,
        )
    raise TaskDataError(f"unknown task kind '{kind}'; choose one of: {', '.join(TASK_KINDS)}")
