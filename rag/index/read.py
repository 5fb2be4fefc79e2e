"""Reading the index database: every read statement, each handing out typed rows (`rag.index.rows`).

`rag.index.store` opens the database; the schema is `rag.index.schema`'s; this module is the SQL of reading.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rag.errors import IndexCorruptError, IndexFormatError, IndexNotFoundError, ModelMismatchError
from rag.index.rows import (
    ArticleFacts,
    ChunkHit,
    ClusterMember,
    Counts,
    DocumentKeys,
    DocumentSummary,
    FileStat,
    IndexMeta,
    KnownDocument,
    Manifest,
    Neighbour,
    PassageRow,
    StoredVector,
    TextTwin,
)
from rag.index.schema import CRAWLED_SINCE, DB_NAME, FIRST_READABLE, LEGACY_POINTER, newest_format
from rag.index.vectors import DenseLayout
from rag.records import Copy, Document

# What filters match of a document: (id, dup_of, source, file, site, url, published). Kept a plain tuple: read
# for every document at once, a NamedTuple per row would cost a second at a million documents.
DocumentFieldsRow = tuple[int, int | None, str, str, str | None, str | None, str | None]


def connect(path: Path) -> sqlite3.Connection:
    """The writer's connection: WAL mode (which a new database gets here), every commit synced. In a folder that
    cannot be written, the immutable read-only connection of `connect_for_reading`."""
    if not os.access(path.parent, os.W_OK):
        return _snapshot(path)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def connect_for_reading(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A reader's connection, and whether it is an immutable snapshot. A reader never needs free space: the
    database is in WAL mode already (its writer set it), and where SQLite cannot make the WAL's side files (a
    full disk, a read-only mount, a copied snapshot on read-only media) the database file itself is read, which
    holds every commit, since each writer checkpoints the WAL into it before it lets go. Such a snapshot does
    not see later commits: `rag.index.store.Store` tries a live connection again at its next read."""
    if not os.access(path.parent, os.W_OK):
        return _snapshot(path), True
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL: makes its side files
    except sqlite3.OperationalError as exc:
        conn.close()
        wal = path.with_name(path.name + "-wal")
        if not any(reason in str(exc) for reason in _NO_ROOM):
            raise IndexCorruptError(f"cannot read the index in {path.parent}: {exc}") from exc
        if wal.exists() and wal.stat().st_size:  # commits the database file does not hold yet
            raise IndexCorruptError(
                f"cannot read the index in {path.parent}: {exc}; free some space, then retry"
            ) from exc
        return _snapshot(path), True
    return conn, False


# How SQLite says it could not make the WAL's side files (no space, a read-only place, no permission).
_NO_ROOM = ("disk I/O error", "database or disk is full", "unable to open database file", "readonly database")


def _snapshot(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise no_index_error(path.parent)
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False, isolation_level=None)


def is_legacy(index_dir: Path) -> bool:
    """An index written by a version before format 3 (whole generations behind a CURRENT pointer)."""
    return (index_dir / LEGACY_POINTER).exists() and not (index_dir / DB_NAME).exists()


def check_model(built_with: str, model_name: str, index_dir: Path) -> None:
    if built_with != model_name:
        raise ModelMismatchError(
            f"the index in {index_dir} was built with model '{built_with}', not '{model_name}': "
            f"pass --model {built_with}, or rebuild into another --index directory"
        )


def no_index_error(index_dir: Path) -> IndexNotFoundError:
    return IndexNotFoundError(f"no index in {index_dir}: build one with `rag index [PATH ...] --index {index_dir}`")


_PASSAGE_ROWS = (
    'SELECT c.id, d.text, c.start, c."end", d.title, d.id, d.source, d.file, d.site, d.url, d.published '
    "FROM chunks c JOIN documents d ON d.id = c.doc_id"
)


