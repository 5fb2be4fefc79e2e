"""Verbatim: answers from your articles, quoted exactly, with their sources."""

from rag.api import Index, default_corpus_dir, default_index_dir, query
from rag.errors import (
    DocumentNotFoundError,
    IndexCorruptError,
    IndexNotFoundError,
    IngestError,
    InvalidQueryError,
    ModelLoadError,
    ModelMismatchError,
    PathNotFoundError,
    RagError,
    UnknownSourceError,
)
from rag.records import Answer, Document, IndexReport, Passage

__all__ = [
    "Answer",
    "Document",
    "DocumentNotFoundError",
    "Index",
    "IndexCorruptError",
    "IndexNotFoundError",
    "IndexReport",
    "IngestError",
    "InvalidQueryError",
    "ModelLoadError",
    "ModelMismatchError",
    "Passage",
    "PathNotFoundError",
    "RagError",
    "UnknownSourceError",
    "default_corpus_dir",
    "default_index_dir",
    "query",
]
