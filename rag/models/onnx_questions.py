"""Question vectors through ONNX Runtime, for a server that answers many users.

A question is a few dozen tokens, and torch spends most of such a forward pass in per-operator overhead: on
the two cores here it took 16-19 ms of CPU a question on one thread (35-38 ms on two), the largest single cost
of a chat answer. ONNX Runtime runs the same graph in 7 ms on one thread. The model's transformer is exported
once per machine, by a child process that hands the graph back on its standard output (tracing left about 100
MB behind in the process that ran it; nothing is downloaded, and the graph is kept in the user's cache folder
for the next start, until no start has read it for CACHE_KEEP_DAYS), and the pooling and normalisation that
sentence-transformers applies after it are done here in numpy: the vectors agree with sentence-transformers'
to float32 rounding (tested), so scores and thresholds mean the same.

Only a pipeline this reproduces exactly is exported: a transformer, mean pooling, normalisation. For any
other, or when the export fails, `question_runtime` returns None and torch encodes as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

INTRA_OP_THREADS = 1  # the server's other core serves the searches around the encoding
EXPORT_TIMEOUT = 600
GRAPH_VERSION = 1  # changes with what `exported_graph` produces, so that no older cached graph is used
# A cached graph (90 MB for the packaged model) no start has read for this long is deleted when a new one is
# written: a graph is keyed by the model's folder and torch's version, so each new install would leave one.
CACHE_KEEP_DAYS = 30


class QuestionRuntime:
    """One ONNX Runtime session of a sentence-transformers model's transformer, and its tokenizer."""

    def __init__(self, model: Any, session: Any, inputs: list[str], weights: bytes) -> None:
        self._model = model
        self._session = session
        self._inputs = inputs
        self._weights = weights  # the session reads its weights from these bytes

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of `texts`, tokenized (and cut to the model's window) as sentence-transformers does."""
        features = _tokenize(self._model, texts)
        feed = {name: features[name].numpy().astype(np.int64) for name in self._inputs}
        hidden = self._session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)


def question_runtime(model: Any, location: str) -> QuestionRuntime | None:
    """The ONNX Runtime encoder for a loaded SentenceTransformer (loaded from `location`), or None when its
    pipeline is not one this reproduces or the export fails."""
    if not _mean_pooled(model):
        return None
    try:
        import onnxruntime
    except ImportError:
        return None
    inputs = _inputs(_tokenize(model, ["a question"]))
    if "attention_mask" not in inputs:
        return None
    cached = _cache_path(location)
    try:
        graph = _graph(location, cached)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = INTRA_OP_THREADS
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False  # an idle server gives back what a burst of questions took
        # The weights stay in the exported bytes rather than in a second copy of them.
        options.add_session_config_entry("session.use_ort_model_bytes_directly", "1")
        options.add_session_config_entry("session.use_ort_model_bytes_for_initializers", "1")
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any failure leaves questions to torch, which encodes them as before
        if cached is not None:  # a damaged cached graph is exported again at the next start
            with contextlib.suppress(OSError):
                cached.unlink(missing_ok=True)
        return None
    return QuestionRuntime(model, session, inputs, graph)


def _graph(location: str, cached: Path | None) -> bytes:
    """The exported graph of the model at `location`: from this machine's cache (`cached`) when an earlier
    start exported the same model files with the same torch, else from a child process, then cached (a later
    start or a second server skips the export's seconds). A cache that cannot be written only costs the
    export."""
    if cached is not None and cached.is_file():
        with contextlib.suppress(OSError):
            os.utime(cached)  # read now: kept CACHE_KEEP_DAYS from here
        return cached.read_bytes()
    child = subprocess.run(
        [sys.executable, "-m", __name__, location], capture_output=True, timeout=EXPORT_TIMEOUT, check=True
    )
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.name}.{os.getpid()}")
            partial.write_bytes(child.stdout)
            os.replace(partial, cached)
            prune_cache(cached.parent, time.time() - CACHE_KEEP_DAYS * 86_400)
        except OSError:
            pass
    return child.stdout


def prune_cache(folder: Path, unread_since: float) -> None:
    """Delete the cached graphs (and the part-written ones of killed starts) last read before `unread_since`."""
    for entry in [*folder.glob("questions-*.onnx"), *folder.glob(".questions-*.onnx.*")]:
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < unread_since:
                entry.unlink()


def _cache_path(location: str) -> Path | None:
    """Where the graph of the model at `location` is kept: named by the model's files (name, size, time), the
    torch that exports it and this module's export settings. None when the model is not a local folder."""
    import torch

    folder = Path(location)
    if not folder.is_dir():
        return None
    key = hashlib.sha256(f"{folder.resolve()}|{torch.__version__}|{GRAPH_VERSION}".encode())
    for entry in sorted(folder.rglob("*")):
        if entry.is_file():
            stat = entry.stat()
            key.update(f"|{entry.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "verbatim" / f"questions-{key.hexdigest()[:24]}.onnx"


def exported_graph(model: Any) -> bytes:
    """The model's transformer as an ONNX graph: token ids in, last hidden state out."""
    import torch

    sample = _tokenize(model, ["a question"])
    inputs = _inputs(sample)
    graph = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _hidden_module(model[0].auto_model, inputs).eval(),
            tuple(sample[name] for name in inputs),
            graph,  # type: ignore[arg-type]  # torch writes to a file-like object too
            input_names=inputs,
            output_names=["hidden"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*inputs, "hidden"]},
            opset_version=17,
            dynamo=False,
        )
    return graph.getvalue()


def _inputs(features: dict[str, Any]) -> list[str]:
    """The model inputs a tokenizer output holds, in the order the graph takes them."""
    return [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in features]


def _tokenize(model: Any, texts: list[str]) -> dict[str, Any]:
    """Token ids as sentence-transformers makes them (`preprocess` since 5.x, `tokenize` before)."""
    return (getattr(model, "preprocess", None) or model.tokenize)(texts)


def _mean_pooled(model: Any) -> bool:
    names = [type(module).__name__ for module in model]
    if names != ["Transformer", "Pooling", "Normalize"] or not hasattr(model[0], "auto_model"):
        return False
    config = model[1].get_config_dict()
    mode = config.get("pooling_mode")
    return mode == "mean" if mode is not None else bool(config.get("pooling_mode_mean_tokens"))


def _hidden_module(auto_model: Any, inputs: list[str]) -> Any:
    import torch

    class Hidden(torch.nn.Module):
        """The transformer's last hidden state from positional inputs, as the exporter passes them."""

        def __init__(self) -> None:
            super().__init__()
            self.auto_model = auto_model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.auto_model(**dict(zip(inputs, tensors))).last_hidden_state

    return Hidden()


def _export_to_stdout(location: str) -> None:
    """The child's work: the graph alone on standard output, whatever the libraries print meanwhile (sent
    to standard error)."""
    from sentence_transformers import SentenceTransformer

    graph_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    graph_out.write(exported_graph(SentenceTransformer(location, device="cpu")))
    graph_out.close()


if __name__ == "__main__":  # the child `question_runtime` starts: python -m rag.models.onnx_questions LOCATION
    _export_to_stdout(sys.argv[1])
