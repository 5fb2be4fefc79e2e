"""The index on disk, and the only module that speaks SQL.

One SQLite database in WAL mode holds documents, chunks (offsets into their document, never a copy of the
text), the near-duplicate buckets and the index's metadata; one append-only float16 file holds the vectors
(`rag.vectors`); a tantivy index derived from the database serves the lexical arms (`rag.lexical_index`). A
write is one SQLite transaction: it touches only the rows of what changed, appends and fsyncs its vectors
first, commits tantivy (recoverably) and then SQLite with the new vector count, so a SIGKILL at any moment
leaves the previous or the new state and never a mix. One writer at a time (a lock file); readers never
wait for it and see whole commits only.

Callers get typed records (`ChunkHit`, `DocumentSummary`, ...) and never a cursor.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from rag.errors import IndexCorruptError, IndexFormatError, IndexNotFoundError, ModelMismatchError
from rag.lexical_index import LexicalIndex, LexicalWriter, clear_pending, pending_deletions
from rag.records import Chunk, Document
from rag.vectors import (
    ANN_MIN_ROWS,
    ANN_RETRAIN_GROWTH,
    READ_ROWS,
    TRAIN_POINTS_PER_LIST,
    DenseLayout,
    ListFile,
    VectorFile,
    assign,
    lists_for,
    train_centroids,
)

FORMAT_VERSION = 3  # 3: one database in place, vectors in an append-only file, contentless FTS5
DB_NAME = "rag.sqlite"
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
LEGACY_POINTER = "CURRENT"  # formats 1-2: whole-index generations named by this file
TITLE_WEIGHT = 1.0  # BM25 weight of the title column against 1.0 for the passage text
TOMBSTONES_KEPT = 100_000
CRASH_ENV = "VERBATIM_CRASH_AT"  # fault tests: the named write step at which the process kills itself

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    source TEXT NOT NULL,
    file TEXT NOT NULL,              -- the file the document came from (several articles may share one)
    content_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT,
    published TEXT,
    author TEXT,
    site TEXT,
    text TEXT NOT NULL,              -- the one stored copy of the text; chunks are offsets into it
    segments TEXT NOT NULL,          -- JSON [[start, end], ...]: the content ranges chunking reads
    pages TEXT NOT NULL,             -- JSON [offset, ...]: where each PDF page begins; [] otherwise
    text_hash TEXT NOT NULL,         -- rag.dedup.text_fingerprint
    minhash BLOB NOT NULL,           -- rag.dedup.minhash
    dup_of INTEGER,                  -- exact copy of this document, which holds the chunks
    cluster INTEGER NOT NULL,        -- near-duplicate cluster (smallest member id)
    indexed_at REAL NOT NULL,
    UNIQUE (root, source)
);
CREATE INDEX IF NOT EXISTS documents_text_hash ON documents(text_hash);
CREATE INDEX IF NOT EXISTS documents_cluster ON documents(cluster);
CREATE INDEX IF NOT EXISTS documents_dup_of ON documents(dup_of);
CREATE INDEX IF NOT EXISTS documents_published ON documents(published);
CREATE INDEX IF NOT EXISTS documents_file ON documents(root, file);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,          -- also the row of its vector in the vector file
    doc_id INTEGER NOT NULL,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    input_hash BLOB NOT NULL         -- 16 bytes of sha256(model + model input): the vector cache key
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_input_hash ON chunks(input_hash);
CREATE TABLE IF NOT EXISTS lsh (key INTEGER NOT NULL, doc_id INTEGER NOT NULL, PRIMARY KEY (key, doc_id))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    root TEXT NOT NULL, file TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (root, file)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (chunk_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Manifest:
    """What an index is: its format, model and size, as committed with its rows."""

    format_version: int
    model: str
    dimension: int
    documents: int
    chunks: int
    updated: str
    seq: int  # commits so far: a reader compares it to know whether it is current

    def to_dict(self) -> dict:
        return {
            "format_version": self.format_version,
            "model": self.model,
            "dimension": self.dimension,
            "documents": self.documents,
            "chunks": self.chunks,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class ChunkHit:
    """A chunk with the attribution of its document, as search needs it to build a passage."""

    id: int
    doc_id: int
    title: str
    source: str
    url: str | None
    start: int
    end: int
    published: str | None
    author: str | None
    pages: tuple[int, ...]
    cluster: int


@dataclass(frozen=True)
class DocumentSummary:
    """One line of the index's table of contents."""

    doc_id: int
    title: str
    source: str
    url: str | None
    published: str | None
    author: str | None
    site: str | None
    copy_of: str | None
    chunks: int

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "url": self.url,
            "published": self.published,
            "author": self.author,
            "site": self.site,
            "copy_of": self.copy_of,
            "chunks": self.chunks,
        }


