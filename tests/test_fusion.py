from hypothesis import given
from hypothesis import strategies as st

from rag.search.fusion import RRF_K, convex_fusion, reciprocal_rank_fusion

rankings = st.lists(st.lists(st.integers(0, 30), max_size=15, unique=True), min_size=1, max_size=3)


def test_rrf_by_hand():
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1]]))
    assert fused[1] == 1 / (RRF_K + 1) + 1 / (RRF_K + 2)
    assert fused[3] == 1 / (RRF_K + 3) + 1 / (RRF_K + 1)
    assert fused[2] == 1 / (RRF_K + 2)
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2, 3], [3, 1]])] == [1, 3, 2]


def test_convex_by_hand():
    fused = convex_fusion([[(1, 10.0), (2, 5.0), (3, 0.0)], [(3, 0.9), (2, 0.5)]], [0.5, 0.5])
    assert fused[0] == (1, 0.5)
    assert dict(fused)[3] == 0.5 and dict(fused)[2] == 0.25


@given(rankings)
def test_rrf_keeps_every_id_once_best_first(lists):
    fused = reciprocal_rank_fusion(lists)
    ids = [i for i, _ in fused]
    assert len(ids) == len(set(ids)) == len({i for r in lists for i in r})
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)


@given(rankings)
def test_rrf_ignores_the_order_of_the_rankings(lists):
    assert reciprocal_rank_fusion(lists) == reciprocal_rank_fusion(list(reversed(lists)))


@given(st.lists(st.integers(0, 30), min_size=1, max_size=15, unique=True))
def test_rrf_of_one_ranking_keeps_its_order(ranking):
    assert [i for i, _ in reciprocal_rank_fusion([ranking])] == ranking
