"""Which chunks a filter keeps (source, site, dates, left-out sources), as a mask the search arms apply inside.

A filter used to be a list of chunk ids from SQL handed to each arm: at a million chunks, building and
passing that list cost ten to fifty times the unfiltered question. Here the documents' filterable fields and
the document of every chunk stay in memory as arrays, so a filter is a few vectorised comparisons and one
gather, whatever it matches; the dense arm takes the mask as it is (a FAISS bitmap selector), the lexical
arms the same filter said as facet words (`rag.index.facet_terms`) where it can be, or the mask as deletions in a
view of their index (`rag.index.lexical_views`).
Both follow the index's commits like the dense index does: new chunks appended, deleted ones cleared, the
document fields re-read (one covering-index scan) only after a commit changed them.
"""

from __future__ import annotations

import calendar
import fnmatch
import re
from dataclasses import dataclass

import numpy as np

from rag.index.facet_terms import day_number, day_word, host_of, month_word, name_word, place_key, year_word
from rag.index.read import Reader
from rag.index.rows import DocFilter
from rag.text import day_in_words

_GLOB = re.compile(r"[*?\[]")
MASKS_KEPT = 16  # a commit's recent filters whose masks are kept (about 2 MB each at a million passages)
FACET_MAX_WORDS = 64  # a filter needing more facet words is applied to the lexical arms another way


