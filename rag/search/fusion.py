"""Rank fusion as pure functions over ranked (id, score) lists, so they can be property-tested in isolation:
convex fusion of min-max normalised scores, and the weights one search gives its arms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property


def convex_fusion(
    scored: Sequence[Sequence[tuple[int, float]]],
    weights: Sequence[float],
    absolute: Sequence[bool] = (),
) -> list[tuple[int, float]]:
    """Weighted sum of min-max normalised scores (or of the scores as they are, for a list marked in
    `absolute`: already on a 0-1 scale of their own); an id missing from a list scores 0 there."""
    totals: dict[int, float] = {}
    for n, (items, weight) in enumerate(zip(scored, weights)):
        if not items:
            continue
        values = [s for _, s in items]
        low, high = min(values), max(values)
        span = high - low
        if n < len(absolute) and absolute[n]:
            low, span = 0.0, 1.0
        for item, score in items:
            norm = (score - low) / span if span > 0 else 1.0
            totals[item] = totals.get(item, 0.0) + weight * norm
    return sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))


Ranking = list[tuple[int, float]]
NamePairs = tuple[tuple[str, str], ...]  # names a passage shares with the question across scripts: (Hangul, English)


@dataclass(frozen=True)
class Arms:
    """The rankings of one search: each lexical arm with its ceiling, the dense arm (None when the question
    was not encoded), and the multilingual arm (None when it did not run): its passages in the question's
    script with their share of the fusion, and those in another script apart (ordered by their cosine with
    the names they share with the question counted, `crossing`; their own cosines kept apart for `found`)."""

    lexical: list[tuple[Ranking, float]]
    dense: Ranking | None
    multilingual: Ranking | None = None  # its passages in the question's script, ranked beside the others
    multilingual_weight: float = 0.0
    crossing: Ranking | None = None  # its passages in another script: placed by probability, not fused
    crossing_cosines: dict[int, float] | None = None  # their cosines, before names shared across scripts count
    crossing_names: dict[int, NamePairs] | None = None  # the names each shares with the question

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
    the dense arm the larger say. Both shares and the strength were chosen by leave-one-dataset-out. The
    multilingual arm, when it ran, takes its own share off the top (fitted the same way)."""
    if arms.dense is None or not arms.lexical:
        rankings = [r for r, _ in arms.lexical] or [arms.dense or []]
        weights = [1.0 / len(rankings)] * len(rankings)
    else:
        strong, weak = lexical_weight
        share = strong if max(arms.lexical_strengths.values(), default=0.0) >= lexical_strength else weak
        rankings = [r for r, _ in arms.lexical] + [arms.dense]
        weights = [share / len(arms.lexical)] * len(arms.lexical) + [1.0 - share]
    if arms.multilingual is None:
        return convex_fusion(rankings, weights)
    # With the multilingual arm, a lexical arm counts by how well its passages hold the question's words (their
    # share of its ceiling), not by their rank among themselves: the best of a few passages sharing one common
    # word with the question would otherwise count as much as the arm's best cross-language match.
    strengths = [
        [(cid, min(1.0, score / ceiling) if ceiling > 0 else 0.0) for cid, score in r] for r, ceiling in arms.lexical
    ]
    if len(rankings) > len(strengths):
        strengths.append(rankings[-1])  # the dense arm keeps its min-max scale
    keep = 1.0 - arms.multilingual_weight
    absolute = [True] * len(arms.lexical) + [False] * (len(rankings) - len(arms.lexical)) + [False]
    return convex_fusion(
        [*strengths, arms.multilingual], [w * keep for w in weights] + [arms.multilingual_weight], absolute
    )


def fuse_mode(arms: Arms, mode: str, lexical_weight: tuple[float, float], lexical_strength: float) -> Ranking:
    """The ranking of a search in `mode`: the dense arm alone (semantic), the lexical arms alone (keyword), or
    both (`fuse_arms`); the multilingual arm joins the first and the last when it ran."""
    if mode == "semantic":
        if arms.multilingual is None:
            return convex_fusion([arms.dense or []], [1.0])
        keep = 1.0 - arms.multilingual_weight
        return convex_fusion([arms.dense or [], arms.multilingual], [keep, arms.multilingual_weight])
    if mode == "keyword":
        arms = Arms(arms.lexical, None)
    return fuse_arms(arms, lexical_weight, lexical_strength)
