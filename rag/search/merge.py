"""Merging a fused ranking into passages, as a pure function: a hit that overlaps a better one from the same
document is merged into it (the span grows to cover both, still an exact slice), so the neighbour that holds
the answer is never lost; a hit from another copy of a story already shown (a near-duplicate) is dropped,
since the shown passage lists its copies instead."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rag.index import ChunkHit

MAX_MERGED_CHARS = 3000


@dataclass(frozen=True)
class Candidate:
    """A fused hit on its way in: its chunk with its document's attribution, its fused score, and its cosine
    to the question (0 when the question was not encoded)."""

    row: ChunkHit
    score: float
    similarity: float


@dataclass
class Hit:
    """A chunk on its way to becoming a passage: its span may grow when an overlapping neighbour merges in.
    `head_similarity` stays the cosine of the chunk that brought it in."""

    row: ChunkHit
    score: float
    start: int
    end: int
    similarity: float
    head_similarity: float = 0.0

    def overlaps(self, other: Hit) -> bool:
        return self.row.doc_id == other.row.doc_id and self.start < other.end and other.start < self.end


def merge_hits(candidates: Iterable[Candidate], k: int, max_chars: int = MAX_MERGED_CHARS) -> list[Hit]:
    """The first `k` passages of `candidates` (best first). A candidate that overlaps a chosen hit grows it to
    cover both when the grown span touches no other chosen hit and stays within `max_chars`; either way it is
    not a passage of its own. A candidate whose near-duplicate cluster is already shown by another document is
    dropped. `candidates` is read only as far as the k-th passage."""
    chosen: list[Hit] = []
    shown_docs: dict[int, int] = {}  # cluster -> the document shown for it
    for candidate in candidates:
        row = candidate.row
        if shown_docs.setdefault(row.cluster, row.doc_id) != row.doc_id:
            continue
        hit = Hit(row, candidate.score, row.start, row.end, candidate.similarity, candidate.similarity)
        twin = next((p for p in chosen if p.overlaps(hit)), None)
        if twin is not None:
            start, end = min(twin.start, hit.start), max(twin.end, hit.end)
            grown = Hit(twin.row, twin.score, start, end, twin.similarity, twin.head_similarity)
            clear = not any(p.overlaps(grown) for p in chosen if p is not twin)
            if clear and end - start <= max_chars:
                twin.start, twin.end = start, end
                twin.similarity = max(twin.similarity, hit.similarity)
            continue
        chosen.append(hit)
        if len(chosen) == k:
            break
    return chosen
