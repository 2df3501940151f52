"""The freshness scenario: a second version of a task's corpus and examples, and what
changed between the two.

`synthetic_facts`: `task.new_version.share` of the entities get new attribute values (their
documents rewritten, their questions' gold answers changed). A user's task: a second
corpus file and a second examples file (`task.new_version.corpus_path`, `.examples_path`).

The changed questions are exactly those whose gold answer differs between the versions
(matched by example id). Splits never move: an example keeps its first-version split;
one new in the second version takes the split its record gives, or `test` (nothing was
fit on it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.data.errors import TaskDataError
from harness.data.loaders import load_examples
from harness.data.synthetic import generate_update
from harness.types import Document, Example, Task


@dataclass(frozen=True)
class TaskUpdate:
    old: Task
    new: Task
    changed_doc_ids: frozenset[str]  # documents whose text, title or phrasings differ, or new
    removed_doc_ids: frozenset[str]  # in the first version only
    changed_example_ids: frozenset[str]  # questions whose gold answer differs
    old_answers: Mapping[str, tuple[str, ...]]  # first-version answers of changed questions

    def summary(self) -> dict[str, Any]:
        return {"documents": len(self.new.corpus), "changed_documents": len(self.changed_doc_ids),
                "removed_documents": len(self.removed_doc_ids),
                "examples": len(self.new.examples),
                "changed_examples": len(self.changed_example_ids)}


def diff_tasks(old: Task, new: Task) -> TaskUpdate:
    """What changed from `old` to `new` (documents by content, questions by gold answer)."""
    old_docs = old.doc_by_id
    changed_docs = frozenset(d.id for d in new.corpus if old_docs.get(d.id) != d)
    removed = frozenset(set(old_docs) - {d.id for d in new.corpus})
    old_ex = {e.id: e for e in old.examples}
    changed = {e.id: old_ex[e.id].answers for e in new.examples
               if e.id in old_ex and old_ex[e.id].answer != e.answer}
    return TaskUpdate(old, new, changed_docs, removed, frozenset(changed), changed)


def _new_task(old: Task, corpus: Sequence[Document], examples: Sequence[Example],
              path: str | Path | None = None, lines: dict[str, int] | None = None) -> Task:
    from harness.data import make_task  # the package imports this module

    split_of = {e.id: e.split for e in old.examples}
    examples = [replace(e, split=split_of.get(e.id) or e.split or "test") for e in examples]
    return make_task(old.name, corpus, examples, examples_path=path, lines=lines)


def build_update(cfg: Mapping[str, Any], old: Task,
                 resolve_path: Callable[[str], str] = lambda p: p) -> TaskUpdate:
    """The second version `cfg` (a task config with a `new_version` block) describes for `old`."""
    upd = dict(cfg.get("new_version") or {})
    kind = cfg.get("kind")
    if kind == "synthetic_facts":
        from harness.data import synthetic_args  # the package imports this module

        corpus, examples = generate_update(
            **synthetic_args(cfg), share=float(upd.get("share", 0.2)),
            attributes=upd.get("attributes"),
            update_seed=int(upd.get("seed", 1)),
        )
        return diff_tasks(old, _new_task(old, corpus, examples))
    if kind == "files":
        for key in ("corpus_path", "examples_path"):
            if not upd.get(key):
                raise TaskDataError(
                    f"the freshness scenario of task '{cfg.get('name')}' needs "
                    f"task.new_version.{key}",
                    hint=f"run with task.new_version.{key}=/path/to/new_version.jsonl "
                         "(the second version of the corpus and of the examples)")
        corpus_path = resolve_path(upd["corpus_path"])
        examples_path = resolve_path(upd["examples_path"])
        from harness.data import read_corpus  # the package imports this module

        corpus, _ = read_corpus(corpus_path, cfg)
        examples, lines = load_examples(examples_path, {d.id for d in corpus})
        return diff_tasks(old, _new_task(old, corpus, examples, examples_path, lines))
    raise TaskDataError(f"task kind '{kind}' has no update scenario")
