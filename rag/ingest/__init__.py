"""Articles in: files of every supported format read into `Document`s (text, title, site, URL, date, author),
their content told from page furniture, near-duplicates recognised, and each document cut into passages that
are exact slices of its text."""

from rag.ingest.chunk import ChunkPlan, chunk_document, split_sentences
from rag.ingest.exports import RecordFields
from rag.ingest.files import SUPPORTED_SUFFIXES, Ingested, iter_files, read_documents
from rag.ingest.plaintext import parse_document

__all__ = [
    "SUPPORTED_SUFFIXES",
    "ChunkPlan",
    "Ingested",
    "RecordFields",
    "chunk_document",
    "iter_files",
    "parse_document",
    "read_documents",
    "split_sentences",
]
