"""The encoders behind one `Encoder` protocol, and the choice between them.

The packaged all-MiniLM-L6-v2, and any BERT sentence encoder in a local folder, run through ONNX Runtime
(`rag.models.onnx_encoder`): no torch is needed to build or to search. Any other sentence-transformers model
(another architecture, another pooling, a name to fetch from the Hub) runs through torch, which then must be
installed (`pip install 'verbatim-rag[torch]'`). The chunker budgets tokens with the encoder's own tokenizer,
so nothing the model sees is ever cut off at embedding time; `encode` refuses rather than truncate silently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import ModelLoadError, RagError
from rag.models.hashing import HASHING_MODEL, HashingEmbedder
from rag.models.onnx_encoder import (
    DEFAULT_PRECISION,
    PACKAGED_MODEL,
    TITLE_TOKENS,
    OnnxEmbedder,
    bert_pipeline,
    check_precision,
    cuda_available,
)
from rag.models.question_batch import QueryBatch

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEVICES = ("auto", "cpu", "cuda")
TORCH_EXTRA = "pip install 'verbatim-rag[torch]'"


class Encoder(Protocol):
    """What indexing and search need of a model: the real one (`Embedder`) or the stand-in (`HashingEmbedder`)."""

    name: str
    precision: str  # "fp32", or "int8" for the ONNX graph with 8-bit matrix products
    device: str  # "cpu" or "cuda": where passages are embedded

    @property
    def vector_key(self) -> str: ...

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

    def use_threads(self, count: int) -> None: ...


def passage_input(title_line: str, text: str) -> str:
    """What the model reads for a passage: a short title line gives context to mid-story passages.
    `title_line` is `Encoder.title_prefix(title)[0]`, computed once per document."""
    return f"{title_line}\n{text}" if title_line else text


def default_model_path() -> Path:
    """The packaged model's folder: its float16 weights, tokenizer and configuration (`rag.models.onnx_encoder`)."""
    return PACKAGED_MODEL


def resolve_model(name: str | None) -> tuple[str, str]:
    """(name recorded in the index, where the model is: a folder, or a name for sentence-transformers)."""
    if not name or name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        return DEFAULT_MODEL, str(default_model_path())
    if name == HASHING_MODEL:
        return HASHING_MODEL, HASHING_MODEL
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return name, name


