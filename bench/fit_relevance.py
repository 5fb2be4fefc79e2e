"""Fit the relevance model, the `found` threshold and the adaptive fusion by leave-one-dataset-out.

    python bench/fit_relevance.py [--limit N] [--itn PATH] [--model NAME_OR_PATH] [--write]

For every question of SQuAD, KorQuAD, SciFact and the news set (bench/news/), the product's own search
code gathers the arms (the lexical rankings with their ceilings, the dense ranking) and the relevance
features of every candidate passage, once. Everything after that is simulated from those records: fusion
settings, the logistic model and the threshold, and the same question asked without its relevant documents
(their passages dropped from every arm, which is what `exclude` does).

For each set in turn, the setting is chosen and the model fitted on the other sets only, and the set left
out is measured: ranking (Recall@1/5, MRR@10, nDCG@10) and both `found` errors. The figures printed are the
left-out ones; `--write` fits once more on all sets and writes rag/search/calibration.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from news import DEFAULT_CLONE, load_news  # noqa: E402

from rag.evaluate import Benchmark, benchmark_index, default_cache, load_benchmark, score_rankings  # noqa: E402
from rag.models.embed import passage_input, resolve_model  # noqa: E402
from rag.search.call import FOUND_DEPTH  # noqa: E402
from rag.search.fusion import Arms, fuse_arms  # noqa: E402
from rag.search.relevance import FEATURES, features  # noqa: E402
from rag.search.request import Question  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
CALIBRATION = Path(__file__).resolve().parent.parent / "rag" / "calibration.json"
DEPTH = 100
STRONG = (0.4, 0.5, 0.6, 0.7)
WEAK = (0.2, 0.3, 0.4, 0.5, 0.6)
STRENGTH = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


@dataclass
class Record:
    """One question's arms and candidate passages, as the search saw them."""

    qid: str
    wide: bool
    relevant: set[str]
    absent: set[int]  # chunk ids of the documents left out to make the question unanswerable
    lexical: list[tuple[list[tuple[int, float]], float]]
    dense: list[tuple[int, float]]
    doc: dict[int, str]  # candidate chunk -> document source
    span: dict[int, tuple[int, int, int]]  # candidate chunk -> (doc id, start, end)
    x_dense: dict[int, list[float]]
    x_lexical: dict[int, list[float]]


def collect(bench: Benchmark, model: str | None = None) -> list[Record]:
    index = benchmark_index(bench, model, default_cache(), progress=True)
    searcher = index.searcher
    records = []
    with searcher.store.read() as reader:
        for qid, text in bench.queries:
            asked = Question.of(text)
            q_vec = index.embedder.encode_query(text)
            arms = searcher.arms(asked, DEPTH, q_vec)
            strengths = arms.lexical_strengths
            ids = list(dict.fromkeys([c for r, _ in arms.lexical for c, _ in r] + [c for c, _ in arms.dense or []]))
            rows = reader.chunk_hits(ids)
            texts = reader.document_texts({r.doc_id for r in rows.values()})
            sims = searcher.similarities(list(rows), q_vec)
            rec = Record(qid, asked.wide, set(bench.qrels[qid]), set(), arms.lexical, arms.dense or [], {}, {}, {}, {})
            for cid, row in rows.items():
                evidence = passage_input(row.title, texts[row.doc_id][row.start : row.end])
                rec.doc[cid] = row.source
                rec.span[cid] = (row.doc_id, row.start, row.end)
                rec.x_dense[cid] = features(asked, evidence, sims.get(cid, 0.0), strengths.get(cid, 0.0))
                rec.x_lexical[cid] = features(asked, evidence, None, strengths.get(cid, 0.0))
            absent_sources = set(bench.absent(qid))
            rec.absent = {cid for cid, src in rec.doc.items() if src in absent_sources}
            records.append(rec)
    return records


@dataclass(frozen=True)
class Setting:
    strong: float
    weak: float
    strength: float
    dense_wide: bool


