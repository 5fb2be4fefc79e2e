"""The pure functions of a search, against references written out by hand: convex fusion and the arms' weights
(`rag.search.fusion`), and merging a fused ranking into passages (`rag.search.merge`)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from rag.index import ChunkHit
from rag.search.fusion import Arms, convex_fusion, fuse_arms
from rag.search.merge import Candidate, merge_hits

scored = st.lists(
    st.lists(st.tuples(st.integers(0, 30), st.floats(-50, 50, allow_nan=False)), max_size=15, unique_by=lambda p: p[0]),
    min_size=1,
    max_size=3,
)


def convex_by_formula(lists: list[list[tuple[int, float]]], weights: list[float]) -> dict[int, float]:
    """Each id's sum over the lists it is in of weight * (score - lowest) / (highest - lowest), 1 for a list
    whose scores are all equal."""
    total: dict[int, float] = {}
    for items, weight in zip(lists, weights):
        if not items:
            continue
        low, high = min(s for _, s in items), max(s for _, s in items)
        for item, score in items:
            norm = 1.0 if high == low else (score - low) / (high - low)
            total[item] = total.get(item, 0.0) + weight * norm
    return total


def test_convex_by_hand():
    fused = convex_fusion([[(1, 10.0), (2, 5.0), (3, 0.0)], [(3, 0.9), (2, 0.5)]], [0.5, 0.5])
    assert fused[0] == (1, 0.5)
    assert dict(fused)[3] == 0.5 and dict(fused)[2] == 0.25


@given(scored, st.lists(st.floats(0, 1), min_size=3, max_size=3))
def test_convex_fusion_is_the_formula_best_first(lists, weights):
    fused = convex_fusion(lists, weights[: len(lists)])
    expected = convex_by_formula(lists, weights[: len(lists)])
    assert {i for i, _ in fused} == set(expected)
    assert all(math.isclose(score, expected[i], abs_tol=1e-9) for i, score in fused)
    assert fused == sorted(fused, key=lambda pair: (-pair[1], pair[0])), "best first, ties by id"


@given(scored)
def test_convex_fusion_ignores_the_order_of_the_lists(lists):
    weights = [1 / len(lists)] * len(lists)
    forward = dict(convex_fusion(lists, weights))
    backward = dict(convex_fusion(list(reversed(lists)), weights))
    assert forward.keys() == backward.keys()
    assert all(math.isclose(forward[i], backward[i], abs_tol=1e-9) for i in forward)


@given(
    st.lists(st.tuples(st.integers(0, 30), st.floats(0, 40)), max_size=10, unique_by=lambda p: p[0]),
    st.lists(st.tuples(st.integers(0, 30), st.floats(-1, 1)), max_size=10, unique_by=lambda p: p[0]),
    st.floats(0.1, 30),
)
def test_the_lexical_share_follows_how_well_the_words_match(lexical, dense, ceiling):
    """The lexical arm gets the strong share when its best hit reaches the strength against its ceiling, the
    weak share otherwise; the dense arm the rest."""
    strong, weak, strength = 0.7, 0.2, 0.5
    arms = Arms([(lexical, ceiling)], dense)
    best = max((s / ceiling for _, s in lexical), default=0.0)
    share = strong if best >= strength else weak
    expected = convex_by_formula([lexical, dense], [share, 1 - share])
    fused = fuse_arms(arms, (strong, weak), strength)
    assert {i for i, _ in fused} == set(expected)
    assert all(math.isclose(score, expected[i], abs_tol=1e-9) for i, score in fused)


# --- merging ---------------------------------------------------------------------------------------------
def row(cid: int, doc: int, start: int, end: int, cluster: int | None = None) -> ChunkHit:
    return ChunkHit(
        cid, doc, f"title {doc}", f"doc{doc}.txt", None, start, end, None, None, (), doc if cluster is None else cluster
    )


def test_merging_by_hand():
    """Chunk 2 overlaps chunk 1 (same document): chunk 1 grows over it. Chunk 3 is in another document of
    chunk 1's cluster: a copy of a story already shown, dropped. Chunk 4 stands alone. Chunk 5 would grow
    chunk 4 past the limit: it is neither merged nor shown."""
    candidates = [
        Candidate(row(1, doc=1, start=100, end=200), 0.9, 0.5),
        Candidate(row(2, doc=1, start=150, end=260), 0.8, 0.7),
        Candidate(row(3, doc=2, start=0, end=90, cluster=1), 0.7, 0.6),
        Candidate(row(4, doc=3, start=0, end=100), 0.6, 0.2),
        Candidate(row(5, doc=3, start=50, end=500), 0.5, 0.9),
    ]
    hits = merge_hits(candidates, k=5, max_chars=300)
    assert [(h.row.id, h.start, h.end) for h in hits] == [(1, 100, 260), (4, 0, 100)]
    assert (hits[0].similarity, hits[0].head_similarity) == (0.7, 0.5), "the head's cosine scores the passage"
    assert (hits[1].similarity, hits[1].head_similarity) == (0.2, 0.2)


def test_merging_reads_no_further_than_the_kth_passage():
    read: list[int] = []

    def candidates():
        for n in range(100):
            read.append(n)
            yield Candidate(row(n, doc=n, start=0, end=10), 1.0 - n / 100, 0.0)

    assert [h.row.id for h in merge_hits(candidates(), k=3)] == [0, 1, 2]
    assert read == [0, 1, 2]


def merged_by_reference(candidates: list[Candidate], k: int, max_chars: int) -> list[tuple[int, int, int, float]]:
    """The rules written out once more, over plain lists: (head chunk id, start, end, similarity) per passage."""
    passages: list[list] = []  # [head, start, end, similarity]
    shown: dict[int, int] = {}
    for c in candidates:
        r = c.row
        if r.cluster in shown and shown[r.cluster] != r.doc_id:
            continue
        shown.setdefault(r.cluster, r.doc_id)
        touching = [p for p in passages if p[0].doc_id == r.doc_id and p[1] < r.end and r.start < p[2]]
        if touching:
            first = touching[0]
            start, end = min(first[1], r.start), max(first[2], r.end)
            others = [p for p in passages if p is not first and p[0].doc_id == r.doc_id]
            if end - start <= max_chars and not any(p[1] < end and start < p[2] for p in others):
                first[1], first[2], first[3] = start, end, max(first[3], c.similarity)
            continue
        passages.append([r, r.start, r.end, c.similarity])
        if len(passages) == k:
            break
    return [(p[0].id, p[1], p[2], p[3]) for p in passages]


@st.composite
def candidate_lists(draw) -> list[Candidate]:
    n = draw(st.integers(0, 25))
    out = []
    for cid in range(n):
        doc = draw(st.integers(0, 4))
        start = draw(st.integers(0, 400))
        end = start + draw(st.integers(1, 200))
        cluster = draw(st.sampled_from([doc, 0, 1]))
        out.append(Candidate(row(cid, doc, start, end, cluster), 1.0 - cid / 100, draw(st.floats(-1, 1))))
    return out


@given(candidate_lists(), st.integers(1, 6), st.integers(100, 600))
def test_merging_follows_the_rules_written_out(candidates, k, max_chars):
    hits = merge_hits(candidates, k, max_chars)
    assert [(h.row.id, h.start, h.end, h.similarity) for h in hits] == merged_by_reference(candidates, k, max_chars)
    assert len(hits) <= k
    for h in hits:
        assert h.start <= h.row.start and h.row.end <= h.end, "a passage covers the chunk that brought it in"
        assert h.end - h.start <= max(max_chars, h.row.end - h.row.start)
    assert not any(a.overlaps(b) for i, a in enumerate(hits) for b in hits[i + 1 :]), "no two passages overlap"
    assert len({h.row.cluster for h in hits}) == len({(h.row.cluster, h.row.doc_id) for h in hits}), (
        "one document per story"
    )
