"""Compare ways of combining the search arms on a benchmark, from rankings computed once.

    python bench/fusion_experiments.py squad|korquad|scifact|PATH [--limit N]

Builds (or reuses) the benchmark index `rag eval` uses, asks every query of each arm once (dense; BM25 over
the stemmed table with words, and with words plus neighbouring-word phrases; BM25 over the unstemmed
table; BM25 over character bigrams), then scores fusions of those rankings with the metrics of `rag eval`.
The figures behind the choices in `rag/search/searcher.py` are in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baselines import SETS  # noqa: E402

from rag.evaluate import Benchmark, benchmark_index, default_cache, load_benchmark, score_rankings  # noqa: E402
from rag.index.lexical import PLAIN, STEMMED  # noqa: E402
from rag.search.fusion import convex_fusion  # noqa: E402
from rag.text import bigram_query, has_wide_script, words_and_pairs_query, words_query  # noqa: E402

DEPTH = 100
Ranking = list[tuple[int, float]]


def arms(bench: Benchmark) -> tuple[dict[str, list[Ranking]], dict[int, str]]:
    index = benchmark_index(bench, None, default_cache(), progress=True)
    searcher = index.searcher
    with searcher.store.read() as reader:
        chunk_doc = reader.chunk_sources()
    texts = [q for _, q in bench.queries]
    vectors = index.embedder.encode(texts)  # queries fit the window; batched, unlike one by one in search
    scores, ids = searcher.dense_index().index.search(vectors, DEPTH)
    out: dict[str, list[Ranking]] = {
        "dense": [[(int(i), float(s)) for i, s in zip(ids[r], scores[r]) if i >= 0] for r in range(len(texts))]
    }
    plans = {
        "stemmed words": (STEMMED, words_query),
        "stemmed words+pairs": (STEMMED, words_and_pairs_query),
        "unstemmed words": (PLAIN, words_query),
        "char bigrams": (PLAIN, bigram_query),
    }
    for name, (fields, make) in plans.items():
        out[name] = [searcher.bm25(make(text), fields, DEPTH) for text in texts]
    return out, chunk_doc


def report(bench: Benchmark, chunk_doc: dict[int, str], name: str, fused: list[Ranking]) -> None:
    rankings = {}
    for (qid, _), ranking in zip(bench.queries, fused):
        docs: dict[str, None] = {}
        for cid, _ in ranking:
            docs.setdefault(chunk_doc[cid], None)
        rankings[qid] = list(docs)[:20]
    m = score_rankings(rankings, bench.qrels)
    print(
        f"{name:<46} R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  R@20 {m['recall@20']:.3f}  "
        f"MRR@10 {m['mrr@10']:.3f}  nDCG@10 {m['ndcg@10']:.3f}",
        flush=True,
    )


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Sum of 1 / (k + rank) over the rankings an id appears in; best first. Measured here and not kept
    (bench/RESULTS.md), so it lives beside the experiment rather than in the product."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(dict.fromkeys(ranking), start=1):
            scores[item] = scores.get(item, 0.0) + 1 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    bench = load_benchmark(SETS.get(args.benchmark, Path(args.benchmark))).limited(args.limit)
    got, chunk_doc = arms(bench)
    wide = any(has_wide_script(q) for _, q in bench.queries[:50])
    for name, ranking in got.items():
        report(bench, chunk_doc, name, ranking)
    lexical = ["char bigrams"] if wide else ["stemmed words"]
    n = len(bench.queries)
    dense, lex = got["dense"], got[lexical[0]]
    for k in (60, 5):
        fused = [reciprocal_rank_fusion([[c for c, _ in d], [c for c, _ in x]], k=k) for d, x in zip(dense, lex)]
        report(bench, chunk_doc, f"RRF k={k}: dense + {lexical[0]}", fused)
    for w in (0.5, 0.6, 0.7):
        fused = [convex_fusion([d, x], [1 - w, w]) for d, x in zip(dense, lex)]
        report(bench, chunk_doc, f"convex {w}: dense + {lexical[0]}", fused)
    if not wide:
        for w in (0.5, 0.6, 0.7):
            trio = [got["dense"], got["stemmed words+pairs"], got["unstemmed words"]]
            fused = [convex_fusion([trio[0][i], trio[1][i], trio[2][i]], [1 - w, w / 2, w / 2]) for i in range(n)]
            report(bench, chunk_doc, f"convex {w}: dense + stemmed pairs + unstemmed", fused)
        fused = [convex_fusion([a, b], [0.5, 0.5]) for a, b in zip(got["stemmed words+pairs"], got["unstemmed words"])]
        report(bench, chunk_doc, "keyword: stemmed pairs + unstemmed", fused)


if __name__ == "__main__":
    main()