def heads(rec: Record, setting: Setting, excluded: bool, keyword: bool = False) -> list[int]:
    """The chunks that open passages, best first, as `Searcher._passages` picks them (a chunk overlapping
    one already chosen from its document merges into it)."""
    drop = rec.absent if excluded else set()
    lexical = [([(c, s) for c, s in r if c not in drop], ceiling) for r, ceiling in rec.lexical]
    dense = (
        None if keyword or (rec.wide and not setting.dense_wide) else [(c, s) for c, s in rec.dense if c not in drop]
    )
    fused = fuse_arms(Arms(lexical, dense), (setting.strong, setting.weak), setting.strength)
    chosen: list[int] = []
    for cid, _ in fused:
        if cid not in rec.span:
            continue
        doc, start, end = rec.span[cid]
        if any(rec.span[o][0] == doc and rec.span[o][1] < end and start < rec.span[o][2] for o in chosen):
            continue
        chosen.append(cid)
        if len(chosen) == 30:
            break
    return chosen


def ranking(rec: Record, chosen: list[int]) -> list[str]:
    return list(dict.fromkeys(rec.doc[c] for c in chosen))[:20]


def ranking_metrics(records: list[Record], setting: Setting, keyword: bool = False) -> dict[str, float]:
    rankings = {r.qid: ranking(r, heads(r, setting, False, keyword)) for r in records}
    return score_rankings(rankings, {r.qid: {d: 1 for d in r.relevant} for r in records})


# --- the logistic model ------------------------------------------------------------------------------


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by Newton's method, a small ridge on the weights (not the bias)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(xb.shape[1])
    ridge = np.full(xb.shape[1], l2)
    ridge[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(xb @ beta, -60, 60)))
        grad = xb.T @ (w * (p - y)) + ridge * beta
        hess = (xb * (w * p * (1 - p))[:, None]).T @ xb + np.diag(ridge) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def examples(sets: dict[str, list[Record]], setting: Setting, keyword: bool) -> tuple[np.ndarray, ...]:
    """The first FOUND_DEPTH passages of every question, asked with and without its documents; each set
    weighs the same in all."""
    xs, ys, ws = [], [], []
    for records in sets.values():
        rows = []
        for rec in records:
            table = rec.x_lexical if keyword else rec.x_dense
            for excluded in (False, True):
                for cid in heads(rec, setting, excluded, keyword)[:FOUND_DEPTH]:
                    rows.append((table[cid], float(rec.doc[cid] in rec.relevant)))
        for x, y in rows:
            xs.append(x)
            ys.append(y)
            ws.append(1.0 / len(rows))
    return np.array(xs), np.array(ys), np.array(ws)


def probability(beta: np.ndarray, bias: float, x: list[float]) -> float:
    return float(1 / (1 + np.exp(-np.clip(bias + np.dot(beta, x), -60, 60))))


def best_probabilities(records: list[Record], setting: Setting, model, keyword: bool, excluded: bool) -> list[float]:
    beta, bias = model
    out = []
    for rec in records:
        table = rec.x_lexical if keyword else rec.x_dense
        top = heads(rec, setting, excluded, keyword)[:FOUND_DEPTH]
        out.append(max((probability(beta, bias, table[c]) for c in top), default=0.0))
    return out


def found_errors(records, setting, model, threshold, keyword=False) -> tuple[float, float]:
    answerable = best_probabilities(records, setting, model, keyword, False)
    unanswerable = best_probabilities(records, setting, model, keyword, True)
    refused = sum(p < threshold for p in answerable) / len(answerable)
    answered = sum(p >= threshold for p in unanswerable) / len(unanswerable)
    return refused, answered


# A wrongly refused question hides what the articles say; a wrong "found" shows passages the reader can judge.
# The product's budgets (wrongly refused at most 5%, wrongly answered at most 30%) weigh one about six times
# the other, and so does the threshold's cost.
REFUSAL_COST = 6.0


def choose_threshold(sets, setting, model, keyword=False) -> float:
    """The threshold minimising the mean over sets of (REFUSAL_COST x wrongly refused + wrongly answered)."""
    probs = {
        name: (
            best_probabilities(recs, setting, model, keyword, False),
            best_probabilities(recs, setting, model, keyword, True),
        )
        for name, recs in sets.items()
    }

    def cost(t: float) -> float:
        return statistics.fmean(
            REFUSAL_COST * sum(p < t for p in a) / len(a) + sum(p >= t for p in u) / len(u) for a, u in probs.values()
        )

    return min((t / 100 for t in range(1, 100)), key=cost)


