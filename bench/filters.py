"""What a filter costs beside the same question unfiltered, at the collection sizes users have.

    python bench/filters.py [--size 1M] [--queries 60] [--work /tmp/verbatim-scale] [--modes keyword,hybrid]

Uses `bench/scale.py`'s made-up collection of that size (built once with the stand-in encoder, kept in
--work, so the store's and the filter's costs show rather than the model's) and asks SQuAD dev questions
with no filter and with filters that keep from a few hundred passages to most of the collection: one file,
globs over 30 and 60 files indexed one after another, globs over every fifth and every other file of the
first hundred, one site (a fifth), one year, a date range, an open-ended `--until`. Prints p50/p95 per case,
the ratio of each p50 to the unfiltered p50 measured in the same process, the passages each filter keeps,
and the load average beside every line. Each question is asked under every case in turn, so that a change
in the machine's load over the run weighs on every case alike. The first filtered question after a commit
reads the documents' fields, the chunks' owners and the lexical index's chunk ids once; that one-off cost is
printed apart, and so is each case's first question, which makes the filter's mask and view (once per filter
and commit).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scale import load, make_corpus, percentile, questions, rag, run  # noqa: E402

SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
CASES = [
    ("no filter", {}),
    ("one file", {"source": "archive-00007.jsonl"}),
    ("30 files (glob)", {"source": "archive-000[2-4]?.jsonl"}),
    ("60 files (glob)", {"source": "archive-000[0-5]?.jsonl"}),  # half the collection
    ("20 files strewn (glob)", {"source": "archive-000[0-9][05].jsonl"}),  # every fifth file
    ("50 files strewn (glob)", {"source": "archive-000?[02468].jsonl"}),  # every other file
    ("one site", {"source": "Harbour Gazette"}),
    ("one year", {"since": "2019", "until": "2019"}),
    ("one day", {"since": "2020-03-05", "until": "2020-03-05"}),
    ("until 2016-06", {"until": "2016-06"}),
    ("since 2016", {"since": "2016"}),
    ("site and year", {"source": "Capital Wire", "since": "2024", "until": "2024"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=SIZES, default="1M")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--modes", default="keyword,hybrid")
    parser.add_argument("--work", type=Path, default=Path("/tmp/verbatim-scale"))
    args = parser.parse_args()
    corpus, index = args.work / f"corpus-{args.size}", args.work / f"index-{args.size}-hashing"
    make_corpus(corpus, SIZES[args.size])
    if not (index / "rag.sqlite").exists():
        print(f"building {index} ({load()})", flush=True)
        run(rag("index", str(corpus), "--index", str(index), "--model", "hashing", "--quiet"))
    measure(index, questions(args.queries), args.modes.split(","))


def measure(index_dir: Path, qs: list[str], modes: list[str]) -> None:
    from rag import Index

    index = Index(index_dir)
    searcher = index.searcher
    if "hybrid" in modes or "semantic" in modes:
        searcher.dense_index()
    started = time.perf_counter()
    index.search(qs[0], k=5, mode="keyword", source="archive-000[0-9][05].jsonl")
    print(
        f"{searcher.store.manifest.chunks:,} passages; first filtered question (reads the filter's arrays and the "
        f"lexical index's chunk ids once): {time.perf_counter() - started:.2f} s ({load()})"
    )
    for mode in modes:
        print(f"\n{mode}: p50 / p95 ms, ratio of p50 to the unfiltered p50, first question ms, passages kept")
        times: dict[str, list[float]] = {name: [] for name, _ in CASES}
        first: dict[str, float] = {}
        for round_ in range(2):  # the first round warms the page cache; the second is measured
            for q in qs:
                for name, filters in CASES:  # each question under every case in turn: drift hits all alike
                    t = time.perf_counter()
                    index.search(q, k=5, mode=mode, **filters)
                    first.setdefault(name, (time.perf_counter() - t) * 1000)  # the filter's mask and view made
                    if round_:
                        times[name].append((time.perf_counter() - t) * 1000)
        base = percentile(times["no filter"], 0.5)
        for name, filters in CASES:
            p50, p95 = percentile(times[name], 0.5), percentile(times[name], 0.95)
            print(
                f"  {name:22s} {p50:7.1f} / {p95:7.1f}   x{p50 / base:4.2f}   {first[name]:7.1f}   "
                f"{kept(searcher, filters):>9,}  ({load()})",
                flush=True,
            )
    if hasattr(searcher, "kept_chunks") and ("hybrid" in modes or "semantic" in modes):
        dense_recall(searcher, index.embedder, qs)


def dense_recall(searcher, embedder, qs: list[str]) -> None:
    """Recall@10 of the dense arm's depth-100 search, with no filter and under each filter, against exact search
    over the kept vectors (FAISS visiting every list, or the flat index), with the time of the arm alone."""
    import numpy as np

    dense = searcher.dense_index()
    kind = "IVF" if dense.approximate else "exact"
    print(f"\ndense arm, recall@10 against exact search ({kind}), p50 ms of the arm:")
    q_vecs = [embedder.encode_query(q) for q in qs]
    for name, filters in CASES:
        with searcher.store.read() as reader:
            keep = searcher.kept_chunks(reader, doc_filter(filters)) if filters else None
        mask = keep.chunks if keep is not None else np.ones(dense.layout.rows, dtype=bool)
        found, times = [], []
        for q_vec in q_vecs:
            exact = {c for c, _ in exact_search(dense, q_vec, mask)}
            started = time.perf_counter()
            got = {c for c, _ in searcher.dense(q_vec, 100, keep)[:10]}
            times.append((time.perf_counter() - started) * 1000)
            found.append(len(exact & got) / max(len(exact), 1))
        print(f"  {name:22s} {sum(found) / len(found):.3f}  {percentile(times, 0.5):6.1f} ms  ({load()})")


def exact_search(dense, q_vec, mask) -> list[tuple[int, float]]:
    """The best 10 kept vectors, every one scored."""
    import faiss
    import numpy as np

    bits = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
    if dense.approximate:
        params = faiss.SearchParametersIVF(sel=selector, nprobe=dense.index.nlist)
    else:
        params = faiss.SearchParameters(sel=selector)
    scores, ids = dense.index.search(q_vec, 10, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def doc_filter(filters: dict):
    from rag.index import DocFilter
    from rag.search.request import date_bound

    return DocFilter(
        filters.get("source"), date_bound(filters.get("since"), "since"), date_bound(filters.get("until"), "until")
    )


def kept(searcher, filters: dict) -> int:
    if not filters:
        return searcher.store.manifest.chunks
    f = doc_filter(filters)
    with searcher.store.read() as reader:
        if not hasattr(searcher, "kept_chunks"):  # a version from before the filter masks
            return len(reader.allowed_chunks(f))
        return searcher.kept_chunks(reader, f).count


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
