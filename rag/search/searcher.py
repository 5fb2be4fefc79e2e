"""The long-lived side of search: one index opened for many questions at once. It follows every writer's
commits (the lexical index, the dense index incrementally, the filter arrays, the copy caches) under its two
locks, and runs the arms a question needs: dense (FAISS) and lexical (tantivy BM25), each under a filter.

One question's search is `rag.search.call.SearchCall`; fusion and merging are the pure functions of
`rag.search.fusion` and `rag.search.merge`.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import date

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
from rag.models.embed import Encoder, get_embedder
from rag.models.multilingual import MultilingualEncoder, get_multilingual
from rag.models.reader import PassageReader, reader_folder
from rag.records import Copy
from rag.search.fusion import Arms, NamePairs, Ranking, fuse_mode
from rag.search.relevance import load_calibration
from rag.search.request import Mode, Question
from rag.search.transliteration import NameBridge
from rag.text import WIDE_LANGUAGES, language_of

MAX_NAMES_CREDITED = 2  # an other-script passage gains the name bonus for this many shared names at most


class Searcher:
    """Searches one index. Read-only, so one instance serves many threads; every search reads one committed
    state of the database. The dense index is built on first use (keyword search never needs it) and
    follows later commits incrementally (`refresh`)."""

    def __init__(self, store: Store, embedder: Encoder) -> None:
        self.store = store
        self.embedder = embedder
        self._match_precision()
        self.calibration = load_calibration(embedder.name)
        self._dense: DenseIndex | None = None
        self._dense_seq = 0
        self._dense_lock = threading.Lock()
        self._multilingual: DenseIndex | None = None  # the multilingual arm's, built on its first question
        self._multilingual_seq = 0
        self.multilingual_encoder: MultilingualEncoder = get_multilingual()
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

    def _match_precision(self) -> None:
        """Questions are encoded in the precision of the index's vectors (an int8 vector and a float32 one of the
        same text differ slightly), on the CPU; followed at each commit, since `rag index` may change it."""
        manifest = self.store.manifest
        if self.embedder.precision != manifest.vector_precision or self.embedder.device != "cpu":
            self.embedder = get_embedder(manifest.model, manifest.vector_precision, device="cpu")

    def _refresh(self) -> None:
        self.store.manifest = self.store.read_manifest()
        self._match_precision()
        self._follow_lexical()
        self._read_caches()
        with self._dense_lock:
            seq = self.store.manifest.seq
            if self._multilingual is not None and self._multilingual_seq != seq:
                with self.store.read() as r:
                    self._multilingual = _follow(self._multilingual, self._multilingual_seq, r, self._ml_layout(r))
                self._multilingual_seq = seq
            if self._dense is None or self._dense_seq == seq:
                return
            with self.store.read() as r:
                layout = r.layout()
                order = self._order_keys(r, layout) if len(r.chunks_since(self._dense.layout.rows)) else None
                self._dense = _follow(self._dense, self._dense_seq, r, layout, order)
            self._dense_seq = seq

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

    def _ml_layout(self, reader: Reader) -> DenseLayout | None:
        return reader.multilingual_layout(self.multilingual_encoder.dimension)

    def multilingual_index(self) -> DenseIndex | None:
        """The multilingual arm's exact index, built on its first question; None when the index holds no
        multilingual vectors."""
        with self._dense_lock:
            if self._multilingual is None:
                with self.store.read() as r:
                    layout, seq = self._ml_layout(r), r.seq()
                    if layout is None:
                        return None
                    self._multilingual, self._multilingual_seq = DenseIndex(layout, r.live_chunk_ids()), seq
            return self._multilingual

    def uses_multilingual(self, asked: Question, mode: Mode, reader: Reader) -> bool:
        """Whether the multilingual arm runs for this question: not in keyword mode; only where the index keeps
        its vectors and a weight was calibrated; for every question in Korean, Chinese or Japanese (the first
        model reads none of them), and for others only when the collection holds passages in those scripts
        (an English question about a Korean article)."""
        if mode == "keyword" or self.calibration.multilingual is None:
            return False
        meta = reader.meta()
        return meta.multilingual and (asked.language in WIDE_LANGUAGES or meta.wide_chunks > 0)

    def multilingual_vector(self, asked: Question) -> np.ndarray:
        return self.multilingual_encoder.encode([asked.text])

    def multilingual_similarities(self, ids: list[int], m_vec: np.ndarray | None) -> dict[int, float]:
        """Each chunk's cosine to the question in the multilingual arm (none when it did not run)."""
        index = self._multilingual
        if m_vec is None or not ids or index is None:
            return {}
        inside = [i for i in ids if i < index.layout.rows]
        return dict(zip(inside, (index.vectors.read(inside) @ m_vec[0]).tolist()))

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

    def arms(
        self,
        asked: Question,
        depth: int,
        q_vec: np.ndarray | None,
        keep: Kept | None = None,
        m_vec: np.ndarray | None = None,
    ) -> Arms:
        """Every ranking of one search, each with what its scores are measured against. The lexical arms run
        in every mode: in semantic search they rank nothing but still give each passage its lexical evidence,
        so that its score means what it means in the other modes. `keep` limits them all to what filters
        keep; `m_vec`, the question in the multilingual arm, runs that arm."""
        lexical = self.lexical_arms(asked, depth, keep)
        dense = self.dense(q_vec, depth, keep) if q_vec is not None else None
        multilingual = None
        index = self.multilingual_index() if m_vec is not None else None
        crossing = cosines = names = None
        calibration = self.calibration.multilingual
        if index is not None and m_vec is not None and calibration is not None:
            with self._dense_lock:
                found = index.search(m_vec, depth, None if keep is None else keep.chunks)
            same, crossing, names = self._split_by_script(asked, found, calibration.name_bonus)
            cosines = dict(found)
            multilingual = same if asked.language in WIDE_LANGUAGES else None
        weight = calibration.weight if calibration else 0.0
        return Arms(lexical, dense, multilingual, weight, crossing, cosines, names)

    def _split_by_script(
        self, asked: Question, ranking: Ranking, name_bonus: float = 0.0
    ) -> tuple[Ranking, Ranking, dict[int, NamePairs]]:
        """The multilingual arm's ranking split in two: passages in the question's script (Hangul/CJK or not),
        which it ranks beside the other arms, and passages in the other, which no other arm can see and which
        join the answer by their calibrated probability (`rag.search.call`). Those gain `name_bonus` on their
        cosine for each name they share with the question across scripts (`NameBridge`), and are ordered
        again: the encoder reads names poorly."""
        names: dict[int, NamePairs] = {}
        if not ranking:
            return [], [], names
        with self.store.read() as reader:
            rows = {row.id: row for row in reader.passage_rows([cid for cid, _ in ranking])}
        texts = {cid: row.text for cid, row in rows.items()}
        wide = asked.language in WIDE_LANGUAGES
        same: Ranking = []
        other: Ranking = []
        for cid, score in ranking:
            (same if (language_of(texts.get(cid, "")) in WIDE_LANGUAGES) == wide else other).append((cid, score))
        if name_bonus and other:
            bridge = NameBridge(asked.text)
            if bridge:
                # Read with its article's title: news names someone in full once, then by surname ("Kim's
                # choice of Sejong"), and the title names whom the article is about.
                shared = [
                    bridge.shared(f"{rows[cid].title}\n{rows[cid].text}" if cid in rows else "") for cid, _ in other
                ]
                names.update(
                    (cid, tuple(sorted(set(found.values())))) for (cid, _), found in zip(other, shared) if found
                )
                other = _credit_names(other, shared, name_bonus)
        return same, other, names

    def dated_span(self, reader: Reader) -> tuple[date, date] | None:
        """The oldest and newest publication dates in the collection, as of the reader's commit; None when no
        article has a date."""
        with self._refresh_lock:
            self._chunk_filter.follow(reader, reader.seq())
            documents = self._chunk_filter.documents
            assert documents is not None
            days = documents.days[documents.days > 0]
        if not len(days):
            return None
        first, last = int(days.min()), int(days.max())
        return date(first // 10000, first // 100 % 100, first % 100), date(last // 10000, last // 100 % 100, last % 100)

    def site_names(self, reader: Reader) -> list[str]:
        """The publication names (as the articles give them) and web hosts the collection's articles carry."""
        with self._refresh_lock:
            self._chunk_filter.follow(reader, reader.seq())
            documents = self._chunk_filter.documents
            assert documents is not None
            hosts = set(documents.hosts.codes_of) - {""}
        return reader.sites(limit=1000) + sorted(hosts)

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

    def script_note(self, asked: Question, multilingual: bool = False) -> str | None:
        """One line for a question in Korean, Chinese or Japanese whose words no indexed passage holds in
        that script, searched without the multilingual arm: the default model cannot match such a question to
        English text, and a bare "not found" would not say why."""
        if multilingual or not asked.wide or self.lexical.holds_any(asked.bigrams, PLAIN):
            return None
        return (
            "No searched passage holds this question's Korean/Chinese/Japanese words (lines set apart as page "
            "furniture, such as link lists, are not searched), and this index was built without its multilingual "
            "vectors, which match a question to passages in another language: ask "
            "in the articles' language, or index the articles again with the multilingual arm on."
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


def _credit_names(ranking: Ranking, shared: list[dict[str, tuple[str, str]]], bonus: float) -> Ranking:
    """`ranking` with `bonus` added to each passage's cosine for each name it shares with the question, weighed
    by how few of the passages name it (a name every passage gives, as the seed articles give Lee Jae-myung,
    tells them apart no more than the encoder does), for MAX_NAMES_CREDITED names at most; ordered again."""
    total = len(ranking) + 1
    counts = Counter(name for names in shared for name in names)
    weight = {name: math.log(total / count) / math.log(total) for name, count in counts.items()}
    credited = [
        (cid, score + bonus * sum(sorted((weight[n] for n in names), reverse=True)[:MAX_NAMES_CREDITED]))
        for (cid, score), names in zip(ranking, shared)
    ]
    return sorted(credited, key=lambda item: -item[1])


def _follow(
    index: DenseIndex,
    seq: int,
    reader: Reader,
    layout: DenseLayout | None,
    order: np.ndarray | None = None,
) -> DenseIndex | None:
    """`index` (as of commit `seq`) brought to the reader's commit: deleted chunks removed and new ones added;
    None (rebuilt on next use) when its files changed or the deletions are no longer all remembered."""
    removed = reader.tombstones_since(seq)
    if layout is None or removed is None:
        return None
    if (layout.vector_file, layout.centroid_file) != (index.layout.vector_file, index.layout.centroid_file):
        return None
    added = reader.chunks_since(index.layout.rows)
    index.remove(removed)
    index.extend(layout, added, order)
    return index
