"""The one search core every shell uses: dense (FAISS), lexical (tantivy BM25), fusion that adapts to how
well the question's words match, de-duplication of overlapping passages, each passage's relevance score and
the `found` decision.

Scores and `found` come from `rag.search.relevance`: a probability per passage, fitted on benchmark data by
leave-one-dataset-out (`rag/search/calibration.json`, `bench/fit_relevance.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rag.index import (
    PLAIN,
    STEMMED,
    ChunkFilter,
    ChunkHit,
    DenseIndex,
    DenseLayout,
    DocFilter,
    Kept,
    LexicalIndex,
    Reader,
    Store,
    VectorFile,
    recover,
)
from rag.models.embed import Encoder, passage_input
from rag.records import Answer, Copy, Passage, page_at
from rag.search.fusion import convex_fusion
from rag.search.relevance import RelevanceModel, features, load_calibration
from rag.search.request import Mode, Question, SearchRequest

FOUND_DEPTH = 3  # `found` looks at the passages a reader sees first; calibration uses the same depth
MAX_MERGED_CHARS = 3000


Ranking = list[tuple[int, float]]


@dataclass(frozen=True)
class Arms:
    """The rankings of one search: each lexical arm with its ceiling, and the dense arm (None when the
    question was not encoded)."""

    lexical: list[tuple[Ranking, float]]
    dense: Ranking | None

    @cached_property
    def lexical_strengths(self) -> dict[int, float]:
        """Each passage's best lexical score as a share of its arm's ceiling."""
        best: dict[int, float] = {}
        for ranking, ceiling in self.lexical:
            if ceiling <= 0:
                continue
            for cid, score in ranking:
                best[cid] = max(best.get(cid, 0.0), score / ceiling)
        return best


@dataclass(frozen=True)
class _Scorer:
    """Scores passages for one question with one calibrated model."""

    asked: Question
    model: RelevanceModel
    lexical: dict[int, float]
    dense: bool  # whether the question was encoded, so that a passage's cosine is evidence

    def score(self, cid: int, title: str, text: str, similarity: float) -> float:
        """The probability for a passage read as its title line and its own text (`passage_input`)."""
        cosine = similarity if self.dense else None
        x = features(self.asked, passage_input(title, text), cosine, self.lexical.get(cid, 0.0))
        return self.model.probability(x)


def fuse_arms(arms: Arms, lexical_weight: tuple[float, float], lexical_strength: float) -> Ranking:
    """Convex fusion of min-max normalised arms. The lexical arms' share adapts to the question: when their
    best passage holds the question's words well (`lexical_strength` of the ceiling) they get the first
    share, when no passage does (a paraphrased question, a name spelt another way) the second, which leaves
    the dense arm the larger say. Both shares and the strength were chosen by leave-one-dataset-out."""
    if arms.dense is None or not arms.lexical:
        rankings = [r for r, _ in arms.lexical] or [arms.dense or []]
        return convex_fusion(rankings, [1.0] * len(rankings))
    strong, weak = lexical_weight
    share = strong if max(arms.lexical_strengths.values(), default=0.0) >= lexical_strength else weak
    weights = [share / len(arms.lexical)] * len(arms.lexical) + [1.0 - share]
    return convex_fusion([r for r, _ in arms.lexical] + [arms.dense], weights)


@dataclass
class _Hit:
    """A chunk on its way to becoming a passage: its span may grow when an overlapping neighbour merges in."""

    row: ChunkHit
    score: float
    start: int
    end: int
    similarity: float
    head_similarity: float = 0.0

    def overlaps(self, other: _Hit) -> bool:
        return self.row.doc_id == other.row.doc_id and self.start < other.end and other.start < self.end


class Searcher:
    """Searches one index. Read-only, so one instance serves many threads; every search reads one committed
    state of the database. The dense index is built on first use (keyword search never needs it) and
    follows later commits incrementally (`refresh`)."""

    def __init__(self, store: Store, embedder: Encoder) -> None:
        self.store = store
        self.embedder = embedder
        self.calibration = load_calibration(embedder.name)
        self._dense: DenseIndex | None = None
        self._dense_seq = 0
        self._dense_lock = threading.Lock()
        self._refresh_lock = threading.RLock()
        self._chunk_filter = ChunkFilter()
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

    def catch_up(self) -> None:
        """Follow any writer's commits (another process's `rag index`, an upload) before a search: one read
        of the commit number; a refresh only when it moved."""
        with self.store.read() as reader:
            seq = reader.meta().seq
        if seq == self.store.manifest.seq:
            return
        with self._refresh_lock:
            if seq != self.store.manifest.seq:
                self.refresh()

    def refresh(self) -> None:
        """Catch up with commits made since this searcher opened (by this process or another)."""
        with self._refresh_lock:
            self._refresh()

    def _refresh(self) -> None:
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
                order = self._order_keys(r, layout) if len(added) else None  # None: the order it has
            self._dense.remove(removed)
            self._dense.extend(layout, added, order)
            self._dense_seq = self.store.manifest.seq

    def dense_index(self) -> DenseIndex:
        dense = self._dense
        if dense is not None:
            return dense
        # The order is read first, under the refresh lock alone: keyword searches with a filter, which need
        # that lock, wait for it but not for the vectors' load. It only decides what filtered searches cost,
        # so a commit landing in between costs nothing but speed.
        with self.store.read() as r, self._refresh_lock:
            order = self._order_keys(r, r.layout())
        with self._dense_lock:
            if self._dense is None:
                with self.store.read() as r:
                    layout, live = r.layout(), r.live_chunk_ids()
                    seq = r.meta().seq
                self._dense, self._dense_seq = DenseIndex(layout, live, order), seq
            return self._dense

    def _order_keys(self, reader: Reader, layout: DenseLayout) -> np.ndarray | None:
        """Each chunk's place in the lexical index's order, which the IVF lists keep too (None for the exact
        index, which needs no order). Called under the refresh lock."""
        if layout.centroid_file is None:
            return None
        self._chunk_filter.follow(reader, reader.meta().seq)
        return self._chunk_filter.order_keys()

    def search(self, request: SearchRequest) -> Answer:
        """Best passages for the request's question. Its filter keeps documents whose file or source matches
        `source` exactly or as a glob, or whose site (name or web host) it names, and documents published
        between `since` and `until` (inclusive), which leaves out documents with no known date; `exclude` leaves
        out documents by source.

        Each passage's `score` is the probability that it answers the question (`rag.search.relevance`), worked
        out from that passage alone; `found` says whether one of the first FOUND_DEPTH passages clears the
        calibrated bar. Both are the same whatever `k` is."""
        asked, k, mode = request.question, request.k, request.mode
        self.catch_up()
        # The question is encoded in every mode but keyword: its cosine is evidence for the score even where
        # the dense arm stays out of the ranking (Korean with a model that reads no Korean).
        q_vec = self.embedder.encode_query(asked.text) if mode != "keyword" else None
        ranks_dense = q_vec if self.uses_dense(asked, mode) else None
        with self.store.read() as reader:
            keep = self.kept_chunks(reader, request.filter, request.exclude)
            arms = self.arms(asked, max(100, k * 10), ranks_dense, keep)
            dense = q_vec is not None
            scorer = _Scorer(asked, self.calibration.model(dense), arms.lexical_strengths, dense)
            passages = self._passages(reader, self.fuse(arms, mode), max(k, FOUND_DEPTH), q_vec, scorer)
        found = any(p.score >= scorer.model.threshold for p in passages[:FOUND_DEPTH])
        return Answer(query=asked.text, found=found, passages=passages[:k], note=self.script_note(asked))

    def bar(self, mode: Mode = "hybrid") -> float:
        """The probability at which a passage counts as an answer in `mode`."""
        return self.calibration.model(mode != "keyword").threshold

    def uses_dense(self, asked: Question, mode: Mode) -> bool:
        """Whether the dense arm ranks: in semantic search always; in hybrid unless the model was found not
        to understand the question's script."""
        return mode == "semantic" or (mode == "hybrid" and (self.calibration.dense_wide_script or not asked.wide))

    def arms(self, asked: Question, depth: int, q_vec: np.ndarray | None, keep: Kept | None = None) -> Arms:
        """Every ranking of one search, each with what its scores are measured against. The lexical arms run
        in every mode: in semantic search they rank nothing but still give each passage its lexical evidence,
        so that its score means what it means in the other modes. `keep` limits them all to what filters
        keep."""
        lexical = self.lexical_arms(asked, depth, keep)
        dense = self.dense(q_vec, depth, keep) if q_vec is not None else None
        return Arms(lexical, dense)

    def kept_chunks(self, reader: Reader, filters: DocFilter, exclude: frozenset[str] = frozenset()) -> Kept | None:
        """The chunks that `filters` keep and `exclude` does not leave out, as of the reader's commit; None
        when nothing is filtered."""
        if not filters.active() and not exclude:
            return None
        with self._refresh_lock:
            self._chunk_filter.follow(reader, reader.meta().seq)
            return self._chunk_filter.keep(filters, exclude)

    def fuse(self, arms: Arms, mode: Mode = "hybrid") -> list[tuple[int, float]]:
        if mode == "semantic":
            return convex_fusion([arms.dense or []], [1.0])
        if mode == "keyword":
            arms = Arms(arms.lexical, None)
        return fuse_arms(arms, self.calibration.lexical_weight, self.calibration.lexical_strength)

    def script_note(self, asked: Question) -> str | None:
        """One line for a question in Korean, Chinese or Japanese whose words no indexed passage holds in
        that script: the default model cannot match such a question to English text, and a bare "not found"
        would not say why."""
        if not asked.wide or self.lexical.holds_any(asked.bigrams, PLAIN):
            return None
        return (
            "None of the indexed articles holds this question's Korean/Chinese/Japanese words, and the default "
            "model cannot match them to English text: ask in the articles' language, or index with a "
            "multilingual model such as paraphrase-multilingual-MiniLM-L12-v2 (rag index --model PATH)."
        )

    def dense(self, q_vec: np.ndarray, n: int, keep: Kept | None = None) -> list[tuple[int, float]]:
        dense = self.dense_index()
        with self._dense_lock:
            return dense.search(q_vec, n, None if keep is None else keep.chunks)

    def lexical_arms(
        self, asked: Question, n: int, keep: Kept | None = None
    ) -> list[tuple[list[tuple[int, float]], float]]:
        """The BM25 rankings for the question, each with its ceiling (`LexicalIndex.search_with_ceiling`): for
        Hangul/CJK the plain fields with two-character pieces; otherwise the stemmed fields queried with words
        and neighbouring-word phrases, and the plain fields with words (stemming finds "elected" for
        "election", the plain arm keeps "Apple" apart from "apples")."""
        plans = [(asked.bigrams, PLAIN)] if asked.wide else [(asked.pairs, STEMMED), (asked.words, PLAIN)]
        return [self.lexical.search_with_ceiling(terms, field, n, keep) for terms, field in plans]

    def bm25(self, terms: Sequence[str], field: str, n: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score, higher is better) of passages matching any of `terms` in `field`."""
        return self.lexical.search(terms, field, n)

    def _passages(
        self, reader: Reader, fused: list[tuple[int, float]], k: int, q_vec: np.ndarray | None, scorer: _Scorer
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
                similarity = similarities.get(cid, 0.0)
                hit = _Hit(row, score, row.start, row.end, similarity, similarity)
                twin = next((p for p in chosen if p.overlaps(hit)), None)
                if twin is not None:
                    start_, end_ = min(twin.start, hit.start), max(twin.end, hit.end)
                    grown = _Hit(twin.row, twin.score, start_, end_, twin.similarity, twin.head_similarity)
                    clear = not any(p.overlaps(grown) for p in chosen if p is not twin)
                    if clear and end_ - start_ <= MAX_MERGED_CHARS:
                        twin.start, twin.end = start_, end_
                        twin.similarity = max(twin.similarity, hit.similarity)
                    continue
                chosen.append(hit)
                if len(chosen) == k:
                    return self._materialise(reader, chosen, scorer)
        return self._materialise(reader, chosen, scorer)

    def _similarities(self, ids: list[int], q_vec: np.ndarray | None) -> dict[int, float]:
        if q_vec is None or not ids:
            return {}
        return dict(zip(ids, (self.vectors.read(ids) @ q_vec[0]).tolist()))

    def _materialise(self, reader: Reader, hits: list[_Hit], scorer: _Scorer) -> list[Passage]:
        """Passages with their scores. A passage is scored on the chunk that brought it in (its text before
        neighbours merged into it), so the score of the n-th passage does not depend on how many follow."""
        texts = reader.document_texts({h.row.doc_id for h in hits})
        return [
            Passage(
                text=texts[h.row.doc_id][h.start : h.end],
                score=scorer.score(
                    h.row.id,
                    h.row.title,
                    texts[h.row.doc_id][h.row.start : h.row.end],
                    h.head_similarity,
                ),
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
        return tuple(reader.copies(doc_id, cluster))
