"""The one search core every shell uses: dense (FAISS), lexical (FTS5 bm25), hybrid fusion, de-duplication
of overlapping passages, and the `found` decision.

`found` is not a per-question guess: it compares the best passage's cosine similarity and its coverage of
the question's key terms with thresholds fitted on benchmark data (see `rag/calibration.json` and
`bench/calibrate.py`).
"""

from __future__ import annotations

import calendar
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Literal

import numpy as np

from rag.embed import Encoder
from rag.errors import InvalidQueryError
from rag.fusion import convex_fusion
from rag.lexical import bigram_query, coverage, has_wide_script, query_keys, words_and_pairs_query, words_query
from rag.lexical_index import PLAIN, STEMMED, LexicalIndex
from rag.records import Answer, Copy, Passage, page_at
from rag.store import ChunkHit, DocFilter, Reader, Store, recover
from rag.vectors import DenseIndex, VectorFile

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")
MAX_QUERY_CHARS = 2000
MAX_K = 100
MAX_MERGED_CHARS = 3000
FOUND_DEPTH = 3  # `found` looks at the passages a reader sees first; calibration uses the same depth
# Fusion: a convex combination of min-max normalised scores, the lexical arms sharing LEXICAL_WEIGHT.
# Chosen on SQuAD dev over RRF (k 5-60, weighted) and other weights; see bench/RESULTS.md.
LEXICAL_WEIGHT = 0.6


@dataclass(frozen=True)
class Thresholds:
    """A passage counts as an answer when similarity >= `similarity` or key coverage >= `coverage`."""

    similarity: float
    coverage: float
    coverage_wide: float
    dense_wide_script: bool


def load_thresholds(model: str) -> Thresholds:
    """The model's calibration, or the default model's for a model nobody has calibrated yet."""
    table = json.loads(resources.files("rag").joinpath("calibration.json").read_text())
    entry = table["models"].get(model) or {**table["models"][table["fallback"]], "dense_wide_script": True}
    return Thresholds(
        similarity=entry["similarity"],
        coverage=entry["coverage"],
        coverage_wide=entry["coverage_wide"],
        dense_wide_script=entry["dense_wide_script"],
    )


def passage_coverage(keys: list[str], passage: Passage) -> float:
    """Key-term coverage as `found` measures it (title included); calibration must use this same rule."""
    return coverage(keys, passage.title + "\n" + passage.text)


_BOUND = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")


