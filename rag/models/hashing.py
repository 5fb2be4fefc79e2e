"""A fast, deterministic stand-in for a sentence-transformers model: `--model hashing`.

Tests that check the store, the chat or the command line, not retrieval quality, and benchmarks that measure
what the index costs rather than what the model costs, need an encoder that loads instantly and gives the same
vectors on every machine. This one hashes each word (and each pair of neighbouring words) to a signed slot of
a 384-dimensional vector, the "hashing trick" of Weinberger et al. 2009: texts that share words get similar
vectors, which is enough for every code path of hybrid search to run on real text. It understands nothing;
never use it for answers people rely on.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from rag.errors import RagError
from rag.models.onnx_encoder import TITLE_TOKENS

HASHING_MODEL = "hashing"
DIMENSION = 384
MAX_TOKENS = 254
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


def _token_id(token: str) -> int:
    return zlib.crc32(token.lower().encode("utf-8", "surrogatepass")) if token[0].isalnum() or token[0] == "_" else 0


class HashingEmbedder:
    """The `Encoder` interface (see `rag.models.embed`) without a model: tokens are regex words and marks."""

    name = HASHING_MODEL
    precision = "fp32"
    device = "cpu"
    vector_key = HASHING_MODEL
    dimension = DIMENSION
    max_tokens = MAX_TOKENS

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}  # lower-cased word -> its hash
        self._ids: dict[str, int] = {}  # token as written -> its id

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKEN.findall(t)) for t in texts]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _TOKEN.finditer(text)]

    def _id(self, token: str) -> int:
        """`_token_id`, remembered per token: tokenising is most of what the stand-in encoder costs."""
        found = self._ids.get(token)
        if found is None:
            found = self._ids[token] = _token_id(token)
        return found

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [[self._id(t) for t in _TOKEN.findall(x)] for x in texts]

    def token_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        matches = list(_TOKEN.finditer(text))
        return [self._id(m.group()) for m in matches], [m.span() for m in matches]

    def title_prefix(self, title: str) -> tuple[str, list[int]]:
        spans = self.offsets(title)
        short_title = title[: spans[TITLE_TOKENS - 1][1]] if len(spans) > TITLE_TOKENS else title
        return short_title, self.tokenize([short_title])[0]

    def encode_ids(self, inputs: Sequence[Sequence[int]]) -> np.ndarray:
        """Vectors from token ids: a word's id is its CRC-32 and a mark's is 0, so this equals `encode`."""
        return self._from_hashes([np.asarray([i for i in ids if i], dtype=np.uint64) for ids in inputs])

    def _hashes(self, text: str) -> np.ndarray:
        """A 32-bit hash per word (cached: a collection repeats its vocabulary endlessly)."""
        out = []
        for word in _WORD.findall(text.lower()):
            h = self._cache.get(word)
            if h is None:
                h = self._cache[word] = zlib.crc32(word.encode("utf-8", "surrogatepass"))
            out.append(h)
        return np.asarray(out, dtype=np.uint64)

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Each word and each pair of neighbouring words adds +1 or -1 to one of the 384 slots (by its hash);
        then every vector is scaled to unit length. One bincount for the whole batch."""
        return self._from_hashes([self._hashes(text) for text in texts])

    def _from_hashes(self, hashed: Sequence[np.ndarray]) -> np.ndarray:
        rows, features = [], []
        for row, words in enumerate(hashed):
            pairs = (words[:-1] * np.uint64(0x9E3779B1) + words[1:]) & np.uint64(0xFFFFFFFF)
            both = np.concatenate([words, pairs])
            features.append(both)
            rows.append(np.full(len(both), row, dtype=np.int64))
        h = np.concatenate(features) if features else np.zeros(0, np.uint64)
        slots = np.concatenate(rows) * DIMENSION + (h % np.uint64(DIMENSION)).astype(np.int64)
        signs = np.where((h >> np.uint64(16)) & np.uint64(1), 1.0, -1.0)
        out = np.bincount(slots, weights=signs, minlength=len(hashed) * DIMENSION).reshape(len(hashed), DIMENSION)
        out[~out.any(axis=1), 0] = 1.0  # a text with no words gets a vector all the same
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    def encode(self, texts: Sequence[str], checked: bool = False) -> np.ndarray:
        if not checked:
            too_long = [n for n in self.count(texts) if n > self.max_tokens]
            if too_long:
                raise RagError(f"{len(too_long)} passage(s) exceed the model's {self.max_tokens}-token limit")
        return self._vectors(texts)

    def use_threads(self, count: int) -> None:
        """Nothing to set: hashing runs on the calling thread."""

    def encode_query(self, text: str) -> np.ndarray:
        return self._vectors([text])

    def load(self) -> None:
        """Nothing to load: the stand-in is ready when made."""
