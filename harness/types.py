"""Dataclasses that cross module boundaries: the task, and the strategy contract.

A strategy is any object that satisfies `Strategy` below; it is built from a
harness.context.StrategyContext and the knobs of its YAML. The runner and the report learn
everything they need about a strategy from these members and from what its fit and
predictions return, never from its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

SPLITS = ("train", "val", "test")

# A search trial's pruner, asked after each validation of a training run: (epoch, validation
# loss, last) -> stop now? (harness.search.trial.trial_pruning makes it; the strategy's
# StrategyContext.pruning carries it to training).
Pruning = Callable[[float, float, bool], bool]


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    # Other phrasings of the same facts (used by tuning augmentation); may be empty.
    paraphrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    answers: tuple[str, ...]  # any of them is correct; answers[0] is the canonical one
    choices: tuple[str, ...] = ()  # empty: free generation only
    source_ids: tuple[str, ...] = ()  # corpus documents that hold the answer
    split: str = ""
    # the examples file's other fields (difficulty, topic, ...), carried to predictions.jsonl
    # for the report's item explorer; never part of an example's identity
    meta: dict[str, object] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def answer(self) -> str:
        return self.answers[0]

    @property
    def gold_choice(self) -> int:
        """Index of the first choice that is a correct answer (-1 if none)."""
        for i, c in enumerate(self.choices):
            if c in self.answers:
                return i
        return -1


@dataclass(frozen=True)
class Task:
    name: str
    corpus: tuple[Document, ...]
    examples: tuple[Example, ...]
    split_hash: str  # sha256 over the sorted example ids of each split
    split_ids_hash: dict[str, str] = field(default_factory=dict)
    # how the corpus was read (a folder: files read, skipped and why); recorded by the run
    corpus_info: dict[str, object] = field(default_factory=dict)

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]

    @property
    def doc_by_id(self) -> dict[str, Document]:
        return {d.id: d for d in self.corpus}


@dataclass(frozen=True)
class FitReport:
    wall_s: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    train_tokens: int = 0
    flops_est: float = 0.0
    peak_mem_mb: float = 0.0
    artifact_bytes: int = 0
    cache_hit: bool = False
    # Seconds the build took when it was computed, also when a cache supplied it this time
    # (the cost model charges this, not the seconds a cache hit took). None: same as wall_s.
    build_s: float | None = None
    notes: dict[str, object] = field(default_factory=dict)
    # What tuning did to general ability (harness.tuning.forgetting.measure_forgetting);
    # None: not measured. The report's forgetting table shows it for strategies that train.
    forgetting: dict[str, object] | None = None
    # Ids of the task examples whose question or answer reached what fit built (a few-shot
    # pool, training rows). The runner checks them against the test split (leakage); None:
    # the strategy does not say, and the run records the check as not made.
    examples_seen: frozenset[str] | None = None

    def to_dict(self) -> dict:
        """For metrics.json: every field but the example ids (the leakage check counts them)."""
        d = asdict(self)
        del d["examples_seen"]
        return d


@dataclass(frozen=True)
class Citation:
    source_id: str
    score: float
    # the text of this source that reached the prompt (groundedness is judged against it);
    # empty: the whole document stands in
    text: str = ""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_s: float = 0.0  # this item's share of its batch's retrieval time
    scoring_s: float = 0.0  # this item's share of its batch's choice-scoring time
    generation_s: float = 0.0  # this item's share of its batch's generation time
    latency_s: float = 0.0  # wall time of the batch(es) this item was answered in
    retrieval_latency_s: float = 0.0  # the retrieval part of latency_s (its batch's search)
    # what the batches behind latency_s computed (harness.cost.work counters): the cost model's
    # latency of this item, here and on other hardware, comes from it
    work: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    example_id: str
    output: str | None  # generated answer text (None when generation is off)
    choice: int | None = None  # index of the chosen choice (None when no choices)
    choice_logprobs: tuple[float, ...] = ()
    usage: Usage = field(default_factory=Usage)
    citations: tuple[Citation, ...] = ()  # ranked; empty for strategies that cannot cite

    def to_dict(self) -> dict:
        return asdict(self)


class Strategy(Protocol):
    """The strategy contract (see harness.context for how a strategy is built)."""

    name: str  # the run directory and the report's variant names start with it
    # fit changes the model's weights: the runner also scores train-split questions (seen
    # facts) and the report shows forgetting and break-even against the untrained variants.
    trains: bool
    # predictions carry the sources they used (Prediction.citations): the report shows
    # source attribution; otherwise it says "cannot cite".
    cites: bool
    # passages retrieved per question (the depth of recall@k); None: no retrieval. The
    # report takes the most accurate untrained variant with and without retrieval as the
    # baselines a trained variant's build cost is weighed against.
    retrieval_k: int | None

    def fit(self, task: Task) -> FitReport: ...

    def predict(self, examples: Sequence[Example]) -> list[Prediction]: ...


CONTRACT = ("name", "trains", "cites", "retrieval_k", "fit", "predict")
# Optional, on the class or function a strategy config's _target_ names: `libraries`, the
# modules its fit and predict import (e.g. ("peft",)). The runner imports them before it
# takes the run's memory baseline, so the run's measured peak is its models' and data's,
# not the libraries' (harness.run.compose.import_libraries).


def missing_members(strategy: object) -> list[str]:
    """The members of the Strategy contract that `strategy` lacks."""
    return [m for m in CONTRACT if not hasattr(strategy, m)]


class Updatable(Protocol):
    """Optional, for the freshness scenario (harness.run.freshness): a fitted strategy learns a
    new version of its task by one of its `update_modes`; `change` is a
    harness.data.update.TaskUpdate. The report says "no update path" for strategies
    without it."""

    update_modes: Sequence[str]

    def update(self, change, mode: str) -> FitReport: ...
