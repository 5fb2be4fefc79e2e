"""The index: one folder holding a SQLite database in WAL mode (documents, chunks as offsets, metadata), an
append-only vector file searched by FAISS, and a tantivy index for BM25; the filters every arm applies, and
snapshots for replicas. `Store` reads it, `open_writer` is its one writer, and nothing outside this package
speaks SQL."""

from rag.index.crash import crash_point
from rag.index.facets import ChunkFilter, Kept
from rag.index.lexical import PLAIN, STEMMED, LexicalIndex
from rag.index.read import Reader, check_model, is_legacy
from rag.index.rows import ChunkHit, DocFilter, DocumentSummary, FileStat, IndexInfo, IndexMeta, Manifest, PassageRow
from rag.index.snapshots import CURRENT, publish
from rag.index.store import Store, has_index, legacy_vectors, open_writer, read_manifest, recover
from rag.index.vectors import DenseIndex, DenseLayout, VectorFile
from rag.index.write import NewChunk, Writer

__all__ = [
    "CURRENT",
    "PLAIN",
    "STEMMED",
    "ChunkFilter",
    "ChunkHit",
    "DenseIndex",
    "DenseLayout",
    "DocFilter",
    "DocumentSummary",
    "FileStat",
    "IndexInfo",
    "IndexMeta",
    "Kept",
    "LexicalIndex",
    "Manifest",
    "NewChunk",
    "PassageRow",
    "Reader",
    "Store",
    "VectorFile",
    "Writer",
    "check_model",
    "crash_point",
    "has_index",
    "is_legacy",
    "legacy_vectors",
    "open_writer",
    "publish",
    "read_manifest",
    "recover",
]