@dataclass(frozen=True)
class KnownDocument:
    id: int
    root: str
    source: str
    file: str
    content_hash: str


@dataclass(frozen=True)
class DocFilter:
    """Which documents a search may use: a file, glob or site, and an inclusive ISO date range."""

    source: str | None = None
    since: str | None = None
    until: str | None = None

    def active(self) -> bool:
        return bool(self.source or self.since or self.until)


def crash_point(step: str) -> None:
    """SIGKILL this process at a named step of a write when the fault tests ask for it ($VERBATIM_CRASH_AT), so
    every step's crash is reproducible instead of hoped for at a random moment."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def is_legacy(index_dir: Path) -> bool:
    """An index written by a version before format 3 (whole generations behind a CURRENT pointer)."""
    return (index_dir / LEGACY_POINTER).exists() and not (index_dir / DB_NAME).exists()


def check_model(built_with: str, model_name: str, index_dir: Path) -> None:
    if built_with != model_name:
        raise ModelMismatchError(
            f"the index in {index_dir} was built with model '{built_with}', not '{model_name}': "
            f"pass --model {built_with}, or rebuild into another --index directory"
        )


def _no_index(index_dir: Path) -> IndexNotFoundError:
    return IndexNotFoundError(f"no index in {index_dir}: build one with `rag index [PATH ...] --index {index_dir}`")


def read_manifest(index_dir: Path) -> Manifest:
    """The committed manifest of the index in `index_dir`, without opening it for search."""
    if is_legacy(index_dir):
        raise IndexFormatError(
            f"{index_dir} was built by an older version of Verbatim (format 2, now {FORMAT_VERSION}): "
            "run `rag index` to upgrade it (vectors are kept, nothing is embedded again)"
        )
    if not (index_dir / DB_NAME).exists():
        raise _no_index(index_dir)
    conn = connect(index_dir / DB_NAME)
    try:
        return Reader(conn, index_dir).manifest()
    finally:
        conn.close()


class Reader:
    """Read statements over one connection; inside `Store.read()` they all see one committed state."""

    def __init__(self, conn: sqlite3.Connection, index_dir: Path) -> None:
        self.conn = conn
        self.index_dir = index_dir

    # --- metadata --------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        try:
            return dict(self.conn.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"{self.index_dir}: unreadable index ({exc}); rebuild with `rag index`") from exc

    def manifest(self) -> Manifest:
        meta = self.meta()
        if not meta:
            raise _no_index(self.index_dir)
        if int(meta.get("format_version", 0)) != FORMAT_VERSION:
            raise IndexFormatError(
                f"{self.index_dir} has index format {meta.get('format_version')}, this version reads "
                f"{FORMAT_VERSION}: run `rag index` with the matching version of Verbatim"
            )
        return Manifest(
            format_version=FORMAT_VERSION,
            model=meta["model"],
            dimension=int(meta["dimension"]),
            documents=int(meta["documents"]),
            chunks=int(meta["chunks"]),
            updated=meta["updated"],
            seq=int(meta["seq"]),
        )

    def layout(self) -> DenseLayout:
        meta = self.meta()
        centroids = meta.get("centroid_file")
        return DenseLayout(
            vector_file=self.index_dir / meta["vector_file"],
            rows=int(meta["vector_rows"]),
            dimension=int(meta["dimension"]),
            centroid_file=self.index_dir / centroids if centroids else None,
            list_file=self.index_dir / meta["list_file"] if centroids else None,
        )

    # --- chunks and documents --------------------------------------------------------------------------
    def live_chunk_ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self.conn.execute("SELECT id FROM chunks")), dtype=np.int64)

    def chunk_sources(self) -> dict[int, str]:
        """Every chunk's document source (benchmarks score rankings of documents)."""
        return dict(self.conn.execute("SELECT c.id, d.source FROM chunks c JOIN documents d ON d.id = c.doc_id"))

    def passages_for_lexical(self) -> Iterator[tuple[int, str, str]]:
        for cid, title, text in self.passages():
            yield cid, text, title

    def passages(self) -> Iterator[tuple[int, str, str]]:
        """(chunk id, document title, passage text) of every chunk, for benchmarks that feed other systems."""
        for cid, title, text, start, end in self.conn.execute(
            'SELECT c.id, d.title, d.text, c.start, c."end" FROM chunks c JOIN documents d ON d.id = c.doc_id'
        ):
            yield cid, title, text[start:end]

    def counts(self) -> dict[str, int]:
        documents, chunks = self.conn.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
        ).fetchone()
        return {"documents": documents, "chunks": chunks}

    def passage_rows(self, ids: Sequence[int]) -> list[tuple[int, str, str]]:
        """(chunk id, passage text, document title) of the given chunks that exist."""
        rows = self.conn.execute(
            'SELECT c.id, d.text, c.start, c."end", d.title FROM chunks c JOIN documents d ON d.id = c.doc_id '
            "WHERE c.id IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in ids]),),
        )
        return [(cid, text[start:end], title) for cid, text, start, end, title in rows]

    def chunks_since(self, rows: int) -> np.ndarray:
        """Live chunks whose vectors were appended at or after row `rows`."""
        cur = self.conn.execute("SELECT id FROM chunks WHERE id >= ?", (rows,))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def tombstones_since(self, seq: int) -> list[int] | None:
        """Chunks deleted by commits after `seq`, or None when they are no longer all remembered."""
        oldest = self.conn.execute("SELECT value FROM meta WHERE key = 'tombstones_from'").fetchone()
        if oldest is not None and int(oldest[0]) > seq:
            return None
        return [r[0] for r in self.conn.execute("SELECT chunk_id FROM tombstones WHERE seq > ?", (seq,))]

    def chunk_hits(self, ids: Sequence[int]) -> dict[int, ChunkHit]:
        rows = self.conn.execute(
            'SELECT c.id, c.doc_id, d.title, d.source, d.url, c.start, c."end", d.published, d.author, d.pages, '
            "d.cluster FROM chunks c JOIN documents d ON d.id = c.doc_id "
            "WHERE c.id IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in ids]),),
        ).fetchall()
        return {
            r[0]: ChunkHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], tuple(json.loads(r[9])), r[10])
            for r in rows
        }

    def document_texts(self, doc_ids: Iterable[int]) -> dict[int, str]:
        rows = self.conn.execute(
            "SELECT id, text FROM documents WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(doc_ids)),)
        )
        return dict(rows.fetchall())

    def document_length(self, doc_id: int) -> int:
        row = self.conn.execute("SELECT length(text) FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return int(row[0]) if row else 0

    def document(self, doc_id: int) -> Document | None:
        """A document as the index stores it (segments and pages decoded), or None when there is no such id."""
        row = self.conn.execute(
            "SELECT source, text, title, url, published, content_hash, author, site, segments, pages "
            "FROM documents WHERE id = ?",
            (doc_id,),
        ).fetchone()
        if row is None:
            return None
        source, text, title, url, published, content_hash, author, site, segments, pages = row
        return Document(
            source=source,
            text=text,
            title=title,
            url=url,
            published=published,
            segments=tuple(tuple(s) for s in json.loads(segments)),
            content_hash=content_hash,
            author=author,
            site=site,
            pages=tuple(json.loads(pages)),
        )

    def documents_page(self, offset: int = 0, limit: int = 50, search: str = "") -> list[DocumentSummary]:
        """One page of the table of contents, in file order; `search` keeps titles or sources containing it."""
        pattern = f"%{search.strip()}%" if search.strip() else None
        rows = self.conn.execute(
            "SELECT d.id, d.title, d.source, d.url, d.published, d.author, d.site, "
            "(SELECT source FROM documents p WHERE p.id = d.dup_of), "
            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id) FROM documents d "
            "WHERE ?1 IS NULL OR d.title LIKE ?1 OR d.source LIKE ?1 ORDER BY d.file, d.id LIMIT ?2 OFFSET ?3",
            (pattern, limit, offset),
        ).fetchall()
        return [DocumentSummary(*r) for r in rows]

    def count_documents(self, search: str = "") -> int:
        pattern = f"%{search.strip()}%" if search.strip() else None
        return self.conn.execute(
            "SELECT count(*) FROM documents WHERE ?1 IS NULL OR title LIKE ?1 OR source LIKE ?1", (pattern,)
        ).fetchone()[0]

    def sites(self, limit: int = 200) -> list[str]:
        rows = self.conn.execute(
            "SELECT site FROM documents WHERE site IS NOT NULL GROUP BY site ORDER BY count(*) DESC, site LIMIT ?",
            (limit,),
        )
        return sorted(r[0] for r in rows)

    def roots(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT root FROM documents")}

    def known_documents(self, roots: Iterable[str] | None = None) -> list[KnownDocument]:
        rows = self.conn.execute("SELECT id, root, source, file, content_hash FROM documents")
        wanted = set(roots) if roots is not None else None
        return [KnownDocument(*r) for r in rows if wanted is None or r[1] in wanted]

    def file_stats(self) -> dict[tuple[str, str], tuple[int, int]]:
        return {(r[0], r[1]): (r[2], r[3]) for r in self.conn.execute("SELECT root, file, size, mtime_ns FROM files")}

    # --- search ----------------------------------------------------------------------------------------
    def chunks_of_sources(self, sources: Sequence[str]) -> list[int]:
        rows = self.conn.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id "
            "WHERE d.source IN (SELECT value FROM json_each(?))",
            (json.dumps(list(sources)),),
        )
        return [r[0] for r in rows]

    def allowed_chunks(self, filters: DocFilter) -> list[int]:
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
        rows = self.conn.execute(
            "SELECT c.id FROM chunks c WHERE c.doc_id IN "
            f"(SELECT coalesce(d.dup_of, d.id) FROM documents d WHERE {' AND '.join(where)})",
            args,
        )
        return [r[0] for r in rows]

    def copy_holders(self) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT dup_of FROM documents WHERE dup_of IS NOT NULL")}

    def shared_clusters(self) -> set[int]:
        rows = self.conn.execute("SELECT cluster FROM documents WHERE cluster != id GROUP BY cluster")
        return {r[0] for r in rows}

    def copies(self, doc_id: int, cluster: int) -> list[tuple[str, str, str | None, bool]]:
        """(source, title, url, exact) of other documents holding the same story: exact copies first."""
        rows = self.conn.execute(
            "SELECT source, title, url, dup_of = ? FROM documents WHERE id != ? AND (dup_of = ? OR cluster = ?) "
            "ORDER BY dup_of = ? DESC, source",
            (doc_id, doc_id, doc_id, cluster, doc_id),
        ).fetchall()
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]

    # --- duplicates ------------------------------------------------------------------------------------
    def documents_with_text_hash(self, text_hash: str) -> list[tuple[int, int | None, bool]]:
        """(id, dup_of, has chunks) of every document with this text fingerprint, by id."""
        return self.conn.execute(
            "SELECT d.id, d.dup_of, EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id) FROM documents d "
            "WHERE d.text_hash = ? ORDER BY d.id",
            (text_hash,),
        ).fetchall()

    def lsh_neighbours(self, keys: Sequence[int], doc_id: int) -> list[tuple[int, bytes, int]]:
        """(id, minhash, cluster) of the other documents sharing an LSH bucket with these keys."""
        return self.conn.execute(
            "SELECT d.id, d.minhash, d.cluster FROM documents d WHERE d.id != ? AND d.id IN "
            "(SELECT doc_id FROM lsh WHERE key IN (SELECT value FROM json_each(?)))",
            (doc_id, json.dumps(list(keys))),
        ).fetchall()

    def cluster_members(self, cluster: int) -> list[tuple[int, bytes]]:
        return self.conn.execute("SELECT id, minhash FROM documents WHERE cluster = ?", (cluster,)).fetchall()

    def document_keys(self, doc_id: int) -> tuple[str, bytes, int] | None:
        """(text_hash, minhash, cluster) of a document."""
        return self.conn.execute("SELECT text_hash, minhash, cluster FROM documents WHERE id = ?", (doc_id,)).fetchone()

    # --- vectors ---------------------------------------------------------------------------------------
    def vector_ids(self, digests: Iterable[bytes]) -> dict[bytes, int]:
        """A chunk id holding the vector of each known model input (the vector cache)."""
        found: dict[bytes, int] = {}
        wanted = list(digests)
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            for digest, cid in self.conn.execute(
                f"SELECT input_hash, id FROM chunks WHERE input_hash IN ({marks})", part
            ):
                found[digest] = cid
        return found

    def chunk_digests(self, doc_id: int) -> list[tuple[bytes, int]]:
        return self.conn.execute("SELECT input_hash, id FROM chunks WHERE doc_id = ?", (doc_id,)).fetchall()


