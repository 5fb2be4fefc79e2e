"""Retrieval metrics on hand-worked cases, the benchmark loaders, and `rag eval` end to end on small sets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rag.evaluate import load_beir, load_benchmark, load_squad, mrr_at, ndcg_at, recall_at, score_rankings
from tests.conftest import DATA

EVAL = DATA / "eval"


def test_recall_counts_relevant_documents_within_the_cutoff():
    ranked = ["a", "b", "c", "d"]
    assert recall_at(ranked, {"c": 1}, 1) == 0.0
    assert recall_at(ranked, {"c": 1}, 3) == 1.0
    assert recall_at(ranked, {"a": 1, "d": 1}, 2) == 0.5  # one of two relevant in the top 2
    assert recall_at([], {"a": 1}, 5) == 0.0


def test_mrr_is_one_over_the_first_relevant_rank_within_ten():
    assert mrr_at(["x", "y", "a"], {"a": 1}) == pytest.approx(1 / 3)
    assert mrr_at(["a"], {"a": 1}) == 1.0
    assert mrr_at([f"n{i}" for i in range(10)] + ["a"], {"a": 1}) == 0.0  # rank 11 is past the cutoff


def test_ndcg_with_graded_relevance_worked_by_hand():
    # ranked: b (grade 1) at rank 1, a (grade 2) at rank 2.
    # DCG = 1/log2(2) + 2/log2(3) = 1 + 1.26186 ; ideal = 2/log2(2) + 1/log2(3) = 2 + 0.63093
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at(["b", "a", "c"], {"a": 2, "b": 1}) == pytest.approx(expected)
    assert ndcg_at(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)
    assert ndcg_at(["c", "d"], {"a": 1}) == 0.0


def test_scores_are_means_over_queries():
    scores = score_rankings({"q1": ["a", "b"], "q2": ["b", "a"]}, {"q1": {"a": 1}, "q2": {"a": 1}})
    assert scores["recall@1"] == 0.5 and scores["recall@5"] == 1.0
    assert scores["mrr@10"] == pytest.approx(0.75)


def test_squad_loader_makes_paragraphs_documents_and_their_questions_queries():
    bench = load_squad(EVAL / "tiny_squad.json")
    assert len(bench.documents) == 6 and len(bench.queries) == 9
    assert bench.qrels["q1"] == {"Jeju_Island#0": 1}
    assert bench.documents[0].title == "Jeju Island"
    assert set(bench.absent("q1")) == {"Jeju_Island#0", "Jeju_Island#1"}, "the whole article leaves"


def test_beir_loader_keeps_graded_judgements_and_only_judged_queries():
    bench = load_beir(EVAL / "tiny_beir")
    assert [q for q, _ in bench.queries] == ["1", "2", "3"]
    assert bench.qrels["1"] == {"d1": 2, "d4": 1}
    assert load_benchmark(EVAL / "tiny_beir").name == "tiny_beir"


def test_limit_spreads_queries_over_the_set():
    bench = load_squad(EVAL / "tiny_squad.json")
    picked = [q for q, _ in bench.limited(3).queries]
    assert picked == ["q1", "q4", "q7"]


@pytest.mark.slow
def test_rag_eval_end_to_end_on_a_small_squad_file(tmp_path: Path, rag_eval):
    run = rag_eval(str(EVAL / "tiny_squad.json"), "--limit", "8", "--json", cache=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["documents"], result["queries"]) == (6, 8)
    assert set(result["modes"]) == {"hybrid", "semantic", "keyword"}
    hybrid = result["modes"]["hybrid"]
    assert hybrid["recall@5"] == 1.0 and hybrid["recall@1"] >= 0.75
    assert hybrid["latency_ms_p50"] > 0
    assert 0 <= result["found"]["wrongly_refused"] <= 0.25
    assert result["found"]["unanswerable_queries"] == 8
    built = sorted(p.name for p in tmp_path.iterdir())
    updated = json.loads((tmp_path / built[0] / "manifest.json").read_text())["updated"]
    database = (tmp_path / built[0] / "rag.sqlite").stat().st_mtime_ns

    again = rag_eval(str(EVAL / "tiny_squad.json"), "--limit", "2", "--modes", "keyword", cache=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == built, "same corpus, same cached index"
    assert json.loads((tmp_path / built[0] / "manifest.json").read_text())["updated"] == updated, "nothing re-indexed"
    assert (tmp_path / built[0] / "rag.sqlite").stat().st_mtime_ns == database
    assert "keyword" in again.stdout and "recall@1" in again.stdout and "hybrid" not in again.stdout


@pytest.mark.slow
def test_rag_eval_on_a_beir_folder_reports_ndcg(tmp_path: Path, rag_eval):
    run = rag_eval(str(EVAL / "tiny_beir"), "--json", "--modes", "hybrid", cache=tmp_path)
    assert run.returncode == 0, run.stderr
    hybrid = json.loads(run.stdout)["modes"]["hybrid"]
    assert hybrid["ndcg@10"] > 0.8 and hybrid["recall@5"] == 1.0


def test_rag_eval_rejects_what_is_not_a_benchmark(tmp_path: Path, rag_eval):
    (tmp_path / "notes.txt").write_text("hello")
    run = rag_eval(str(tmp_path / "notes.txt"), cache=tmp_path)
    assert run.returncode == 2 and run.stderr.startswith("error: ") and "SQuAD-format" in run.stderr
