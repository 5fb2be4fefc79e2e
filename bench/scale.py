"""What the index costs as the collection grows: build, writes, disk, memory, query latency, ANN recall.

    python bench/scale.py [--sizes 10k,100k,1M] [--real-model 10k] [--ray 2k] [--queries 300] [--work DIR]

For each size it makes a collection of that many passages (JSONL exports of articles assembled from the
sentences of ../shared/eval: SQuAD paragraphs and SciFact abstracts, about 8 passages an article), builds it
through the real `rag index` command with the fast stand-in encoder (`--model hashing`), so that the costs of
the store and search show rather than the model's, and prints in one run:

- build wall time, and its ratio to the raw encode of the same model inputs with the same encoder;
- add one article, and re-index with nothing changed (`rag index` wall, a new process each, as a user runs it);
- disk of the index folder; peak memory of the build and of the one-article write; steady serving memory;
- p50/p99 per search mode over SQuAD dev questions, beside the floor (bare FAISS exact search of the same
  vectors) and the peer (bm25s over the same passages, same depth);
- recall@10 of the approximate (IVF) dense index against exact search, and its query time, at every size;
- `python app.py` time to its first HTTP 200.

With `--real-model SIZE` the same build also runs with the packaged all-MiniLM-L6-v2 at that size, for the
build/raw-encode ratio where the model dominates. With `--ray SIZE` that size is indexed with the packaged
model in-process and then with `--ray` on a local Ray instance of 1 and 2 embedding workers (`--ray-workers`),
in the same run: passages a second each, and the largest difference between their vectors. Every timing
prints the load average beside it: compare ratios measured in one run, not figures from different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
SENTENCES_PER_ARTICLE = 32
SITES = ["Harbour Gazette", "Capital Wire", "Valley Times", "Science Daily Digest", "Metro Ledger"]
DEPTH = 100
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def sentence_pool() -> list[str]:
    squad = json.loads((EVAL / "squad-v1.1-dev.json").read_text())
    pool = [s for a in squad["data"] for p in a["paragraphs"] for s in _SENTENCE.split(p["context"])]
    for line in (EVAL / "scifact" / "corpus.jsonl").read_text().splitlines():
        pool += _SENTENCE.split(json.loads(line)["text"])
    return [s.strip() for s in pool if 40 <= len(s.strip()) <= 400]


def questions(n: int) -> list[str]:
    squad = json.loads((EVAL / "squad-v1.1-dev.json").read_text())
    qs = [q["question"] for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]]
    return qs[:: max(1, len(qs) // n)][:n]


def make_corpus(folder: Path, passages: int, seed: int = 1) -> None:
    """About `passages` passages of made-up articles, 1,000 to a JSONL file; kept between runs."""
    if (folder / ".complete").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pool, rng = sentence_pool(), random.Random(seed)
    articles = max(1, passages // 8)
    for start in range(0, articles, 1000):
        lines = []
        for n in range(start, min(start + 1000, articles)):
            body = rng.sample(pool, SENTENCES_PER_ARTICLE)
            paragraphs = "\n\n".join(" ".join(body[i : i + 4]) for i in range(0, len(body), 4))
            day = f"20{rng.randint(15, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            title = " ".join(body[0].split()[:8]).rstrip(",.;:")
            record = {"title": f"{title} ({n})", "text": paragraphs, "date": day, "site": rng.choice(SITES)}
            lines.append(json.dumps(record))
        (folder / f"archive-{start // 1000:05d}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / ".complete").write_text("")


def run(cmd: list[str], show_errors: bool = False) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, standard output) of a child process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=None if show_errors else err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss // 1024, out.read()


def rag(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from rag.serve.cli import main; sys.exit(main())", *args]


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_size(label: str, passages: int, work: Path, model: str, n_queries: int) -> dict:
    corpus, index = work / f"corpus-{label}", work / f"index-{label}-{model.replace('/', '_')}"
    make_corpus(corpus, passages)
    shutil.rmtree(index, ignore_errors=True)
    (corpus / "added.txt").unlink(missing_ok=True)
    fig: dict = {"size": label, "model": model}
    print(f"\n== {label} passages, model {model} ==", flush=True)
    wall, peak, _ = run(rag("index", str(corpus), "--index", str(index), "--model", model, "--quiet"))
    fig.update(build_s=wall, build_peak_mb=peak)
    print(f"build {wall:.1f} s, peak {peak} MB ({load()})", flush=True)
    serving = run([sys.executable, __file__, "--serve", str(index), "--queries", str(n_queries)], show_errors=True)
    fig.update(json.loads(serving[2].strip().splitlines()[-1]))
    fig["build_to_raw_encode"] = wall / fig["raw_encode_s"]
    print(f"raw encode {fig['raw_encode_s']:.1f} s: build / raw encode = {fig['build_to_raw_encode']:.2f}")
    fig["unchanged_s"] = run(rag("index", str(corpus), "--index", str(index), "--quiet"))[0]
    print(f"unchanged re-index {fig['unchanged_s']:.2f} s ({load()})", flush=True)
    (corpus / "added.txt").write_text(
        "Harbour pilots strike in Busan\n\nPilots at the port of Busan stopped work on Monday over pay, and forty "
        "container ships waited outside the breakwater until the evening, the port authority said.\n"
    )
    wall, peak, _ = run(rag("index", str(corpus), "--index", str(index), "--quiet"))
    fig.update(add_one_s=wall, add_one_peak_mb=peak, disk_mb=du(index) / 1e6)
    print(f"add one article {wall:.2f} s, peak {peak} MB; disk {fig['disk_mb']:.0f} MB ({load()})", flush=True)
    fig["app_ready_s"] = app_ready(index, corpus)
    print(f"app.py ready in {fig['app_ready_s']:.1f} s ({load()})", flush=True)
    return fig


def measure_ray(label: str, passages: int, work: Path, workers: list[int]) -> dict:
    """`rag index` with the packaged model here, then with `--ray` on a local instance of 1, 2... embedding
    workers, in one run: wall time, passages a second, and how far the vectors are from the ones made here."""
    corpus = work / f"corpus-{label}"
    make_corpus(corpus, passages)
    (corpus / "added.txt").unlink(missing_ok=True)
    print(f"\n== {label} passages on Ray, the packaged model ==", flush=True)
    fig: dict = {"size": label, "ray": {}}
    reference = work / f"ray-{label}-here"
    shutil.rmtree(reference, ignore_errors=True)
    wall, peak, out = run(rag("index", str(corpus), "--index", str(reference), "--quiet"))
    chunks = int(re.search(r"(\d+) chunks", out).group(1))
    fig.update(chunks=chunks, here_s=wall, here_rate=chunks / wall)
    print(f"in-process: {wall:.1f} s, {chunks / wall:.1f} passages/s, peak {peak} MB ({load()})", flush=True)
    for n in workers:
        index = work / f"ray-{label}-{n}"
        shutil.rmtree(index, ignore_errors=True)
        cmd = rag("index", str(corpus), "--index", str(index), "--quiet", "--ray", "--ray-workers", str(n))
        wall, peak, _ = run(cmd)
        differ = max_vector_difference(reference, index)
        fig["ray"][n] = {"wall_s": wall, "rate": chunks / wall, "max_vector_difference": differ}
        print(
            f"--ray, {n} worker(s): {wall:.1f} s, {chunks / wall:.1f} passages/s "
            f"({fig['here_s'] / wall:.2f}x in-process); vectors within {differ:.1e} ({load()})",
            flush=True,
        )
    return fig


def max_vector_difference(a: Path, b: Path) -> float:
    import sqlite3

    import numpy as np

    from rag.index.vectors import VectorFile

    vectors = []
    for index in (a, b):
        with sqlite3.connect(index / "rag.sqlite") as db:
            rows = db.execute(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY d.source, c.start"
            )
            ids = [r[0] for r in rows]
        vectors.append(VectorFile(next(index.glob("vectors-*.f16")), 384).read(ids))
    return float(np.abs(vectors[0] - vectors[1]).max())


def app_ready(index: Path, corpus: Path) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "app.py"), "--index", str(index), "--corpus", str(corpus), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < 300:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.1)
        return float("nan")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def serve(index_dir: Path, n_queries: int) -> dict:
    """Runs in a child: steady memory and latencies of a serving process, then the floor, the peer, ANN."""
    import numpy as np

    from rag import Index

    index = Index(index_dir)
    searcher = index.searcher
    qs = questions(n_queries)
    fig: dict = {"chunks": searcher.store.manifest.chunks, "documents": searcher.store.manifest.documents}
    started = time.perf_counter()
    searcher.dense_index()
    fig["dense_load_s"] = time.perf_counter() - started
    # Each mode as users get it by default; "hybrid_reader" is hybrid with the reader asked for (`rerank=True`),
    # in the same run.
    for mode, rerank, label in (
        ("hybrid", None, "hybrid"),
        ("hybrid", True, "hybrid_reader"),
        ("semantic", None, "semantic"),
        ("keyword", None, "keyword"),
    ):
        times = []
        for q in qs:
            t = time.perf_counter()
            index.search(q, k=5, mode=mode, rerank=rerank)
            times.append((time.perf_counter() - t) * 1000)
        fig[f"{label}_p50_ms"], fig[f"{label}_p99_ms"] = percentile(times, 0.5), percentile(times, 0.99)
        p50, p99 = fig[f"{label}_p50_ms"], fig[f"{label}_p99_ms"]
        mode = label
        print(f"{mode}: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({load()})", file=sys.stderr, flush=True)
    fig["serving_rss_mb"] = rss_mb()  # a serving process: the dense index loaded, every mode asked
    fig["raw_encode_s"] = raw_encode(index)
    vectors = np.stack([index.embedder.encode_query(q)[0] for q in qs])
    fig.update(ann_figures(searcher, vectors))
    fig.update(bm25s_figures(searcher, qs))
    print(json.dumps(fig))
    return fig


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raw_encode(index) -> float:
    """The encoder alone over every stored passage's model input, in the indexer's batch size."""
    from rag.build.update import DOC_BATCH
    from rag.models.embed import passage_input

    with index.searcher.store.read() as reader:
        rows = list(reader.passages())
    titles = {row.title: index.embedder.title_prefix(row.title)[0] for row in rows}
    texts = [passage_input(titles[row.title], row.text) for row in rows]
    started = time.perf_counter()
    for i in range(0, len(texts), DOC_BATCH * 8):
        index.embedder.encode(texts[i : i + DOC_BATCH * 8], checked=True)
    return time.perf_counter() - started


def ann_figures(searcher, vectors) -> dict:
    """Exact search (the floor) against the approximate index: the product's own where the collection is
    past the threshold, else one trained as the store would train it, on the same vectors."""
    import faiss
    import numpy as np

    from rag.index.vectors import MIN_NPROBE, NPROBE_SHARE, lists_for

    dense = searcher.dense_index()
    with searcher.store.read() as reader:
        ids, layout = np.sort(reader.live_chunk_ids()), reader.layout()
    data = dense.vectors.read_range(0, layout.rows)[ids].astype(np.float32)
    flat = faiss.IndexFlatIP(data.shape[1])
    flat.add(data)
    floor = [timed(lambda v=v: flat.search(v[None, :], 10)) for v in vectors]
    exact = ids[flat.search(vectors, 10)[1]]
    if dense.approximate:
        ivf, label = dense.index, "product"
    else:
        n_lists = lists_for(len(data))
        ivf = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(data.shape[1]),
            data.shape[1],
            n_lists,
            faiss.ScalarQuantizer.QT_fp16,
            faiss.METRIC_INNER_PRODUCT,
        )
        ivf.train(data[np.random.default_rng(0).choice(len(data), min(len(data), 40 * n_lists), replace=False)])
        ivf.add_with_ids(data, ids)
        ivf.nprobe, label = max(MIN_NPROBE, int(n_lists * NPROBE_SHARE)), "trained for this figure"
    times = [timed(lambda v=v: ivf.search(v[None, :], 10)) for v in vectors]
    approx = ivf.search(vectors, 10)[1]
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))
    return {
        "floor_flat_p50_ms": percentile(floor, 0.5),
        "ivf_lists": int(ivf.nlist),
        "ivf_nprobe": int(ivf.nprobe),
        "ivf_p50_ms": percentile(times, 0.5),
        "ivf_recall_at_10": recall,
        "ivf_index": label,
    }


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def bm25s_figures(searcher, qs: list[str]) -> dict:
    try:
        import bm25s
    except ImportError:
        return {"bm25s_p50_ms": None}
    with searcher.store.read() as reader:
        texts = [row.text for row in reader.passages()]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    times = []
    for q in qs:
        t = time.perf_counter()
        retriever.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=DEPTH, show_progress=False)
        times.append((time.perf_counter() - t) * 1000)
    return {"bm25s_p50_ms": percentile(times, 0.5)}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10k,100k,1M")
    p.add_argument("--real-model", default="", help="also build this size with the packaged model (e.g. 10k)")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "verbatim-scale")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--ray", default="", help="also index this size with --ray on 1 and 2 local workers (e.g. 2k)")
    p.add_argument("--ray-workers", default="1,2", help="worker counts for --ray (default 1,2)")
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.queries)
        return
    results = []
    for label in [s for s in args.sizes.split(",") if s]:
        results.append(measure_size(label, parse_size(label), args.work, "hashing", args.queries))
    for label in [s for s in args.real_model.split(",") if s]:
        results.append(measure_size(label, parse_size(label), args.work, "all-MiniLM-L6-v2", args.queries))
    for label in [s for s in args.ray.split(",") if s]:
        workers = [int(n) for n in args.ray_workers.split(",")]
        results.append(measure_ray(label, parse_size(label), args.work, workers))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