class Reader:
    """Read statements over one connection; inside `Store.read()` they all see one committed state."""

    def __init__(self, conn: sqlite3.Connection, index_dir: Path, format_version: int | None = None) -> None:
        """`format_version`: the index's format when the caller knows it (a store knows it from its manifest),
        which tells which columns there are without asking the database at each search."""
        self.conn = conn
        self.index_dir = index_dir
        self._crawled = None if format_version is None else format_version >= CRAWLED_SINCE

    def crawled_column(self) -> str:
        """`d.crawled`, or NULL in an index of format 3, which has no such column until its next write."""
        if self._crawled is None:
            self._crawled = any(row[1] == "crawled" for row in self.conn.execute("PRAGMA table_info(documents)"))
        return "d.crawled" if self._crawled else "NULL"

    # --- metadata --------------------------------------------------------------------------------------
    def meta(self) -> IndexMeta:
        try:
            return IndexMeta.of(dict(self.conn.execute("SELECT key, value FROM meta")))
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"{self.index_dir}: unreadable index ({exc}); rebuild with `rag index`") from exc

    def seq(self) -> int:
        """The number of the newest commit (0 before the first): what a reader checks before each question."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        return int(row[0]) if row else 0

    def manifest(self) -> Manifest:
        meta = self.meta()
        if not meta.committed or meta.model is None:
            raise no_index_error(self.index_dir)
        if not FIRST_READABLE <= meta.format_version <= newest_format():
            raise IndexFormatError(
                f"{self.index_dir} has index format {meta.format_version}, this version reads formats "
                f"{FIRST_READABLE} to {newest_format()}: run `rag index` with the matching version of Verbatim"
            )
        return Manifest(
            format_version=meta.format_version,
            model=meta.model,
            dimension=meta.dimension,
            documents=meta.documents,
            chunks=meta.chunks,
            updated=meta.updated,
            seq=meta.seq,
            package_version=meta.package_version,
            multilingual=meta.multilingual,
            wide_passages=meta.wide_chunks,
            precision=meta.precision,
        )

    def layout(self) -> DenseLayout:
        meta = self.meta()
        ivf = meta.ivf_files
        return DenseLayout(
            vector_file=self.index_dir / meta.vector_file,
            rows=meta.vector_rows,
            dimension=meta.dimension,
            centroid_file=self.index_dir / ivf[0] if ivf else None,
            list_file=self.index_dir / ivf[1] if ivf else None,
        )

    def multilingual_layout(self, dimension: int) -> DenseLayout | None:
        """Where the multilingual arm's vectors are (searched exactly: it serves the questions the first arm
        cannot), or None when the index holds none."""
        meta = self.meta()
        if not meta.multilingual_file:
            return None
        return DenseLayout(self.index_dir / meta.multilingual_file, meta.multilingual_rows, dimension)

    # --- chunks and documents --------------------------------------------------------------------------
    def live_chunk_ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self.conn.execute("SELECT id FROM chunks")), dtype=np.int64)

    def chunk_sources(self) -> dict[int, str]:
        """Every chunk's document source (benchmarks score rankings of documents)."""
        return dict(self.conn.execute("SELECT c.id, d.source FROM chunks c JOIN documents d ON d.id = c.doc_id"))

    def passages(self) -> Iterator[PassageRow]:
        """Every chunk as the lexical index holds it: what it is rebuilt from, and what benchmarks feed other
        systems."""
        for row in self.conn.execute(_PASSAGE_ROWS):
            yield PassageRow.of(row)

    def counts(self) -> Counts:
        row = self.conn.execute("SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)").fetchone()
        return Counts(*row)

    def passage_rows(self, ids: Sequence[int]) -> list[PassageRow]:
        """The given chunks that exist, as the lexical index holds them."""
        rows = self.conn.execute(
            f"{_PASSAGE_ROWS} WHERE c.id IN (SELECT value FROM json_each(?))", (json.dumps([int(i) for i in ids]),)
        )
        return [PassageRow.of(row) for row in rows]

    def chunks_since(self, rows: int) -> np.ndarray:
        """Live chunks whose vectors were appended at or after row `rows`."""
        cur = self.conn.execute("SELECT id FROM chunks WHERE id >= ?", (rows,))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def tombstones_since(self, seq: int) -> list[int] | None:
        """Chunks deleted by commits after `seq`, or None when they are no longer all remembered."""
        oldest = self.meta().tombstones_from
        if oldest is not None and oldest > seq:
            return None
        return [r[0] for r in self.conn.execute("SELECT chunk_id FROM tombstones WHERE seq > ?", (seq,))]

    def chunk_hits(self, ids: Sequence[int]) -> dict[int, ChunkHit]:
        rows = self.conn.execute(
            'SELECT c.id, c.doc_id, d.title, d.source, d.url, c.start, c."end", d.published, d.author, d.pages, '
            f"d.cluster, {self.crawled_column()} FROM chunks c JOIN documents d ON d.id = c.doc_id "
            "WHERE c.id IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in ids]),),
        ).fetchall()
        return {
            r[0]: ChunkHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], tuple(json.loads(r[9])), r[10], r[11])
            for r in rows
        }

    def document_texts(self, doc_ids: Iterable[int]) -> dict[int, str]:
        rows = self.conn.execute(
            "SELECT id, text FROM documents WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(doc_ids)),)
        )
        return dict(rows.fetchall())

    def article_facts(self, doc_id: int) -> ArticleFacts:
        row = self.conn.execute("SELECT length(text), site FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return ArticleFacts(int(row[0]), row[1]) if row else ArticleFacts(0, None)

    def document(self, doc_id: int) -> Document | None:
        """A document as the index stores it (segments and pages decoded), or None when there is no such id."""
        row = self.conn.execute(
            "SELECT source, text, title, url, published, content_hash, author, site, segments, pages, "
            f"{self.crawled_column()} FROM documents d WHERE id = ?",
            (doc_id,),
        ).fetchone()
        if row is None:
            return None
        source, text, title, url, published, content_hash, author, site, segments, pages, crawled = row
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
            crawled=crawled,
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

    def lacking(self, field: str, limit: int) -> tuple[int, list[str]]:
        """How many documents lack `field` ("published", or "site": neither a publication name nor a web
        address to take one from), and the sources of the first `limit`."""
        where = {"published": "coalesce(published, '') = ''", "site": "coalesce(site, '') || coalesce(url, '') = ''"}[
            field
        ]
        count = self.conn.execute(f"SELECT count(*) FROM documents WHERE {where}").fetchone()[0]
        rows = self.conn.execute(f"SELECT source FROM documents WHERE {where} ORDER BY file, id LIMIT ?", (limit,))
        return count, [r[0] for r in rows]

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

    def known_documents_named(self, keys: Iterable[tuple[str, str]]) -> list[KnownDocument]:
        """The stored documents among (root, source) `keys`: a batch's lookups, whatever the index's size."""
        rows = self.conn.execute(
            "SELECT d.id, d.root, d.source, d.file, d.content_hash FROM json_each(?) k "
            "JOIN documents d ON d.root = json_extract(k.value, '$[0]') AND d.source = json_extract(k.value, '$[1]')",
            (json.dumps([list(k) for k in keys]),),
        )
        return [KnownDocument(*r) for r in rows]

    def known_documents_of_file(self, root: str, file: str) -> list[KnownDocument]:
        rows = self.conn.execute(
            "SELECT id, root, source, file, content_hash FROM documents WHERE root = ? AND file = ?", (root, file)
        )
        return [KnownDocument(*r) for r in rows]

    def file_stats(self) -> dict[tuple[str, str], FileStat]:
        """What each (root, file) was when it was last read."""
        rows = self.conn.execute("SELECT root, file, size, mtime_ns FROM files")
        return {(r[0], r[1]): FileStat(r[2], r[3]) for r in rows}

    # --- search ----------------------------------------------------------------------------------------
    def document_fields(self) -> list[DocumentFieldsRow]:
        """What filters match of every document (`DocumentFieldsRow`)."""
        return self.conn.execute("SELECT id, dup_of, source, file, site, url, published FROM documents").fetchall()

    def chunk_owners(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, their documents) of the live chunks at or after row `rows`."""
        pairs = np.array(self.conn.execute("SELECT id, doc_id FROM chunks WHERE id >= ?", (rows,)).fetchall())
        if not len(pairs):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)

    def copy_holders(self) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT dup_of FROM documents WHERE dup_of IS NOT NULL")}

    def shared_clusters(self) -> set[int]:
        rows = self.conn.execute("SELECT cluster FROM documents WHERE cluster != id GROUP BY cluster")
        return {r[0] for r in rows}

    def copies(self, doc_id: int, cluster: int) -> list[Copy]:
        """Other documents holding the same story: exact copies first."""
        rows = self.conn.execute(
            "SELECT source, title, url, dup_of = ? FROM documents WHERE id != ? AND (dup_of = ? OR cluster = ?) "
            "ORDER BY dup_of = ? DESC, source",
            (doc_id, doc_id, doc_id, cluster, doc_id),
        ).fetchall()
        return [Copy(source=r[0], title=r[1], url=r[2], exact=bool(r[3])) for r in rows]

    # --- duplicates ------------------------------------------------------------------------------------
    def documents_with_text_hash(self, text_hash: str) -> list[TextTwin]:
        """Every document with this text fingerprint, by id."""
        rows = self.conn.execute(
            "SELECT d.id, d.dup_of, EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id) FROM documents d "
            "WHERE d.text_hash = ? ORDER BY d.id",
            (text_hash,),
        )
        return [TextTwin(r[0], r[1], bool(r[2])) for r in rows]

    def lsh_neighbours(self, keys: Sequence[int], doc_id: int, per_key: int) -> list[Neighbour]:
        """Other documents sharing an LSH bucket with these keys: the `per_key` most
        recent of each bucket, so that a bucket every templated record falls into costs the same at a
        thousand members as at a million."""
        ids: set[int] = set()
        for key in keys:
            rows = self.conn.execute(
                "SELECT doc_id FROM lsh WHERE key = ? AND doc_id != ? ORDER BY doc_id DESC LIMIT ?",
                (key, doc_id, per_key),
            )
            ids.update(r[0] for r in rows)
        rows = self.conn.execute(
            "SELECT id, minhash, cluster FROM documents WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(ids)),),
        )
        return [Neighbour(*r) for r in rows]

    def cluster_members(self, cluster: int) -> list[ClusterMember]:
        rows = self.conn.execute("SELECT id, minhash FROM documents WHERE cluster = ?", (cluster,))
        return [ClusterMember(*r) for r in rows]

    def document_keys(self, doc_id: int) -> DocumentKeys:
        """The duplicate-finding keys of a stored document."""
        row = self.conn.execute("SELECT text_hash, minhash, cluster FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise self._missing(doc_id)
        return DocumentKeys(*row)

    def stored_document(self, doc_id: int) -> Document:
        """`document` of an id the caller read from this index in the same transaction."""
        document = self.document(doc_id)
        if document is None:
            raise self._missing(doc_id)
        return document

    def _missing(self, doc_id: int) -> IndexCorruptError:
        return IndexCorruptError(
            f"{self.index_dir}: document {doc_id} is named but not stored; rebuild with `rag index`"
        )

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

    def cache_keys(self) -> list[bytes]:
        """Every model input the index holds a vector for (what a cluster's workers need not embed again)."""
        return [row[0] for row in self.conn.execute("SELECT input_hash FROM chunks")]

    def chunk_digests(self, doc_id: int) -> list[StoredVector]:
        rows = self.conn.execute("SELECT input_hash, id FROM chunks WHERE doc_id = ?", (doc_id,))
        return [StoredVector(*r) for r in rows]
