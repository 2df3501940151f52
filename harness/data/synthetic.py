"""`synthetic_facts`: invented entities whose facts no pretrained model can know.

Three kinds of entity (companies, people, towns), each with four attributes.
Every entity gets one corpus document; its other phrasings are kept as
`Document.paraphrases` for tuning augmentation. Each (entity, attribute) pair
is one question with four choices: the answer plus three other values of the
same attribute. Everything is drawn from one seeded RNG, so a seed fixes the
task exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from harness.types import Document, Example

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kl", "l", "m", "n", "p", "pr",
           "r", "s", "st", "t", "tr", "v", "z", "th", "sh", "h", "j", "qu", "w", "y"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei", "y"]
_CODAS = ["", "", "n", "r", "l", "s", "x", "m", "nd", "rk", "th", "v"]

_PRODUCTS = ["solar kettles", "drone batteries", "folding bicycles", "hearing aids",
             "smart thermostats", "water filters", "electric scooters", "garden robots",
             "noise-cancelling helmets", "modular desks", "heated gloves", "bamboo toothbrushes",
             "wind turbines", "insulin pens", "cargo drones", "3D printers", "e-readers",
             "sleep trackers", "cast-iron stoves", "rooftop tents", "ceramic knives",
             "air purifiers", "tidal generators", "greenhouse sensors"]
_PROFESSIONS = ["cartographer", "glassblower", "marine biologist", "violin maker",
                "structural engineer", "beekeeper", "archivist", "pastry chef",
                "volcanologist", "typesetter", "botanist", "lighthouse keeper",
                "clockmaker", "astronomer", "translator", "mountain guide", "perfumer",
                "bookbinder", "falconer", "locksmith"]
_LANDMARK_ADJ = ["Copper", "Silent", "Crooked", "Golden", "Northern", "Sunken", "Painted",
                 "Old", "Iron", "Glass", "Twin", "Hollow"]
_LANDMARK_NOUN = ["Bridge", "Tower", "Mill", "Gate", "Lighthouse", "Abbey", "Fountain",
                  "Observatory", "Market", "Arch", "Clocktower", "Aqueduct"]
_COMPANY_SUFFIX = ["Labs", "Works", "Systems", "Industries", "Dynamics", "Collective",
                   "Foundry", "Group"]


@dataclass(frozen=True)
class _Attr:
    key: str
    question: str  # "{name}" is the entity
    sentences: tuple[str, ...]  # phrasings; "{name}" and "{value}"


_KINDS: dict[str, tuple[_Attr, ...]] = {
    "company": (
        _Attr("city", "In which city is {name} headquartered?",
              ("{name} is headquartered in {value}.", "The head office of {name} is in {value}.",
               "{name} runs its business from {value}.")),
        _Attr("founded", "In which year was {name} founded?",
              ("{name} was founded in {value}.", "{name} opened its doors in {value}.",
               "The company {name} dates back to {value}.")),
        _Attr("founder", "Who founded {name}?",
              ("{name} was founded by {value}.", "{value} started {name}.",
               "The founder of {name} is {value}.")),
        _Attr("product", "What does {name} make?",
              ("{name} makes {value}.", "The main product of {name} is {value}.",
               "{name} is known for its {value}.")),
    ),
    "person": (
        _Attr("hometown", "Where was {name} born?",
              ("{name} was born in {value}.", "{name} grew up in {value}, where they were born.",
               "The birthplace of {name} is {value}.")),
        _Attr("born", "In which year was {name} born?",
              ("{name} was born in the year {value}.", "{name}'s year of birth is {value}.",
               "{name} came into the world in {value}.")),
        _Attr("profession", "What is the profession of {name}?",
              ("{name} works as a {value}.", "By profession, {name} is a {value}.",
               "{name} earns a living as a {value}.")),
        _Attr("employer", "Which organisation employs {name}?",
              ("{name} is employed by {value}.", "{name} works for {value}.",
               "The employer of {name} is {value}.")),
    ),
    "town": (
        _Attr("region", "In which region does {name} lie?",
              ("{name} lies in the region of {value}.", "The town of {name} is part of {value}.",
               "{name} is a town in {value}.")),
        _Attr("river", "Which river flows through {name}?",
              ("The {value} flows through {name}.", "{name} sits on the banks of the {value}.",
               "The river that crosses {name} is the {value}.")),
        _Attr("founded", "In which year was the town of {name} founded?",
              ("The town of {name} was founded in {value}.", "{name} was settled in {value}.",
               "Records date the founding of {name} to {value}.")),
        _Attr("landmark", "What is the best-known landmark of {name}?",
              ("The best-known landmark of {name} is the {value}.",
               "Visitors to {name} come to see the {value}.",
               "{name} is famous for the {value}.")),
    ),
}


class _Names:
    """Unique invented words, drawn from a seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.used = rng, set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        while True:
            n = self.rng.randint(*syllables)
            w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(n))
            w = (w + self.rng.choice(_CODAS)).capitalize()
            if w not in self.used and 4 <= len(w) <= 11:
                self.used.add(w)
                return w

    def person(self) -> str:
        return f"{self.word((1, 2))} {self.word()}"


