"""A corpus from a folder of documents: every matching file under it becomes a Document.

    .txt (and any suffix you add to task.folder.include)  the text as is; title: file name
    .md / .markdown  parsed with markdown-it-py: plain text of its blocks; title: first heading
    .html / .htm     the page without its chrome (nav, header, footer, aside, menu, form,
                     script, style; ARIA navigation/banner/contentinfo), then trafilatura's
                     main-text extraction; title: the page's <title>
    .pdf             pypdf's text of every page; title: the PDF's metadata title, else the name
    <any of these>.gz   decompressed first (Debian ships its docs gzipped)

The id is the path relative to the folder. A file that cannot be read (an encrypted or
corrupt PDF, an empty file, binary junk, a file the extractor finds no text in) stops the
load with an error naming it (task.on_bad_file=error), or is skipped and counted
(task.on_bad_file=skip): the run records what was skipped and why.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import logging
import zlib
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path

from tqdm.auto import tqdm

from harness.data.errors import TaskDataError
from harness.errors import ConfigError
from harness.types import Document

log = logging.getLogger(__name__)

DEFAULT_INCLUDE = ("*.txt", "*.md", "*.markdown", "*.html", "*.htm", "*.pdf")
BAD_FILE = ("error", "skip")


class BadFile(Exception):
    """This file yields no document; the message says why."""


def _decode(raw: bytes) -> str:
    """UTF-8, else the legacy encoding (Latin-1, Windows-1252, ...) charset_normalizer
    finds the text in; bytes that are no text in any encoding are refused."""
    if b"\x00" in raw[:8192]:
        raise BadFile("binary content (NUL bytes), not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        offset = e.start
    from charset_normalizer import from_bytes

    best = from_bytes(raw[:1_000_000]).best()  # a sample: the guess is as good, and bounded
    if best is None or best.chaos > 0.2:
        raise BadFile(f"not text in UTF-8 or a legacy encoding (byte offset {offset}); "
                      "re-save it as UTF-8") from None
    if best.coherence == 0:  # too little text to recognise a language: Windows-1252 (the
        try:                 # usual legacy Western text) where it decodes, else the guess
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode(best.encoding)
    except (UnicodeDecodeError, LookupError):
        raise BadFile(f"not UTF-8 text (byte offset {offset}), nor {best.encoding} throughout; "
                      "re-save it as UTF-8") from None


def _plain(raw: bytes, name: str) -> tuple[str, str]:
    return "", _decode(raw)


def _markdown(raw: bytes, name: str) -> tuple[str, str]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(_decode(raw))
    title, blocks = "", []
    for i, tok in enumerate(tokens):
        if tok.type == "inline":
            text = "".join(c.content if c.type in ("text", "code_inline") else
                           " " if c.type in ("softbreak", "hardbreak") else ""
                           for c in tok.children or ())
            blocks.append(text)
            if not title and i and tokens[i - 1].type == "heading_open":
                title = text.strip()
        elif tok.type in ("code_block", "fence"):
            blocks.append(tok.content.rstrip())
    return title, _blocks(blocks)


def _blocks(blocks) -> str:
    """Blocks (headings, paragraphs, list items) as paragraphs, a blank line apart: a
    heading without a full stop is then a paragraph of its own, not glued by the sentence
    splitter onto the sentence after it ("The pier The pier Kalvo was opened in 1894")."""
    return "\n\n".join(b.strip() for b in blocks if b.strip())


# A page's own chrome, removed before its text is extracted: site headers, menus,
# footers, sidebars, forms, scripts and styles, by element or ARIA role. The cross-document
# boilerplate pass (harness.data.boilerplate) cannot see chrome that appears on one page only.
CHROME_TAGS = ("nav", "header", "footer", "aside", "menu", "form", "script", "style", "noscript")
CHROME_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary")
CHROME = " | ".join([f"//{t}" for t in CHROME_TAGS]
                    + ["//*[" + " or ".join(f"@role='{r}'" for r in CHROME_ROLES) + "]"])


class Chrome:
    """What removing page chrome took out of the pages read so far."""

    def __init__(self) -> None:
        self.elements = self.pages = 0

    def strip(self, raw: bytes) -> bytes:
        """The page without its chrome (as it was when it does not parse)."""
        import lxml.html

        root = _parse(raw)
        if root is None:
            return raw
        found = [e for e in root.xpath(CHROME) if e.getparent() is not None]
        gone = 0
        for e in found:
            if e.getparent() is not None and not any(a in found for a in e.iterancestors()):
                e.drop_tree()
                gone += 1
        self.elements += gone
        self.pages += gone > 0
        return lxml.html.tostring(root, encoding="utf-8")

    def info(self) -> dict:
        return {"page_chrome_elements": self.elements, "pages_with_chrome": self.pages}


def _parse(raw: bytes):
    """The page's element tree (huge_tree: a page nested thousands deep parses whole), or
    None when it does not parse."""
    import lxml.etree
    import lxml.html

    try:
        return lxml.html.document_fromstring(raw, parser=lxml.html.HTMLParser(huge_tree=True))
    except (lxml.etree.LxmlError, ValueError):
        return None


def _html(raw: bytes, name: str, chrome: Chrome | None = None) -> tuple[str, str]:
    import trafilatura

    if b"\x00" in raw[:8192]:
        raise BadFile("binary content (NUL bytes), not HTML")
    meta = trafilatura.extract_metadata(raw)  # before the <header> that may hold the title goes
    body = (chrome or Chrome()).strip(raw)
    # bytes: trafilatura detects the page's encoding itself
    text = trafilatura.extract(body, favor_recall=True, include_comments=False) or ""
    if not text.strip():  # a page libxml2 cannot read (nested too deep): the stdlib's parser
        text = _PlainText.of(raw)
    # trafilatura puts each block (heading, paragraph, list item) on a line of its own
    return (meta.title or "") if meta else "", _blocks(text.splitlines())


class _PlainText(HTMLParser):
    """A page's text outside its chrome, by Python's streaming HTML parser, which has no
    depth limit: the fallback for a page nested deeper than libxml2 reads."""

    SKIP = {*CHROME_TAGS, "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        role = dict(attrs).get("role")
        if self.depth or tag in self.SKIP or role in CHROME_ROLES:
            self.depth += tag not in VOID

    def handle_endtag(self, tag):
        if self.depth and tag not in VOID:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)

    @classmethod
    def of(cls, raw: bytes) -> str:
        parser = cls()
        parser.feed(raw.decode("utf-8", errors="replace"))
        parser.close()
        return " ".join(" ".join(parser.parts).split())


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


def _pdf(raw: bytes, name: str) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadFile("encrypted PDF (it needs a password); decrypt it first")
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        title = str((reader.metadata or {}).get("/Title") or "")
    except BadFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise BadFile(f"unreadable PDF ({type(e).__name__}: {e})") from None
    return title, text


EXTRACTORS: dict[str, Callable[[bytes, str], tuple[str, str]]] = {
    ".md": _markdown, ".markdown": _markdown, ".html": _html, ".htm": _html, ".pdf": _pdf,
}


def extract(path: Path, chrome: Chrome | None = None) -> tuple[str, str]:
    """(title, text) of one file; raises BadFile. `chrome` counts what an HTML page's chrome
    removal took out."""
    raw = path.read_bytes()
    name = path.name
    if name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise BadFile(f"corrupt gzip file ({e})") from None
        name = name[:-3]
    if not raw.strip():
        raise BadFile("empty file")
    extractor = EXTRACTORS.get(Path(name).suffix.lower(), _plain)
    title, text = (_html(raw, name, chrome) if extractor is _html else extractor(raw, name))
    if not text.strip():
        raise BadFile("no text found in it")
    return title.strip() or Path(name).stem, text.strip()


def _matches(rel: str, include: Sequence[str]) -> bool:
    base = rel.rsplit("/", 1)[-1]
    names = (base, base[:-3]) if base.lower().endswith(".gz") else (base,)
    return any(fnmatch.fnmatch(n.lower(), pat.lower()) for n in names for pat in include)


def load_folder(root: str | Path, *, include: Sequence[str] = DEFAULT_INCLUDE,
                on_bad_file: str = "error", progress: bool = False) -> tuple[list[Document], dict]:
    """Documents from every file under `root` whose name matches a pattern of `include`
    (a gzipped file matches by its name without .gz); hidden files and folders are left out.
    Returns the documents (in path order) and what the load did (files, skipped, why)."""
    if on_bad_file not in BAD_FILE:
        raise ConfigError(f"unknown task.on_bad_file '{on_bad_file}'; choose one of: "
                          f"{', '.join(BAD_FILE)}")
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts)
                   and _matches(p.relative_to(root).as_posix(), include))
    if not files:
        raise TaskDataError(f"no file under this folder matches {', '.join(include)}", path=root,
                            hint="point task.corpus_path at your documents, or widen "
                                 "task.folder.include (e.g. [\"*.txt\", \"*.rst\"])")
    docs, skipped, chrome = [], [], Chrome()
    for path in tqdm(files, desc="reading documents", unit="file", disable=not progress):
        rel = path.relative_to(root).as_posix()
        try:
            title, text = extract(path, chrome)
        except BadFile as e:
            if on_bad_file == "error":
                raise TaskDataError(str(e), path=path, hint="fix or remove the file, or set "
                                    "task.on_bad_file=skip to leave it out") from None
            skipped.append({"file": rel, "reason": str(e)})
            continue
        docs.append(Document(id=rel, text=text, title=title))
    if skipped:
        log.warning("skipped %d of %d files under %s (task.on_bad_file=skip), e.g. %s: %s",
                    len(skipped), len(files), root, skipped[0]["file"], skipped[0]["reason"])
    if not docs:
        raise TaskDataError(f"none of the {len(files)} matching files holds usable text",
                            path=root, hint=f"e.g. {skipped[0]['file']}: {skipped[0]['reason']}")
    return docs, {"source": "folder", "files": len(files), "documents": len(docs),
                  "skipped": len(skipped), "skipped_files": skipped, **chrome.info()}
