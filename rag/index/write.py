"""Writing the index database: the one writer's statements, the vector appends and the IVF upkeep.

`rag.index.store.open_writer` gives the writer its transaction and commits it; this module is the SQL of writing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import faiss
import numpy as np

from rag.index.crash import crash_point
from rag.index.lexical import LexicalWriter
from rag.index.read import Reader
from rag.index.rows import FileStat, IndexMeta, PassageRow
from rag.index.schema import TOMBSTONES_KEPT, newest_format, package_version
from rag.index.vectors import (
    ANN_MIN_ROWS,
    ANN_RETRAIN_GROWTH,
    READ_ROWS,
    TRAIN_POINTS_PER_LIST,
    ListFile,
    VectorFile,
    assign,
    lists_for,
    train_centroids,
)
from rag.records import Chunk, Document
from rag.text import WIDE_LANGUAGES, language_of

MultilingualEncode = Callable[[Sequence[str]], np.ndarray]  # texts -> unit rows (`rag.models.multilingual`)
# Stored passages -> (each one's vector cache key, its vector): how a change of precision embeds them again.
Reembed = Callable[[Sequence[PassageRow]], tuple[list[bytes], np.ndarray]]
BACKFILL_ROWS = 4096  # chunks encoded per step when a collection gains the multilingual arm or a precision


@dataclass(frozen=True)
class NewChunk:
    """A chunk to store, with its vector cache key (a hash of the model and of what the model read)."""

    chunk: Chunk
    digest: bytes


class Writer:
    """The one writer of an index: every change of one run in one transaction (see `open_writer`). Its
    `reader` reads inside that transaction, so it sees what the writer has written so far."""

    def __init__(
        self, conn: sqlite3.Connection, index_dir: Path, model: str, dimension: int, lexical: LexicalWriter
    ) -> None:
        self.conn = conn
        self.index_dir = index_dir
        self.reader = Reader(conn, index_dir)
        self.lexical = lexical
        self.model = model
        self.dimension = dimension
        self.meta = meta = self.reader.meta()
        self.seq = meta.seq + 1
        self.vector_name = meta.vector_file
        self.rows = meta.vector_rows  # the next chunk id
        self.flushed_rows = self.rows
        self.vectors = VectorFile(index_dir / self.vector_name, dimension)
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        # With an IVF index, each appended row gets its list at once, so that opening the index assigns nothing.
        self.ivf: tuple[faiss.Index, ListFile] | None = None
        if meta.ivf_files is not None:
            centroids, lists = meta.ivf_files
            self.ivf = faiss.read_index(str(index_dir / centroids)), ListFile(index_dir / lists)
        # The multilingual arm as the index has it until `use_multilingual` decides for this commit: its file's
        # name (None: an index written before the arm, "": turned off), the encoder and the file once decided.
        self.multilingual_name = meta.multilingual_file
        self.multilingual: MultilingualEncode | None = None
        self.multilingual_vectors: VectorFile | None = None
        self.multilingual_flushed = 0
        self.multilingual_pending: list[np.ndarray] = []
        self.wide_chunks = meta.wide_chunks
        self.precision = meta.precision  # set for this commit by `use_precision`

    # --- documents -------------------------------------------------------------------------------------
    def insert_document(self, root: str, file: str, doc: Document, text_hash: str, signature: bytes) -> int:
        cur = self.conn.execute(
            "INSERT INTO documents (root, source, file, content_hash, title, url, published, author, site, crawled, "
            "text, segments, pages, text_hash, minhash, cluster, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (root, doc.source, file, *_doc_values(doc), text_hash, signature, time.time()),
        )
        assert cur.lastrowid is not None  # an INSERT's
        doc_id = cur.lastrowid
        self.conn.execute("UPDATE documents SET cluster = id WHERE id = ?", (doc_id,))
        return doc_id

    def update_document(self, doc_id: int, file: str, doc: Document, text_hash: str, signature: bytes) -> None:
        self.conn.execute(
            "UPDATE documents SET file = ?, content_hash = ?, title = ?, url = ?, published = ?, author = ?, "
            "site = ?, crawled = ?, text = ?, segments = ?, pages = ?, text_hash = ?, minhash = ?, dup_of = NULL, "
            "cluster = id, indexed_at = ? WHERE id = ?",
            (file, *_doc_values(doc), text_hash, signature, time.time(), doc_id),
        )

    def delete_document(self, doc_id: int) -> None:
        self.conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def set_dup_of(self, doc_id: int, dup_of: int | None) -> None:
        self.conn.execute("UPDATE documents SET dup_of = ? WHERE id = ?", (dup_of, doc_id))

    def set_cluster(self, doc_ids: Iterable[int], cluster: int) -> None:
        self.conn.executemany("UPDATE documents SET cluster = ? WHERE id = ?", [(cluster, d) for d in doc_ids])

    def merge_clusters(self, clusters: Iterable[int], into: int) -> None:
        """Move the members of `clusters` into cluster `into` (its own members are not rewritten)."""
        self.conn.execute(
            "UPDATE documents SET cluster = ? WHERE cluster IN (SELECT value FROM json_each(?)) AND cluster != ?",
            (into, json.dumps(list(clusters)), into),
        )

    def add_lsh(self, doc_id: int, keys: Sequence[int]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO lsh (key, doc_id) VALUES (?, ?)", [(k, doc_id) for k in keys])

    def remove_lsh(self, doc_id: int, keys: Sequence[int]) -> None:
        self.conn.executemany("DELETE FROM lsh WHERE key = ? AND doc_id = ?", [(k, doc_id) for k in keys])

    def record_files(self, stats: dict[tuple[str, str], FileStat]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO files (root, file, size, mtime_ns) VALUES (?, ?, ?, ?)",
            [(root, file, stat.size, stat.mtime_ns) for (root, file), stat in stats.items()],
        )

    def forget_files(self, keys: Iterable[tuple[str, str]]) -> None:
        self.conn.executemany("DELETE FROM files WHERE root = ? AND file = ?", keys)

    # --- chunks ----------------------------------------------------------------------------------------
    def delete_chunks(self, doc_id: int) -> None:
        """Remove a document's chunks, and their passages from the lexical index."""
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        if not ids:
            return
        if self.multilingual_name:
            self.wide_chunks -= _wide_count(row.text for row in self.reader.passage_rows(ids))
        self.lexical.delete(ids)
        self.conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self.conn.executemany(
            "INSERT OR REPLACE INTO tombstones (chunk_id, seq) VALUES (?, ?)", [(cid, self.seq) for cid in ids]
        )

    def add_chunks(
        self,
        doc_id: int,
        title: str,
        chunks: Sequence[NewChunk],
        vectors: np.ndarray,
        multilingual: np.ndarray | None = None,
    ) -> None:
        """Store a document's chunks in order; `vectors[i]` is the vector of `chunks[i]`, `multilingual[i]` its
        multilingual one when a worker computed it (else, with the arm on, the writer encodes the chunk)."""
        if self.multilingual_name:
            assert self.multilingual is not None, "use_multilingual comes before the run's chunks"
            texts = [c.chunk.text for c in chunks]
            rows = multilingual if multilingual is not None else self.multilingual(texts)
            self.multilingual_pending.append(np.asarray(rows, dtype=np.float32).reshape(len(chunks), -1))
            self.wide_chunks += _wide_count(texts)
        ids = range(self.rows, self.rows + len(chunks))
        self.conn.executemany(
            'INSERT INTO chunks (id, doc_id, ord, start, "end", n_tokens, input_hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
            [
                (cid, doc_id, n, c.chunk.start, c.chunk.end, c.chunk.n_tokens, c.digest)
                for n, (cid, c) in enumerate(zip(ids, chunks))
            ],
        )
        filed = self.conn.execute(
            "SELECT source, file, site, url, published FROM documents WHERE id = ?", (doc_id,)
        ).fetchone()
        self.lexical.add(PassageRow(cid, c.chunk.text, title, doc_id, *filed) for cid, c in zip(ids, chunks))
        self.rows += len(chunks)
        self.pending.append(np.asarray(vectors, dtype=np.float32))
        self.pending_rows += len(chunks)
        if self.pending_rows >= 65_536:
            self.flush_vectors()

    def read_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Vectors of stored chunks, also of those appended by this writer and not yet committed."""
        self.flush_vectors()
        return self.vectors.read(ids)

    def flush_vectors(self) -> None:
        if not self.pending:
            return
        block = np.concatenate(self.pending)
        self.vectors.append(self.flushed_rows, block)
        crash_point("vectors-appended")
        if self.ivf is not None:
            quantizer, lists = self.ivf
            lists.append(self.flushed_rows, assign(quantizer, block))
        self.flushed_rows += len(block)
        self.pending, self.pending_rows = [], 0
        self._flush_multilingual()

    def _flush_multilingual(self) -> None:
        if self.multilingual_vectors is None or not self.multilingual_pending:
            return
        block = np.concatenate(self.multilingual_pending)
        self.multilingual_vectors.append(self.multilingual_flushed, block)
        crash_point("multilingual-appended")
        self.multilingual_flushed += len(block)
        self.multilingual_pending = []

    # --- the model's precision ----------------------------------------------------------------------------
    def use_precision(self, precision: str, reembed: Reembed) -> int:
        """Record that this commit's vectors are of `precision`, before any chunk is added. When the stored ones
        are of another, every stored chunk is embedded again (`reembed`) into a new vector file (deleted
        chunks' rows are zero), its cache key replaced; the IVF index, trained on the old vectors, is trained
        again at commit. Returns how many passages were embedded."""
        assert self.rows == self.meta.vector_rows and not self.pending, "use_precision comes before the run's chunks"
        before, self.precision = self.meta.vector_precision, precision
        if before == precision or not self.rows:
            return 0
        self.vector_name = f"vectors-{self.seq:06d}.f16"
        self.vectors = VectorFile(self.index_dir / self.vector_name, self.dimension)
        self.ivf = None
        self.meta = replace(self.meta, centroid_file=None, list_file=None, ann_trained_rows=0)
        embedded = 0
        for start in range(0, self.rows, BACKFILL_ROWS):
            stop = min(start + BACKFILL_ROWS, self.rows)
            block = np.zeros((stop - start, self.dimension), dtype=np.float32)
            live = self.reader.passage_rows(range(start, stop))
            if live:
                digests, vectors = reembed(live)
                block[[row.id - start for row in live]] = vectors
                self.conn.executemany(
                    "UPDATE chunks SET input_hash = ? WHERE id = ?", zip(digests, (row.id for row in live))
                )
                embedded += len(live)
            self.vectors.append(start, block)
            crash_point("vectors-appended")
        return embedded

    # --- the multilingual arm ----------------------------------------------------------------------------
    def use_multilingual(self, encode: MultilingualEncode | None, dimension: int = 0) -> None:
        """Turn the multilingual arm on (`encode`) or off (None) from this commit on, before any chunk is added.
        Its file holds a row per chunk id like the first vector file; a collection that lacks rows (built
        before the arm, or with it off) has its stored chunks encoded now, their MiniLM vectors untouched."""
        assert self.rows == self.meta.vector_rows, "use_multilingual comes before the run's chunks"
        self.multilingual = encode
        if encode is None:
            self.multilingual_name, self.multilingual_vectors, self.wide_chunks = "", None, 0
            return
        meta = self.meta
        name, done = meta.multilingual_file, meta.multilingual_rows
        if not name:
            name, done, self.wide_chunks = f"multilingual-{self.seq:06d}.f16", 0, 0
        self.multilingual_name = name
        self.multilingual_vectors = VectorFile(self.index_dir / name, dimension)
        self.multilingual_flushed = done
        for start in range(done, self.rows, BACKFILL_ROWS):
            stop = min(start + BACKFILL_ROWS, self.rows)
            block = np.zeros((stop - start, dimension), dtype=np.float32)  # deleted chunks: zero rows
            live = self.reader.passage_rows(range(start, stop))
            if live:
                block[[row.id - start for row in live]] = encode([row.text for row in live])
                self.wide_chunks += _wide_count(row.text for row in live)
            self.multilingual_pending.append(block)
            self._flush_multilingual()

    def finish(self) -> None:
        """Make the appended vectors durable and record the new state in the transaction about to commit."""
        self.flush_vectors()
        counts = self.reader.counts()
        meta = self.meta
        if self.conn.execute("SELECT count(*) FROM tombstones").fetchone()[0] > TOMBSTONES_KEPT:
            self.conn.execute("DELETE FROM tombstones WHERE seq < ?", (self.seq,))
            meta = replace(meta, tombstones_from=self.seq)  # readers older than this reload whole
        meta = self._maintain_ann(meta, counts.chunks)
        self._write_meta(
            replace(
                meta,
                format_version=newest_format(),
                model=self.model,
                dimension=self.dimension,
                documents=counts.documents,
                chunks=counts.chunks,
                vector_file=self.vector_name,
                vector_rows=self.rows,
                multilingual_file=self.multilingual_name,
                multilingual_rows=self.rows if self.multilingual_name else 0,
                wide_chunks=self.wide_chunks if self.multilingual_name else 0,
                precision=self.precision,
                updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                seq=self.seq,
                package_version=package_version(),
            )
        )

    def _write_meta(self, meta: IndexMeta) -> None:
        self.conn.execute("DELETE FROM meta")
        self.conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.rows().items())
        self.meta = meta

    def _maintain_ann(self, meta: IndexMeta, live: int) -> IndexMeta:
        """Train IVF centroids when the collection crosses ANN_MIN_ROWS or has grown ANN_RETRAIN_GROWTH times
        since the last training; go back to exact search when it shrinks well below the threshold."""
        if self.ivf is not None and live < ANN_MIN_ROWS // 2:
            return replace(meta, centroid_file=None, list_file=None, ann_trained_rows=0)
        if live < ANN_MIN_ROWS or (self.ivf is not None and live < ANN_RETRAIN_GROWTH * meta.ann_trained_rows):
            return meta
        n_lists = lists_for(live)
        ids = self.reader.live_chunk_ids()
        rng = np.random.default_rng(self.seq)
        sample = np.sort(rng.choice(ids, size=min(len(ids), TRAIN_POINTS_PER_LIST * n_lists), replace=False))
        centroid_name, list_name = f"centroids-{self.seq:06d}.faiss", f"lists-{self.seq:06d}.i32"
        quantizer = train_centroids(self.vectors.read(sample), n_lists, self.index_dir / centroid_name)
        lists = [
            assign(quantizer, self.vectors.read_range(start, min(start + READ_ROWS, self.rows)).astype(np.float32))
            for start in range(0, self.rows, READ_ROWS)
        ]
        ListFile(self.index_dir / list_name).write(np.concatenate(lists))
        crash_point("ann-trained")
        return replace(meta, centroid_file=centroid_name, list_file=list_name, ann_trained_rows=live)


def _wide_count(texts: Iterable[str]) -> int:
    """How many of `texts` are in Korean, Chinese or Japanese."""
    return sum(1 for text in texts if language_of(text) in WIDE_LANGUAGES)


def _doc_values(doc: Document) -> tuple:
    return (
        doc.content_hash,
        doc.title,
        doc.url,
        doc.published,
        doc.author,
        doc.site,
        doc.crawled,
        doc.text,
        json.dumps(doc.segments),
        json.dumps(doc.pages),
    )
