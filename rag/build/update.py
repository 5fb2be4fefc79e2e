"""Bring an index up to date with folders of articles, doing only the work that changed.

A document is re-chunked only when its bytes change (SHA-256), and a passage is re-embedded only when the
exact text the model reads is new (vectors are cached by a hash of model + input). Files that fail to
read are reported and skipped; a file that turns unreadable keeps its previous version in the index,
and only files that are gone from a scanned folder are removed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from rag.build.plan import PlannedChunk, chunk_plan, plan_chunks, reembedding
from rag.errors import IngestError
from rag.index import (
    FileStat,
    IndexMeta,
    NewChunk,
    Reader,
    Store,
    Writer,
    check_model,
    crash_point,
    has_index,
    is_legacy,
    legacy_vectors,
    open_writer,
)
from rag.ingest.chunk import ChunkPlan
from rag.ingest.dedup import (
    NEAR_DUPLICATE,
    NEIGHBOURS_PER_BUCKET,
    clusters,
    lsh_keys,
    minhash,
    similarity,
    text_fingerprint,
)
from rag.ingest.exports import RecordFields, stream_records
from rag.ingest.files import RECORD_SUFFIXES, Ingested, iter_files, not_a_plain_file, read_documents, read_page
from rag.ingest.web_archives import ArchiveCounts, is_web_archive, stream_archive
from rag.models.embed import Encoder
from rag.models.hashing import HASHING_MODEL
from rag.models.multilingual import get_multilingual
from rag.records import Document, IndexReport
from rag.text import broken_character, visible

if TYPE_CHECKING:
    from rag.build.cluster import RayCluster

MEMORY_ROOT = "<memory>"
STREAM_BYTES = 8_000_000  # a JSON/JSONL export larger than this is read and committed a batch at a time
EXPORT_BATCH = 2_000  # records of a streamed export per commit: what a restart does not read again
# On a cluster each commit's batch starts a new actor pool, whose models take seconds to load: ten times the
# records keep that a small share of a batch's time.
CLUSTER_EXPORT_BATCH = 20_000
DOC_BATCH = 64  # documents chunked and embedded together: enough for full model batches, little memory
STAT_SETTLE_SECONDS = 2.0  # a file modified this recently is read again next run (same-tick edits)


@dataclass
class ScanResult:
    """Documents read from disk, keyed by (root, source), the file each came from, and what failed.

    Files whose size and modification time match what the index recorded are not read at all: they are
    listed in `unchanged_files`, and their documents stay as they are."""

    documents: dict[tuple[str, str], Document] = field(default_factory=dict)
    files: dict[tuple[str, str], str] = field(default_factory=dict)
    scanned_roots: set[str] = field(default_factory=set)
    unreadable: set[tuple[str, str]] = field(default_factory=set)  # (root, file)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, how it was read), for files not plain UTF-8
    unchanged_files: set[tuple[str, str]] = field(default_factory=set)  # (root, file)
    stats: dict[tuple[str, str], FileStat] = field(default_factory=dict)  # (root, file)
    # Exports too large to hold in memory: read a batch of records at a time after the rest (`index_exports`);
    # until then their documents stay as they are.
    streamed: list[tuple[str, str, Path, FileStat | None]] = field(default_factory=list)
    deferred: set[tuple[str, str]] = field(default_factory=set)  # (root, file) of the streamed ones


def scan(
    paths: Sequence[Path],
    on_skip: Callable[[str, str], None] | None = None,
    fields: RecordFields | None = None,
    known: dict[tuple[str, str], FileStat] | None = None,
    cluster: RayCluster | None = None,
    on_note: Callable[[str, str], None] | None = None,
) -> ScanResult:
    """Read every supported file under `paths` that is not in `known` with the same size and mtime (on the
    `cluster`'s workers when given); each unreadable file or record is reported through `on_skip`, and how a
    file that was not plain UTF-8 was read through `on_note`."""
    result = ScanResult()
    known = known or {}
    settled = time.time() - STAT_SETTLE_SECONDS
    to_read: list[tuple[tuple[str, str], Path, FileStat | None]] = []
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
            if broken_character(source) is not None:
                _skip(result, visible(source), "the file name is not valid UTF-8: rename the file", on_skip)
                continue
            refused = not_a_plain_file(file, root)
            if refused:
                _skip(result, source, refused, on_skip)
                continue
            key = (str(root), source)
            try:
                info = file.stat()
            except OSError:
                info = None
            stat = FileStat(info.st_size, info.st_mtime_ns) if info else None
            if stat is not None and known.get(key) == stat:
                result.unchanged_files.add(key)
                continue
            large_export = stat is not None and stat.size > STREAM_BYTES and file.suffix.lower() in RECORD_SUFFIXES
            if stat is not None and (large_export or is_web_archive(file.name)):  # a web archive, at any size
                result.streamed.append((str(root), source, file, stat if stat.mtime_ns < settled * 1e9 else None))
                result.deferred.add(key)
                continue
            to_read.append((key, file, stat))
    files = [(file, key[1]) for key, file, _ in to_read]
    read = cluster.read(files, fields) if cluster else (_read(file, source, fields) for file, source in files)
    for (key, _, stat), ingested in zip(to_read, read, strict=True):
        folder, source = key
        if isinstance(ingested, IngestError):
            result.unreadable.add(key)
            _skip(result, source, str(ingested).removeprefix(f"{source}: "), on_skip)
            continue
        if stat is not None and stat.mtime_ns < settled * 1e9:  # a file still being written is read again next time
            result.stats[key] = stat
        for doc in ingested.documents:
            result.documents[(folder, doc.source)] = doc
            result.files[(folder, doc.source)] = source
        for name, reason in ingested.problems:
            _skip(result, name, reason, on_skip)
        for name, note in ingested.notes:
            result.notes.append((name, note))
            if on_note:
                on_note(name, note)
    return result


def _read(file: Path, source: str, fields: RecordFields | None) -> Ingested | IngestError:
    try:
        return read_documents(file, source, fields)
    except IngestError as exc:
        return exc


def _skip(result: ScanResult | IndexReport, name: str, reason: str, on_skip: Callable[[str, str], None] | None) -> None:
    result.skipped.append((name, reason))
    if on_skip:
        on_skip(name, reason)


@dataclass
class Changes:
    new: list[tuple[str, Document]] = field(default_factory=list)
    changed: list[tuple[int, str, Document]] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    removed_sources: list[str] = field(default_factory=list)
    unchanged: int = 0

    def empty(self) -> bool:
        return not (self.new or self.changed or self.removed)


def diff(reader: Reader | None, found: ScanResult) -> Changes:
    """What `found` changes in the index. Without scanned folders or files (documents given in memory, a batch
    of a streamed export) nothing can be removed, so only the documents named are looked up."""
    changes = Changes()
    narrow = not found.scanned_roots and not found.unchanged_files and not found.unreadable
    if reader is None:
        known = []
    else:
        known = reader.known_documents_named(found.documents) if narrow else reader.known_documents()
    by_key = {(d.root, d.source): d for d in known}
    for key, doc in found.documents.items():
        old = by_key.get(key)
        if old is None:
            changes.new.append((key[0], doc))
        elif old.content_hash != doc.content_hash:
            changes.changed.append((old.id, key[0], doc))
        else:
            changes.unchanged += 1
    for d in known:
        key, file = (d.root, d.source), (d.root, d.file)
        if file in found.unchanged_files:
            changes.unchanged += 1
            continue
        kept = file in found.unreadable or file in found.deferred  # failed to read, or read later in batches
        if d.root in found.scanned_roots and key not in found.documents and not kept:
            changes.removed.append(d.id)
            changes.removed_sources.append(d.source)
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
    embedder: Encoder,
    plan: ChunkPlan | None = None,
    progress: bool = True,
    cluster: RayCluster | None = None,
    multilingual: bool | None = None,
) -> IndexReport:
    """Bring the index in `index_dir` up to `found`. `multilingual`: keep the multilingual arm's vectors (True),
    drop them (False) or leave the index as it is (None: on for a new index, or one written before the arm,
    unless it uses the hashing stand-in)."""
    started = time.perf_counter()
    report = IndexReport(skipped=found.skipped, notes=found.notes, precision=embedder.precision)
    salvage: dict[bytes, bytes] = {}
    dimension = None
    if is_legacy(index_dir):
        salvage = legacy_vectors(index_dir)  # an older format: rebuilt, its vectors reused
    elif has_index(index_dir):
        store = Store(index_dir)
        check_model(store.manifest.model, embedder.name, index_dir)
        dimension = store.manifest.dimension
        with store.read() as reader:
            preview = diff(reader, found)
            recorded = reader.file_stats()
            stale = _file_changes(reader, found) or any(recorded.get(k) != v for k, v in found.stats.items())
            meta = reader.meta()
            arm_changes = wants_multilingual(meta, embedder, multilingual) != meta.multilingual
            precision_changes = meta.precision != embedder.precision
        report.chunks = store.manifest.chunks
        if preview.empty() and not stale and not arm_changes and not precision_changes:
            report.unchanged = preview.unchanged
            report.seconds = time.perf_counter() - started
            return report
    plan = plan or chunk_plan(embedder)
    with open_writer(index_dir, embedder.name, dimension or embedder.dimension) as writer:
        report.reembedded = writer.use_precision(embedder.precision, reembedding(embedder))
        decide_multilingual(writer, embedder, multilingual)
        changes = diff(writer.reader, found)
        _apply(writer, changes, found.files, _Embedding(embedder, plan, salvage, progress, cluster=cluster), report)
        writer.record_files(found.stats)
        writer.forget_files(_file_changes(writer.reader, found))
        report.chunks = writer.reader.counts().chunks
    report.added, report.updated = len(changes.new), len(changes.changed)
    report.removed, report.unchanged = len(changes.removed), changes.unchanged
    report.added_sources = [doc.source for _, doc in changes.new]
    report.updated_sources = [doc.source for _, _, doc in changes.changed]
    report.removed_sources = changes.removed_sources
    report.seconds = time.perf_counter() - started
    return report


def index_exports(
    index_dir: Path,
    found: ScanResult,
    embedder: Encoder,
    fields: RecordFields | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    progress: bool = True,
    report: IndexReport | None = None,
    cluster: RayCluster | None = None,
    multilingual: bool | None = None,
    on_note: Callable[[str, str], None] | None = None,
) -> IndexReport:
    """Index the exports and web archives `scan` left for streaming, EXPORT_BATCH records per commit, so memory
    stays flat and a run stopped halfway (killed, restarted) reads an export again but embeds only the records
    it had not committed, and an archive from its last committed record on. Once a file is read to its end, its
    records that are gone are removed and its size and time recorded. `on_note` hears what an archive held."""
    report = report or IndexReport()
    for root, source, path, stat in found.streamed:
        seen = _stream_export(
            index_dir,
            root,
            source,
            path,
            embedder,
            fields or RecordFields(),
            on_skip,
            progress,
            report,
            cluster,
            multilingual,
            on_note,
        )
        with open_writer(index_dir, embedder.name, embedder.dimension) as writer:
            decide_multilingual(writer, embedder, multilingual)
            gone = [d.id for d in writer.reader.known_documents_of_file(root, source) if d.source not in seen]
            embedding = _Embedding(embedder, chunk_plan(embedder), {}, False)  # removals only: nothing is chunked
            _apply(writer, Changes(removed=gone), {}, embedding, IndexReport())
            if stat is not None:
                writer.record_files({(root, source): stat})
            report.removed += len(gone)
            report.chunks = writer.reader.counts().chunks
    return report


def _stream_export(
    index_dir: Path,
    root: str,
    source: str,
    path: Path,
    embedder: Encoder,
    fields: RecordFields,
    on_skip: Callable[[str, str], None] | None,
    progress: bool,
    report: IndexReport,
    cluster: RayCluster | None = None,
    multilingual: bool | None = None,
    on_note: Callable[[str, str], None] | None = None,
) -> set[str]:
    """Commit an export's (or a web archive's) records a batch at a time; returns the sources of the records it
    holds now."""
    bar = tqdm(total=path.stat().st_size, desc=source, unit="B", unit_scale=True, disable=not progress, file=sys.stderr)
    seen: set[str] = set()
    batch = ScanResult()
    counts = ArchiveCounts()
    archive = is_web_archive(path.name)
    if archive:
        start, seen = _archive_resumes_at(index_dir, root, source)
        bar.update(start)
        items = stream_archive(path, source, read_page, start, at=lambda n: bar.update(n - bar.n), counts=counts)
    else:
        jsonl = path.suffix.lower() != ".json"
        items = stream_records(path, source, jsonl, fields, at=lambda n: bar.update(n - bar.n))
    for item in items:
        if isinstance(item, Document):
            seen.add(item.source)
            batch.documents[(root, item.source)] = item
            batch.files[(root, item.source)] = source
        else:
            _skip(report, *item, on_skip)
        if len(batch.documents) >= (EXPORT_BATCH if cluster is None else CLUSTER_EXPORT_BATCH):
            _merge(
                report,
                update_index(index_dir, batch, embedder, progress=False, cluster=cluster, multilingual=multilingual),
            )
            crash_point("export-batch-committed")
            batch = ScanResult()
    _merge(report, update_index(index_dir, batch, embedder, progress=False, cluster=cluster, multilingual=multilingual))
    bar.close()
    if archive:
        report.notes.append((source, counts.line()))
        if on_note:
            on_note(*report.notes[-1])
    return seen


def _archive_resumes_at(index_dir: Path, root: str, source: str) -> tuple[int, set[str]]:
    """Where a web archive's reading starts again: the byte offset of its last committed record (the records
    before it were committed or passed over by the run that committed it), and the articles read before it."""
    if not has_index(index_dir):
        return 0, set()
    with Store(index_dir).read() as reader:
        known = reader.known_documents_of_file(root, source)
    numbers = {d.source: d.source.rpartition("#")[2] for d in known}
    offsets = {name: int(number) for name, number in numbers.items() if number.isdigit()}
    start = max(offsets.values(), default=0)
    return start, {name for name, offset in offsets.items() if offset < start}


def wants_multilingual(meta: IndexMeta, embedder: Encoder, asked: bool | None) -> bool:
    """Whether the index should hold the multilingual arm after this run: as asked; else as it is; else (a new
    index, or one written before the arm) on, except with the hashing stand-in that tests use."""
    if asked is not None:
        return asked
    if meta.multilingual_file is not None and meta.committed:
        return meta.multilingual
    return embedder.name != HASHING_MODEL


def decide_multilingual(writer: Writer, embedder: Encoder, asked: bool | None) -> None:
    """Turn the writer's multilingual arm on or off for this run (encoding what the index lacks when it comes
    on)."""
    if wants_multilingual(writer.meta, embedder, asked):
        encoder = get_multilingual()
        writer.use_multilingual(encoder.encode, encoder.dimension)
    else:
        writer.use_multilingual(None)


def _merge(total: IndexReport, part: IndexReport) -> None:
    total.added += part.added
    total.updated += part.updated
    total.unchanged += part.unchanged
    total.embedded += part.embedded
    total.reembedded += part.reembedded
    total.chunks = part.chunks or total.chunks


def _file_changes(reader: Reader, found: ScanResult) -> list[tuple[str, str]]:
    """Recorded file stats to forget: files gone from a scanned folder, or unreadable now."""
    return [
        key
        for key in reader.file_stats()
        if key in found.unreadable
        or (
            key[0] in found.scanned_roots
            and key not in found.unchanged_files
            and key not in found.stats
            and key not in found.deferred
        )
    ]


@dataclass
class _Embedding:
    """What turning documents into stored chunks needs: the model, the chunk plan and vectors to reuse."""

    embedder: Encoder
    plan: ChunkPlan
    legacy: dict[bytes, bytes]  # vectors of a format-2 index being upgraded, by cache key
    progress: bool
    salvage: dict[bytes, int] = field(default_factory=dict)  # cache key -> row of a chunk deleted in this run
    cluster: RayCluster | None = None  # chunk and embed on its workers rather than here


def _apply(
    writer: Writer,
    changes: Changes,
    files: dict[tuple[str, str], str],
    embedding: _Embedding,
    report: IndexReport,
) -> None:
    """Delete, update and insert document rows, settle duplicates for the documents involved, then chunk
    and embed exactly the documents that hold chunks now and did not before. Vectors of deleted chunks stay
    in the vector file, so moving a file or promoting a copy never re-embeds."""
    hashes: set[str] = set()
    dirty_clusters: set[int] = set()
    for doc_id in changes.removed + [doc_id for doc_id, _, _ in changes.changed]:
        text_hash, signature, cluster = writer.reader.document_keys(doc_id)
        hashes.add(text_hash)
        dirty_clusters.add(cluster)
        writer.remove_lsh(doc_id, lsh_keys(signature))
        embedding.salvage.update(writer.reader.chunk_digests(doc_id))
        writer.delete_chunks(doc_id)
    for doc_id in changes.removed:
        writer.delete_document(doc_id)
    added = []
    for doc_id, root, doc in changes.changed:
        keys = text_fingerprint(doc.text), minhash(doc.text)
        writer.update_document(doc_id, files[(root, doc.source)], doc, *keys)
        added.append((doc_id, *keys))
    for root, doc in changes.new:
        keys = text_fingerprint(doc.text), minhash(doc.text)
        added.append((writer.insert_document(root, files[(root, doc.source)], doc, *keys), *keys))
    for doc_id, text_hash, signature in added:
        writer.add_lsh(doc_id, lsh_keys(signature))
        hashes.add(text_hash)
    crash_point("documents-written")
    need = _settle_copies(writer, hashes, embedding)
    _settle_clusters(writer, dirty_clusters, sorted(doc_id for doc_id, _, _ in added))
    report.embedded = _chunk_and_embed(writer, need, embedding)


def _settle_copies(writer: Writer, hashes: set[str], embedding: _Embedding) -> list[int]:
    """For each text among `hashes`, one holder of the chunks (preferring one that has them already) and the
    others marked as its copies. Returns the holders that must be chunked."""
    need = []
    for text_hash in sorted(hashes):
        members = writer.reader.documents_with_text_hash(text_hash)
        if not members:
            continue
        holder = next((doc_id for doc_id, _, has in members if has), members[0][0])
        for doc_id, _, has_chunks in members:
            writer.set_dup_of(doc_id, None if doc_id == holder else holder)
            if doc_id == holder and not has_chunks:
                need.append(doc_id)
            elif doc_id != holder and has_chunks:
                embedding.salvage.update(writer.reader.chunk_digests(doc_id))
                writer.delete_chunks(doc_id)
    return sorted(need)


def _settle_clusters(writer: Writer, dirty: set[int], added: list[int]) -> None:
    """Near-duplicate clusters after a change: clusters that lost or changed a member are recomputed among
    their remaining members; each new or changed document then joins every cluster it has a confirmed
    near-duplicate in (found through the stored LSH buckets), merging them."""
    for cluster in sorted(dirty):
        members = writer.reader.cluster_members(cluster)
        labels: dict[int, list[int]] = {}
        for doc_id, label in clusters(members).items():
            labels.setdefault(label, []).append(doc_id)
        for label, ids in labels.items():
            writer.set_cluster(ids, label)
    for doc_id in added:
        _, signature, cluster = writer.reader.document_keys(doc_id)
        linked = {
            other_cluster
            for _, other, other_cluster in writer.reader.lsh_neighbours(
                lsh_keys(signature), doc_id, NEIGHBOURS_PER_BUCKET
            )
            if similarity(signature, other) >= NEAR_DUPLICATE
        }
        if linked:
            writer.merge_clusters(linked | {cluster}, min(linked | {cluster}))


def _chunk_and_embed(writer: Writer, need: list[int], embedding: _Embedding) -> int:
    """Chunk, embed (only model inputs never seen) and store the documents in `need`, a batch at a time, so
    memory stays flat however large the run. Returns how many passages the model embedded."""
    embedded = 0
    bar = tqdm(
        total=len(need), desc="indexing", unit="doc", disable=not embedding.progress or not need, file=sys.stderr
    )
    for planned, ready, multilingual in _planned_batches(writer, need, embedding):
        vectors, new = _vectors_for([p for _, _, chunks in planned for p in chunks], writer, embedding, ready)
        embedded += new + len(ready)
        for doc_id, title, chunks in planned:
            rows = np.stack([vectors[p.digest] for p in chunks]) if chunks else np.zeros((0, 1), np.float32)
            new_chunks = [NewChunk(p.chunk, p.digest) for p in chunks]
            writer.add_chunks(doc_id, title, new_chunks, rows, multilingual.get(doc_id))
        crash_point("chunks-written")
        bar.update(len(planned))
    bar.close()
    return embedded


def _planned_batches(
    writer: Writer, need: list[int], embedding: _Embedding
) -> Iterator[tuple[list[tuple[int, str, list[PlannedChunk]]], dict[bytes, np.ndarray], dict[int, np.ndarray]]]:
    """Batches of (doc_id, title, planned chunks), with the vectors computed for them elsewhere (by cache
    key) and each document's multilingual rows: here, none yet; on a cluster, what its workers embedded."""
    if embedding.cluster is None:
        for i in range(0, len(need), DOC_BATCH):
            docs = [(doc_id, writer.reader.stored_document(doc_id)) for doc_id in need[i : i + DOC_BATCH]]
            yield (
                [(doc_id, doc.title, plan_chunks(doc, embedding.embedder, embedding.plan)) for doc_id, doc in docs],
                {},
                {},
            )
        return
    from rag.build.cluster import cache_prefixes

    held = [*writer.reader.cache_keys(), *embedding.salvage, *embedding.legacy]
    known = np.unique(cache_prefixes(held)) if held else np.zeros(0, np.uint64)
    documents = [(doc_id, writer.reader.stored_document(doc_id)) for doc_id in need]
    titles = {doc_id: doc.title for doc_id, doc in documents}
    planned: list[tuple[int, str, list[PlannedChunk]]] = []
    ready: dict[bytes, np.ndarray] = {}
    multilingual: dict[int, np.ndarray] = {}
    arm = writer.multilingual is not None
    for result in embedding.cluster.plan_and_embed(
        documents, known, embedding.embedder.name, arm, embedding.embedder.precision
    ):
        planned.append((result.doc_id, titles[result.doc_id], result.chunks))
        ready.update(result.vectors)
        if result.multilingual is not None:
            multilingual[result.doc_id] = result.multilingual
        if len(planned) >= DOC_BATCH:
            yield planned, ready, multilingual
            planned, ready, multilingual = [], {}, {}
    if planned:
        yield planned, ready, multilingual


def _vectors_for(
    planned: list[PlannedChunk], writer: Writer, embedding: _Embedding, ready: dict[bytes, np.ndarray]
) -> tuple[dict[bytes, np.ndarray], int]:
    """A vector per cache key: computed by a cluster's worker (`ready`), from the index (live or deleted in
    this run), an upgraded index, or the model here; and how many passages the model embedded here."""
    digests = {p.digest for p in planned} - ready.keys()
    rows = {**{d: r for d, r in embedding.salvage.items() if d in digests}, **writer.reader.vector_ids(digests)}
    found: dict[bytes, np.ndarray] = {}
    if rows:
        stored = writer.read_vectors(list(rows.values()))
        found.update(zip(rows.keys(), stored))
    found.update(
        {
            d: np.frombuffer(embedding.legacy[d], dtype=np.float32)
            for d in digests - found.keys()
            if d in embedding.legacy
        }
    )
    todo = sorted({p.digest: p.model_ids for p in planned if p.digest not in found and p.digest not in ready}.items())
    if todo:
        encoded = embedding.embedder.encode_ids([ids for _, ids in todo])
        found.update(zip((d for d, _ in todo), encoded))
        crash_point("embedding")
    return {**found, **ready}, len(todo)
