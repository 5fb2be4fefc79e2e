"""The one search core every shell uses: dense (FAISS), lexical (FTS5 bm25), hybrid fusion, de-duplication
of overlapping passages, and the `found` decision.

`found` is not a per-question guess: it compares the best passage's cosine similarity and its coverage of
the question's key terms with thresholds fitted on benchmark data (see `rag/calibration.json` and
`bench/calibrate.py`).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import faiss
import numpy as np

from rag.embed import Embedder
from rag.errors import InvalidQueryError
from rag.fusion import reciprocal_rank_fusion
from rag.lexical import bigram_query, coverage, has_wide_script, query_keys, words_query
from rag.records import Answer, Passage
from rag.store import Generation

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")
MAX_QUERY_CHARS = 2000
MAX_K = 100
MAX_MERGED_CHARS = 3000
FOUND_DEPTH = 3  # `found` looks at the passages a reader sees first; calibration uses the same depth


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

    def search(self, question: str, k: int = 5, mode: Mode = "hybrid", source: str | None = None) -> Answer:
        question = validate_query(question)
        if mode not in MODES:
            raise InvalidQueryError(f"unknown search mode '{mode}': choose one of {', '.join(MODES)}")
        if not 1 <= k <= MAX_K:
            raise InvalidQueryError(f"k must be between 1 and {MAX_K}, not {k}")
        allowed = self._chunk_ids_for_source(source) if source else None
        depth = max(50, k * 10)
        q_vec = self.embedder.encode_query(question)
        wide = has_wide_script(question)
        dense_trusted = self.thresholds.dense_wide_script or not wide
        rankings = []
        if mode == "semantic" or (mode == "hybrid" and dense_trusted):
            rankings.append([cid for cid, _ in self.dense(q_vec, depth, allowed)])
        if mode in ("hybrid", "keyword"):
            rankings.append([cid for cid, _ in self.lexical(question, depth, allowed)])
        passages = self._passages(reciprocal_rank_fusion(rankings), k, q_vec)
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

    def dense(self, q_vec: np.ndarray, n: int, allowed: list[int] | None = None) -> list[tuple[int, float]]:
        if self.gen.faiss.ntotal == 0 or (allowed is not None and not allowed):
            return []
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.array(allowed, dtype=np.int64)))
        scores, ids = self.gen.faiss.search(q_vec, min(n, self.gen.faiss.ntotal), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def lexical(self, question: str, n: int, allowed: list[int] | None = None) -> list[tuple[int, float]]:
        if has_wide_script(question):
            table, match = "chunks_bigram", bigram_query(question)
        else:
            table, match = "chunks_words", words_query(question)
        if not match or (allowed is not None and not allowed):
            return []
        sql = f"SELECT rowid, bm25({table}, 1.0, 0.3) AS s FROM {table} WHERE {table} MATCH ?"
        args: list = [match]
        if allowed is not None:
            sql += f" AND rowid IN ({','.join('?' * len(allowed))})"
            args += allowed
        sql += " ORDER BY s LIMIT ?"
        try:
            rows = self.gen.db.execute(sql, [*args, n]).fetchall()
        except sqlite3.OperationalError as exc:
            raise InvalidQueryError(f"cannot search for {question!r}: {exc}") from exc
        return [(int(r), -float(s)) for r, s in rows]

    def _chunk_ids_for_source(self, source: str) -> list[int]:
        rows = self.gen.db.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.source = ? OR d.source GLOB ?",
            (source, source),
        ).fetchall()
        return [r[0] for r in rows]

    def _passages(self, fused: list[tuple[int, float]], k: int, q_vec: np.ndarray) -> list[Passage]:
        """Best first. A hit that overlaps a better one from the same document is merged into it (the span
        grows to cover both, still an exact slice), so the neighbour that holds the answer is never lost."""
        chosen: list[dict] = []
        for start in range(0, len(fused), 50):
            batch = fused[start : start + 50]
            rows = self._rows([cid for cid, _ in batch])
            for cid, score in batch:
                row = rows.get(cid)
                if row is None:
                    continue
                hit = {"cid": cid, "score": score, "doc_id": row[0], "start": row[4], "end": row[5], "row": row}
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
            _, title, source, url, _, _, _, published = h["row"]
            passages.append(
                Passage(
                    text=texts[h["doc_id"]][h["start"] : h["end"]],
                    score=h["score"],
                    doc_id=h["doc_id"],
                    title=title,
                    source=source,
                    url=url,
                    start=h["start"],
                    end=h["end"],
                    published=published,
                    chunk_id=h["cid"],
                    similarity=h["similarity"],
                )
            )
        return passages

    def _rows(self, ids: list[int]) -> dict[int, tuple]:
        marks = ",".join("?" * len(ids))
        rows = self.gen.db.execute(
            f'SELECT c.id, c.doc_id, d.title, d.source, d.url, c.start, c."end", c.text, d.published '
            f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
            ids,
        ).fetchall()
        return {r[0]: r[1:] for r in rows}


def _overlaps(a: dict, b: dict) -> bool:
    return a["doc_id"] == b["doc_id"] and a["start"] < b["end"] and b["start"] < a["end"]
