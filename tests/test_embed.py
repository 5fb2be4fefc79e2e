"""The real model's question vectors: encoded together for many concurrent users, through ONNX Runtime in a
server, or in numpy for a one-shot command, each must be the vector the model gives that question alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag.models import onnx_questions
from rag.models.embed import QUERY_BATCH_MAX, QueryBatch, default_model_path, get_embedder
from rag.models.onnx_questions import QuestionRuntime, question_runtime
from rag.models.query_encoder import light_encoder

pytestmark = pytest.mark.slow  # the real model's vectors, through torch, numpy and ONNX Runtime

QUESTIONS = [
    "Who is leading the presidential race in South Korea?",
    "How many people attended the Bernie Sanders rally?",
    "What did the poll say about Kim Moon-soo?",
    "When were the harbour exports stopped?",
    "누가 대통령 선거에서 앞서고 있나요?",
]


def test_concurrent_questions_are_encoded_in_batches_each_getting_its_own_vector():
    embedder = get_embedder()
    alone = {q: embedder.model.encode([q], normalize_embeddings=True)[0] for q in QUESTIONS}
    calls: list[int] = []

    def encode_many(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return embedder.model.encode(texts, batch_size=len(texts), normalize_embeddings=True)

    lock = threading.RLock()
    batch = QueryBatch(lock, encode_many)
    asked = [QUESTIONS[i % len(QUESTIONS)] for i in range(QUERY_BATCH_MAX + 8)]
    got: list[np.ndarray | None] = [None] * len(asked)
    start = threading.Barrier(len(asked) + 1)

    def ask(i: int) -> None:
        start.wait()
        got[i] = batch.encode(asked[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asked))]
    with lock:  # the model is busy while every question arrives
        for t in threads:
            t.start()
        start.wait()
        while len(batch._queue) < len(asked):
            threading.Event().wait(0.01)
    for t in threads:
        t.join()
    for question, vector in zip(asked, got, strict=True):
        assert vector is not None and vector.shape == (1, embedder.dimension)
        assert float(vector[0] @ alone[question]) > 0.9999, question
    assert max(calls) == QUERY_BATCH_MAX and sum(calls) == len(asked) and len(calls) == 2


def test_a_failing_encode_reaches_every_waiting_caller():
    def broken(texts: list[str]) -> np.ndarray:
        raise MemoryError("no room for the batch")

    batch = QueryBatch(threading.RLock(), broken)
    with pytest.raises(MemoryError, match="no room"):
        batch.encode("Who won?")
    assert batch._queue == []


def test_the_numpy_encoder_gives_the_models_own_vectors():
    """`rag ask` encodes questions without torch: the vectors must be the model's, to float32 rounding."""
    embedder = get_embedder()
    light = light_encoder(str(default_model_path()))
    assert light is not None and light.max_tokens == embedder.max_tokens
    questions = [*QUESTIONS, "Pelé — 1,000 goals?", "x", "Why did the harbour exports fall this spring? " * 60]
    for question in questions:
        ids = embedder.tokenize([question])[0][: embedder.max_tokens]
        reference = embedder.encode_ids([ids])
        vector = light.encode(question, light.max_tokens)
        assert vector.shape == reference.shape and vector.dtype == np.float32
        assert float(np.abs(vector - reference).max()) < 1e-5, question


def test_a_model_it_cannot_reproduce_is_left_to_torch(tmp_path: Path):
    model = default_model_path()
    copy = tmp_path / "model"
    copy.mkdir()
    for name in ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json", "model.safetensors"):
        (copy / name).symlink_to(model / name)
    (copy / "1_Pooling").mkdir()
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    (copy / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    assert light_encoder(str(copy)) is not None
    (copy / "1_Pooling" / "config.json").write_text(
        json.dumps({**pooling, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True})
    )
    assert light_encoder(str(copy)) is None
    assert light_encoder(str(tmp_path / "absent")) is None


def test_rag_ask_answers_without_torch_exactly_as_with_it(seed_index):
    """A one-shot question never imports torch, and its answer is the torch-encoded one, scores included."""
    question = "Who is Lee Jae-myung's main rival according to the poll?"
    program = (
        "import contextlib, io, sys\n"
        "from rag.serve.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    main(['ask', {question!r}, '--index', {str(seed_index.path)!r}, '--json'])\n"
        "print(out.getvalue())\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch')\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    printed, verdict = run.stdout.rsplit("\n", 2)[0], run.stdout.split("\n")[-2]
    assert verdict == "no torch"
    assert json.loads(printed) == seed_index.search(question).to_dict()


def test_onnx_runtime_gives_the_models_own_vectors_alone_and_in_padded_batches(monkeypatch: pytest.MonkeyPatch):
    embedder = get_embedder()
    runtime = question_runtime(embedder.model, str(default_model_path()))
    assert runtime is not None
    questions = [*QUESTIONS, "Pelé — 1,000 goals?", "x", "Why did the harbour exports fall this spring? " * 60]
    reference = embedder.model.encode(questions, normalize_embeddings=True, convert_to_numpy=True)
    together = runtime.encode(questions)  # padded to the longest, which is cut to the model's window
    alone = np.vstack([runtime.encode([q]) for q in questions])
    for got in (together, alone):
        assert got.shape == reference.shape and got.dtype == np.float32
        assert float(np.abs(got - reference).max()) < 1e-5

    # The next start reads the graph an earlier one exported: no child process, the same vectors.
    cached = onnx_questions._cache_path(str(default_model_path()))
    assert cached is not None and cached.is_file()
    monkeypatch.setattr(onnx_questions.subprocess, "run", None)
    again = question_runtime(embedder.model, str(default_model_path()))
    assert again is not None and float(np.abs(again.encode(questions) - reference).max()) < 1e-5
    monkeypatch.setattr(onnx_questions.subprocess, "run", subprocess.run)

    embedder.load()  # as a server does, behind its page
    assert isinstance(embedder._runtime, QuestionRuntime)
    vector = embedder.encode_query(QUESTIONS[0])
    assert float(np.abs(vector[0] - reference[0]).max()) < 1e-5


def test_a_pipeline_onnx_runtime_cannot_reproduce_is_left_to_torch():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling

    model = get_embedder().model
    first_token = SentenceTransformer(
        modules=[model[0], Pooling(model[0].auto_model.config.hidden_size, "cls"), Normalize()]
    )
    assert question_runtime(first_token, str(default_model_path())) is None
    unnormalised = SentenceTransformer(modules=[model[0], model[1]])
    assert question_runtime(unnormalised, str(default_model_path())) is None


def test_a_graph_no_start_has_read_for_a_month_is_deleted_when_another_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    month_ago = time.time() - (onnx_questions.CACHE_KEEP_DAYS + 1) * 86_400
    read_now, forgotten, killed = (
        tmp_path / name for name in ("questions-a.onnx", "questions-b.onnx", ".questions-c.onnx.7")
    )
    for graph in (read_now, forgotten, killed):
        graph.write_bytes(b"graph " + graph.name.encode())
        os.utime(graph, (month_ago, month_ago))
    (tmp_path / "notes.txt").write_text("not ours")
    os.utime(tmp_path / "notes.txt", (month_ago, month_ago))
    monkeypatch.setattr(onnx_questions.subprocess, "run", None)  # a cached graph needs no export
    assert onnx_questions._graph("no-model-here", read_now) == b"graph questions-a.onnx"
    onnx_questions.prune_cache(tmp_path, time.time() - onnx_questions.CACHE_KEEP_DAYS * 86_400)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "questions-a.onnx"]
