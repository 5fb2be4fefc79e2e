"""Questions about the seed articles with an evidence string: is the evidence in the first passage, in the top
five, and does `found` say the right thing?

    python bench/seed_questions.py [FILE.jsonl ...]

Defaults to ../shared/eval/seed-questions.jsonl and the team's own sets in tests/data. Each line holds
{"q": question, "evidence": text a correct passage contains verbatim, or null when the articles cannot
answer}. Each set is measured without and with the reader, in the same run. The seed corpus is indexed
into a temporary folder with the packaged model.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag import Index  # noqa: E402

DEFAULT_SETS = [
    ROOT.parent / "shared" / "eval" / "seed-questions.jsonl",
    ROOT / "tests" / "data" / "seed_questions.jsonl",
    ROOT / "tests" / "data" / "seed_questions_extra.jsonl",
]


def measure(index: Index, rows: list[dict], rerank: bool = True) -> dict:
    answerable = [r for r in rows if r["evidence"]]
    unanswerable = [r for r in rows if not r["evidence"]]
    first = top5 = refused = 0
    times = []
    for row in answerable:
        started = time.perf_counter()
        answer = index.search(row["q"], k=5, rerank=rerank)
        times.append((time.perf_counter() - started) * 1000)
        texts = [p.text for p in answer.passages]
        first += bool(texts) and row["evidence"] in texts[0]
        top5 += any(row["evidence"] in t for t in texts)
        refused += not answer.found
    answered = sum(index.search(r["q"], k=5, rerank=rerank).found for r in unanswerable)
    n = max(1, len(answerable))
    return {
        "answerable": len(answerable),
        "evidence_first": round(first / n, 3),
        "evidence_top5": round(top5 / n, 3),
        "wrongly_refused": round(refused / n, 3),
        "unanswerable": len(unanswerable),
        "wrongly_answered": answered,
        "search_ms_p50": round(statistics.median(times), 1),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or DEFAULT_SETS
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(tmp)
        index.add([ROOT / "corpus"])
        for path in paths:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for rerank in (False, True):
                label = "with the reader" if rerank else "without the reader"
                print(path.name, label, json.dumps(measure(index, rows, rerank)))


if __name__ == "__main__":
    main()