def _value_pools(names: _Names, rng: random.Random) -> dict[tuple[str, str], list[str]]:
    cities = [names.word() for _ in range(40)]
    return {
        ("company", "city"): cities,
        ("company", "founded"): [str(y) for y in range(1850, 2016)],
        ("company", "founder"): [names.person() for _ in range(60)],
        ("company", "product"): list(_PRODUCTS),
        ("person", "hometown"): cities,
        ("person", "born"): [str(y) for y in range(1930, 2001)],
        ("person", "profession"): list(_PROFESSIONS),
        ("person", "employer"): [f"{names.word()} {rng.choice(_COMPANY_SUFFIX)}" for _ in range(40)],
        ("town", "region"): [names.word() for _ in range(20)],
        ("town", "river"): [f"{names.word()} River" for _ in range(30)],
        ("town", "founded"): [str(y) for y in range(1100, 1900)],
        ("town", "landmark"): [f"{a} {n}" for a in _LANDMARK_ADJ for n in _LANDMARK_NOUN],
    }


def _entity_name(kind: str, names: _Names, rng: random.Random) -> str:
    if kind == "company":
        return f"{names.word()} {rng.choice(_COMPANY_SUFFIX)}"
    if kind == "person":
        return names.person()
    return names.word()


def _document_text(name: str, attrs: tuple[_Attr, ...], values: dict[str, str],
                   rng: random.Random) -> str:
    sentences = [rng.choice(a.sentences).format(name=name, value=values[a.key]) for a in attrs]
    rng.shuffle(sentences)
    return " ".join(sentences)


@dataclass(frozen=True)
class _Entity:
    kind: str
    name: str
    doc_id: str
    values: dict[str, str]


NO_CHOICES_DRAW = 4  # n_choices=0: the draws of the 4-choice task, so the facts are the same


def _check(n_entities: int, n_choices: int, kinds: tuple[str, ...]) -> None:
    unknown = set(kinds) - set(_KINDS)
    if unknown:
        raise ValueError(f"unknown entity kinds {sorted(unknown)}; choose from: {', '.join(_KINDS)}")
    if n_entities < len(kinds) or n_choices == 1 or n_choices < 0:
        raise ValueError("synthetic_facts needs n_entities >= number of kinds and n_choices >= 2 "
                         "(or 0: no choices, free-form answers only)")


