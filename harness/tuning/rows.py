"""Training rows built from a task: instruction pairs from train-split questions,
optional continued pre-training on corpus documents (with paraphrase augmentation), and
RAFT-style rows that pair a question with retrieved passages. Never a val/test example
in training rows; val rows come from the val split only (for validation loss)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.models.local import LM
from harness.prompting import Passage, PromptSettings, build_messages
from harness.types import Document, Example, Task

IGNORE = -100  # label value the loss skips (prompt tokens of instruction pairs)


@dataclass(frozen=True)
class TrainRow:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE where no loss is taken
    source: str  # "qa:<example id>", "doc:<doc id>:<phrasing>", "raft:<example id>"


@dataclass(frozen=True)
class DataSettings:
    qa_pairs: bool = True  # train on the train split's questions (answer tokens only)
    documents: bool = True  # continued pre-training on corpus documents (all tokens)
    paraphrases: int = 3  # extra phrasings per document (0: off); needs Document.paraphrases
    max_seq_len: int = 256  # longer rows are cut; higher: more memory per step

    def __post_init__(self) -> None:
        if self.paraphrases < 0 or self.max_seq_len < 16:
            raise ConfigError("data.paraphrases must be >= 0 and data.max_seq_len >= 16")
        if not (self.qa_pairs or self.documents):
            raise ConfigError("data.qa_pairs and data.documents are both off: nothing to train on")


def _end_of_turn(lm: LM) -> list[int]:
    if lm.chat:
        tok = lm.tokenizer
        end = tok.convert_tokens_to_ids("<|im_end|>")
        if isinstance(end, int) and end != tok.unk_token_id:
            return [end]
    return [lm.tokenizer.eos_token_id] if lm.tokenizer.eos_token_id is not None else []


def qa_row(lm: LM, prompt: PromptSettings, ex: Example, max_len: int,
           passages: Sequence[Passage] = (), source: str = "qa") -> TrainRow:
    """The eval prompt (same builder) followed by the answer; loss on the answer only."""
    ctx = lm.encode(lm.render(build_messages(prompt, ex.question, passages=passages)))
    ans = lm.encode_continuation(ex.answer) + _end_of_turn(lm)
    ctx = ctx[-(max_len - len(ans)):] if len(ctx) + len(ans) > max_len else ctx
    return TrainRow(tuple(ctx + ans), tuple([IGNORE] * len(ctx) + ans), f"{source}:{ex.id}")


def doc_rows(lm: LM, doc: Document, paraphrases: int, max_len: int) -> list[TrainRow]:
    """One row per phrasing of the document; a phrasing longer than max_len tokens is cut
    into consecutive windows (every token is trained on, none is dropped)."""
    texts = [doc.text, *doc.paraphrases[:paraphrases]]
    rows = []
    step = max_len - 1  # room for the end-of-text token
    for i, text in enumerate(texts):
        ids = lm.tokenizer(text, add_special_tokens=False).input_ids
        for w, start in enumerate(range(0, max(len(ids), 1), step)):
            window = ids[start:start + step] + [lm.tokenizer.eos_token_id]
            tag = f"doc:{doc.id}:{i}" + (f":{w}" if len(ids) > step else "")
            rows.append(TrainRow(tuple(window), tuple(window), tag))
    return rows


def doc_key(row: TrainRow) -> str | None:
    """The document a row phrases ("doc:<id>:<n>" -> id); None for question rows."""
    return row.source.split(":")[1] if row.source.startswith("doc:") else None


def rows_about(rows: Sequence[TrainRow], doc_ids: Set[str],
               example_ids: Set[str]) -> list[TrainRow]:
    """The rows that phrase one of `doc_ids` or ask one of `example_ids` (qa/raft rows)."""
    def about(r: TrainRow) -> bool:
        key = doc_key(r)
        if key is not None:
            return key in doc_ids
        return r.source.split(":", 1)[-1] in example_ids
    return [r for r in rows if about(r)]


def plan_batches(rows: Sequence[TrainRow], batch_size: int, seed: int,
                 group_by_length: bool = True) -> list[list[int]]:
    """One epoch of batches (row indices): shuffled, grouped by length within windows of
    16 batches (less padding), and no two phrasings of one document in the same batch
    (Allen-Zhu & Li 2024); batch order shuffled. Only the last batches may break the rule,
    when nothing else is left to fill them."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * 16
        order = [i for w in range(0, len(order), window)
                 for i in sorted(order[w:w + window], key=lambda j: -len(rows[j].input_ids))]
    batches, pending = [], order
    while pending:
        current, keys, rest = [], set(), []
        for i in pending:
            key = doc_key(rows[i])
            if len(current) < batch_size and (key is None or key not in keys):
                current.append(i)
                keys.add(key)
            else:
                rest.append(i)
        while len(current) < batch_size and rest:  # only clashing rows left: accept them
            current.append(rest.pop(0))
        batches.append(current)
        pending = rest
    full = [b for b in batches if len(b) == batch_size]
    rng.shuffle(full)
    return full + [b for b in batches if len(b) < batch_size]  # a short batch goes last


def build_rows(lm: LM, prompt: PromptSettings, task: Task, settings: DataSettings,
               seed: int) -> tuple[list[TrainRow], list[TrainRow], dict[str, int]]:
    """(train rows, val rows, counts). Train rows: train-split QA + documents."""
    rows: list[TrainRow] = []
    if settings.qa_pairs:
        rows += [qa_row(lm, prompt, e, settings.max_seq_len) for e in task.split("train")]
    n_docs = 0
    if settings.documents:
        for d in task.corpus:
            drows = doc_rows(lm, d, settings.paraphrases, settings.max_seq_len)
            n_docs += len(drows)
            rows += drows
    val = [qa_row(lm, prompt, e, settings.max_seq_len) for e in task.split("val")]
    counts = {"qa_rows": len(rows) - n_docs, "doc_rows": n_docs, "val_rows": len(val),
              "paraphrases_available": sum(len(d.paraphrases) for d in task.corpus)}
    return rows, val, counts


def raft_rows(lm: LM, prompt: PromptSettings, examples: Sequence[Example],
              retrieve: Callable[[Sequence[str]], list[list[Passage]]],
              doc_text: Callable[[str], Passage], *, p_gold: float, n_distractors: int,
              seed: int, max_len: int, source: str = "raft",
              budget: Callable[[list[Passage]], list[Passage]] = list) -> list[TrainRow]:
    """RAFT: each question with `n_distractors` retrieved non-gold passages, plus its gold
    document with probability `p_gold`, in random order; the answer is trained either way
    so the model learns to use context when it helps and to ignore noise."""
    rng = random.Random(seed)
    retrieved = retrieve([e.question for e in examples])
    rows = []
    for ex, hits in zip(examples, retrieved):
        gold = set(ex.source_ids)
        distract = [p for p in hits if p.source_id not in gold][:n_distractors]
        passages = list(distract)
        if gold and rng.random() < p_gold:
            passages.append(doc_text(sorted(gold)[0]))
        rng.shuffle(passages)
        rows.append(qa_row(lm, prompt, ex, max_len, passages=budget(passages), source=source))
    return rows
