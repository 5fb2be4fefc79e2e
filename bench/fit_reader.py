"""Choose how the reader is used (depth, weights, `found` bar, Korean or not) by leave-one-dataset-out.

    python bench/fit_reader.py collect [--limit N]   # search every question once, reader off; cache the heads
    python bench/fit_reader.py read [--reader DIR]    # the reader's logit and span for every head, cached
    python bench/fit_reader.py fit [--write]          # left-out figures; --write puts the choice in calibration.json

For each question of SQuAD, KorQuAD, SciFact and the news set (bench/news/), the product's own search (hybrid,
reader off) gives its first DEPTH passages with their surface probabilities, asked once as it is and once with
its relevant documents left out (`Benchmark.absent`). The reader reads each passage's evidence (the chunk that
brought it in) once. Everything after is simulated from those records: the reader rescoring the first N, a
logistic model over (reader logit, surface log-odds), the `found` bar. For each set in turn, the setting is
chosen on the other sets only and the set left out is measured; the figures printed are the left-out ones,
beside the reader-less ones of the same records.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

if "--alone" not in sys.argv:  # `read --alone` runs where only numpy, onnxruntime and tokenizers are installed
    from fit_relevance import REFUSAL_COST, fit_logistic  # noqa: E402
    from news import load_news  # noqa: E402

    from rag.evaluate import Benchmark, benchmark_index, default_cache, load_benchmark, score_rankings  # noqa: E402
    from rag.search import SearchRequest  # noqa: E402
    from rag.search.call import FOUND_DEPTH  # noqa: E402
    from rag.search.rerank import ReaderCalibration, log_odds  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "eval"
WORK = Path("/tmp/fit-reader")
DEPTH = 20
DEPTHS = (3, 5, 10)
READ = max(DEPTHS)  # heads the reader reads per question
READ_LIMIT = {"squad": 150, "scifact": 150, "korquad": 50}  # questions read per set (the news set: all)
CALIBRATION = HERE.parent / "rag" / "search" / "calibration.json"


def benchmarks(limit: int) -> dict[str, Benchmark]:
    sets = {
        "squad": load_benchmark(SHARED / "squad-v1.1-dev.json").limited(limit),
        "korquad": load_benchmark(SHARED / "korquad-v1.0-dev.json").limited(limit),
        "scifact": load_benchmark(SHARED / "scifact").limited(limit),
        "news": load_news(),
    }
    return sets


def heads(index, text: str, exclude: tuple[str, ...]) -> list[dict]:
    answer = index.ask(SearchRequest.build(text, DEPTH, "hybrid", exclude=exclude, rerank=False))
    with index.searcher.store.read() as reader:
        rows = reader.chunk_hits([p.chunk_id for p in answer.passages])
        texts = reader.document_texts({r.doc_id for r in rows.values()})
    out = []
    for p in answer.passages:
        row = rows[p.chunk_id]
        out.append(
            {
                "source": p.source,
                "copies": [c.source for c in p.copies],
                "surface": p.score,
                "evidence": texts[row.doc_id][row.start : row.end],
            }
        )
    return out


def collect(work: Path, limit: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for name, bench in benchmarks(limit).items():
        target = work / f"{name}.json"
        if target.exists():
            continue
        began = time.time()
        index = benchmark_index(bench, None, default_cache(), progress=True)
        records = []
        for qid, text in bench.queries:
            records.append(
                {
                    "qid": qid,
                    "question": text,
                    "relevant": sorted(bench.qrels[qid]),
                    "asked": heads(index, text, ()),
                    "absent": heads(index, text, tuple(bench.absent(qid))),
                }
            )
        target.write_text(json.dumps(records))
        print(f"{name}: {len(records)} questions in {time.time() - began:.0f} s", flush=True)


def passage_reader(folder: Path | None, threads: int | None, alone: bool):
    """The product's `PassageReader` for the reader in `folder`. `alone`: its module is loaded by itself: it
    needs only numpy, onnxruntime and tokenizers, so the GPU machine can read without the product's other
    dependencies."""
    if not alone:
        from rag.models.reader import PassageReader

        return PassageReader(folder, threads)
    spec = importlib.util.spec_from_file_location("reader_alone", HERE.parent / "rag" / "models" / "reader.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.PassageReader(folder, threads)


def read(work: Path, folder: Path | None, threads: int | None, alone: bool) -> None:
    reader = passage_reader(folder, threads, alone)
    for path in sorted(work.glob("*.json")):
        if path.name.endswith(".read.json"):
            continue
        target = path.with_suffix(".read.json")
        if target.exists():
            continue
        records = json.loads(path.read_text())
        limit = READ_LIMIT.get(path.stem)
        if limit and limit < len(records):
            step = len(records) / limit
            records = [records[int(i * step)] for i in range(limit)]
        began, pairs = time.time(), 0
        for rec in records:
            for key in ("asked", "absent"):
                heads_ = rec[key] = rec[key][:READ]
                readings = reader.read(rec["question"], [h["evidence"] for h in heads_])
                pairs += len(heads_)
                for h, r in zip(heads_, readings):
                    h["logit"] = r.logit
                    h["span_score"] = r.span_score
        target.write_text(json.dumps(records))
        rate = pairs / (time.time() - began)
        print(f"{path.stem}: {pairs} passages read, {rate:.1f}/s, load {os.getloadavg()}", flush=True)


def features(head: dict) -> list[float]:
    """The inputs of `ReaderCalibration.probability`, in its weights' order."""
    return [head["logit"], head["span_score"], log_odds(head["surface"])]


