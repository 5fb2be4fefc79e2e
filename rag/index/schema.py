"""The index database's schema, its format number and its numbered migrations, and the names of the files
of an index folder.

A migration brings a committed index from one format to the next inside the writer's transaction: an index
built by an earlier version is read as it is (every format from FIRST_READABLE up reads the same way) and
upgraded by its next write, with nothing embedded again. A format 2 index (whole generations behind a
CURRENT pointer) is older than that: its next `rag index` rebuilds it from its files, reusing its vectors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

FORMAT_VERSION = 4  # 3: one database in place, vectors in an append-only file, lexical index in tantivy; 4: crawled
DB_NAME = "rag.sqlite"
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
LEGACY_POINTER = "CURRENT"  # formats 1-2: whole-index generations named by this file
TOMBSTONES_KEPT = 100_000

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
    crawled TEXT,                    -- the day a web archive saved the page (not a publication date)
    text TEXT NOT NULL,              -- the one stored copy of the text; chunks are offsets into it
    segments TEXT NOT NULL,          -- JSON [[start, end], ...]: the content ranges chunking reads
    pages TEXT NOT NULL,             -- JSON [offset, ...]: where each PDF page begins; [] otherwise
    text_hash TEXT NOT NULL,         -- rag.ingest.dedup.text_fingerprint
    minhash BLOB NOT NULL,           -- rag.ingest.dedup.minhash
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
-- what filters read: covering, so reading it for every document never touches the stored texts
CREATE INDEX IF NOT EXISTS documents_fields ON documents(id, dup_of, source, file, site, url, published);
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

FIRST_READABLE = 3  # the oldest format read in place: one database, an append-only vector file, tantivy


@dataclass(frozen=True)
class Migration:
    """One step of the format: what it changes, and the statements that change it (run inside the writer's
    transaction, so a killed migration leaves the format before it)."""

    to_version: int
    what: str
    apply: Callable[[sqlite3.Connection], None]


CRAWLED_SINCE = 4  # the first format whose documents have `crawled`


def _add_crawled(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE documents ADD COLUMN crawled TEXT")


# Format N+1's step is MIGRATIONS[N + 1]; FORMAT_VERSION is the last one's number.
MIGRATIONS: dict[int, Migration] = {
    CRAWLED_SINCE: Migration(CRAWLED_SINCE, "documents.crawled: the day a web archive saved a page", _add_crawled),
}


def pending(version: int) -> list[Migration]:
    """The steps that bring an index of format `version` to the newest one, in order."""
    newest = max([FORMAT_VERSION, *MIGRATIONS])
    return [MIGRATIONS[n] for n in range(version + 1, newest + 1) if n in MIGRATIONS]


def newest_format() -> int:
    return max([FORMAT_VERSION, *MIGRATIONS])


def package_version() -> str:
    """The installed version of Verbatim, recorded with every commit."""
    try:
        return metadata.version("verbatim-rag")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"
