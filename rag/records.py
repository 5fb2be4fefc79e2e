"""Typed records that flow between the stages, so every shell (CLI, chat, API) sees the same fields."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One article as read from disk.

    `segments` are the character ranges of `text` that hold article content; page boilerplate
    ("Comments", "Powered by WordPress"...) lies outside them and is never offered as a passage.
    """

    source: str
    text: str
    title: str
    url: str | None = None
    published: str | None = None
    segments: tuple[tuple[int, int], ...] = ()
    content_hash: str = ""
    author: str | None = None
    site: str | None = None
    pages: tuple[int, ...] = ()  # for PDFs: the offset in `text` where each page begins, page 1 first
    crawled: str | None = None  # for a page from a web archive: the day it was saved (not its publication date)

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding `offset`, for documents that have pages."""
        return page_at(self.pages, offset)


def page_at(pages: tuple[int, ...] | list[int], offset: int) -> int | None:
    return bisect.bisect_right(pages, offset) if pages else None


@dataclass(frozen=True)
class Copy:
    """Another file holding the same story (exactly, or a near-duplicate such as a republished wire story)."""

    source: str
    title: str
    url: str | None = None
    exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "title": self.title, "url": self.url, "exact": self.exact}


@dataclass(frozen=True)
class Chunk:
    """A passage candidate: `text == document.text[start:end]` always holds. `ids` are its tokens in the
    model's vocabulary, as the chunker counted them, so the model does not tokenise it again."""

    start: int
    end: int
    text: str
    n_tokens: int
    ids: tuple[int, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Passage:
    """A search result: an exact slice of a document with its attribution."""

    text: str
    score: float
    doc_id: int
    title: str
    source: str
    url: str | None
    start: int
    end: int
    published: str | None = None
    chunk_id: int = 0
    similarity: float = 0.0
    author: str | None = None
    page: int | None = None
    copies: tuple[Copy, ...] = ()
    answer: tuple[int, int] | None = None  # the words the reader marks as the answer: document offsets
    language: str | None = None  # "en", "ko", "ja", "zh" (`rag.text.language_of`); None when its letters do not tell
    asked_in: str | None = None  # the question's language where it differs from the passage's (a cross-language match)
    names_across: tuple[
        tuple[str, str], ...
    ] = ()  # names it shares with the question across scripts: (Hangul, English)
    site: str | None = None  # the publication: the name the article gave, or its web host
    article_length: int = 0  # characters in the whole article, for "characters 120–480 of 4,035"
    crawled: str | None = None  # the day a web archive saved the page: shown as such, never as `published`

    @property
    def answer_in_passage(self) -> tuple[int, int] | None:
        """The reader's answer span relative to `text`, or None."""
        if self.answer is None:
            return None
        return (self.answer[0] - self.start, self.answer[1] - self.start)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape of a passage (the fields `rag ask --json` promises)."""
        answer = None
        if self.answer is not None:
            start, end = self.answer
            answer = {"start": start, "end": end, "text": self.text[start - self.start : end - self.start]}
        return {
            "text": self.text,
            "score": round(self.score, 6),
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "site": self.site,
            "url": self.url,
            "start": self.start,
            "end": self.end,
            "article_length": self.article_length,
            "published": self.published,
            "crawled": self.crawled,
            "author": self.author,
            "page": self.page,
            "copies": [c.to_dict() for c in self.copies],
            "answer": answer,
            "language": self.language,
            "across_languages": self.asked_in is not None,
            "names_across": [{"hangul": hangul, "latin": latin} for hangul, latin in self.names_across],
        }


@dataclass(frozen=True)
class Answer:
    """What a question gets back: the passages, and whether any of them is relevant enough."""

    query: str
    found: bool
    passages: list[Passage] = field(default_factory=list)
    note: str | None = None  # one line on why nothing can match (a question in a script the index lacks)
    bar: float = 0.0  # the probability at which a passage counts as answering (the reader's bar when it read)
    emptied: str | None = None  # what left nothing to search: the dates asked for, counted ("0 of 7 articles ...")
    understood: str | None = None  # what the question's own words set (dates, a publication, "latest"), in words

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query": self.query,
            "found": self.found,
            "passages": [p.to_dict() for p in self.passages],
        }
        if self.note:
            out["note"] = self.note
        if self.emptied:
            out["emptied"] = self.emptied
        if self.understood:
            out["understood"] = self.understood
        return out


@dataclass
class Ingested:
    """What one file gave: its documents, and the records inside it that could not be read."""

    documents: list[Document] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, what the run should say of how it was read)


@dataclass
class IndexReport:
    """What one `rag index` run did, for the closing summary."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, how it was read): a legacy encoding, bad bytes
    added_sources: list[str] = field(default_factory=list)  # the articles added, updated and removed, by source
    updated_sources: list[str] = field(default_factory=list)
    removed_sources: list[str] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    reembedded: int = 0  # stored passages embedded again because the model's precision changed
    precision: str = ""  # the precision of the index's vectors after the run
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