class Column:
    """One text field of every document as integer codes, so that matching a name is one integer comparison
    over the array instead of one string comparison per document."""

    def __init__(self, values: list[str]) -> None:
        self.codes_of: dict[str, int] = {}
        self.codes = np.fromiter(
            (self.codes_of.setdefault(v, len(self.codes_of)) for v in values), dtype=np.int32, count=len(values)
        )
        self._globbed: dict[str, list[str]] = {}

    def equals(self, value: str) -> np.ndarray:
        code = self.codes_of.get(value)
        return self.codes == code if code is not None else np.zeros(len(self.codes), dtype=bool)

    def globbed(self, glob: str) -> list[str]:
        """The distinct values `glob` matches, each tried once; remembered, because a filter's documents and
        its facet words both need them (at a million passages, one pass over the names costs 30 ms)."""
        if glob not in self._globbed:
            if len(self._globbed) >= MASKS_KEPT:
                self._globbed.clear()
            pattern = re.compile(fnmatch.translate(glob))
            self._globbed[glob] = [value for value in self.codes_of if pattern.match(value)]
        return self._globbed[glob]

    def among(self, values: list[str]) -> np.ndarray:
        """Documents whose value is one of `values` (values of this column)."""
        return np.isin(self.codes, [self.codes_of[v] for v in values])


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
            Column([host_of(r[5]) for r in rows]),
            np.fromiter((day_number(r[6]) for r in rows), dtype=np.int32, count=len(rows)),
        )

    def order_keys(self) -> np.ndarray:
        """Each document's `order_key` (site, else web host, then day), worked out once per distinct name."""
        site_keys = np.array([place_key(v) for v in self.sites.codes_of], dtype=np.int64)
        host_keys = np.array([place_key(v) for v in self.hosts.codes_of], dtype=np.int64)
        places = site_keys[self.sites.codes]
        unsited = self.sites.equals("")
        places[unsited] = host_keys[self.hosts.codes[unsited]]
        return places + self.days

    def matching(self, filters: DocFilter) -> np.ndarray:
        """Boolean per document: whether the filters keep it. `source` is a file or source name (exactly, or
        as a glob), a site name, or a web host; dates are inclusive ISO bounds and leave out undated ones."""
        keep = np.ones(len(self.ids), dtype=bool)
        if filters.source:
            keep &= self._named(filters.source)
        if filters.since or filters.until:
            keep &= self.days > 0
        if filters.since:
            keep &= self.days >= day_number(filters.since)
        if filters.until:
            keep &= self.days <= day_number(filters.until)
        return keep

    def why_nothing(self, filters: DocFilter) -> Emptied | None:
        """What left every document out: a source that names none, or dates that none of the named (or all)
        documents has, counted ("0 of 7 articles are dated in 2026; 6 have no date"). None when each part of
        the filter keeps some document alone (only their combination, or left-out sources, empty it)."""
        pool = np.ones(len(self.ids), dtype=bool)
        what = "articles"
        if filters.source:
            pool = self._named(filters.source)
            if not pool.any():
                return Emptied(
                    f"no article, site or web address called “{filters.source}” in this collection (a filter "
                    "takes an article's file name, a glob such as *.pdf, a site name or a web host)",
                    unknown_source=True,
                )
            what = f"articles from “{filters.source}”"
        if not (filters.since or filters.until):
            return None
        total = int(pool.sum())
        days = self.days[pool]
        inside = days > 0
        if filters.since:
            inside &= days >= day_number(filters.since)
        if filters.until:
            inside &= days <= day_number(filters.until)
        if inside.any():
            return None
        undated = int((days == 0).sum())
        reason = f"0 of {total:,} {what if total != 1 else what.replace('articles', 'article', 1)} "
        reason += f"{'is' if total == 1 else 'are'} dated {date_span(filters.since, filters.until)}"
        if undated:
            reason += f"; {undated:,} {'has' if undated == 1 else 'have'} no date"
        dated = days[days > 0]
        if len(dated) and dated.min() == dated.max():
            which = "the only dated one is" if len(dated) == 1 else "all the dated ones are"
            reason += f" ({which} from {day_words(int(dated.min()))})"
        elif len(dated):
            reason += f" (the dated ones run from {day_words(int(dated.min()))} to {day_words(int(dated.max()))})"
        return Emptied(reason)

    def facet_words(self, filters: DocFilter, matching: np.ndarray) -> tuple[str, ...] | None:
        """Facet words (`rag.index.facet_terms`) such that the passages holding any of them are exactly those of the
        `matching` documents; None when the filter cannot be said that way: a document kept only through an
        exact copy of it that matches (its passages carry their own document's words), or too many words."""
        copies = matching & (self.holders != self.ids)
        if copies.any() and not np.isin(self.holders[copies], self.ids[matching]).all():
            return None
        names, pool = [""], np.ones(len(self.ids), dtype=bool)
        if filters.source:
            named = self._name_words(filters.source)
            if named is None:
                return None
            names, pool = named, self._named(filters.source)
        dates = [""]
        if filters.since or filters.until:
            span = (day_number(filters.since) or 1, day_number(filters.until) or 99_991_231)
            dates = _date_cover(np.unique(self.days[pool & (self.days > 0)]), *span)
        words = tuple(name + date for name in names for date in dates)
        return words if len(words) <= FACET_MAX_WORDS else None

    def _name_words(self, name: str) -> list[str] | None:
        """A facet word for each way a document matches `name`: as its source or file name, site or web host,
        or, for a glob, each source and file name it matches; None when a glob matches more names than
        FACET_MAX_WORDS."""
        if _GLOB.search(name):
            values = set(self.sources.globbed(name)) | set(self.files.globbed(name))
            return [name_word("e", v) for v in sorted(values)] if len(values) <= FACET_MAX_WORDS else None
        return [name_word(kind, value) for kind, value, hit in self._ways(name) if hit.any()]

    def _ways(self, name: str) -> list[tuple[str, str, np.ndarray]]:
        """Each way a document matches `name` exactly: as its source or file name, as its site name (in lower
        case) or as its web host (without "www."); with the facet kind and value of each."""
        exact, site, host = name, name.lower(), name.lower().removeprefix("www.")
        return [
            ("e", exact, self.sources.equals(exact) | self.files.equals(exact)),
            ("s", site, self.sites.equals(site)),
            ("h", host, self.hosts.equals(host)),
        ]

    def _named(self, name: str) -> np.ndarray:
        named = np.logical_or.reduce([hit for _, _, hit in self._ways(name)])
        if _GLOB.search(name):
            named |= self.sources.among(self.sources.globbed(name)) | self.files.among(self.files.globbed(name))
        return named


