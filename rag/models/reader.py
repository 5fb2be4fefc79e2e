"""The reader: a cross-encoder of our own that reads a question together with one passage.

A bi-encoder compares two vectors made apart; it cannot tell a passage on the question's topic from one that
answers it. The reader reads both texts at once, so it can. It was trained here (`bench/train_reader.py`,
model card `reader/README.md`) from the packaged all-MiniLM-L6-v2 weights on openly licensed data, and it
ships inside the package as an int8 ONNX graph run by ONNX Runtime: no torch, nothing downloaded.

For each passage it gives two things: a relevance logit (turned into the calibrated probability by
`rag.search.rerank`), and the character span it would quote as the answer, so the chat can mark the answer
words inside the verbatim passage.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # the window the reader was trained on: question, passage and three separators
MAX_QUESTION_TOKENS = 64  # a longer question is cut so that the passage keeps most of the window
MAX_SPAN_TOKENS = 30  # an answer span longer than this is a sentence or more: the sentence is marked instead
MIN_SPAN_SCORE = -20.0  # the span score of a passage with no token inside the window
_WORD = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class Reading:
    """What the reader made of one passage: its relevance logit; the answer's character span in the passage
    text (`start` < `end`, inside it), or None when no span fits inside the window; and that span's score
    (start plus end logit), which says how sure the reader is that an answer is there."""

    logit: float
    span: tuple[int, int] | None
    span_score: float = 0.0


def reader_folder() -> Path:
    """Where the packaged reader lies (`reader.onnx`, `tokenizer.json`, the model card)."""
    return Path(str(resources.files("rag.models").joinpath("reader")))


class PassageReader:
    """One ONNX Runtime session of the reader and its tokenizer; `read` is safe to call from many threads."""

    def __init__(self, folder: Path | None = None, threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        folder = folder or reader_folder()
        self.folder = folder
        pair = Tokenizer.from_file(str(folder / "tokenizer.json"))
        pair.no_padding()
        pair.enable_truncation(MAX_TOKENS, strategy="only_second")
        self._pair = pair
        single = Tokenizer.from_file(str(folder / "tokenizer.json"))
        single.no_padding()
        single.no_truncation()
        self._single = single
        self._lock = threading.Lock()  # tokenizers' truncation settings are per object: encode under a lock
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        self._session = onnxruntime.InferenceSession(
            str(folder / "reader.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def read(self, question: str, passages: Sequence[str]) -> list[Reading]:
        """One Reading per passage, in order. Deterministic: the same texts give the same numbers."""
        if not passages:
            return []
        question = self._cut_question(question)
        with self._lock:
            encodings = self._pair.encode_batch([(question, p) for p in passages])
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(passages), width), np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
            types[row, : len(e.ids)] = e.type_ids
        relevance, start, end = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        readings = []
        for row in range(len(passages)):
            span, score = _span(passages[row], encodings[row], start[row], end[row])
            readings.append(Reading(float(relevance[row]), span, score))
        return readings

    def _cut_question(self, question: str) -> str:
        with self._lock:
            offsets = self._single.encode(question, add_special_tokens=False).offsets
        if len(offsets) <= MAX_QUESTION_TOKENS:
            return question
        return question[: offsets[MAX_QUESTION_TOKENS - 1][1]]


def _span(passage: str, encoding, start: np.ndarray, end: np.ndarray) -> tuple[tuple[int, int] | None, float]:
    """The best-scoring span of passage tokens (start ≤ end, at most MAX_SPAN_TOKENS), widened to whole words,
    as character offsets into `passage`, and its score."""
    inside = [i for i, t in enumerate(encoding.type_ids) if t == 1 and encoding.offsets[i][1] > encoding.offsets[i][0]]
    if not inside:
        return None, MIN_SPAN_SCORE
    idx = np.array(inside)
    total = start[idx][:, None] + end[idx][None, :]
    gap = np.arange(len(idx))[None, :] - np.arange(len(idx))[:, None]
    total[(gap < 0) | (gap >= MAX_SPAN_TOKENS)] = -np.inf
    a, b = np.unravel_index(int(np.argmax(total)), total.shape)
    best = (int(a), int(b))
    score = max(MIN_SPAN_SCORE, float(total[a, b]))
    first, last = encoding.offsets[inside[best[0]]][0], encoding.offsets[inside[best[1]]][1]
    while first > 0 and _WORD.match(passage[first - 1]):
        first -= 1
    while last < len(passage) and _WORD.match(passage[last]):
        last += 1
    return ((first, last) if 0 <= first < last <= len(passage) else None), score
