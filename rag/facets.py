"""Which chunks a filter keeps (source, site, dates, left-out sources), as a mask the search arms apply inside.

A filter used to be a list of chunk ids from SQL handed to each arm: at a million chunks, building and
passing that list cost ten to fifty times the unfiltered question. Here the documents' filterable fields and
the document of every chunk stay in memory as arrays, so a filter is a few vectorised comparisons and one
gather, whatever it matches; the arms take the mask as it is (a FAISS bitmap selector, a lexical post-filter).
Both follow the index's commits like the dense index does: new chunks appended, deleted ones cleared, the
document fields re-read (one covering-index scan) only after a commit changed them.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from rag.store_read import DocFilter, Reader

_GLOB = re.compile(r"[*?\[]")
MASKS_KEPT = 8


class Column:
    """One text field of every document as integer codes, so that matching a name is one integer comparison
    over the array instead of one string comparison per document."""

    def __init__(self, values: list[str]) -> None:
        self.codes_of: dict[str, int] = {}
        self.codes = np.fromiter(
            (self.codes_of.setdefault(v, len(self.codes_of)) for v in values), dtype=np.int32, count=len(values)
        )

    def equals(self, value: str) -> np.ndarray:
        code = self.codes_of.get(value)
        return self.codes == code if code is not None else np.zeros(len(self.codes), dtype=bool)

    def matches(self, pattern: re.Pattern[str]) -> np.ndarray:
        """Documents whose value matches `pattern`, tried once per distinct value."""
        hits = [code for value, code in self.codes_of.items() if pattern.match(value)]
        return np.isin(self.codes, hits)


@dataclass(frozen=True)
class DocumentFields:
    """The filterable fields of every document, one array each, in the order of `ids`."""

    ids: np.ndarray  # int64
    holders: np.ndarray  # int64: the document holding the chunks (itself, or the one it is an exact copy of)
    sources: Column
    files: Column
    sites: Column  # lower case, "" when unknown
    hosts: Column  # the URL's host in lower case without "www.", "" when unknown
    days: np.ndarray  # int32 YYYYMMDD, 0 when the date is unknown

    @classmethod
    def read(cls, reader: Reader) -> DocumentFields:
        rows = reader.document_fields()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        holders = np.fromiter((r[1] or r[0] for r in rows), dtype=np.int64, count=len(rows))
        return cls(
            ids,
            holders,
            Column([r[2] for r in rows]),
            Column([r[3] for r in rows]),
            Column([(r[4] or "").lower() for r in rows]),
            Column([_host(r[5]) for r in rows]),
            np.fromiter((_day(r[6]) for r in rows), dtype=np.int32, count=len(rows)),
        )

    def matching(self, filters: DocFilter) -> np.ndarray:
        """Boolean per document: whether the filters keep it. `source` is a file or source name (exactly, or
        as a glob), a site name, or a web host; dates are inclusive ISO bounds and leave out undated ones."""
        keep = np.ones(len(self.ids), dtype=bool)
        if filters.source:
            keep &= self._named(filters.source)
        if filters.since or filters.until:
            keep &= self.days > 0
        if filters.since:
            keep &= self.days >= _day(filters.since)
        if filters.until:
            keep &= self.days <= _day(filters.until)
        return keep

    def _named(self, name: str) -> np.ndarray:
        host = name.lower().removeprefix("www.")
        named = self.sources.equals(name) | self.files.equals(name) | self.sites.equals(name.lower())
        named |= self.hosts.equals(host)
        if _GLOB.search(name):
            pattern = re.compile(fnmatch.translate(name))
            named |= self.sources.matches(pattern) | self.files.matches(pattern)
        return named


def _day(value: str | None) -> int:
    """YYYY-MM-DD (or the start of a longer ISO date) as the integer YYYYMMDD; 0 when there is none."""
    digits = (value or "")[:10].replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isdigit() else 0


def _host(url: str | None) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        return ""


@dataclass(frozen=True)
class Kept:
    """What a filter keeps: a mask over chunk ids, and the documents holding those chunks (the lexical index
    can be filtered by document, eight times fewer terms than chunks)."""

    chunks: np.ndarray  # bool per chunk id
    documents: np.ndarray  # int64 ids
    count: int  # chunks kept


class ChunkFilter:
    """The document of every chunk and the fields of every document, as of one commit; `keep` turns filters
    into a mask over chunk ids. Not thread-safe: the searcher calls it under its refresh lock."""

    def __init__(self) -> None:
        self.seq = -1
        self.owners = np.zeros(0, dtype=np.int64)  # chunk id -> its document (0 for a deleted chunk)
        self.documents: DocumentFields | None = None
        self._masks: dict[tuple[DocFilter, frozenset[str]], Kept] = {}  # this commit's recent filters

    def follow(self, reader: Reader, seq: int) -> None:
        """Catch up with commit `seq`: append chunks written since, clear deleted ones (or read everything
        again when the deletions are no longer all remembered), re-read the document fields."""
        if seq == self.seq:
            return
        removed = reader.tombstones_since(self.seq) if self.seq >= 0 else None
        if removed is None:
            self.owners = np.zeros(0, dtype=np.int64)
        ids, docs = reader.chunk_owners(len(self.owners))
        if len(ids):
            grown = int(ids.max()) + 1 - len(self.owners)
            self.owners = np.concatenate([self.owners, np.zeros(grown, dtype=np.int64)])
        self.owners[ids] = docs
        if removed:
            self.owners[np.asarray(removed, dtype=np.int64)] = 0
        self.documents = DocumentFields.read(reader)
        self._masks.clear()
        self.seq = seq

    def keep(self, filters: DocFilter, excluded_sources: frozenset[str] = frozenset()) -> Kept:
        """The chunks kept by `filters` (an exact copy that matches keeps the text it shares with
        its holder), and not in a document whose source is excluded. A reader asking several questions with
        one filter set gets its mask again (the last MASKS_KEPT are kept until the next commit)."""
        key = (filters, excluded_sources)
        if key not in self._masks:
            if len(self._masks) >= MASKS_KEPT:
                del self._masks[next(iter(self._masks))]
            self._masks[key] = self._mask(filters, excluded_sources)
        return self._masks[key]

    def _mask(self, filters: DocFilter, excluded_sources: frozenset[str]) -> Kept:
        documents = self.documents
        assert documents is not None, "follow() first"
        top = int(max(documents.ids.max(initial=0), self.owners.max(initial=0))) + 1
        held = np.zeros(top, dtype=bool)
        if filters.active():
            held[documents.holders[documents.matching(filters)]] = True
        else:
            held[documents.ids] = True
        for source in excluded_sources:
            held[documents.ids[documents.sources.equals(source)]] = False
        held[0] = False  # the owner of a deleted chunk
        chunks = held[self.owners]
        return Kept(chunks, np.flatnonzero(held), int(np.count_nonzero(chunks)))
