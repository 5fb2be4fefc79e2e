"""The long-lived side of search: one index opened for many questions at once. It follows every writer's
commits (the lexical index, the dense index incrementally, the filter arrays, the copy caches) under its two
locks, and runs the arms a question needs: dense (FAISS) and lexical (tantivy BM25), each under a filter.

One question's search is `rag.search.call.SearchCall`; fusion and merging are the pure functions of
`rag.search.fusion` and `rag.search.merge`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from rag.index import (
    PLAIN,
    STEMMED,
    ChunkFilter,
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
from rag.models.embed import Encoder
from rag.models.reader import PassageReader, reader_folder
from rag.records import Copy
from rag.search.fusion import Arms, Ranking, fuse_mode
from rag.search.relevance import load_calibration
from rag.search.request import Mode, Question


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
        self._reader: PassageReader | None = None
        self._reader_lock = threading.Lock()
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
            seq = reader.seq()
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
                    seq = r.seq()
                self._dense, self._dense_seq = DenseIndex(layout, live, order), seq
            return self._dense

    def _order_keys(self, reader: Reader, layout: DenseLayout) -> np.ndarray | None:
        """Each chunk's place in the lexical index's order, which the IVF lists keep too (None for the exact
        index, which needs no order). Called under the refresh lock."""
        if layout.centroid_file is None:
            return None
        self._chunk_filter.follow(reader, reader.seq())
        return self._chunk_filter.order_keys()

    def reader_for(self, asked: Question, mode: Mode, rerank: bool | None) -> PassageReader | None:
        """The reader when it rescores this question: asked for (`rerank`; None: when the calibration makes it
        the default), a mode that reads the question (keyword mode stays model-free), a calibrated reader, and
        a script it reads (`ReaderCalibration.wide`)."""
        reader_calibration = self.calibration.reader
        if reader_calibration is None or mode == "keyword":
            return None
        if not (reader_calibration.default if rerank is None else rerank):
            return None
        if asked.wide and not reader_calibration.wide:
            return None
        with self._reader_lock:
            if self._reader is None and (reader_folder() / "reader.onnx").is_file():
                self._reader = PassageReader()
        return self._reader

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
            self._chunk_filter.follow(reader, reader.seq())
            return self._chunk_filter.keep(filters, exclude)

    def fuse(self, arms: Arms, mode: Mode = "hybrid") -> Ranking:
        """The one ranking of a search in `mode`, with this model's calibrated fusion weights."""
        return fuse_mode(arms, mode, self.calibration.lexical_weight, self.calibration.lexical_strength)

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

    def similarities(self, ids: list[int], q_vec: np.ndarray | None) -> dict[int, float]:
        """Each chunk's cosine to the question (none when it was not encoded)."""
        if q_vec is None or not ids:
            return {}
        return dict(zip(ids, (self.vectors.read(ids) @ q_vec[0]).tolist()))

    def copies(self, reader: Reader, doc_id: int, cluster: int) -> tuple[Copy, ...]:
        """Other documents holding the same story: exact copies first, then near-duplicates."""
        if doc_id not in self._holders and cluster not in self._shared_clusters:
            return ()
        return tuple(reader.copies(doc_id, cluster))
