"""Bring an index up to date with folders of articles, doing only the work that changed.

A document is re-chunked only when its bytes change (SHA-256), and a passage is re-embedded only when the
exact text the model reads is new (vectors are cached by a hash of model + input). Files that fail to
read are reported and skipped; a file that turns unreadable keeps its previous version in the index,
and only files that are gone from a scanned folder are removed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from rag.chunk import ChunkPlan, chunk_document
from rag.dedup import clusters, minhash, text_fingerprint
from rag.embed import TITLE_TOKENS, Embedder
from rag.errors import IndexFormatError, IndexNotFoundError, IngestError
from rag.exports import RecordFields
from rag.ingest import iter_files, read_documents
from rag.lexical import bigram_text
from rag.records import Chunk, Document, IndexReport
from rag.store import Generation, GenerationWriter, check_model, stored_document

MEMORY_ROOT = "<memory>"


@dataclass
class ScanResult:
    """Documents read from disk, keyed by (root, source), the file each came from, and what failed."""

    documents: dict[tuple[str, str], Document] = field(default_factory=dict)
    files: dict[tuple[str, str], str] = field(default_factory=dict)
    scanned_roots: set[str] = field(default_factory=set)
    unreadable: set[tuple[str, str]] = field(default_factory=set)  # (root, file)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def scan(
    paths: Sequence[Path], on_skip: Callable[[str, str], None] | None = None, fields: RecordFields | None = None
) -> ScanResult:
    """Read every supported file under `paths`; each unreadable file or record is reported through `on_skip`."""
    result = ScanResult()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            _skip(result, str(raw), "no such file or directory", on_skip)
            continue
        path = path.resolve()
        root = path if path.is_dir() else path.parent
        if path.is_dir():
            result.scanned_roots.add(str(root))
        for file in iter_files(path):
            source = file.relative_to(root).as_posix()
            try:
                ingested = read_documents(file, source, fields)
            except IngestError as exc:
                result.unreadable.add((str(root), source))
                _skip(result, source, str(exc).removeprefix(f"{source}: "), on_skip)
                continue
            for doc in ingested.documents:
                result.documents[(str(root), doc.source)] = doc
                result.files[(str(root), doc.source)] = source
            for name, reason in ingested.problems:
                _skip(result, name, reason, on_skip)
    return result


def _skip(result: ScanResult, name: str, reason: str, on_skip: Callable[[str, str], None] | None) -> None:
    result.skipped.append((name, reason))
    if on_skip:
        on_skip(name, reason)


@dataclass
class Changes:
    new: list[tuple[str, Document]] = field(default_factory=list)
    changed: list[tuple[int, str, Document]] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    unchanged: int = 0

    def empty(self) -> bool:
        return not (self.new or self.changed or self.removed)


def diff(conn: sqlite3.Connection | None, found: ScanResult) -> Changes:
    changes = Changes()
    known: dict[tuple[str, str], tuple[int, str]] = {}
    files: dict[tuple[str, str], str] = {}
    if conn is not None:
        for doc_id, root, source, file, digest in conn.execute(
            "SELECT id, root, source, file, content_hash FROM documents"
        ):
            known[(root, source)] = (doc_id, digest)
            files[(root, source)] = file
    for key, doc in found.documents.items():
        if key not in known:
            changes.new.append((key[0], doc))
        elif known[key][1] != doc.content_hash:
            changes.changed.append((known[key][0], key[0], doc))
        else:
            changes.unchanged += 1
    for key, (doc_id, _) in known.items():
        kept = (key[0], files[key]) in found.unreadable  # a file that failed to read keeps its last version
        if key[0] in found.scanned_roots and key not in found.documents and not kept:
            changes.removed.append(doc_id)
    return changes


def from_documents(documents: Iterable[Document], root: str = MEMORY_ROOT) -> ScanResult:
    """Documents made in memory (an API caller's, a benchmark's), keyed like scanned files under `root`."""
    result = ScanResult()
    for doc in documents:
        result.documents[(root, doc.source)] = doc
        result.files[(root, doc.source)] = doc.source
    return result


def update_index(
    index_dir: Path,
    found: ScanResult,
    embedder: Embedder,
    plan: ChunkPlan | None = None,
    progress: bool = True,
) -> IndexReport:
    started = time.perf_counter()
    report = IndexReport(skipped=found.skipped)
    try:
        live = Generation(index_dir)
    except (IndexNotFoundError, IndexFormatError):
        live = None  # nothing to compare with: everything is read and indexed
    if live is not None:
        check_model(live.manifest, embedder.name, index_dir)
        preview = diff(live.db, found)
        report.chunks = live.manifest["chunks"]
        live.close()
        if preview.empty():
            report.unchanged = preview.unchanged
            report.seconds = time.perf_counter() - started
            return report
    plan = plan or ChunkPlan(max_tokens=embedder.max_tokens - TITLE_TOKENS - 1)
    writer = GenerationWriter(index_dir, embedder.name, embedder.dimension)
    with writer.open() as conn:
        changes = diff(conn, found)
        _apply(conn, changes, found.files, embedder, plan, progress, report)
        report.chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    report.added, report.updated = len(changes.new), len(changes.changed)
    report.removed, report.unchanged = len(changes.removed), changes.unchanged
    report.seconds = time.perf_counter() - started
    return report


def _apply(
    conn: sqlite3.Connection,
    changes: Changes,
    files: dict[tuple[str, str], str],
    embedder: Embedder,
    plan: ChunkPlan,
    progress: bool,
    report: IndexReport,
) -> None:
    """Write document rows, settle duplicates, then chunk and embed exactly the documents that hold chunks
    now and did not before. Vectors of deleted chunks are kept in memory for reuse, so moving a file or
    promoting a copy never re-embeds."""
    salvage = _vectors_of(conn, changes.removed + [doc_id for doc_id, _, _ in changes.changed])
    for doc_id in changes.removed + [doc_id for doc_id, _, _ in changes.changed]:
        _delete_chunks(conn, doc_id)
    conn.executemany("DELETE FROM documents WHERE id = ?", [(d,) for d in changes.removed])
    now = time.time()
    for doc_id, root, doc in changes.changed:
        conn.execute(
            f"UPDATE documents SET {', '.join(f'{c} = ?' for c in _DOC_COLUMNS)}, file = ?, indexed_at = ? "
            "WHERE id = ?",
            (*_doc_values(doc), files[(root, doc.source)], now, doc_id),
        )
    for root, doc in changes.new:
        conn.execute(
            f"INSERT INTO documents (root, source, file, indexed_at, {', '.join(_DOC_COLUMNS)}) "
            f"VALUES (?, ?, ?, ?, {', '.join('?' * len(_DOC_COLUMNS))})",
            (root, doc.source, files[(root, doc.source)], now, *_doc_values(doc)),
        )
    need = _settle_duplicates(conn)
    docs = {doc_id: stored_document(conn, doc_id) for doc_id in need}
    planned = {doc_id: _plan_chunks(doc, embedder, plan) for doc_id, doc in docs.items()}
    cached = _cached_vectors(conn, {p.digest for chunks in planned.values() for p in chunks})
    cached.update({d: v for d, v in salvage.items() if d not in cached})
    todo = sorted(
        {p.digest: p.model_input for chunks in planned.values() for p in chunks if p.digest not in cached}.items()
    )
    report.embedded = len(todo)
    cached.update(_embed(todo, embedder, progress))
    for doc_id, chunks in planned.items():
        for ord_, p in enumerate(chunks):
            _insert_chunk(conn, doc_id, ord_, p, docs[doc_id].title, cached[p.digest])


_DOC_COLUMNS = (
    "content_hash",
    "title",
    "url",
    "published",
    "author",
    "site",
    "text",
    "segments",
    "pages",
    "text_hash",
    "minhash",
)


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
        text_fingerprint(doc.text),
        minhash(doc.text),
    )


def _settle_duplicates(conn: sqlite3.Connection) -> list[int]:
    """Mark exact copies (one holder of chunks per text, preferring one that has them already) and
    near-duplicate clusters; drop chunks from documents that became copies. Returns the documents that
    must be chunked: holders without chunks."""
    rows = conn.execute(
        "SELECT d.id, d.text_hash, EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id) FROM documents d ORDER BY d.id"
    ).fetchall()
    holder: dict[str, int] = {}
    for doc_id, text_hash, _ in sorted(rows, key=lambda r: (not r[2], r[0])):
        holder.setdefault(text_hash, doc_id)
    need = []
    for doc_id, text_hash, has_chunks in rows:
        dup_of = None if holder[text_hash] == doc_id else holder[text_hash]
        conn.execute("UPDATE documents SET dup_of = ? WHERE id = ?", (dup_of, doc_id))
        if dup_of is not None and has_chunks:
            _delete_chunks(conn, doc_id)
        elif dup_of is None and not has_chunks:
            need.append(doc_id)
    labels = clusters(conn.execute("SELECT id, minhash FROM documents").fetchall())
    conn.executemany("UPDATE documents SET cluster = ? WHERE id = ?", [(c, d) for d, c in labels.items()])
    return need


def _vectors_of(conn: sqlite3.Connection, doc_ids: list[int]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for doc_id in doc_ids:
        found.update(conn.execute("SELECT input_hash, vector FROM chunks WHERE doc_id = ?", (doc_id,)).fetchall())
    return found


@dataclass(frozen=True)
class _PlannedChunk:
    chunk: Chunk
    model_input: str
    digest: str


def _plan_chunks(doc: Document, embedder: Embedder, plan: ChunkPlan) -> list[_PlannedChunk]:
    """Chunks of `doc` with the exact model input and its cache key."""
    planned = []
    for chunk in chunk_document(doc, embedder, plan):
        model_input = embedder.passage_input(doc.title, chunk.text)
        digest = hashlib.sha256(f"{embedder.name}\n{model_input}".encode()).hexdigest()
        planned.append(_PlannedChunk(chunk, model_input, digest))
    return planned


def _embed(todo: list[tuple[str, str]], embedder: Embedder, progress: bool) -> dict[str, bytes]:
    vectors: dict[str, bytes] = {}
    bar = tqdm(total=len(todo), desc="embedding", unit="passage", disable=not progress or not todo, file=sys.stderr)
    for i in range(0, len(todo), 256):
        batch = todo[i : i + 256]
        encoded = embedder.encode([text for _, text in batch])
        vectors.update({digest: vec.tobytes() for (digest, _), vec in zip(batch, encoded)})
        bar.update(len(batch))
    bar.close()
    return vectors


def _delete_chunks(conn: sqlite3.Connection, doc_id: int) -> None:
    ids = [(r[0],) for r in conn.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
    conn.executemany("DELETE FROM chunks_words WHERE rowid = ?", ids)
    conn.executemany("DELETE FROM chunks_bigram WHERE rowid = ?", ids)
    conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))


def _insert_chunk(
    conn: sqlite3.Connection, doc_id: int, ord_: int, planned: _PlannedChunk, title: str, vector: bytes
) -> None:
    chunk = planned.chunk
    cur = conn.execute(
        'INSERT INTO chunks (doc_id, ord, start, "end", text, n_tokens, input_hash, vector) '
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (doc_id, ord_, chunk.start, chunk.end, chunk.text, chunk.n_tokens, planned.digest, vector),
    )
    conn.execute("INSERT INTO chunks_words (rowid, text, title) VALUES (?, ?, ?)", (cur.lastrowid, chunk.text, title))
    conn.execute(
        "INSERT INTO chunks_bigram (rowid, text, title) VALUES (?, ?, ?)",
        (cur.lastrowid, bigram_text(chunk.text), bigram_text(title)),
    )


def _cached_vectors(conn: sqlite3.Connection, digests: set[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    wanted = list(digests)
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        marks = ",".join("?" * len(part))
        for digest, blob in conn.execute(f"SELECT input_hash, vector FROM chunks WHERE input_hash IN ({marks})", part):
            found[digest] = blob
    return found