def prob(model, head: dict) -> float:
    """The probability the product gives `head` with the fitted `model` (weights, bias)."""
    (reader_weight, span_weight, surface_weight), bias = model
    calibration = ReaderCalibration(reader_weight, span_weight, surface_weight, bias, 0.5, 0, False, False)
    return calibration.probability(head["logit"], head["span_score"], head["surface"])


def ordered(heads_: list[dict], model, depth: int, use: bool) -> list[tuple[dict, float]]:
    """The heads as the product would show them, with their scores."""
    if not use or model is None:
        return [(h, h["surface"]) for h in heads_]
    read = sorted(((h, prob(model, h)) for h in heads_[:depth]), key=lambda t: -t[1])
    floor = min((p for _, p in read), default=1.0)
    return read + [(h, min(h["surface"], floor)) for h in heads_[depth:]]


def ranking(shown: list[tuple[dict, float]]) -> list[str]:
    ranked: dict[str, None] = {}
    for h, _ in shown:
        ranked.setdefault(h["source"], None)
        for c in h["copies"]:
            ranked.setdefault(c, None)
    return list(ranked)


def uses(name: str, wide: bool) -> bool:
    return name != "korquad" or wide


SURFACE_BAR = json.loads(CALIBRATION.read_text())["models"]["all-MiniLM-L6-v2"]["dense"]["threshold"]


def measure(name: str, records: list[dict], model, depth: int, bar: float, wide: bool) -> dict:
    """Left-out figures of `records` with the reader (`model`; None: without it). A question the reader does not
    read (Korean, unless `wide`) is decided by the surface bar, as the product does."""
    use = uses(name, wide) and model is not None
    bar = bar if use else SURFACE_BAR
    rankings = {r["qid"]: ranking(ordered(r["asked"], model, depth, use)) for r in records}
    qrels = {r["qid"]: {s: 1 for s in r["relevant"]} for r in records}
    figures = score_rankings(rankings, qrels)
    best_asked = [max((p for _, p in ordered(r["asked"], model, depth, use)[:FOUND_DEPTH]), default=0) for r in records]
    best_absent = [
        max((p for _, p in ordered(r["absent"], model, depth, use)[:FOUND_DEPTH]), default=0) for r in records
    ]
    figures["wrongly_refused"] = sum(p < bar for p in best_asked) / len(records)
    figures["wrongly_answered"] = sum(p >= bar for p in best_absent) / len(records)
    return {k: round(v, 4) for k, v in figures.items()}


def fit_model(sets: dict[str, list[dict]], depth: int):
    """Logistic model over the heads the reader reads at `depth`, asked and absent, each set weighing the
    same."""
    xs, ys, ws = [], [], []
    for name, records in sets.items():
        if name == "korquad":
            continue
        rows = []
        for r in records:
            relevant = set(r["relevant"])
            for key in ("asked", "absent"):
                rows += [(features(h), float(h["source"] in relevant)) for h in r[key][:depth]]
        for x, y in rows:
            xs.append(x)
            ys.append(y)
            ws.append(1.0 / len(rows))
    return fit_logistic(np.array(xs), np.array(ys), np.array(ws))


