"""`rag eval`: measure retrieval on public benchmarks, so "the first passage is the right one" is a number.

A benchmark is a corpus, queries and relevance judgements. SQuAD-format files (SQuAD, KorQuAD) make every
paragraph a document and a question's own paragraph its one relevant document; BEIR folders bring their
own qrels (graded). The corpus is indexed once into a cache keyed by model and content, so a second run
re-embeds nothing; then every query runs through the same `Searcher` the product uses, per search mode.
Passages are mapped back to documents in the order they first appear.

`found` is measured too: answerable queries that come back `found: false` are wrongly refused; the same
queries asked with their relevant documents left out of the search are unanswerable, and `found: true`
there is a wrong answer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.api import Index
from rag.errors import RagError
from rag.models.embed import resolve_model
from rag.records import Document
from rag.search.request import MODES, SearchRequest

CUTOFFS = (1, 5, 20)
RANK_DEPTH = 20  # documents ranked per query; the metrics need no more
PASSAGE_DEPTH = 60  # passages fetched to fill RANK_DEPTH distinct documents


@dataclass
class Benchmark:
    name: str
    documents: list[Document]
    queries: list[tuple[str, str]]  # (query id, text)
    qrels: dict[str, dict[str, int]]  # query id -> {document source: graded relevance}
    topics: dict[str, str] = field(default_factory=dict)  # document source -> its article (SQuAD)

    def limited(self, n: int | None) -> Benchmark:
        """`n` queries spread evenly over the set (the first n of SQuAD are all about one article), over the
        whole corpus: a smaller corpus would make retrieval easier."""
        if not n or n >= len(self.queries):
            return self
        step = len(self.queries) / n
        picked = [self.queries[int(i * step)] for i in range(n)]
        return Benchmark(self.name, self.documents, picked, self.qrels, self.topics)

    def absent(self, qid: str) -> tuple[str, ...]:
        """What to leave out to make a query unanswerable: its relevant documents, and for SQuAD the rest of
        their article too, whose paragraphs share the question's terms and often half its answer."""
        relevant = set(self.qrels[qid])
        articles = {self.topics[s] for s in relevant if s in self.topics}
        if articles:
            relevant |= {s for s, topic in self.topics.items() if topic in articles}
        return tuple(sorted(relevant))

    def fingerprint(self, model: str) -> str:
        digest = hashlib.sha256(model.encode())
        for doc in self.documents:
            digest.update(f"\0{doc.source}\0{doc.title}\0{doc.text}".encode())
        return digest.hexdigest()[:16]


def load_benchmark(path: Path) -> Benchmark:
    """A SQuAD-format JSON file or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)."""
    path = Path(path)
    if path.is_dir():
        return load_beir(path)
    if path.suffix.lower() == ".json":
        return load_squad(path)
    raise RagError(f"{path}: expected a SQuAD-format .json file or a BEIR folder with corpus.jsonl")


def squad_documents(articles: Iterable[dict]) -> list[Document]:
    """One document per paragraph, `source` = "<article title>#<paragraph number>"."""
    docs = []
    for art in articles:
        for i, para in enumerate(art["paragraphs"]):
            docs.append(make_document(f"{art['title']}#{i}", art["title"].replace("_", " "), para["context"]))
    return docs


def load_squad(path: Path) -> Benchmark:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError) as exc:
        raise RagError(f"{path}: not a SQuAD-format file ({exc})") from exc
    queries, qrels, topics = [], {}, {}
    for art in data:
        for i, para in enumerate(art["paragraphs"]):
            topics[f"{art['title']}#{i}"] = art["title"]
            for qa in para["qas"]:
                queries.append((qa["id"], qa["question"]))
                qrels[qa["id"]] = {f"{art['title']}#{i}": 1}
    return Benchmark(Path(path).stem, squad_documents(data), queries, qrels, topics)


