"""Rank fusion as pure functions over ranked id lists, so they can be property-tested in isolation."""

from __future__ import annotations

import math
from collections.abc import Sequence

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], weights: Sequence[float] | None = None, k: int = RRF_K
) -> list[tuple[int, float]]:
    """Sum of weight / (k + rank) over the rankings an id appears in; best first, ties by id."""
    weights = weights or [1.0] * len(rankings)
    parts: dict[int, list[float]] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(dict.fromkeys(ranking), start=1):
            parts.setdefault(item, []).append(weight / (k + rank))
    scores = {item: math.fsum(values) for item, values in parts.items()}  # exact: same result in any order
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def convex_fusion(scored: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float]) -> list[tuple[int, float]]:
    """Weighted sum of min-max normalised scores; an id missing from a list scores 0 there."""
    totals: dict[int, float] = {}
    for items, weight in zip(scored, weights):
        if not items:
            continue
        values = [s for _, s in items]
        low, high = min(values), max(values)
        span = high - low
        for item, score in items:
            norm = (score - low) / span if span > 0 else 1.0
            totals[item] = totals.get(item, 0.0) + weight * norm
    return sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))
