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


@dataclass(frozen=True)
class DocumentFields:
    """The filterable fields of every document, one array each, in the order of `ids`."""

    ids: np.ndarray  # int64
    holders: np.ndarray  # int64: the document holding the chunks (itself, or the one it is an exact copy of)
    sources: np.ndarray  # object (str)
    files: np.ndarray  # object (str)
    sites: np.ndarray  # object (str, lower case, "" when unknown)
    hosts: np.ndarray  # object (str, the URL's host in lower case without "www.", "" when unknown)
    days: np.ndarray  # str: YYYY-MM-DD, "" when the date is unknown

    @classmethod
    def read(cls, reader: Reader) -> DocumentFields:
        rows = reader.document_fields()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        holders = np.fromiter((r[1] or r[0] for r in rows), dtype=np.int64, count=len(rows))
        return cls(
            ids,
            holders,
            np.array([r[2] for r in rows], dtype=object),
            np.array([r[3] for r in rows], dtype=object),
            np.array([(r[4] or "").lower() for r in rows], dtype=object),
            np.array([_host(r[5]) for r in rows], dtype=object),
            np.array([(r[6] or "")[:10] for r in rows], dtype="U10"),
        )

    def matching(self, filters: DocFilter) -> np.ndarray:
        """Boolean per document: whether the filters keep it. `source` is a file or source name (exactly, or
        as a glob), a site name, or a web host; dates are inclusive ISO bounds and leave out undated ones."""
        keep = np.ones(len(self.ids), dtype=bool)
        if filters.source:
            keep &= self._named(filters.source)
        if filters.since or filters.until:
            keep &= self.days != ""
        if filters.since:
            keep &= self.days >= filters.since[:10]
        if filters.until:
            keep &= self.days <= filters.until[:10]
        return keep

    def _named(self, name: str) -> np.ndarray:
        host = name.lower().removeprefix("www.")
        named = (self.sources == name) | (self.files == name) | (self.sites == name.lower()) | (self.hosts == host)
        if _GLOB.search(name):
            pattern = re.compile(fnmatch.translate(name))
            named |= np.fromiter((bool(pattern.match(s)) for s in self.sources), dtype=bool, count=len(self.ids))
            named |= np.fromiter((bool(pattern.match(f)) for f in self.files), dtype=bool, count=len(self.ids))
        return named


def _host(url: str | None) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        return ""


class ChunkFilter:
    """The document of every chunk and the fields of every document, as of one commit; `keep` turns filters
    into a mask over chunk ids. Not thread-safe: the searcher calls it under its refresh lock."""

    def __init__(self) -> None:
        self.seq = -1
        self.rows = 0
        self.owners = np.zeros(0, dtype=np.int64)  # chunk id -> its document (0 for a deleted chunk)
        self.documents: DocumentFields | None = None
        self.fields_seq = -1

    def follow(self, reader: Reader, seq: int) -> None:
        """Catch up with commit `seq`: append chunks written since, clear deleted ones (or read everything
        again when the deletions are no longer all remembered), re-read the document fields."""
        if seq == self.seq:
            return
        removed = reader.tombstones_since(self.seq) if self.seq >= 0 else None
        if removed is None:
            self.owners, self.rows = np.zeros(0, dtype=np.int64), 0
        ids, docs = reader.chunk_owners(self.rows)
        rows = int(ids.max()) + 1 if len(ids) else self.rows
        if rows > len(self.owners):
            self.owners = np.concatenate([self.owners, np.zeros(rows - len(self.owners), dtype=np.int64)])
        self.owners[ids] = docs
        if removed:
            self.owners[np.asarray(removed, dtype=np.int64)] = 0
        self.rows = max(self.rows, rows)
        self.documents = DocumentFields.read(reader)
        self.seq = seq

    def keep(self, filters: DocFilter, excluded_sources: frozenset[str] = frozenset()) -> np.ndarray:
        """Boolean per chunk id: kept by `filters` (an exact copy that matches keeps the text it shares with
        its holder), and not in a document whose source is excluded."""
        documents = self.documents
        assert documents is not None, "follow() first"
        top = int(max(documents.ids.max(initial=0), self.owners.max(initial=0))) + 1
        held = np.zeros(top, dtype=bool)
        if filters.active():
            held[documents.holders[documents.matching(filters)]] = True
        else:
            held[documents.ids] = True
        if excluded_sources:
            out = np.isin(documents.sources, list(excluded_sources))
            held[documents.ids[out]] = False
        held[0] = False  # the owner of a deleted chunk
        return held[self.owners]