class Store:
    """An index directory opened for reading; each thread gets its own connection."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.manifest = read_manifest(index_dir)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.index_dir / DB_NAME)
        return conn

    @contextmanager
    def read(self) -> Iterator[Reader]:
        """One consistent committed state for every statement inside, while writers go on."""
        conn = self._conn()
        if conn.in_transaction:  # a read inside a read: the outer one already holds the snapshot
            yield Reader(conn, self.index_dir)
            return
        conn.execute("BEGIN")
        try:
            yield Reader(conn, self.index_dir)
        finally:
            conn.execute("COMMIT")

    def read_manifest(self) -> Manifest:
        with self.read() as r:
            return r.manifest()


@dataclass(frozen=True)
class NewChunk:
    """A chunk to store, with its vector (or the chunk id whose vector it shares)."""

    chunk: Chunk
    digest: bytes


class Writer(Reader):
    """The one writer of an index: every change of one run in one transaction (see `open_writer`)."""

    def __init__(
        self, conn: sqlite3.Connection, index_dir: Path, model: str, dimension: int, lexical: LexicalWriter
    ) -> None:
        super().__init__(conn, index_dir)
        self.lexical = lexical
        self.model = model
        self.dimension = dimension
        meta = self.meta()
        self.seq = int(meta.get("seq", 0)) + 1
        self.vector_name = meta.get("vector_file", "vectors-000001.f16")
        self.committed_rows = int(meta.get("vector_rows", 0))
        self.rows = self.committed_rows  # next chunk id
        self.vectors = VectorFile(index_dir / self.vector_name, dimension)
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.flushed_rows = self.committed_rows
        self.quantizer = None
        self.list_file = list_file_for(index_dir, meta)
        if meta.get("centroid_file") and self.list_file is not None:
            self.quantizer = faiss.read_index(str(index_dir / meta["centroid_file"]))

    # --- documents -------------------------------------------------------------------------------------
    def insert_document(self, root: str, file: str, doc: Document, text_hash: str, signature: bytes) -> int:
        cur = self.conn.execute(
            "INSERT INTO documents (root, source, file, content_hash, title, url, published, author, site, text, "
            "segments, pages, text_hash, minhash, cluster, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (root, doc.source, file, *_doc_values(doc), text_hash, signature, time.time()),
        )
        doc_id = int(cur.lastrowid)
        self.conn.execute("UPDATE documents SET cluster = id WHERE id = ?", (doc_id,))
        return doc_id

    def update_document(self, doc_id: int, file: str, doc: Document, text_hash: str, signature: bytes) -> None:
        self.conn.execute(
            "UPDATE documents SET file = ?, content_hash = ?, title = ?, url = ?, published = ?, author = ?, "
            "site = ?, text = ?, segments = ?, pages = ?, text_hash = ?, minhash = ?, dup_of = NULL, cluster = id, "
            "indexed_at = ? WHERE id = ?",
            (file, *_doc_values(doc), text_hash, signature, time.time(), doc_id),
        )

    def delete_document(self, doc_id: int) -> None:
        self.conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def set_dup_of(self, doc_id: int, dup_of: int | None) -> None:
        self.conn.execute("UPDATE documents SET dup_of = ? WHERE id = ?", (dup_of, doc_id))

    def set_cluster(self, doc_ids: Iterable[int], cluster: int) -> None:
        self.conn.executemany("UPDATE documents SET cluster = ? WHERE id = ?", [(cluster, d) for d in doc_ids])

    def merge_clusters(self, clusters: Iterable[int], into: int) -> None:
        self.conn.execute(
            "UPDATE documents SET cluster = ? WHERE cluster IN (SELECT value FROM json_each(?))",
            (into, json.dumps(list(clusters))),
        )

    def add_lsh(self, doc_id: int, keys: Sequence[int]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO lsh (key, doc_id) VALUES (?, ?)", [(k, doc_id) for k in keys])

    def remove_lsh(self, doc_id: int, keys: Sequence[int]) -> None:
        self.conn.executemany("DELETE FROM lsh WHERE key = ? AND doc_id = ?", [(k, doc_id) for k in keys])

    def record_files(self, stats: Iterable[tuple[str, str, int, int]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO files (root, file, size, mtime_ns) VALUES (?, ?, ?, ?)", stats)

    def forget_files(self, keys: Iterable[tuple[str, str]]) -> None:
        self.conn.executemany("DELETE FROM files WHERE root = ? AND file = ?", keys)

    # --- chunks ----------------------------------------------------------------------------------------
    def delete_chunks(self, doc_id: int) -> None:
        """Remove a document's chunks, and their passages from the lexical index."""
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        if not ids:
            return
        self.lexical.delete(ids)
        self.conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self.conn.executemany(
            "INSERT OR REPLACE INTO tombstones (chunk_id, seq) VALUES (?, ?)", [(cid, self.seq) for cid in ids]
        )

    def add_chunks(self, doc_id: int, title: str, chunks: Sequence[NewChunk], vectors: np.ndarray) -> None:
        """Store a document's chunks in order; `vectors[i]` is the vector of `chunks[i]`."""
        ids = range(self.rows, self.rows + len(chunks))
        self.conn.executemany(
            'INSERT INTO chunks (id, doc_id, ord, start, "end", n_tokens, input_hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
            [
                (cid, doc_id, n, c.chunk.start, c.chunk.end, c.chunk.n_tokens, c.digest)
                for n, (cid, c) in enumerate(zip(ids, chunks))
            ],
        )
        self.lexical.add((cid, c.chunk.text, title) for cid, c in zip(ids, chunks))
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
        if self.quantizer is not None and self.list_file is not None:
            self.list_file.append(self.flushed_rows, assign(self.quantizer, block))
        self.flushed_rows += len(block)
        self.pending, self.pending_rows = [], 0

    def set_meta(self, values: dict[str, object]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, str(v)) for k, v in values.items()]
        )

    def delete_meta(self, *keys: str) -> None:
        self.conn.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in keys])

    def finish(self) -> None:
        """Make the appended vectors durable and record the new state in the transaction about to commit."""
        self.flush_vectors()
        documents, chunks = self.conn.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
        ).fetchone()
        if self.conn.execute("SELECT count(*) FROM tombstones").fetchone()[0] > TOMBSTONES_KEPT:
            self.conn.execute("DELETE FROM tombstones WHERE seq < ?", (self.seq,))
            self.set_meta({"tombstones_from": self.seq})  # readers older than this reload whole
        self._maintain_ann(chunks)
        self.set_meta(
            {
                "format_version": FORMAT_VERSION,
                "model": self.model,
                "dimension": self.dimension,
                "documents": documents,
                "chunks": chunks,
                "vector_file": self.vector_name,
                "vector_rows": self.rows,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seq": self.seq,
            }
        )

    def _maintain_ann(self, live: int) -> None:
        """Train IVF centroids when the collection crosses ANN_MIN_ROWS or has grown ANN_RETRAIN_GROWTH times
        since the last training; go back to exact search when it shrinks well below the threshold."""
        meta = self.meta()
        trained = int(meta.get("ann_trained_rows", 0))
        if self.quantizer is not None and live < ANN_MIN_ROWS // 2:
            self.delete_meta("centroid_file", "list_file", "ann_trained_rows")
            return
        if live < ANN_MIN_ROWS or (self.quantizer is not None and live < ANN_RETRAIN_GROWTH * trained):
            return
        n_lists = lists_for(live)
        ids = self.live_chunk_ids()
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
        self.set_meta({"centroid_file": centroid_name, "list_file": list_name, "ann_trained_rows": live})