def _build(n_entities: int, n_paraphrases: int, n_choices: int, seed: int,
           kinds: tuple[str, ...]):
    """(docs, examples, entities, value pools) of the first version."""
    _check(n_entities, n_choices, kinds)
    rng = random.Random(seed)
    names = _Names(rng)
    pools = _value_pools(names, rng)
    docs, examples, entities = [], [], []
    for i in range(n_entities):
        kind = kinds[i % len(kinds)]
        attrs = _KINDS[kind]
        name = _entity_name(kind, names, rng)
        values = {a.key: rng.choice(pools[(kind, a.key)]) for a in attrs}
        doc_id = f"{kind}-{i:04d}"
        entities.append(_Entity(kind, name, doc_id, values))
        text = _document_text(name, attrs, values, rng)
        paraphrases = tuple(_document_text(name, attrs, values, rng) for _ in range(n_paraphrases))
        docs.append(Document(id=doc_id, text=text, title=name, paraphrases=paraphrases))
        for a in attrs:
            pool = [v for v in dict.fromkeys(pools[(kind, a.key)]) if v != values[a.key]]
            # n_choices=0 draws as 4 would, then drops them: the same facts and questions
            choices = rng.sample(pool, (n_choices or NO_CHOICES_DRAW) - 1) + [values[a.key]]
            rng.shuffle(choices)
            if not n_choices:
                choices = []
            examples.append(
                Example(
                    id=f"{doc_id}-{a.key}",
                    question=a.question.format(name=name),
                    answers=(values[a.key],),
                    choices=tuple(choices),
                    source_ids=(doc_id,),
                )
            )
    return docs, examples, entities, pools


def generate(
    n_entities: int = 270,
    n_paraphrases: int = 3,
    n_choices: int = 4,
    seed: int = 0,
    kinds: tuple[str, ...] = ("company", "person", "town"),
) -> tuple[list[Document], list[Example]]:
    """Corpus and examples (without splits). `n_entities` is spread evenly over `kinds`."""
    docs, examples, _, _ = _build(n_entities, n_paraphrases, n_choices, seed, kinds)
    return docs, examples


def generate_update(
    n_entities: int = 270,
    n_paraphrases: int = 3,
    n_choices: int = 4,
    seed: int = 0,
    kinds: tuple[str, ...] = ("company", "person", "town"),
    *,
    share: float = 0.2,
    attributes: int | None = None,
    update_seed: int = 1,
) -> tuple[list[Document], list[Example]]:
    """The second version of the task `generate(...)` gives with the same arguments: a
    `share` of the entities (drawn with `update_seed`) get new values for `attributes` of
    their attributes (None: all of them), and their documents are rewritten. A changed
    question keeps its id and wording; its choices are the new answer, the old one (so a
    stale answer can be told from a plain mistake) and others of the same attribute.
    Every other document and question is exactly as in the first version."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"task.new_version.share must be in [0, 1], got {share}")
    docs, examples, entities, pools = _build(n_entities, n_paraphrases, n_choices, seed, kinds)
    rng = random.Random(f"update:{seed}:{update_seed}")
    changed = set(rng.sample(range(len(entities)), round(share * len(entities))))
    by_id = {e.id: i for i, e in enumerate(examples)}
    for i in sorted(changed):
        ent, attrs = entities[i], _KINDS[entities[i].kind]
        n_attrs = len(attrs) if attributes is None else max(1, min(int(attributes), len(attrs)))
        keys = {a.key for a in rng.sample(attrs, n_attrs)}
        values = dict(ent.values)
        for a in attrs:
            if a.key not in keys:
                continue
            old = ent.values[a.key]
            values[a.key] = rng.choice([v for v in dict.fromkeys(pools[(ent.kind, a.key)])
                                        if v != old])
            others = [v for v in dict.fromkeys(pools[(ent.kind, a.key)])
                      if v not in (old, values[a.key])]
            choices = [values[a.key], old,
                       *rng.sample(others, max((n_choices or NO_CHOICES_DRAW) - 2, 0))]
            rng.shuffle(choices)
            if not n_choices:
                choices = []
            ex_id = f"{ent.doc_id}-{a.key}"
            examples[by_id[ex_id]] = replace(examples[by_id[ex_id]], answers=(values[a.key],),
                                             choices=tuple(choices))
        text = _document_text(ent.name, attrs, values, rng)
        paraphrases = tuple(_document_text(ent.name, attrs, values, rng)
                            for _ in range(n_paraphrases))
        docs[i] = Document(id=ent.doc_id, text=text, title=ent.name, paraphrases=paraphrases)
    return docs, examples
