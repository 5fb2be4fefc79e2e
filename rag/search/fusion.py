"""Rank fusion as pure functions over ranked (id, score) lists, so they can be property-tested in isolation:
convex fusion of min-max normalised scores, and the weights one search gives its arms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property


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


Ranking = list[tuple[int, float]]


@dataclass(frozen=True)
class Arms:
    """The rankings of one search: each lexical arm with its ceiling, and the dense arm (None when the
    question was not encoded)."""

    lexical: list[tuple[Ranking, float]]
    dense: Ranking | None

    @cached_property
    def lexical_strengths(self) -> dict[int, float]:
        """Each passage's best lexical score as a share of its arm's ceiling."""
        best: dict[int, float] = {}
        for ranking, ceiling in self.lexical:
            if ceiling <= 0:
                continue
            for cid, score in ranking:
                best[cid] = max(best.get(cid, 0.0), score / ceiling)
        return best


def fuse_arms(arms: Arms, lexical_weight: tuple[float, float], lexical_strength: float) -> Ranking:
    """Convex fusion of min-max normalised arms. The lexical arms' share adapts to the question: when their
    best passage holds the question's words well (`lexical_strength` of the ceiling) they get the first
    share, when no passage does (a paraphrased question, a name spelt another way) the second, which leaves
    the dense arm the larger say. Both shares and the strength were chosen by leave-one-dataset-out."""
    if arms.dense is None or not arms.lexical:
        rankings = [r for r, _ in arms.lexical] or [arms.dense or []]
        return convex_fusion(rankings, [1.0] * len(rankings))
    strong, weak = lexical_weight
    share = strong if max(arms.lexical_strengths.values(), default=0.0) >= lexical_strength else weak
    weights = [share / len(arms.lexical)] * len(arms.lexical) + [1.0 - share]
    return convex_fusion([r for r, _ in arms.lexical] + [arms.dense], weights)


def fuse_mode(arms: Arms, mode: str, lexical_weight: tuple[float, float], lexical_strength: float) -> Ranking:
    """The ranking of a search in `mode`: the dense arm alone (semantic), the lexical arms alone (keyword), or
    both (`fuse_arms`)."""
    if mode == "semantic":
        return convex_fusion([arms.dense or []], [1.0])
    if mode == "keyword":
        arms = Arms(arms.lexical, None)
    return fuse_arms(arms, lexical_weight, lexical_strength)
