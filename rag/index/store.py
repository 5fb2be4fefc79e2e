"""The index on disk, and the only module that speaks SQL.

One SQLite database in WAL mode holds documents, chunks (offsets into their document, never a copy of the
text), the near-duplicate buckets and the index's metadata; one append-only float16 file holds the vectors
(`rag.index.vectors`); a tantivy index derived from the database serves the lexical arms (`rag.index.lexical`). A
write is one SQLite transaction: it touches only the rows of what changed, appends and fsyncs its vectors
first, commits tantivy (recoverably) and then SQLite with the new vector count, so a SIGKILL at any moment
leaves the previous or the new state and never a mix. One writer at a time (a lock file); readers never
wait for it and see whole commits only.

Callers get typed records (`ChunkHit`, `DocumentSummary`, ...) and never a cursor.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.errors import IndexCorruptError, IndexFormatError, IndexNotFoundError, IndexWriteError
from rag.index.crash import crash_point
from rag.index.lexical import FOLDER as LEXICAL_FOLDER
from rag.index.lexical import LexicalIndex, LexicalWriter, clear_pending, pending_deletions
from rag.index.read import Reader, check_model, connect, connect_for_reading, is_legacy, no_index_error
from rag.index.rows import IndexMeta, Manifest
from rag.index.schema import DB_NAME, FORMAT_VERSION, LEGACY_POINTER, LOCK_NAME, MANIFEST_NAME, SCHEMA, pending
from rag.index.write import Writer


def has_index(index_dir: Path) -> bool:
    """Whether `index_dir` holds a committed index (a first build killed before its commit leaves none)."""
    if is_legacy(index_dir):
        return True
    try:
        read_manifest(index_dir)
    except IndexNotFoundError:
        return False
    return True


def read_manifest(index_dir: Path) -> Manifest:
    """The committed manifest of the index in `index_dir`, without opening it for search."""
    if is_legacy(index_dir):
        raise IndexFormatError(
            f"{index_dir} was built by an older version of Verbatim (format 2, now {FORMAT_VERSION}): "
            "run `rag index` to upgrade it (vectors are kept, nothing is embedded again)"
        )
    if not (index_dir / DB_NAME).exists():
        raise no_index_error(index_dir)
    conn, _ = connect_for_reading(index_dir / DB_NAME)
    try:
        return Reader(conn, index_dir).manifest()
    except sqlite3.Error as exc:
        raise unreadable(index_dir, exc) from exc
    finally:
        conn.close()


class Store:
    """An index directory opened for reading; each thread gets its own connection."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.manifest = read_manifest(index_dir)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection. One that had to read the database file alone (`connect_for_reading`: a
        full disk) is replaced by a live one as soon as one can be made, so later commits are seen."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn, self._local.snapshot = connect_for_reading(self.index_dir / DB_NAME)
            self._local.conn = conn
        elif self._local.snapshot and not conn.in_transaction and os.access(self.index_dir, os.W_OK):
            live, snapshot = connect_for_reading(self.index_dir / DB_NAME)
            if snapshot:
                live.close()
            else:
                conn.close()
                conn = self._local.conn = live
                self._local.snapshot = False
        return conn

    @contextmanager
    def read(self) -> Iterator[Reader]:
        """One consistent committed state for every statement inside, while writers go on. A database error is
        an `IndexCorruptError` naming the index, never SQLite's own exception."""
        conn = self._conn()
        format_version = self.manifest.format_version  # never ahead of what this read sees: a commit wrote it
        if conn.in_transaction:  # a read inside a read: the outer one already holds the snapshot
            yield Reader(conn, self.index_dir, format_version)
            return
        try:
            conn.execute("BEGIN")
            try:
                yield Reader(conn, self.index_dir, format_version)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise unreadable(self.index_dir, exc) from exc

    def read_manifest(self) -> Manifest:
        with self.read() as r:
            return r.manifest()


def unreadable(index_dir: Path, exc: sqlite3.Error) -> IndexCorruptError:
    return IndexCorruptError(f"cannot read the index in {index_dir}: {exc}; if the disk is full, free some space")


