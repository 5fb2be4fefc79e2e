"""Bringing an index up to date with folders of articles: scan what changed, plan each document's passages,
embed only inputs never seen, and write it all in one commit (large exports a batch per commit). A Ray
cluster (`rag.build.cluster`, optional) reads and embeds on its workers; this process stays the one writer."""

from rag.build.plan import PlannedChunk, chunk_plan, plan_chunks
from rag.build.update import ScanResult, from_documents, index_exports, scan, update_index

__all__ = [
    "PlannedChunk",
    "ScanResult",
    "chunk_plan",
    "from_documents",
    "index_exports",
    "plan_chunks",
    "scan",
    "update_index",
]
