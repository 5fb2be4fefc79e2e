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
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Literal

import faiss
import numpy as np

from rag.embed import Embedder
from rag.errors import InvalidQueryError
from rag.fusion import convex_fusion
from rag.lexical import bigram_query, coverage, has_wide_script, query_keys, words_and_pairs_query, words_query
from rag.records import Answer, Copy, Passage, page_at
from rag.store import Generation

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")
MAX_QUERY_CHARS = 2000
MAX_K = 100
MAX_MERGED_CHARS = 3000
FOUND_DEPTH = 3  # `found` looks at the passages a reader sees first; calibration uses the same depth
# Fusion: a convex combination of min-max normalised scores, the lexical arms sharing LEXICAL_WEIGHT.
# Chosen on SQuAD dev over RRF (k 5-60, weighted) and other weights; see bench/RESULTS.md.
LEXICAL_WEIGHT = 0.6
TITLE_WEIGHT = 1.0  # BM25 weight of the title column against 1.0 for the passage text


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


@dataclass(frozen=True)
class Filters:
    source: str | None = None
    since: str | None = None
    until: str | None = None

    def active(self) -> bool:
        return bool(self.source or self.since or self.until)


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


class Searcher:
    """Searches one index generation. Read-only, so one instance serves many threads."""

    def __init__(self, generation: Generation, embedder: Embedder) -> None:
        self.gen = generation
        self.embedder = embedder
        self.thresholds = load_thresholds(embedder.name)
        db = generation.db
        # Most documents have no copies; knowing which do saves a query per passage.
        self._holders = {r[0] for r in db.execute("SELECT DISTINCT dup_of FROM documents WHERE dup_of IS NOT NULL")}
        self._shared_clusters = {
            r[0] for r in db.execute("SELECT cluster FROM documents GROUP BY cluster HAVING count(*) > 1")
        }

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
        filters = Filters(source or None, date_bound(since, "since"), date_bound(until, "until"))
        allowed = self._allowed_chunks(filters) if filters.active() else None
        excluded = self._chunks_of(exclude) if exclude else []
        if allowed is not None and excluded:
            allowed = sorted(set(allowed) - set(excluded))
            excluded = []
        depth = max(100, k * 10)  # the depth the fusion weights were fitted at
        q_vec = self.embedder.encode_query(question)
        wide = has_wide_script(question)
        dense_trusted = self.thresholds.dense_wide_script or not wide
        arms: list[list[tuple[int, float]]] = []
        weights: list[float] = []
        if mode in ("hybrid", "keyword"):
            lexical = self.lexical(question, depth, allowed, excluded)
            arms += lexical
            weights += [LEXICAL_WEIGHT / len(lexical)] * len(lexical)
        if mode == "semantic" or (mode == "hybrid" and dense_trusted):
            arms.append(self.dense(q_vec, depth, allowed, excluded))
            weights.append(1.0 - LEXICAL_WEIGHT)
        passages = self._passages(convex_fusion(arms, weights), k, q_vec)
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
        if self.gen.faiss.ntotal == 0 or (allowed is not None and not allowed):
            return []
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.array(allowed, dtype=np.int64)))
        elif excluded:
            batch = faiss.IDSelectorBatch(np.array(excluded, dtype=np.int64))
            params = faiss.SearchParameters(sel=faiss.IDSelectorNot(batch))
            params.batch = batch  # keep the inner selector alive as long as the outer one
        scores, ids = self.gen.faiss.search(q_vec, min(n, self.gen.faiss.ntotal), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def lexical(
        self, question: str, n: int, allowed: list[int] | None = None, excluded: Sequence[int] = ()
    ) -> list[list[tuple[int, float]]]:
        """The BM25 rankings for `question`: for Hangul/CJK the character-bigram table; otherwise the stemmed
        table queried with words and neighbouring-word phrases, and the unstemmed table with words (stemming
        finds "elected" for "election", the unstemmed arm keeps "Apple" apart from "apples")."""
        if has_wide_script(question):
            plans = [("chunks_bigram", bigram_query(question))]
        else:
            plans = [("chunks_words", words_and_pairs_query(question)), ("chunks_bigram", words_query(question))]
        return [self.bm25(table, match, question, n, allowed, excluded) for table, match in plans]

    def bm25(
        self,
        table: str,
        match: str | None,
        question: str,
        n: int,
        allowed: list[int] | None = None,
        excluded: Sequence[int] = (),
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score, higher is better) for an FTS5 `match` expression over `table`."""
        if not match or (allowed is not None and not allowed):
            return []
        sql = f"SELECT rowid, bm25({table}, 1.0, {TITLE_WEIGHT}) AS s FROM {table} WHERE {table} MATCH ?"
        args: list = [match]
        if allowed is not None:
            sql += f" AND rowid IN ({','.join('?' * len(allowed))})"
            args += allowed
        elif excluded:
            sql += f" AND rowid NOT IN ({','.join('?' * len(excluded))})"
            args += list(excluded)
        sql += " ORDER BY s LIMIT ?"
        try:
            rows = self.gen.db.execute(sql, [*args, n]).fetchall()
        except sqlite3.OperationalError as exc:
            raise InvalidQueryError(f"cannot search for {question!r}: {exc}") from exc
        return [(int(r), -float(s)) for r, s in rows]

    def _chunks_of(self, sources: Sequence[str]) -> list[int]:
        marks = ",".join("?" * len(sources))
        rows = self.gen.db.execute(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.source IN ({marks})", list(sources)
        ).fetchall()
        return [r[0] for r in rows]

    def _allowed_chunks(self, filters: Filters) -> list[int]:
        """Chunks of the documents the filters keep; an exact copy that matches keeps the text it shares."""
        where, args = [], []
        if filters.source:
            host = filters.source.lower().removeprefix("www.")
            where.append(
                "(d.source = ? OR d.source GLOB ? OR d.file = ? OR d.file GLOB ? OR lower(d.site) = ? "
                "OR lower(d.url) GLOB ? OR lower(d.url) GLOB ?)"
            )
            args += [filters.source] * 4 + [filters.source.lower(), f"*://{host}/*", f"*://www.{host}/*"]
        if filters.since:
            where.append("d.published >= ?")
            args.append(filters.since)
        if filters.until:
            where.append("d.published <= ?")
            args.append(filters.until)
        rows = self.gen.db.execute(
            "SELECT c.id FROM chunks c WHERE c.doc_id IN "
            f"(SELECT coalesce(d.dup_of, d.id) FROM documents d WHERE {' AND '.join(where)})",
            args,
        ).fetchall()
        return [r[0] for r in rows]

    def _passages(self, fused: list[tuple[int, float]], k: int, q_vec: np.ndarray) -> list[Passage]:
        """Best first. A hit that overlaps a better one from the same document is merged into it (the span
        grows to cover both, still an exact slice), so the neighbour that holds the answer is never lost.
        A hit from another copy of a story already shown (a near-duplicate) is dropped: the shown passage
        lists its copies instead."""
        chosen: list[dict] = []
        shown_docs: dict[int, int] = {}  # cluster -> the document shown for it
        for start in range(0, len(fused), 50):
            batch = fused[start : start + 50]
            rows = self._rows([cid for cid, _ in batch])
            for cid, score in batch:
                row = rows.get(cid)
                if row is None:
                    continue
                if shown_docs.setdefault(row["cluster"], row["doc_id"]) != row["doc_id"]:
                    continue
                hit = {"cid": cid, "score": score, "doc_id": row["doc_id"], "start": row["start"], "end": row["end"]}
                hit["row"] = row
                hit["similarity"] = float(self.gen.faiss.reconstruct(cid) @ q_vec[0])
                twin = next((p for p in chosen if _overlaps(p, hit)), None)
                if twin is not None:
                    grown = {**twin, "start": min(twin["start"], hit["start"]), "end": max(twin["end"], hit["end"])}
                    clear = not any(_overlaps(p, grown) for p in chosen if p is not twin)
                    if clear and grown["end"] - grown["start"] <= MAX_MERGED_CHARS:
                        twin["start"], twin["end"] = grown["start"], grown["end"]
                        twin["similarity"] = max(twin["similarity"], hit["similarity"])
                    continue
                chosen.append(hit)
                if len(chosen) == k:
                    return self._materialise(chosen)
        return self._materialise(chosen)

    def _materialise(self, hits: list[dict]) -> list[Passage]:
        texts = {}
        for doc_id in {h["doc_id"] for h in hits}:
            texts[doc_id] = self.gen.db.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
        passages = []
        for h in hits:
            row = h["row"]
            passages.append(
                Passage(
                    text=texts[h["doc_id"]][h["start"] : h["end"]],
                    score=h["score"],
                    doc_id=h["doc_id"],
                    title=row["title"],
                    source=row["source"],
                    url=row["url"],
                    start=h["start"],
                    end=h["end"],
                    published=row["published"],
                    chunk_id=h["cid"],
                    similarity=h["similarity"],
                    author=row["author"],
                    page=page_at(json.loads(row["pages"]), h["start"]),
                    copies=self.copies(h["doc_id"], row["cluster"]),
                )
            )
        return passages

    def copies(self, doc_id: int, cluster: int | None) -> tuple[Copy, ...]:
        """Other documents holding the same story: exact copies first, then near-duplicates."""
        if doc_id not in self._holders and cluster not in self._shared_clusters:
            return ()
        rows = self.gen.db.execute(
            "SELECT source, title, url, dup_of = ? FROM documents WHERE id != ? AND (dup_of = ? OR cluster = ?) "
            "ORDER BY dup_of = ? DESC, source",
            (doc_id, doc_id, doc_id, cluster, doc_id),
        ).fetchall()
        return tuple(Copy(source=r[0], title=r[1], url=r[2], exact=bool(r[3])) for r in rows)

    def _rows(self, ids: list[int]) -> dict[int, dict]:
        marks = ",".join("?" * len(ids))
        rows = self.gen.db.execute(
            f'SELECT c.id, c.doc_id, d.title, d.source, d.url, c.start, c."end", d.published, d.author, d.pages, '
            f"coalesce(d.cluster, d.id) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
            ids,
        ).fetchall()
        names = ("doc_id", "title", "source", "url", "start", "end", "published", "author", "pages", "cluster")
        return {r[0]: dict(zip(names, r[1:])) for r in rows}


def _overlaps(a: dict, b: dict) -> bool:
    return a["doc_id"] == b["doc_id"] and a["start"] < b["end"] and b["start"] < a["end"]