def choose_bar(sets: dict[str, list[dict]], model, depth: int, wide: bool) -> float:
    def cost(t: float) -> float:
        return statistics.fmean(
            REFUSAL_COST * m["wrongly_refused"] + m["wrongly_answered"]
            for m in (measure(n, r, model, depth, t, wide) for n, r in sets.items())
        )

    return min((t / 100 for t in range(2, 96, 2)), key=cost)


def choose(sets: dict[str, list[dict]]) -> dict:
    best, best_score = None, -1.0
    for depth in DEPTHS:
        model = fit_model(sets, depth)
        score = statistics.fmean(
            measure(n, r, model, depth, 0.5, False)["ndcg@10"] for n, r in sets.items() if n != "korquad"
        )
        if score > best_score + 1e-9:
            best, best_score = (depth, model), score
    depth, model = best
    wide = False
    if "korquad" in sets:
        on = measure("korquad", sets["korquad"], model, depth, 0.5, True)["ndcg@10"]
        off = measure("korquad", sets["korquad"], model, depth, 0.5, False)["ndcg@10"]
        wide = on > off
    bar = choose_bar(sets, model, depth, wide)
    return {"depth": depth, "model": model, "bar": bar, "wide": wide}


def fit(work: Path, write: bool) -> None:
    sets = {p.name.split(".")[0]: json.loads(p.read_text()) for p in sorted(work.glob("*.read.json"))}
    rows = []
    for name in sets:
        rest = {n: r for n, r in sets.items() if n != name}
        chosen = choose(rest)
        before = measure(name, sets[name], None, 0, SURFACE_BAR, False)
        after = measure(name, sets[name], chosen["model"], chosen["depth"], chosen["bar"], chosen["wide"])
        rows.append((name, chosen, before, after))
        print(
            f"\n{name} (left out; chosen on the others: depth {chosen['depth']}, bar {chosen['bar']:.2f}, "
            f"Korean read {chosen['wide']}, weights {np.round(chosen['model'][0], 3)}, bias {chosen['model'][1]:.3f})"
        )
        for key in ("recall@1", "recall@5", "ndcg@10", "wrongly_refused", "wrongly_answered"):
            print(f"  {key:17s} before {before.get(key, float('nan')):.4f}  after {after.get(key, float('nan')):.4f}")
    wins = [
        after["ndcg@10"] >= before["ndcg@10"] and after["recall@1"] >= before["recall@1"]
        for _, _, before, after in rows
    ]
    default = all(wins)
    print(f"\nthe reader beats the surface ranking on {sum(wins)} of {len(wins)} left-out sets: default {default}")
    chosen = choose(sets)
    print(
        "\nall sets:",
        {k: (v if k != "model" else (np.round(v[0], 4).tolist(), round(v[1], 4))) for k, v in chosen.items()},
    )
    if write:
        table = json.loads(CALIBRATION.read_text())
        beta, bias = chosen["model"]
        table["models"]["all-MiniLM-L6-v2"]["reader"] = {
            "reader_weight": round(float(beta[0]), 4),
            "span_weight": round(float(beta[1]), 4),
            "surface_weight": round(float(beta[2]), 4),
            "bias": round(float(bias), 4),
            "threshold": chosen["bar"],
            "depth": chosen["depth"],
            "wide": chosen["wide"],
            "default": default,
        }
        CALIBRATION.write_text(json.dumps(table, indent=2) + "\n")
        print("wrote", CALIBRATION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("collect", "read", "fit"))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--work", type=Path, default=WORK, help="where the records are (collect writes them there)")
    parser.add_argument("--reader", type=Path, help="read with the reader in this folder (default: the packaged one)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime's threads for reading")
    parser.add_argument("--alone", action="store_true", help="read without importing the product (GPU machine)")
    args = parser.parse_args()
    if args.step == "collect":
        collect(args.work, args.limit)
    elif args.step == "read":
        read(args.work, args.reader, args.threads, args.alone)
    else:
        fit(args.work, args.write)


if __name__ == "__main__":
    main()
