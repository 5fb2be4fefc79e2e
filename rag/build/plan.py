"""What the model reads of each passage of a document: its chunks, their token ids with the title in front, and
the vector cache key of each. The one plan the indexer and a cluster's workers both follow, so a run on a
cluster gives the chunks and vectors a run without one gives."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from rag.ingest.chunk import ChunkPlan, chunk_document
from rag.models.embed import TITLE_TOKENS, Encoder, passage_input
from rag.records import Chunk, Document


def chunk_plan(embedder: Encoder) -> ChunkPlan:
    """Passage budgets for `embedder`: its limit, less the title put in front of each passage."""
    return ChunkPlan(max_tokens=embedder.max_tokens - TITLE_TOKENS - 1)


@dataclass(frozen=True)
class PlannedChunk:
    chunk: Chunk
    model_ids: tuple[int, ...]
    digest: bytes


def plan_chunks(doc: Document, embedder: Encoder, plan: ChunkPlan) -> list[PlannedChunk]:
    """Chunks of `doc` with what the model reads, as token ids, and its cache key (a hash of it as text)."""
    title, title_ids = embedder.title_prefix(doc.title)
    planned = []
    for chunk in chunk_document(doc, embedder, plan):
        digest = hashlib.sha256(f"{embedder.name}\n{passage_input(title, chunk.text)}".encode()).digest()[:16]
        planned.append(PlannedChunk(chunk, (*title_ids, *chunk.ids), digest))
    return planned
