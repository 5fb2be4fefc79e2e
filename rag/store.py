"""The on-disk index: SQLite (documents, chunks, vectors, FTS5) plus a FAISS file, as one generation.

Every write builds a complete new generation directory beside the live one and then swaps a one-line
`CURRENT` pointer with an atomic rename. A crash or Ctrl-C at any moment leaves either the old generation
or the new one in force, never a half-written mix. Readers open whatever `CURRENT` names.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from rag.errors import IndexCorruptError, IndexFormatError, IndexNotFoundError, ModelMismatchError
from rag.records import Document

FORMAT_VERSION = 2  # 2: per-article documents, author/site/pages, duplicates
SQLITE_NAME = "rag.sqlite"
FAISS_NAME = "vectors.faiss"
MANIFEST_NAME = "manifest.json"

SCHEMA = """
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
    text TEXT NOT NULL,
    segments TEXT NOT NULL,          -- JSON [[start, end], ...]: the content ranges chunking reads
    pages TEXT NOT NULL,             -- JSON [offset, ...]: where each PDF page begins; [] otherwise
    text_hash TEXT NOT NULL,         -- rag.dedup.text_fingerprint
    minhash BLOB NOT NULL,           -- rag.dedup.minhash
    dup_of INTEGER,                  -- exact copy of this document, which holds the chunks
    cluster INTEGER,                 -- near-duplicate cluster (smallest member id)
    indexed_at REAL NOT NULL,
    UNIQUE (root, source)
);
CREATE INDEX IF NOT EXISTS documents_text_hash ON documents(text_hash);
CREATE INDEX IF NOT EXISTS documents_cluster ON documents(cluster);
CREATE INDEX IF NOT EXISTS documents_dup_of ON documents(dup_of);
CREATE INDEX IF NOT EXISTS documents_published ON documents(published);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    input_hash TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_input_hash ON chunks(input_hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_words USING fts5(
    text, title, tokenize='porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_bigram USING fts5(
    text, title, tokenize='unicode61 remove_diacritics 2');
"""


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def stored_document(conn: sqlite3.Connection, doc_id: int) -> Document | None:
    """A document as the index stores it (segments and pages decoded), or None when there is no such id."""
    row = conn.execute(
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


def current_generation(index_dir: Path) -> Path | None:
    pointer = index_dir / "CURRENT"
    if not pointer.exists():
        return None
    name = pointer.read_text().strip()
    gen = index_dir / name
    if not name or not (gen / MANIFEST_NAME).exists():
        raise IndexCorruptError(f"{index_dir}: CURRENT names '{name}', which is missing; rebuild with `rag index`")
    return gen


def read_manifest(index_dir: Path) -> dict:
    gen = current_generation(index_dir)
    if gen is None:
        raise IndexNotFoundError(f"no index in {index_dir}: build one with `rag index [PATH ...] --index {index_dir}`")
    return json.loads((gen / MANIFEST_NAME).read_text())


def check_model(manifest: dict, model_name: str, index_dir: Path) -> None:
    if manifest["model"] != model_name:
        raise ModelMismatchError(
            f"the index in {index_dir} was built with model '{manifest['model']}', not '{model_name}': "
            f"pass --model {manifest['model']}, or rebuild into another --index directory"
        )


class Generation:
    """A readable snapshot: SQLite connection plus FAISS index, as named by CURRENT when opened."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        gen = current_generation(index_dir)
        if gen is None:
            raise IndexNotFoundError(
                f"no index in {index_dir}: build one with `rag index [PATH ...] --index {index_dir}`"
            )
        self.path = gen
        self.manifest = json.loads((gen / MANIFEST_NAME).read_text())
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{index_dir} was built by an older version of Verbatim (format {self.manifest.get('format_version')}, "
                f"now {FORMAT_VERSION}): run `rag index` to rebuild it"
            )
        try:
            self.db = connect(gen / SQLITE_NAME, readonly=True)
            self.faiss = faiss.read_index(str(gen / FAISS_NAME))
        except (sqlite3.Error, RuntimeError) as exc:
            raise IndexCorruptError(f"{gen}: unreadable index ({exc}); rebuild with `rag index`") from exc

    def close(self) -> None:
        self.db.close()


class GenerationWriter:
    """Copies the live generation, lets the caller change the copy, then publishes it atomically."""

    def __init__(self, index_dir: Path, model: str, dimension: int) -> None:
        self.index_dir = index_dir
        self.model = model
        self.dimension = dimension

    @contextmanager
    def open(self) -> Iterator[sqlite3.Connection]:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with open(self.index_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._remove_stale()
            live = current_generation(self.index_dir)
            reuse = live is not None
            if live is not None:
                manifest = json.loads((live / MANIFEST_NAME).read_text())
                check_model(manifest, self.model, self.index_dir)
                reuse = manifest.get("format_version") == FORMAT_VERSION  # an older format is rebuilt whole
            number = int(live.name.split("-")[1]) + 1 if live else 1
            staging = self.index_dir / f".staging-{number:06d}-{os.getpid()}"
            staging.mkdir()
            try:
                conn = connect(staging / SQLITE_NAME)
                if reuse:
                    with connect(live / SQLITE_NAME, readonly=True) as src:
                        src.backup(conn)
                conn.executescript(SCHEMA)
                with conn:
                    yield conn
                self._write_faiss(conn, staging)
                self._write_manifest(conn, staging)
                conn.close()
                self._publish(staging, f"gen-{number:06d}", live)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise

    def _remove_stale(self) -> None:
        for path in self.index_dir.glob(".staging-*"):
            shutil.rmtree(path, ignore_errors=True)

    def _write_faiss(self, conn: sqlite3.Connection, staging: Path) -> None:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
        rows = conn.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        if rows:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            index.add_with_ids(vectors, ids)
        faiss.write_index(index, str(staging / FAISS_NAME))

    def _write_manifest(self, conn: sqlite3.Connection, staging: Path) -> None:
        documents, chunks = conn.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
        ).fetchone()
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "dimension": self.dimension,
            "documents": documents,
            "chunks": chunks,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")

    def _publish(self, staging: Path, name: str, live: Path | None) -> None:
        for path in staging.iterdir():
            _fsync(path)
        final = self.index_dir / name
        os.replace(staging, final)
        pointer_tmp = self.index_dir / f".CURRENT.{os.getpid()}"
        pointer_tmp.write_text(name + "\n")
        _fsync(pointer_tmp)
        os.replace(pointer_tmp, self.index_dir / "CURRENT")
        _fsync(self.index_dir)
        keep = {name, live.name if live else ""}
        for old in self.index_dir.glob("gen-*"):
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