def load_beir(folder: Path, split: str = "test") -> Benchmark:
    try:
        corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines() if line.strip()]
        texts = {q["_id"]: q["text"] for q in map(json.loads, (folder / "queries.jsonl").read_text().splitlines()) if q}
        qrels: dict[str, dict[str, int]] = {}
        for line in (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
            qid, did, score = line.split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)
    except (OSError, ValueError, KeyError) as exc:
        raise RagError(f"{folder}: not a BEIR folder ({exc})") from exc
    docs = [make_document(d["_id"], d.get("title") or "", d["text"]) for d in corpus if d.get("text", "").strip()]
    queries = [(qid, texts[qid]) for qid in qrels if qid in texts]
    return Benchmark(folder.name, docs, queries, qrels)


def make_document(source: str, title: str, text: str) -> Document:
    """A benchmark document: the whole text is content."""
    text = text.strip()
    return Document(
        source=source,
        text=text,
        title=title,
        segments=((0, len(text)),),
        content_hash=hashlib.sha256(f"{title}\0{text}".encode()).hexdigest(),
    )


# --- metrics: pure functions of one ranking and its judgements ---------------------------------------


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """Share of the relevant documents found in the first k."""
    return len(set(ranked[:k]) & relevant.keys()) / len(relevant) if relevant else 0.0


def mrr_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document within the first k, else 0."""
    return next((1.0 / rank for rank, doc in enumerate(ranked[:k], start=1) if doc in relevant), 0.0)


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain with graded relevance (gain = grade, discount log2(rank + 1))."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1))
    ideal = sum(g / math.log2(rank + 1) for rank, g in enumerate(sorted(relevant.values(), reverse=True)[:k], 1))
    return dcg / ideal if ideal else 0.0


def score_rankings(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean of each metric over the queries in `rankings`."""
    rows = [(ranked, qrels[qid]) for qid, ranked in rankings.items()]
    if not rows:
        return {}
    metrics: dict[str, Callable[[Sequence[str], dict[str, int]], float]] = {
        **{f"recall@{k}": functools.partial(recall_at, k=k) for k in CUTOFFS},
        "mrr@10": mrr_at,
        "ndcg@10": ndcg_at,
    }
    return {name: statistics.fmean(fn(r, rel) for r, rel in rows) for name, fn in metrics.items()}


# --- running a benchmark through the product's search ---------------------------------------------------


@dataclass
class ModeResult:
    mode: str
    metrics: dict[str, float]
    latency_ms_p50: float
    latency_ms_mean: float
    queries: int


@dataclass
class EvalResult:
    benchmark: str
    model: str
    documents: int
    queries: int
    modes: list[ModeResult] = field(default_factory=list)
    found: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "model": self.model,
            "precision": self.precision,
            "documents": self.documents,
            "queries": self.queries,
            "modes": {
                m.mode: {
                    **{k: round(v, 4) for k, v in m.metrics.items()},
                    "latency_ms_p50": round(m.latency_ms_p50, 2),
                    "latency_ms_mean": round(m.latency_ms_mean, 2),
                }
                for m in self.modes
            },
            "found": self.found,
        }


def default_cache() -> Path:
    base = os.environ.get("RAG_EVAL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "verbatim", "eval"
    )
    return Path(base)


def benchmark_index(
    bench: Benchmark, model: str | None, cache: Path, progress: bool, precision: str | None = None
) -> Index:
    """The benchmark's corpus indexed with `model`, built once per (model, corpus content); embedded again when
    `precision` differs from the cached index's."""
    name = resolve_model(model)[0]
    index = Index(cache / f"{bench.name}-{bench.fingerprint(name)}", model=model, precision=precision)
    if not index.exists() or index.outdated():
        index.add_documents(bench.documents, progress=progress)
    return index


def document_ranking(passages: Iterable, depth: int = RANK_DEPTH) -> list[str]:
    """Documents in the order their passages first appear (copies of a shown story count as shown)."""
    ranked: dict[str, None] = {}
    for p in passages:
        ranked.setdefault(p.source, None)
        for copy in p.copies:
            ranked.setdefault(copy.source, None)
    return list(ranked)[:depth]