def _doc_values(doc: Document) -> tuple:
    return (
        doc.content_hash,
        doc.title,
        doc.url,
        doc.published,
        doc.author,
        doc.site,
        doc.text,
        json.dumps(doc.segments),
        json.dumps(doc.pages),
    )


@contextmanager
def open_writer(index_dir: Path, model: str, dimension: int) -> Iterator[Writer]:
    """The index's one writer, inside one transaction: committed when the block ends, rolled back (and the
    appended vector tail ignored) when it raises or the process dies."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK_NAME, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = connect(index_dir / DB_NAME)
        lexical = LexicalIndex(index_dir)
        lexical_writer = lexical.writer()
        try:
            conn.executescript(SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            if meta:
                check_model(meta["model"], model, index_dir)
            reader = Reader(conn, index_dir)
            _repair_lexical(reader, lexical, lexical_writer, int(meta.get("seq", 0)), int(meta.get("vector_rows", 0)))
            writer = Writer(conn, index_dir, model, dimension, lexical_writer)
            try:
                yield writer
                writer.finish()
                crash_point("before-commit")
                lexical_writer.commit(writer.seq)
                crash_point("lexical-committed")
                conn.execute("COMMIT")
                crash_point("after-commit")
            except BaseException:
                conn.execute("ROLLBACK")
                lexical_writer.rollback()
                raise
            clear_pending(lexical)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            write_manifest(index_dir, reader.manifest())
            remove_unused_files(index_dir, reader.meta())
        finally:
            lexical_writer.close()
            conn.close()


def recover(index_dir: Path) -> bool:
    """Repair what a killed writer left (a lexical index one commit ahead of SQLite), unless a writer is at
    work now, which repairs it itself. Returns False when the index folder cannot be written."""
    try:
        lock = open(index_dir / LOCK_NAME, "w")  # noqa: SIM115 - held for the whole repair below
    except OSError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        conn = connect(index_dir / DB_NAME)
        lexical = LexicalIndex(index_dir)
        writer = lexical.writer()
        try:
            conn.execute("BEGIN IMMEDIATE")
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            _repair_lexical(
                Reader(conn, index_dir), lexical, writer, int(meta.get("seq", 0)), int(meta.get("vector_rows", 0))
            )
            conn.execute("ROLLBACK")
        finally:
            writer.close()
            conn.close()
    return True


def _repair_lexical(reader: Reader, lexical: LexicalIndex, writer: LexicalWriter, seq: int, rows: int) -> None:
    """Bring the lexical index back to SQLite commit `seq` after a writer died between its two commits (or
    rebuild it from SQLite when it disagrees in any other way)."""
    found = lexical.committed_seq()
    if found == seq:
        return
    deleted = pending_deletions(lexical, found) if found == seq + 1 else None
    if deleted is not None:
        writer.delete_from(rows)
        writer.add((cid, text, title) for cid, text, title in reader.passage_rows(deleted))
    else:
        writer.clear()
        writer.add(reader.passages_for_lexical())
    writer.commit(seq)
    clear_pending(lexical)
    lexical.follow(seq)


def write_manifest(index_dir: Path, manifest: Manifest) -> None:
    """A readable copy of the committed metadata beside the database (the database stays the truth)."""
    tmp = index_dir / f".{MANIFEST_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    os.replace(tmp, index_dir / MANIFEST_NAME)


def remove_unused_files(index_dir: Path, meta: dict[str, str]) -> None:
    """Vector, list and centroid files no committed state names (an older layout, a killed writer's), and
    what a format-2 index left."""
    named = {meta.get(k) for k in ("vector_file", "list_file", "centroid_file")}
    for path in index_dir.iterdir():
        stale_data = path.suffix in (".f16", ".i32", ".faiss") and path.name not in named
        legacy = path.name == LEGACY_POINTER or path.name.startswith(("gen-", ".staging-", ".CURRENT"))
        if stale_data or legacy:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def legacy_vectors(index_dir: Path) -> dict[bytes, bytes]:
    """Vectors of a format-2 index by cache key, so upgrading it embeds nothing again."""
    name = (index_dir / LEGACY_POINTER).read_text().strip()
    path = index_dir / name / "rag.sqlite"
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT input_hash, vector FROM chunks").fetchall()
    except sqlite3.DatabaseError:
        return {}
    finally:
        conn.close()
    return {bytes.fromhex(h)[:16]: v for h, v in rows}


def list_file_for(index_dir: Path, meta: dict[str, str]) -> ListFile | None:
    name = meta.get("list_file")
    return ListFile(index_dir / name) if name else None
