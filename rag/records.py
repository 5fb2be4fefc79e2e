"""Typed records that flow between the stages, so every shell (CLI, chat, API) sees the same fields."""

from __future__ import annotations

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


@dataclass(frozen=True)
class Chunk:
    """A passage candidate: `text == document.text[start:end]` always holds."""

    start: int
    end: int
    text: str
    n_tokens: int


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

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape of a passage (the fields `rag ask --json` promises)."""
        return {
            "text": self.text,
            "score": round(self.score, 6),
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "url": self.url,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class Answer:
    """What a question gets back: the passages, and whether any of them is relevant enough."""

    query: str
    found: bool
    passages: list[Passage] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "found": self.found,
            "passages": [p.to_dict() for p in self.passages],
        }


@dataclass
class IndexReport:
    """What one `rag index` run did, for the closing summary."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
