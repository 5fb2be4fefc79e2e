"""Fit the `found` thresholds in rag/calibration.json from benchmark data, not from a guess.

Half of the articles of a SQuAD-format file are indexed. Questions written about those articles are
answerable; questions about the other half are not (their article is absent, so the best passage is only
a near miss). For each question the top passage's cosine similarity and its coverage of the question's
key terms are recorded, and the thresholds that minimise the balanced error (mean of wrongly refused and
wrongly answered rates) are written out.

    python bench/calibrate.py [--squad FILE] [--korquad FILE] [--per-side N] [--write]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from rag import Index
from rag.embed import resolve_model
from rag.evaluate import squad_documents
from rag.lexical import query_keys
from rag.search import FOUND_DEPTH, passage_coverage

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
CALIBRATION = Path(__file__).resolve().parent.parent / "rag" / "calibration.json"


def squad_halves(path: Path, per_side: int, seed: int = 13):
    data = json.loads(path.read_text())["data"]
    indexed, held_out = data[0::2], data[1::2]
    docs = squad_documents(indexed)
    rng = random.Random(seed)

    def questions(arts):
        qs = [qa["question"] for art in arts for para in art["paragraphs"] for qa in para["qas"]]
        return rng.sample(qs, min(per_side, len(qs)))

    return docs, questions(indexed), questions(held_out)


def features(index: Index, question: str) -> list[tuple[float, float]]:
    """(similarity, key coverage) of each passage `found` looks at."""
    keys = query_keys(question)
    passages = index.search(question, k=FOUND_DEPTH).passages
    return [(p.similarity, passage_coverage(keys, p)) for p in passages]


def fit(pos: list[list[tuple[float, float]]], neg: list[list[tuple[float, float]]], use_similarity: bool) -> dict:
    best = None
    sims = [x / 100 for x in range(10, 90)] if use_similarity else [2.0]
    covs = [x / 20 for x in range(4, 21)] + [1.01]
    for s in sims:
        for c in covs:
            refused = sum(1 for f in pos if not any(sim >= s or cov >= c for sim, cov in f)) / len(pos)
            answered = sum(1 for f in neg if any(sim >= s or cov >= c for sim, cov in f)) / len(neg)
            err = (refused + answered) / 2
            if best is None or err < best["balanced_error"]:
                best = {
                    "similarity": s,
                    "coverage": c,
                    "balanced_error": round(err, 4),
                    "wrongly_refused": round(refused, 4),
                    "wrongly_answered": round(answered, 4),
                }
    return best


def measure(path: Path, per_side: int, model: str | None) -> tuple[list, list]:
    docs, answerable, unanswerable = squad_halves(path, per_side)
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(tmp, model=model)
        index.add_documents(docs, progress=True)
        return [features(index, q) for q in answerable], [features(index, q) for q in unanswerable]


def run(path: Path, per_side: int, use_similarity: bool, model: str | None = None) -> dict:
    pos, neg = measure(path, per_side, model)
    result = fit(pos, neg, use_similarity)
    result.update({"data": path.name, "questions_per_side": per_side})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path, default=SHARED / "squad-v1.1-dev.json")
    parser.add_argument("--korquad", type=Path, default=SHARED / "korquad-v1.0-dev.json")
    parser.add_argument("--per-side", type=int, default=1000)
    parser.add_argument("--model", help="model to calibrate (default: the packaged one); a name or a path")
    parser.add_argument("--write", action="store_true", help="write rag/calibration.json")
    args = parser.parse_args()
    latin = run(args.squad, args.per_side, use_similarity=True, model=args.model)
    print("latin-script questions:", json.dumps(latin))
    pos, neg = measure(args.korquad, args.per_side, args.model)
    wide, wide_dense = fit(pos, neg, use_similarity=False), fit(pos, neg, use_similarity=True)
    # The model's similarity counts for Korean/CJK questions only where it beats key coverage alone.
    dense_wide = wide_dense["balanced_error"] < wide["balanced_error"] - 0.01
    print("wide-script questions: ", json.dumps(wide), "with similarity:", json.dumps(wide_dense))
    if args.write:
        table = json.loads(CALIBRATION.read_text())
        table["models"][resolve_model(args.model)[0]] = {
            "similarity": latin["similarity"],
            "coverage": latin["coverage"],
            "coverage_wide": (wide_dense if dense_wide else wide)["coverage"],
            "dense_wide_script": dense_wide,
            "fitted_on": {"latin": latin, "wide": wide, "wide_with_similarity": wide_dense},
        }
        CALIBRATION.write_text(json.dumps(table, indent=2) + "\n")
        print(f"wrote {CALIBRATION}")


if __name__ == "__main__":
    main()
