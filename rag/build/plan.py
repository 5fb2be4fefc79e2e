"""What the model reads of each passage of a document: its chunks, their token ids with the title in front, and
the vector cache key of each. The one plan the indexer and a cluster's workers both follow, so a run on a
cluster gives the chunks and vectors a run without one gives."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.index.rows import PassageRow
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
    return [
        PlannedChunk(chunk, (*title_ids, *chunk.ids), input_digest(embedder, passage_input(title, chunk.text)))
        for chunk in chunk_document(doc, embedder, plan)
    ]


def input_digest(embedder: Encoder, model_input: str) -> bytes:
    """A vector's cache key: 16 bytes of the hash of the model (with its precision) and what it reads."""
    return hashlib.sha256(f"{embedder.vector_key}\n{model_input}".encode()).digest()[:16]


def reembedding(embedder: Encoder) -> Callable[[Sequence[PassageRow]], tuple[list[bytes], np.ndarray]]:
    """Stored passages -> their cache keys and vectors by `embedder`: what a fresh build of their documents would
    compute (the same title line, the same model input), for an index whose precision changes."""

    def reembed(rows: Sequence[PassageRow]) -> tuple[list[bytes], np.ndarray]:
        titles: dict[str, str] = {}
        inputs = []
        for row in rows:
            if row.title not in titles:
                titles[row.title] = embedder.title_prefix(row.title)[0]
            inputs.append(passage_input(titles[row.title], row.text))
        return [input_digest(embedder, text) for text in inputs], embedder.encode(inputs, checked=True)

    return reembed
