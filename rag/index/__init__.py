"""The index: one folder holding a SQLite database in WAL mode (documents, chunks as offsets, metadata), an
append-only vector file searched by FAISS, and a tantivy index for BM25; the filters every arm applies, and
snapshots for replicas. `Store` reads it, `open_writer` is its one writer, and nothing outside this package
speaks SQL."""

from rag.index.facets import ChunkFilter, Kept
from rag.index.lexical import PLAIN, STEMMED, LexicalIndex
from rag.index.read import ChunkHit, DocFilter, DocumentSummary, Manifest, Reader
from rag.index.store import Store, has_index, is_legacy, open_writer, read_manifest, recover
from rag.index.vectors import DenseIndex, DenseLayout, VectorFile
from rag.index.write import NewChunk, Writer

__all__ = [
    "PLAIN",
    "STEMMED",
    "ChunkFilter",
    "ChunkHit",
    "DenseIndex",
    "DenseLayout",
    "DocFilter",
    "DocumentSummary",
    "Kept",
    "LexicalIndex",
    "Manifest",
    "NewChunk",
    "Reader",
    "Store",
    "VectorFile",
    "Writer",
    "has_index",
    "is_legacy",
    "open_writer",
    "read_manifest",
    "recover",
]