class TorchEmbedder:
    """A sentence-transformers model run by torch: the fallback for a pipeline `rag.models.onnx_encoder` does
    not write as ONNX. Loaded once per process per model name (see `get_embedder`); safe to share between
    threads: one lock covers the model and its tokenizer (a fast tokenizer raises "Already borrowed" when two
    threads use it at once)."""

    precision = "fp32"

    def __init__(self, model: str | None = None, batch_size: int = 32, device: str = "cpu") -> None:
        self.name, self._location = resolve_model(model)
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._lock = threading.RLock()  # re-entered: tokenizer use holds it and may trigger the load
        self._queries = QueryBatch(self._lock, self._encode_questions)

    @property
    def vector_key(self) -> str:
        return self.name

    def load(self) -> None:
        """Load the model now (a server, behind its page), rather than on the first passage or question."""
        _ = self.model

    def use_threads(self, count: int) -> None:
        """Embed passages on `count` threads (torch's setting is process-wide)."""
        import torch

        torch.set_num_threads(count)

    @property
    def model(self):
        """Loaded on first use: opening an index, listing it or finding nothing to do need no model."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self):
        try:
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelLoadError(
                f"the model '{self.name}' needs torch and sentence-transformers, which the default install leaves "
                f"out: {TORCH_EXTRA}"
            ) from exc
        try:
            import torch

            transformers.utils.logging.disable_progress_bar()
            # Float32 whatever the checkpoint holds: the packaged weights are stored in float16, and its vectors
            # must equal the ONNX graph's, which computes in float32 (tests/test_embed.py).
            with _quiet_transformers():
                return SentenceTransformer(self._location, device=self.device, model_kwargs={"dtype": torch.float32})
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
        Questions that arrive while the model is busy are encoded together (`QueryBatch`)."""
        with self._lock:
            ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            if len(ids) > self.max_tokens:
                text = self.tokenizer.decode(ids[: self.max_tokens])
        return self._queries.encode(text)

    def _encode_questions(self, texts: list[str]) -> np.ndarray:
        """On one torch thread: a question is a few dozen tokens, which two threads encoded in the same wall time
        for twice the CPU, and a server answering many users needs the other core for their searches."""
        with _torch_threads(1):
            return self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' load report (a pooler the sentence model never uses, "MISSING") kept off the user's
    terminal while a model loads."""
    import transformers

    logging = transformers.utils.logging
    before = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)


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


# Passages per torch call on a GPU: float32 ran fastest at 512 on an H200 (8.2k passages/s against 7.4k at 128;
# bench/encode_gpu.py, bench/RESULTS.md).
TORCH_GPU_BATCH = 512

_EMBEDDERS: dict[tuple[str, str, str], Encoder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(model: str | None = None, precision: str | None = None, device: str = "auto") -> Encoder:
    """One encoder per model, precision and device per process: loading costs seconds and hundreds of MB.
    `precision` None is float32; "int8" (faster, retrieval moved a little: bench/RESULTS.md) only for a BERT model
    run by ONNX Runtime."""
    if precision is not None:
        check_precision(precision)
    if device not in DEVICES:
        raise ModelLoadError(f"unknown device '{device}': choose one of {', '.join(DEVICES)}")
    key, location = resolve_model(model)
    pipeline = bert_pipeline(Path(location)) if key != HASHING_MODEL else None
    in_torch = pipeline is None and key != HASHING_MODEL
    if key == HASHING_MODEL:
        device = "cpu"
    elif device != "cpu":
        device, in_torch = _gpu_or_cpu(device, bert=pipeline is not None, precision=precision)
    if in_torch:
        if precision not in (None, "fp32"):
            raise ModelLoadError(f"the model '{key}' runs in float32 only: int8 needs a BERT model in a local folder")
        precision = "fp32"
    elif precision is None:
        precision = DEFAULT_PRECISION
    with _EMBEDDERS_LOCK:
        found = _EMBEDDERS.get((key, precision, device))
        if found is None:
            if key == HASHING_MODEL:
                found = HashingEmbedder()
            elif pipeline is not None and not in_torch:
                found = OnnxEmbedder(key, Path(location), *pipeline, precision, device)
            else:
                found = TorchEmbedder(model, TORCH_GPU_BATCH if device == "cuda" else 32, device)
            _EMBEDDERS[(key, precision, device)] = found
        return found


def nvidia_driver() -> bool:
    """Whether this machine has an NVIDIA driver loaded (Linux's /proc entry or device node): without one no
    GPU can be used, and torch need not be imported to be sure."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def _gpu_or_cpu(device: str, bert: bool, precision: str | None) -> tuple[str, bool]:
    """Where passages are embedded ("cuda" or "cpu"; "cuda" asked for and none usable is an error) and whether
    torch runs the model. A BERT model takes ONNX Runtime's CUDA provider when the onnxruntime-gpu package is
    installed, else torch's CUDA when torch sees a GPU (float32; int8 graphs run in ONNX Runtime only), else the
    CPU through ONNX Runtime; any other model runs in torch, on its GPU when it sees one."""
    onnx_gpu = bert and cuda_available()
    torch_gpu = False
    # Importing torch costs a second or two: for "auto" it is asked only where an NVIDIA driver is loaded.
    if not onnx_gpu and (not bert or precision in (None, "fp32")) and (device == "cuda" or nvidia_driver()):
        try:
            import torch

            torch_gpu = bool(torch.cuda.is_available())
        except ImportError:
            torch_gpu = False
    if device == "cuda" and not (onnx_gpu or torch_gpu):
        raise ModelLoadError(
            "no GPU is usable here: building on a GPU needs an NVIDIA GPU and either the onnxruntime-gpu package "
            "(pip install onnxruntime-gpu) or torch built with CUDA (float32 only: int8 needs onnxruntime-gpu)"
        )
    if onnx_gpu:
        return "cuda", False
    return ("cuda" if torch_gpu else "cpu"), torch_gpu or not bert
