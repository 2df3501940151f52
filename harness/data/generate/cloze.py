"""Cloze questions from a corpus, with no model: the deterministic offline baseline.

Each document is split into sentences (pysbd, through harness.sentences: in linear time). In a
sentence of usable length, salient
spans are found and typed:

    date    "14 May 2020", "May 14, 2020", "2020-05-14"
    year    1500-2099
    number  other numbers ("3.2", "1,024", "64")
    name    two or more capitalised words, not at the sentence start ("Node Foundation")
    term    an identifier-like word (dotted, underscored, with digits or inner capitals,
            ALLCAPS, --option) or a plain word used at least `min_term_repeats` times in its
            document; found in at least `min_term_docs` documents but in at most
            `max_term_share` of them (specific to some documents, not common to all)

One span per sentence is masked ("____"), the most specific kind first (date, year, name,
number, term); the question is the masked sentence, after the document's title ("Varne
lighthouse: It was first lit in ____."). With choices, each choice is by default the whole
sentence with one candidate filled in (`choices_as: sentence`; `span`: the candidates
alone); free-form, the answer is the span. Distractors
are spans of the same kind and the same shape (numbers: digit count, separators, leading
zero; names: word count; terms: case, identifier marks, word ending) from other documents,
the closest in length, drawn with the seed. A candidate
is dropped, and the reason counted, when: its span occurs twice in the sentence (the blank
would be given away), the same question text was already made, or too few same-kind
distractors exist.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tqdm.auto import tqdm

from harness.errors import ConfigError
from harness.sentences import Splitter
from harness.types import Document

T = TypeVar("T")
CHOICES_AS = ("sentence", "span")
BLANK = "____"
KINDS = ("date", "year", "name", "number", "term")  # most specific first
_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec")
NAME = r"[A-Z][a-z]+(?: (?:of |de |von )?[A-Z][a-z]+)+"
PATTERNS = {
    "date": re.compile(rf"\b(?:\d{{1,2}} (?:{_MONTHS})\.? \d{{4}}|(?:{_MONTHS})\.? \d{{1,2}}, "
                       rf"\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}})\b"),
    "year": re.compile(r"(?<![\w.,-])(?:1[5-9]\d\d|20\d\d)(?!\w|[.,]\d)"),
    # a whole token: not part of a version, time (23:59), date (25-Aug-95), path or a
    # man-page section (getopt(1))
    "number": re.compile(r"(?<![\w.,:/-])(?<!\w\()\d+(?:[.,]\d+)*(?!\w|[.,:/-]\w)"),
    "name": re.compile(r"(?<!^)(?<![.!?] )\b" + NAME + r"\b"),  # not where a sentence starts
}
_TERM = re.compile(r"(?<![\w.-])(?:--)?[A-Za-z_][\w]*(?:[.-][A-Za-z_]\w*)*(?![\w-])")
_IDENTIFIER = re.compile(r"[._\d]|^--|[a-z][A-Z]|^[A-Z]{3,}$")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_WORD_RE = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class ClozeSettings:
    min_words: int = 8  # sentences shorter than this give too little context
    max_words: int = 40  # longer ones are usually lists or code
    min_term_len: int = 5  # shorter words are rarely salient terms
    min_term_repeats: int = 3  # a plain word is a term only if its document uses it this often
    min_term_docs: int = 2  # a term must occur in at least this many documents
    max_term_share: float = 0.2  # and in at most this share of them (else it is common)
    code: bool = False  # False: sentences that look like code are no question source
    with_title: bool = True  # name the document in the question ('It was built in ____' is
    # otherwise about any document)
    choices_as: str = "sentence"  # sentence: each choice is the whole sentence with one
    # candidate filled in (scored as a continuation, the way cloze benchmarks are); span: the
    # candidates alone. Free-form answers are always the span.

    def __post_init__(self) -> None:
        if self.choices_as not in CHOICES_AS:
            raise ConfigError(f"unknown cloze.choices_as '{self.choices_as}'; choose one of: "
                              f"{', '.join(CHOICES_AS)}")


@dataclass(frozen=True)
class Span:
    kind: str
    text: str
    start: int


@dataclass(frozen=True)
class Item:
    """One generated question: its answer, the answer's kind, the document it came from,
    the text it was made from (a sentence or a passage) and its choices (() free-form)."""

    question: str
    answer: str
    kind: str
    doc_id: str
    context: str
    choices: tuple[str, ...] = ()
    answerable_without_context: bool | None = None  # llm: the model knew it anyway


def sentences(text: str, splitter: Splitter | None = None) -> list[str]:
    """Paragraphs and list items, then sentences (harness.sentences: linear in the text;
    `splitter.cut` counts the paragraphs too long for the segmenter that it cut first)."""
    splitter = splitter or Splitter()
    out = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*+•]|\d+[.)])\s)", text):  # paragraphs, items
        block = " ".join(_BULLET.sub("", block).split())
        if block:
            out.extend(splitter.block(block))
    return out


_CODE = re.compile(
    r"[{};]|[+\-*/%|&^]=|==|!=|=>|->|::|</?\w+>|\w\((?!\d\w?\))\S*\)|\w\s=\s\S|\w\[\S*\]|^\s*(?:\$|>>>|#include|"
    r"import |from \S+ import|def |class |return |var |let |const |function )|`|\w=\S")


def looks_like_code(sentence: str) -> bool:
    """A sentence with code syntax (assignments, calls, brackets, operators, tags, shell or
    REPL prompts) or mostly symbols: no place for a cloze blank in prose."""
    if _CODE.search(sentence):
        return True
    chars = sentence.replace(" ", "")
    symbols = sum(not (c.isalnum() or c in ".,;:'\"()-?!") for c in chars)
    return bool(chars) and symbols / len(chars) > 0.15


def shape(text: str, kind: str = "term") -> tuple:
    """What a distractor must share with the answer to look like it. A number: its digit
    count, separators and leading zero; a name: its word count; a term: case pattern,
    identifier marks and (for plain lowercase words) the last two letters."""
    if kind == "number":
        return (sum(c.isdigit() for c in text), "." in text, "," in text, text[:1] == "0")
    if kind == "name":
        return (len(text.split()),)
    if kind != "term":
        return ()
    plain = text.isalpha()
    return (text[:1].isupper(), text.isupper(), "_" in text, "." in text, "-" in text,
            any(c.isdigit() for c in text), text[-2:].lower() if plain and text.islower() else "")


def document_frequency(docs: Sequence[Document]) -> Counter:
    """In how many documents each candidate term occurs."""
    df: Counter = Counter()
    for d in docs:
        df.update({m.group(0) for m in _TERM.finditer(d.text)})
    return df


def spans(sentence: str, salient_terms: set[str] | frozenset[str]) -> list[Span]:
    """Typed salient spans of a sentence, the more specific kinds first; spans overlapping
    an earlier one are left out."""
    found: list[Span] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for kind in KINDS[:-1]:  # every kind but term, the most specific first
        for m in PATTERNS[kind].finditer(sentence):
            if free(m.start(), m.end()):
                found.append(Span(kind, m.group(0), m.start()))
                taken.append((m.start(), m.end()))
    for m in _TERM.finditer(sentence):
        if m.group(0) in salient_terms and m.start() > 0 and free(m.start(), m.end()):
            found.append(Span("term", m.group(0), m.start()))
            taken.append((m.start(), m.end()))
    return found


def is_identifier(word: str) -> bool:
    return bool(_IDENTIFIER.search(word))


def pick_distractors(answer: str, kind: str, pool: Sequence[tuple[str, str]], doc_id: str,
                     n: int, rng: random.Random, sentence: str) -> list[str] | None:
    """n spans of `kind` from other documents, unlike the answer and absent from the
    sentence, drawn among the closest in form; None when there are not enough."""
    seen = {answer.casefold()}
    cands = []
    want = shape(answer, kind)
    for text, source in pool:
        key = text.casefold()
        if source == doc_id or key in seen or text in sentence or shape(text, kind) != want:
            continue
        seen.add(key)
        cands.append(text)
    if len(cands) < n:
        return None
    cands.sort(key=lambda t: (abs(len(t) - len(answer)), t))  # the closest in length first
    near = cands[: max(4 * n, 12)]
    return rng.sample(near, n)


@dataclass
class Scan:
    """What a corpus offers: per document, its usable sentences with the span a cloze item
    would mask; every salient span by kind (the distractor pool); and the counts."""

    per_doc: dict[str, list[tuple[str, Span]]]
    pool: dict[str, list[tuple[str, str]]]  # kind -> [(span text, document id)]
    counts: Counter


def scan(docs: Sequence[Document], settings: ClozeSettings, rng: random.Random,
         progress: bool = False) -> Scan:
    df = document_frequency(docs)
    limit = max(settings.min_term_docs, settings.max_term_share * len(docs))
    specific = {t for t, c in df.items() if settings.min_term_docs <= c <= limit
                and len(t) >= settings.min_term_len and not t.isdigit()}
    counts: Counter = Counter()
    per_doc: dict[str, list[tuple[str, Span]]] = {}
    pool: dict[str, list[tuple[str, str]]] = {k: [] for k in KINDS}
    splitter = Splitter()
    for d in tqdm(docs, desc="finding spans", unit="doc", disable=not progress):
        uses = Counter(m.group(0) for m in _TERM.finditer(d.text))
        salient = frozenset(t for t in specific if is_identifier(t)
                            or uses[t] >= settings.min_term_repeats)
        for s in sentences(d.text, splitter):
            counts["sentences"] += 1
            n_words = len(_WORD_RE.findall(s))
            if not settings.min_words <= n_words <= settings.max_words:
                counts["dropped_sentence_length"] += 1
                continue
            if not settings.code and looks_like_code(s):
                counts["dropped_code"] += 1
                continue
            found = spans(s, salient)
            if not found:
                counts["dropped_no_salient_span"] += 1
                continue
            for sp in found:
                pool[sp.kind].append((sp.text, d.id))
            best = min(KINDS.index(sp.kind) for sp in found)  # the most specific kind
            per_doc.setdefault(d.id, []).append(
                (s, rng.choice([sp for sp in found if KINDS.index(sp.kind) == best])))
    if splitter.cut:  # paragraphs too long for the sentence segmenter: cut, not dropped
        counts["paragraphs_cut"] = splitter.cut
    return Scan(per_doc, pool, counts)


def round_robin(per_doc: dict[str, list[T]], rng: random.Random) -> Iterator[tuple[str, T]]:
    """(document id, item) taking one item of each document in turn (documents and items
    shuffled), so that a long document cannot fill the whole set."""
    queues = {doc_id: rng.sample(items, len(items)) for doc_id, items in per_doc.items()}
    order = sorted(queues)
    rng.shuffle(order)
    while any(queues.values()):
        for doc_id in order:
            if queues[doc_id]:
                yield doc_id, queues[doc_id].pop()


def question_key(question: str) -> str:
    return " ".join(_WORD_RE.findall(question.lower()))


def with_choices(answer: str, kind: str, pool: dict[str, list[tuple[str, str]]], doc_id: str,
                 n_choices: int, rng: random.Random, context: str) -> tuple[str, ...] | None:
    """The answer among n_choices - 1 same-kind distractors, shuffled; () for free-form;
    None when too few distractors exist."""
    if not n_choices:
        return ()
    wrong = pick_distractors(answer, kind, pool.get(kind, []), doc_id, n_choices - 1, rng, context)
    return None if wrong is None else tuple(rng.sample([answer, *wrong], n_choices))


def generate_cloze(docs: Sequence[Document], *, n_questions: int, n_choices: int = 4,
                   seed: int = 0, settings: ClozeSettings = ClozeSettings(),
                   progress: bool = False) -> tuple[list[Item], dict[str, int]]:
    """Up to `n_questions` cloze items (spread over the documents, one span per sentence)
    and the counts of what was considered and dropped, by reason."""
    rng = random.Random(seed)
    titles = {d.id: " ".join(d.title.split()) for d in docs}
    found = scan(docs, settings, rng, progress)
    counts = found.counts
    items: list[Item] = []
    asked: set[str] = set()
    for doc_id, (sentence, span) in round_robin(found.per_doc, rng):
        if len(items) >= n_questions:
            break
        counts["candidates"] += 1
        if sentence.count(span.text) > 1:
            counts["dropped_answer_repeated_in_sentence"] += 1
            continue
        question = sentence[:span.start] + BLANK + sentence[span.start + len(span.text):]
        if settings.with_title and titles[doc_id]:
            question = f"{titles[doc_id]}: {question}"
        if question_key(question) in asked:
            counts["dropped_duplicate_question"] += 1
            continue
        choices = with_choices(span.text, span.kind, found.pool, doc_id, n_choices, rng, sentence)
        if choices is None:
            counts["dropped_too_few_distractors"] += 1
            continue
        asked.add(question_key(question))
        answer = span.text
        if choices and settings.choices_as == "sentence":
            end = span.start + len(span.text)
            choices = tuple(sentence[:span.start] + c + sentence[end:] for c in choices)
            answer = sentence
        items.append(Item(question, answer, span.kind, doc_id, sentence, choices))
    counts["kept"] = len(items)
    counts.update({f"kind_{k}": sum(i.kind == k for i in items) for k in KINDS})
    return items, dict(counts)