def date_bound(value: str | None, which: Literal["since", "until"]) -> str | None:
    """YYYY, YYYY-MM or YYYY-MM-DD as an inclusive ISO bound: `until 2025-03` means up to 2025-03-31."""
    if value is None or not str(value).strip():
        return None
    match = _BOUND.match(str(value).strip())
    if not match:
        raise InvalidQueryError(f"--{which} '{value}': write a date as YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = int(match.group(1)), match.group(2), match.group(3)
    try:
        if day is not None:
            return date(year, int(month), int(day)).isoformat()
        if month is not None:
            last = calendar.monthrange(year, int(month))[1]
            return date(year, int(month), 1 if which == "since" else last).isoformat()
    except (ValueError, calendar.IllegalMonthError) as exc:
        raise InvalidQueryError(f"--{which} '{value}': {exc}") from exc
    return date(year, 1, 1).isoformat() if which == "since" else date(year, 12, 31).isoformat()


def validate_query(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InvalidQueryError("the question is empty: type a few words about what you are looking for")
    if len(question) > MAX_QUERY_CHARS:
        raise InvalidQueryError(f"the question is {len(question):,} characters long; the limit is {MAX_QUERY_CHARS:,}")
    return question.strip()


@dataclass
class _Hit:
    """A chunk on its way to becoming a passage: its span may grow when an overlapping neighbour merges in."""

    row: ChunkHit
    score: float
    start: int
    end: int
    similarity: float

    def overlaps(self, other: _Hit) -> bool:
        return self.row.doc_id == other.row.doc_id and self.start < other.end and other.start < self.end


class Searcher:
    """Searches one index. Read-only, so one instance serves many threads; every search reads one committed
    state of the database. The dense index is built on first use (keyword search never needs it) and
    follows later commits incrementally (`refresh`)."""

    def __init__(self, store: Store, embedder: Encoder) -> None:
        self.store = store
        self.embedder = embedder
        self.thresholds = load_thresholds(embedder.name)
        self._dense: DenseIndex | None = None
        self._dense_seq = 0
        self._dense_lock = threading.Lock()
        self.lexical = LexicalIndex(store.index_dir)
        self._follow_lexical()
        self._read_caches()

    def _follow_lexical(self) -> None:
        """Search the lexical commit that matches the database; repair it first when a killed writer left it
        ahead (if no writer is at work and the folder is writable; else the newest one is searched)."""
        self.lexical.follow(self.store.manifest.seq)
        if not self.lexical.current and recover(self.store.index_dir):
            self.lexical.follow(self.store.manifest.seq)

    def _read_caches(self) -> None:
        with self.store.read() as r:
            # Most documents have no copies; knowing which do saves a query per passage.
            self._holders = r.copy_holders()
            self._shared_clusters = r.shared_clusters()
            self.vectors = VectorFile(r.layout().vector_file, self.store.manifest.dimension)

    def refresh(self) -> None:
        """Catch up with commits made since this searcher opened (by this process or another)."""
        self.store.manifest = self.store.read_manifest()
        self._follow_lexical()
        self._read_caches()
        with self._dense_lock:
            if self._dense is None or self._dense_seq == self.store.manifest.seq:
                return
            with self.store.read() as r:
                layout, removed = r.layout(), r.tombstones_since(self._dense_seq)
                same_files = (layout.vector_file, layout.centroid_file) == (
                    self._dense.layout.vector_file,
                    self._dense.layout.centroid_file,
                )
                if removed is None or not same_files:
                    self._dense = None  # rebuilt on next use
                    return
                added = r.chunks_since(self._dense.layout.rows)
            self._dense.remove(removed)
            self._dense.extend(layout, added)
            self._dense_seq = self.store.manifest.seq

    def dense_index(self) -> DenseIndex:
        with self._dense_lock:
            if self._dense is None:
                with self.store.read() as r:
                    layout, live = r.layout(), r.live_chunk_ids()
                    seq = int(r.meta()["seq"])
                self._dense, self._dense_seq = DenseIndex(layout, live), seq
            return self._dense

    def search(
        self,
        question: str,
        k: int = 5,
        mode: Mode = "hybrid",
        source: str | None = None,
        since: str | None = None,
        until: str | None = None,
        exclude: Sequence[str] = (),
    ) -> Answer:
        """Best passages for `question`. `source` keeps documents whose file or source matches it exactly or
        as a glob, or whose site (name or web host) it names; `since`/`until` (YYYY, YYYY-MM or YYYY-MM-DD,
        inclusive) keep documents published in that range, which leaves out documents with no known date.
        `exclude` leaves out documents by source: evaluation asks questions whose answer is absent that way."""
        question = validate_query(question)
        if mode not in MODES:
            raise InvalidQueryError(f"unknown search mode '{mode}': choose one of {', '.join(MODES)}")
        if not 1 <= k <= MAX_K:
            raise InvalidQueryError(f"k must be between 1 and {MAX_K}, not {k}")
        filters = DocFilter(source or None, date_bound(since, "since"), date_bound(until, "until"))
        depth = max(100, k * 10)  # the depth the fusion weights were fitted at
        wide = has_wide_script(question)
        use_dense = mode == "semantic" or (mode == "hybrid" and (self.thresholds.dense_wide_script or not wide))
        q_vec = self.embedder.encode_query(question) if use_dense else None
        with self.store.read() as reader:
            allowed = reader.allowed_chunks(filters) if filters.active() else None
            excluded = reader.chunks_of_sources(exclude) if exclude else []
            if allowed is not None and excluded:
                allowed = sorted(set(allowed) - set(excluded))
                excluded = []
            arms: list[list[tuple[int, float]]] = []
            weights: list[float] = []
            if mode in ("hybrid", "keyword"):
                lexical = self.lexical_arms(question, depth, allowed, excluded)
                arms += lexical
                weights += [LEXICAL_WEIGHT / len(lexical)] * len(lexical)
            if q_vec is not None:
                arms.append(self.dense(q_vec, depth, allowed, excluded))
                weights.append(1.0 - LEXICAL_WEIGHT)
            passages = self._passages(reader, convex_fusion(arms, weights), k, q_vec)
        found = any(self.relevance(question, p) >= 1.0 for p in passages[:FOUND_DEPTH])
        return Answer(query=question, found=found, passages=passages)

    def relevance(self, question: str, passage: Passage) -> float:
        """How far a passage clears the calibrated bar for answering `question`: 1.0 and above counts as an
        answer. Similarity counts where the model understands the question's script; key-term coverage always.
        `found` and the chat's relevance marks both read this, so they cannot disagree."""
        wide = has_wide_script(question)
        limit = self.thresholds.coverage_wide if wide else self.thresholds.coverage
        strength = passage_coverage(query_keys(question), passage) / limit
        if self.thresholds.dense_wide_script or not wide:
            strength = max(strength, passage.similarity / self.thresholds.similarity)
        return strength

    def dense(
        self, q_vec: np.ndarray, n: int, allowed: list[int] | None = None, excluded: Sequence[int] = ()
    ) -> list[tuple[int, float]]:
        if allowed is not None and not allowed:
            return []
        dense = self.dense_index()
        with self._dense_lock:
            return dense.search(
                q_vec,
                n,
                allowed=None if allowed is None else np.asarray(allowed, dtype=np.int64),
                excluded=np.asarray(excluded, dtype=np.int64) if len(excluded) else None,
            )

    def lexical_arms(
        self, question: str, n: int, allowed: list[int] | None = None, excluded: Sequence[int] = ()
    ) -> list[list[tuple[int, float]]]:
        """The BM25 rankings for `question`: for Hangul/CJK the plain fields with two-character pieces;
        otherwise the stemmed fields queried with words and neighbouring-word phrases, and the plain fields
        with words (stemming finds "elected" for "election", the plain arm keeps "Apple" apart from "apples")."""
        if has_wide_script(question):
            plans = [(bigram_query(question), PLAIN)]
        else:
            plans = [(words_and_pairs_query(question), STEMMED), (words_query(question), PLAIN)]
        return [self.bm25(terms, field, n, allowed, excluded) for terms, field in plans]

    def bm25(
        self,
        terms: Sequence[str],
        field: str,
        n: int,
        allowed: list[int] | None = None,
        excluded: Sequence[int] = (),
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score, higher is better) of passages matching any of `terms` in `field`."""
        if allowed is not None and not allowed:
            return []
        return self.lexical.search(terms, field, n, allowed, excluded)

    def _passages(
        self, reader: Reader, fused: list[tuple[int, float]], k: int, q_vec: np.ndarray | None
    ) -> list[Passage]:
        """Best first. A hit that overlaps a better one from the same document is merged into it (the span
        grows to cover both, still an exact slice), so the neighbour that holds the answer is never lost.
        A hit from another copy of a story already shown (a near-duplicate) is dropped: the shown passage
        lists its copies instead."""
        chosen: list[_Hit] = []
        shown_docs: dict[int, int] = {}  # cluster -> the document shown for it
        for start in range(0, len(fused), 50):
            batch = fused[start : start + 50]
            rows = reader.chunk_hits([cid for cid, _ in batch])
            similarities = self._similarities([cid for cid, _ in batch if cid in rows], q_vec)
            for cid, score in batch:
                row = rows.get(cid)
                if row is None or shown_docs.setdefault(row.cluster, row.doc_id) != row.doc_id:
                    continue
                hit = _Hit(row, score, row.start, row.end, similarities.get(cid, 0.0))
                twin = next((p for p in chosen if p.overlaps(hit)), None)
                if twin is not None:
                    start_, end_ = min(twin.start, hit.start), max(twin.end, hit.end)
                    grown = _Hit(twin.row, twin.score, start_, end_, twin.similarity)
                    clear = not any(p.overlaps(grown) for p in chosen if p is not twin)
                    if clear and end_ - start_ <= MAX_MERGED_CHARS:
                        twin.start, twin.end = start_, end_
                        twin.similarity = max(twin.similarity, hit.similarity)
                    continue
                chosen.append(hit)
                if len(chosen) == k:
                    return self._materialise(reader, chosen)
        return self._materialise(reader, chosen)

    def _similarities(self, ids: list[int], q_vec: np.ndarray | None) -> dict[int, float]:
        if q_vec is None or not ids:
            return {}
        return dict(zip(ids, (self.vectors.read(ids) @ q_vec[0]).tolist()))

    def _materialise(self, reader: Reader, hits: list[_Hit]) -> list[Passage]:
        texts = reader.document_texts({h.row.doc_id for h in hits})
        return [
            Passage(
                text=texts[h.row.doc_id][h.start : h.end],
                score=h.score,
                doc_id=h.row.doc_id,
                title=h.row.title,
                source=h.row.source,
                url=h.row.url,
                start=h.start,
                end=h.end,
                published=h.row.published,
                chunk_id=h.row.id,
                similarity=h.similarity,
                author=h.row.author,
                page=page_at(h.row.pages, h.start),
                copies=self.copies(reader, h.row.doc_id, h.row.cluster),
            )
            for h in hits
        ]

    def copies(self, reader: Reader, doc_id: int, cluster: int) -> tuple[Copy, ...]:
        """Other documents holding the same story: exact copies first, then near-duplicates."""
        if doc_id not in self._holders and cluster not in self._shared_clusters:
            return ()
        return tuple(Copy(source=s, title=t, url=u, exact=e) for s, t, u, e in reader.copies(doc_id, cluster))
