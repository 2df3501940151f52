"""Messy inputs: sentence splitting stays linear on a long block without punctuation (the
segmenter only ever sees bounded pieces, cuts counted), and a page's own chrome (header,
nav, footer, aside, forms, ARIA roles) never reaches a document's text or a question."""

from __future__ import annotations

import json
import random

import pysbd

import harness.sentences as sentences_mod
from harness.data import read_corpus
from harness.data.generate.cloze import sentences as cloze_sentences
from harness.sentences import MAX_CHARS, Splitter, pieces, split_sentences
from tests.data.test_generate import _make_task

PROSE = ("Dr. Smith went to Washington in 1999. He met Mrs. Jones, e.g. at 3 p.m. on the Hill, "
         "and they talked for an hour. The weather was mild! Was it raining? Nobody knew. ")


def test_the_segmenter_only_sees_bounded_pieces_and_cuts_are_counted(monkeypatch):
    seen = []
    real = sentences_mod._segmenter()

    class Spy:
        def segment(self, text):
            seen.append(len(text))
            return real.segment(text)

    monkeypatch.setattr(sentences_mod, "_segmenter", lambda: Spy())
    rng = random.Random(0)
    # dotted tokens (Dr., v1.2) but no sentence end a cut could use: the worst case
    block = " ".join(rng.choice(["row", "value", "v1.2", "alpha", "Dr.", "vs"]) for _ in range(50_000))
    splitter = Splitter()
    out = cloze_sentences(block, splitter)
    assert seen and max(seen) <= MAX_CHARS and splitter.cut == 1
    assert sum(len(s.split()) for s in out) == 50_000  # cut into pieces, nothing dropped


def test_prose_splits_as_the_segmenter_alone_would():
    text = PROSE * 40  # one paragraph of ~6,000 characters: cut at sentence ends only
    plain = [s.strip() for s in pysbd.Segmenter(language="en", clean=False).segment(text)
             if s.strip()]
    assert len(text) > 2 * MAX_CHARS and split_sentences(text) == plain
    assert all(len(p) <= MAX_CHARS for p in pieces(text))
    assert pieces("x" * 5000, 2000) == ["x" * 2000, "x" * 2000, "x" * 1000]  # no space: hard cut


HTML = """<html><head><title>Pier</title><style>p {color: red}</style></head><body>
<header>Site header Home About</header><nav>Products Contact Careers</nav>
<div role="banner">Banner Welcome Visitors</div>
<main><h1>The pier</h1>
<p>The pier Kalvo was opened in 1912 by the harbour board of Velmora. It is 300 metres long
and built of oak from the Tarsk forest.</p>
<p>Fishing boats from Velmora moored at Kalvo until 1960, when the new harbour opened.</p>
<p>In 1987 the pier Kalvo was restored by the Velmora Trust with oak from Tarsk.</p></main>
<aside>Related piers Brenna Ostvik</aside><form>Search Subscribe Newsletter</form>
<div role="contentinfo">Legal Imprint Cookies</div><footer>Copyright Site footer</footer>
<script>var tracker = 1;</script></body></html>"""
CHROME_WORDS = ("header", "Home", "About", "Products", "Contact", "Careers", "Banner", "Welcome",
                "Related", "Brenna", "Subscribe", "Newsletter", "Legal", "Imprint", "Cookies",
                "Copyright", "footer", "tracker")


def test_a_page_keeps_none_of_its_chrome_and_counts_it(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "pier.html").write_text(HTML)
    docs, info = read_corpus(tmp_path / "docs")
    text = docs[0].text
    assert "Kalvo was opened in 1912" in text and "Velmora Trust" in text
    assert not [w for w in CHROME_WORDS if w in text]
    b = info["boilerplate"]
    assert b["page_chrome_elements"] == 9 and b["pages_with_chrome"] == 1  # style, script too
    res = _make_task(tmp_path, "corpus_path=docs", "out_dir=mytask", "n_questions=4",
                     "n_choices=0", "cloze.min_term_docs=1", "cloze.min_words=6",
                     "split_ratios=[0.5,0,0.5]")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "mytask" / "examples.jsonl").read_text().splitlines()]
    assert rows  # questions were made, and none carries the page's chrome
    assert not [w for r in rows for w in CHROME_WORDS if w in r["question"]]
    # the page's heading is a paragraph of its own, not glued onto the first sentence
    assert "The pier\n\nThe pier Kalvo" in text
    assert not [r for r in rows if "The pier The pier" in r["question"]]