def run_mode(
    index: Index, bench: Benchmark, mode: str, progress: bool, rerank: bool | None = None
) -> tuple[ModeResult, dict[str, bool]]:
    rankings: dict[str, list[str]] = {}
    found: dict[str, bool] = {}
    latencies = []
    for qid, text in tqdm(
        bench.queries, desc=f"{bench.name} {mode}", unit="query", disable=not progress, file=sys.stderr
    ):
        started = time.perf_counter()
        answer = index.ask(SearchRequest.build(text, PASSAGE_DEPTH, mode, rerank=rerank))
        latencies.append((time.perf_counter() - started) * 1000)
        rankings[qid] = document_ranking(answer.passages)
        found[qid] = answer.found
    result = ModeResult(
        mode,
        score_rankings(rankings, bench.qrels),
        statistics.median(latencies),
        statistics.fmean(latencies),
        len(latencies),
    )
    return result, found


def found_errors(
    index: Index, bench: Benchmark, answered: dict[str, bool], sample: int, progress: bool, rerank: bool | None = None
) -> dict:
    """Wrongly refused: answerable queries with found false. Wrongly answered: `sample` queries (spread over
    the set) asked again without their documents (`Benchmark.absent`), found true."""
    refused = sum(1 for ok in answered.values() if not ok)
    asked = bench.limited(sample).queries
    wrong = 0
    for qid, text in tqdm(
        asked, desc=f"{bench.name} unanswerable", unit="query", disable=not progress, file=sys.stderr
    ):
        wrong += index.ask(SearchRequest.build(text, 5, exclude=tuple(bench.absent(qid)), rerank=rerank)).found
    return {
        "wrongly_refused": round(refused / len(answered), 4) if answered else None,
        "answerable_queries": len(answered),
        "wrongly_answered": round(wrong / len(asked), 4) if asked else None,
        "unanswerable_queries": len(asked),
    }


def evaluate(
    bench: Benchmark,
    model: str | None = None,
    modes: Sequence[str] = MODES,
    cache: Path | None = None,
    unanswerable: int = 1000,
    progress: bool = True,
    rerank: bool | None = None,
    precision: str | None = None,
) -> EvalResult:
    """The benchmark's figures per mode, and `found`'s errors in hybrid mode; `rerank` as in `Index.search`
    (True: with the reader, False: without, None: the calibrated default); `precision` as in `Index`."""
    for mode in modes:
        if mode not in MODES:
            raise RagError(f"unknown search mode '{mode}': choose from {', '.join(MODES)}")
    index = benchmark_index(bench, model, cache or default_cache(), progress, precision)
    result = EvalResult(bench.name, index.embedder.name, len(bench.documents), len(bench.queries))
    result.precision = index.embedder.precision
    hybrid_found: dict[str, bool] | None = None
    for mode in modes:
        mode_result, found = run_mode(index, bench, mode, progress, rerank)
        result.modes.append(mode_result)
        if mode == "hybrid":
            hybrid_found = found
    if hybrid_found is not None and unanswerable:
        result.found = found_errors(index, bench, hybrid_found, unanswerable, progress, rerank)
    return result


def format_table(result: EvalResult) -> str:
    head = (
        f"{result.benchmark}: {result.documents:,} documents, {result.queries:,} queries, "
        f"model {result.model} ({result.precision})"
    )
    cols = [f"recall@{k}" for k in CUTOFFS] + ["mrr@10", "ndcg@10"]
    lines = [head, "", f"{'mode':<10}" + "".join(f"{c:>11}" for c in cols) + f"{'ms/query':>11}"]
    for m in result.modes:
        lines.append(f"{m.mode:<10}" + "".join(f"{m.metrics[c]:>11.3f}" for c in cols) + f"{m.latency_ms_p50:>11.1f}")
    if result.found:
        f = result.found
        lines += [
            "",
            f"found (hybrid): wrongly refused {f['wrongly_refused']:.1%} of {f['answerable_queries']:,} answerable; "
            f"wrongly answered {f['wrongly_answered']:.1%} of {f['unanswerable_queries']:,} asked without "
            f"their document",
        ]
    return "\n".join(lines)
