"""How fast passages are embedded, by which path, and how close each path's vectors stay to torch's.

    python bench/encode.py [--sample 512] [--build 3000] [--skip-build]

Needs the torch extra (pip install -e ".[torch]") for the torch baseline. In one run, with the load average
beside every timing:

1. The encoder alone, on `--sample` passages of real text (~130 words): torch fp32 as sentence-transformers runs
   it (batches of 32 sorted by length, torch on every core: the encoder before issue 30), the float ONNX graph
   (`rag.models.bert_graph`) from the published float32 weights in padded batches and one passage per call,
   the packaged model (float16 weights, float32 arithmetic, one per call: the default), and int8 variants: the
   one `--precision int8` uses (first half of the layers' feed-forward output products in float), every
   product in 8 bits per channel, and per tensor (the issue's "default settings"). Passages/s, ratio to
   torch, cosine to torch's vectors.
2. A real `rag index` of `--build` passages (articles of training text, then SQuAD dev paragraphs and SciFact
   abstracts, read as text only: nothing is fitted on them), with torch, the default encoder and int8:
   passages/s, and the share of the build spent in the model.
3. The arithmetic floor: FLOPs per passage over this machine's measured float32 and int8 matrix-product rates.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag import Index  # noqa: E402
from rag.models.bert_graph import GRAPH_INPUTS, float_graph, int8_graph  # noqa: E402
from rag.models.embed import DEFAULT_MODEL, TorchEmbedder, get_embedder  # noqa: E402
from rag.models.onnx_encoder import PACKAGED_MODEL, float_weights_path  # noqa: E402

SHARED = ROOT.parent / "shared"
CORES = os.cpu_count() or 1


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def texts(limit: int) -> list[tuple[str, str]]:
    """(title, ~130-word passage) of real text: the training sets first, then evaluation corpora as text only."""
    out: list[tuple[str, str]] = []

    def pieces(title: str, body: str) -> None:
        words = body.split()
        for i in range(0, len(words), 130):
            if len(words) - i >= 40:
                out.append((title, " ".join(words[i : i + 130])))

    for name in ("train/squad-v2.0-train-first10.json", "train/covid-qa-200423.json", "eval/squad-v1.1-dev.json"):
        for article in json.loads((SHARED / name).read_text())["data"]:
            for paragraph in article["paragraphs"]:
                pieces(str(article.get("title", "")), paragraph["context"])
            if len(out) >= limit:
                return out[:limit]
    for line in (SHARED / "eval" / "scifact" / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        pieces(row.get("title", ""), row["text"])
        if len(out) >= limit:
            break
    return out[:limit]


def session(graph: bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def feed(rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    width = max(len(r) for r in rows) + 2
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros_like(ids)
    for n, row in enumerate(rows):
        ids[n, : len(row) + 2] = [101, *row, 102]
        mask[n, : len(row) + 2] = 1
    return dict(zip(GRAPH_INPUTS, (ids, mask), strict=True))


def one_per_call(graph: bytes, rows: list[list[int]]) -> tuple[np.ndarray, float]:
    """One passage per call, one thread per call, as many calls at once as cores (the shipped way)."""
    run = session(graph, 1)
    out = np.zeros((len(rows), 384), np.float32)

    def one(i: int) -> None:
        out[i] = run.run(None, feed([rows[i]]))[0][0]

    started = time.perf_counter()
    with ThreadPoolExecutor(CORES) as pool:
        list(pool.map(one, range(len(rows))))
    return out, time.perf_counter() - started


def padded(graph: bytes, rows: list[list[int]], batch: int = 32) -> tuple[np.ndarray, float]:
    """Batches of `batch` sorted by length, padded, every core on each call (the usual way)."""
    run = session(graph, CORES)
    out = np.zeros((len(rows), 384), np.float32)
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    started = time.perf_counter()
    for i in range(0, len(order), batch):
        part = order[i : i + batch]
        out[part] = run.run(None, feed([rows[j] for j in part]))[0]
    return out, time.perf_counter() - started


def encoders(sample: int) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    weights = float_weights_path()
    config = json.loads((weights / "config.json").read_text())
    passages = [f"{title}\n{text}" for title, text in texts(sample)]
    tokenizer = get_embedder().tokenizer
    rows = [e.ids[:254] for e in tokenizer.encode_batch(passages, add_special_tokens=False)]
    tokens = statistics.fmean(len(r) + 2 for r in rows)
    print(f"\n1. The encoder alone: {len(rows)} passages, {tokens:.0f} tokens on average, {CORES} cores")
    torch.set_num_threads(CORES)
    model = SentenceTransformer(str(weights), device="cpu")
    model.encode(passages[:32], batch_size=32)
    started = time.perf_counter()
    reference = model.encode(passages, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    torch_rate = len(rows) / (time.perf_counter() - started)
    print(f"{'encoder':<44}{'passages/s':>11}{'vs torch':>9}{'cos mean':>10}{'cos min':>9}")
    print(f"{'torch fp32, batches of 32 (before)':<44}{torch_rate:>11.1f}{1:>9.2f}{1:>10.5f}{1:>9.5f}  {load()}")
    graph = float_graph(weights, config)
    packaged = float_graph(PACKAGED_MODEL, config)
    every_product = int8_graph(graph, nodes_to_exclude=[])
    per_tensor = int8_graph(graph, nodes_to_exclude=[], per_channel=False)
    mixed = int8_graph(graph)
    variants: list[tuple[str, Callable[[], tuple[np.ndarray, float]]]] = [
        ("ONNX fp32, batches of 32", lambda: padded(graph, rows)),
        ("ONNX fp32, one per call", lambda: one_per_call(graph, rows)),
        ("packaged fp16 weights, one per call (default)", lambda: one_per_call(packaged, rows)),
        ("int8 (--precision int8), batches of 32", lambda: padded(mixed, rows)),
        ("int8 (--precision int8), one per call", lambda: one_per_call(mixed, rows)),
        ("int8 every product, one per call", lambda: one_per_call(every_product, rows)),
        ("int8 per tensor, one per call", lambda: one_per_call(per_tensor, rows)),
    ]
    for name, run in variants:
        run()  # warm: the first call of a session prepares its kernels
        vectors, seconds = run()
        cosine = (vectors * reference).sum(axis=1)
        rate = len(rows) / seconds
        ratio = rate / torch_rate
        print(f"{name:<44}{rate:>11.1f}{ratio:>9.2f}{cosine.mean():>10.5f}{cosine.min():>9.5f}  {load()}")
    floor(tokens, config)


def floor(tokens: float, config: dict) -> None:
    """FLOPs per passage over the measured matrix-product rates."""
    from onnx import TensorProto, helper, numpy_helper

    hidden, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * inner) + 4 * tokens * tokens * hidden
    flops = layers * per_layer
    a = np.random.default_rng(0).standard_normal((int(tokens), hidden)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((hidden, inner)).astype(np.float32)
    n = 200
    node = helper.make_node("MatMul", ["a", "b"], ["c"])
    graph = helper.make_graph(
        [node],
        "one",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, hidden])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [None, inner])],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    rates = {}
    for name, product in (("float32", model.SerializeToString()), ("int8", int8_graph(model.SerializeToString()))):
        run = session(product, 1)

        def many(run=run) -> None:
            for _ in range(n):
                run.run(None, {"a": a})

        many()
        started = time.perf_counter()
        with ThreadPoolExecutor(CORES) as pool:
            list(pool.map(lambda _: many(), range(CORES)))
        rates[name] = 2 * a.shape[0] * hidden * inner * n * CORES / (time.perf_counter() - started)
    fp32_rate, int8_rate = rates["float32"], rates["int8"]
    print(
        f"\n3. Arithmetic floor: {flops / 1e9:.2f} GFLOP a passage of {tokens:.0f} tokens; matrix products "
        f"({a.shape[0]}x{hidden} by {hidden}x{inner}, ONNX Runtime, one thread a call, {CORES} calls at once) at "
        f"{fp32_rate / 1e9:.0f} GFLOP/s in float32 and {int8_rate / 1e9:.0f} in int8: at most "
        f"{fp32_rate / flops:.0f} passages/s in float32, {int8_rate / flops:.0f} in int8  {load()}"
    )


class Timed:
    """An encoder whose passage embedding is timed: the model's share of a build."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode_ids(self, inputs):
        started = time.perf_counter()
        try:
            return self.inner.encode_ids(inputs)
        finally:
            self.seconds += time.perf_counter() - started