@contextmanager
def open_writer(index_dir: Path, model: str, dimension: int) -> Iterator[Writer]:
    """The index's one writer, inside one transaction: committed when the block ends, rolled back (and the
    appended vector tail ignored) when it raises or the process dies. A folder that cannot be written (full,
    read-only, not ours) is an `IndexWriteError` naming it, with the index as it was."""
    with write_errors(index_dir):
        index_dir.mkdir(parents=True, exist_ok=True)
        with open(index_dir / LOCK_NAME, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield from _write(index_dir, model, dimension)


def _write(index_dir: Path, model: str, dimension: int) -> Iterator[Writer]:
    conn = connect(index_dir / DB_NAME)
    lexical = LexicalIndex(index_dir)
    lexical_writer = lexical.writer()
    try:
        conn.executescript(SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        reader = Reader(conn, index_dir)
        meta = reader.meta()
        if meta.model is not None:
            check_model(meta.model, model, index_dir)
            for step in pending(meta.format_version):  # an index of an earlier format: upgraded by this commit
                step.apply(conn)
        _repair_lexical(reader, lexical, lexical_writer)
        writer = Writer(conn, index_dir, model, dimension, lexical_writer)
        try:
            yield writer
            writer.finish()
            crash_point("before-commit")
            lexical_writer.commit(writer.seq)
            crash_point("lexical-committed")
            crash_point("during-commit")
            conn.execute("COMMIT")
            crash_point("after-commit")
        except BaseException:
            if conn.in_transaction:  # SQLite ends the transaction itself on some errors (a full disk)
                conn.execute("ROLLBACK")
            lexical_writer.rollback()
            raise
        clear_pending(lexical)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        write_manifest(index_dir, reader.manifest())
        crash_point("manifest-written")
        remove_unused_files(index_dir, reader.meta())
    finally:
        lexical_writer.close()
        conn.close()


_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on its device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "a file grew past the size this system allows",
    errno.EROFS: "it is on a read-only file system",
}


@contextmanager
def write_errors(index_dir: Path) -> Iterator[None]:
    """Turn the ways a folder refuses a write into one `IndexWriteError` that says what to do."""
    try:
        yield
    except IndexWriteError:
        raise
    except OSError as exc:
        ours = exc.filename is None or str(exc.filename).startswith(str(index_dir))
        if exc.errno in _WRITE_ERRNOS:
            raise _write_error(index_dir, _WRITE_ERRNOS[exc.errno]) from exc
        if exc.errno in (errno.EACCES, errno.EPERM) and ours:
            raise _write_error(index_dir, "permission denied") from exc
        raise
    except sqlite3.OperationalError as exc:
        reason = str(exc)
        if "full" in reason:
            reason = _WRITE_ERRNOS[errno.ENOSPC]
        raise _write_error(index_dir, reason) from exc
    except ValueError as exc:  # tantivy reports its I/O failures as ValueError
        text = str(exc)
        named = next((r for code, r in _WRITE_ERRNOS.items() if os.strerror(code) in text), None)
        if named is None and "Permission denied" in text:
            named = "permission denied"
        if named is None:
            raise
        raise _write_error(index_dir, named) from exc


def _write_error(index_dir: Path, reason: str) -> IndexWriteError:
    return IndexWriteError(
        f"cannot write the index in {index_dir}: {reason}. Nothing was changed; free space or make the folder "
        "writable, then run `rag index` again"
    )


def recover(index_dir: Path) -> bool:
    """Repair what a killed writer left (a lexical index one commit ahead of SQLite), unless a writer is at
    work now, which repairs it itself. Returns False when the index folder cannot be written (read-only,
    full): the reader then searches what is there."""
    try:
        with write_errors(index_dir), open(index_dir / LOCK_NAME, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            _repair(index_dir)
    except IndexWriteError:
        return False
    return True


def _repair(index_dir: Path) -> None:
    conn = connect(index_dir / DB_NAME)
    lexical = LexicalIndex(index_dir)
    writer = lexical.writer()
    try:
        conn.execute("BEGIN IMMEDIATE")
        _repair_lexical(Reader(conn, index_dir), lexical, writer)
        conn.execute("ROLLBACK")
    finally:
        writer.close()
        conn.close()


def _repair_lexical(reader: Reader, lexical: LexicalIndex, writer: LexicalWriter) -> None:
    """Bring the lexical index back to the committed SQLite state after a writer died between its two
    commits (or rebuild it from SQLite when it disagrees in any other way)."""
    meta = reader.meta()
    seq, rows = meta.seq, meta.vector_rows
    found = lexical.committed_seq()
    if found == seq:
        return
    deleted = pending_deletions(lexical, found) if found == seq + 1 else None
    if deleted is not None:
        writer.delete_from(rows)
        writer.add(reader.passage_rows(deleted))
    else:
        writer.clear()
        writer.add(reader.passages())
    writer.commit(seq)
    clear_pending(lexical)
    lexical.follow(seq)


def write_manifest(index_dir: Path, manifest: Manifest) -> None:
    """A readable copy of the committed metadata beside the database (the database stays the truth)."""
    tmp = index_dir / f".{MANIFEST_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    os.replace(tmp, index_dir / MANIFEST_NAME)


def remove_unused_files(index_dir: Path, meta: IndexMeta) -> None:
    """Vector, list and centroid files no committed state names (an older layout, a killed writer's), lexical
    indexes of an older analysis, and what a format-2 index left."""
    named = {meta.vector_file, meta.list_file, meta.centroid_file, meta.multilingual_file}
    for path in index_dir.iterdir():
        stale_data = path.suffix in (".f16", ".i32", ".faiss") and path.name not in named
        stale_lexical = path.name.startswith("lexical") and path.name != LEXICAL_FOLDER
        legacy = path.name == LEGACY_POINTER or path.name.startswith(("gen-", ".staging-", ".CURRENT"))
        if stale_data or stale_lexical or legacy:
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