def day_words(day: int) -> str:
    """A YYYYMMDD day number in words: 3 January 2025 (`rag.text.day_in_words`)."""
    return day_in_words(f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}") or str(day)


def date_span(since: str | None, until: str | None) -> str:
    """Inclusive ISO bounds in words: "in 2026", "in March 2025", "from 1 May 2024 to 3 June 2024", "on or
    after 1 January 2025"."""
    first, last = day_number(since) if since else 0, day_number(until) if until else 0
    if first and last:
        if first % 10000 == 101 and last % 10000 == 1231 and first // 10000 == last // 10000:
            return f"in {first // 10000}"
        year, month = divmod(first // 100, 100)
        if first % 100 == 1 and last // 100 == first // 100 and last % 100 == calendar.monthrange(year, month)[1]:
            return f"in {calendar.month_name[month]} {year}"
        return f"from {day_words(first)} to {day_words(last)}"
    if first:
        return f"on or after {day_words(first)}"
    return f"on or before {day_words(last)}"


def _date_cover(days: np.ndarray, first: int, last: int) -> list[str]:
    """Date words that cover exactly the days of `days` (sorted, distinct YYYYMMDD) from `first` to `last`:
    a whole year where every day of it in `days` lies in the span, else whole months, else single days."""
    inside = days[(days >= first) & (days <= last)]
    words: list[str] = []
    for year in np.unique(inside // 10_000):
        if _all_inside(days[days // 10_000 == year], first, last):
            words.append(year_word(int(year)))
            continue
        for month in np.unique(inside[inside // 10_000 == year] // 100):
            in_month = days[days // 100 == month]
            if _all_inside(in_month, first, last):
                words.append(month_word(int(month)))
            else:
                words.extend(day_word(int(day)) for day in in_month if first <= day <= last)
    return words


def _all_inside(days: np.ndarray, first: int, last: int) -> bool:
    return bool(((days >= first) & (days <= last)).all())


@dataclass(frozen=True)
class Kept:
    """What a filter keeps: a mask over chunk ids, the documents holding those chunks (the lexical index
    can be filtered by document, eight times fewer terms than chunks), the same filter as facet words when
    it can be said so (`DocumentFields.facet_words`)."""

    chunks: np.ndarray  # bool per chunk id
    documents: np.ndarray  # int64 ids
    count: int  # chunks kept
    facets: tuple[str, ...] | None = None
    emptied: Emptied | None = None  # when the filter keeps nothing: what emptied it, in words


@dataclass(frozen=True)
class Emptied:
    """Why a filter keeps no passage, said so a user can act on it: `unknown_source` when the source names no
    article, site or web host of the collection (an error for every caller), else the dates that left
    everything out, with the counts behind it."""

    reason: str
    unknown_source: bool = False


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
        held = self._per_document(documents, bool)
        facets = None
        if filters.active():
            matching = documents.matching(filters)
            held[documents.holders[matching]] = True
            facets = None if excluded_sources else documents.facet_words(filters, matching)
        else:
            held[documents.ids] = True
        for source in excluded_sources:
            held[documents.ids[documents.sources.equals(source)]] = False
        held[0] = False  # the owner of a deleted chunk
        chunks = held[self.owners]
        count = int(np.count_nonzero(chunks))
        emptied = documents.why_nothing(filters) if count == 0 and filters.active() else None
        return Kept(chunks, np.flatnonzero(held), count, facets, emptied)

    def order_keys(self) -> np.ndarray:
        """Each chunk's `order_key` (its document's), indexed by chunk id: the order the dense index keeps its
        lists in, the lexical index's order (`rag.index.vectors.DenseIndex`)."""
        documents = self.documents
        assert documents is not None, "follow() first"
        by_document = self._per_document(documents, np.int64)
        by_document[documents.ids] = documents.order_keys()
        return by_document[self.owners]

    def _per_document(self, documents: DocumentFields, dtype: type) -> np.ndarray:
        """Zeros indexed by document id, for every document and every chunk's owner."""
        return np.zeros(int(max(documents.ids.max(initial=0), self.owners.max(initial=0))) + 1, dtype=dtype)