def builds(count: int) -> None:
    print(f"\n2. A real `rag index` of {count} passages (the multilingual arm off: the first model's build)")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        by_title: dict[str, list[str]] = {}
        for title, text in texts(count):
            by_title.setdefault(title, []).append(text)
        for n, (title, parts) in enumerate(by_title.items()):
            (corpus / f"{n:05d}.txt").write_text(f"{title or 'Untitled'}\n\n" + "\n\n".join(parts) + "\n")
        torch_encoder = TorchEmbedder(str(float_weights_path()))
        torch_encoder.name = DEFAULT_MODEL  # the encoder before issue 30, under the packaged model's name
        results = {}
        encoders = (
            ("torch fp32 (before)", torch_encoder),
            ("ONNX fp32 (default)", get_embedder()),
            ("ONNX int8", get_embedder(precision="int8")),
        )
        for label, encoder in encoders:
            encoder.encode_ids([[1000, 1001]])  # loaded before the clock starts
            timed = Timed(encoder)
            index = Index(Path(tmp) / label.replace(" ", "-"), multilingual=False, precision=encoder.precision)
            index.embedder = timed  # type: ignore[assignment]
            started = time.perf_counter()
            report = index.add([corpus])
            seconds = time.perf_counter() - started
            results[label] = report.chunks / seconds
            print(
                f"{label:<22} {report.chunks} passages in {seconds:6.1f} s: {report.chunks / seconds:6.1f} passages/s, "
                f"the model {timed.seconds / seconds:.1%} of the build  {load()}"
            )
        before = results["torch fp32 (before)"]
        print("against torch: " + ", ".join(f"{label} {rate / before:.2f}x" for label, rate in results.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=512)
    parser.add_argument("--build", type=int, default=3000)
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    print(f"bench/encode.py, {time.strftime('%Y-%m-%d %H:%M')}, {load()}")
    encoders(args.sample)
    if not args.skip_build:
        builds(args.build)


if __name__ == "__main__":
    main()