def choose_setting(sets: dict[str, list[Record]]) -> Setting:
    """The fusion setting with the best mean nDCG@10 over `sets`."""
    best, best_score = None, -1.0
    for strong, weak, strength, dense_wide in itertools.product(STRONG, WEAK, STRENGTH, (False, True)):
        setting = Setting(strong, weak, strength, dense_wide)
        score = statistics.fmean(ranking_metrics(r, setting)["ndcg@10"] for r in sets.values())
        if score > best_score + 1e-9:
            best, best_score = setting, score
    return best


def fit(sets: dict[str, list[Record]]) -> dict:
    setting = choose_setting(sets)
    out = {"setting": setting}
    for keyword in (False, True):
        x, y, w = examples(sets, setting, keyword)
        model = fit_logistic(x, y, w)
        out["keyword" if keyword else "dense"] = (model, choose_threshold(sets, setting, model, keyword))
    return out


def report(name: str, records: list[Record], fitted: dict) -> dict:
    setting = fitted["setting"]
    model, threshold = fitted["dense"]
    kw_model, kw_threshold = fitted["keyword"]
    hybrid = ranking_metrics(records, setting)
    keyword = ranking_metrics(records, setting, keyword=True)
    refused, answered = found_errors(records, setting, model, threshold)
    kw_refused, kw_answered = found_errors(records, setting, kw_model, kw_threshold, keyword=True)
    return {
        "set": name,
        "setting": setting.__dict__,
        "hybrid": {k: round(v, 3) for k, v in hybrid.items()},
        "keyword": {k: round(v, 3) for k, v in keyword.items()},
        "found": {"threshold": threshold, "wrongly_refused": round(refused, 3), "wrongly_answered": round(answered, 3)},
        "found_keyword": {
            "threshold": kw_threshold,
            "wrongly_refused": round(kw_refused, 3),
            "wrongly_answered": round(kw_answered, 3),
        },
    }


def calibration_entry(fitted: dict) -> dict:
    setting = fitted["setting"]

    def model(key):
        (beta, bias), threshold = fitted[key]
        return {"weights": [round(float(b), 4) for b in beta], "bias": round(bias, 4), "threshold": threshold}

    return {
        "features": list(FEATURES),
        "dense": model("dense"),
        "lexical_only": model("keyword"),
        "lexical_weight": {"strong": setting.strong, "weak": setting.weak},
        "lexical_strength": setting.strength,
        "dense_wide_script": setting.dense_wide,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=600, help="questions per SQuAD-format set (spread evenly)")
    parser.add_argument("--itn", type=Path, default=DEFAULT_CLONE, help="clone of shizhao/ITN-corpus")
    parser.add_argument("--model", help="model to calibrate (default: the packaged one); a name or a path")
    parser.add_argument("--write", action="store_true", help="fit on all sets and write rag/search/calibration.json")
    args = parser.parse_args()
    benches = {
        "squad": load_benchmark(SHARED / "squad-v1.1-dev.json").limited(args.limit),
        "korquad": load_benchmark(SHARED / "korquad-v1.0-dev.json").limited(args.limit),
        "scifact": load_benchmark(SHARED / "scifact"),
        "news": load_news(args.itn),
    }
    sets = {}
    for name, bench in benches.items():
        started = time.time()
        sets[name] = collect(bench, args.model)
        print(f"{name}: {len(sets[name])} questions gathered in {time.time() - started:.0f}s", file=sys.stderr)
    results = []
    for name in sets:
        fitted = fit({n: r for n, r in sets.items() if n != name})
        results.append(report(name, sets[name], fitted))
        print(json.dumps(results[-1]))
    if args.write:
        fitted = fit(sets)
        table = json.loads(CALIBRATION.read_text())
        entry = calibration_entry(fitted)
        entry["left_out"] = results
        table["models"][resolve_model(args.model)[0]] = entry
        CALIBRATION.write_text(json.dumps(table, indent=2) + "\n")
        print(json.dumps({"all_sets": report("all", [r for rs in sets.values() for r in rs], fitted)}))


if __name__ == "__main__":
    main()
