"""Which sentence of a passage answers the question, so the chat can point the reader's eye at it.

A passage is several sentences; the reader wants the one that answers. It is picked by the question's key
terms found in the sentence plus, where the model reads the question's script, the sentence's cosine
similarity to the question. The result is a pair of offsets into the passage, never a rewritten sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.chunk import split_sentences
from rag.embed import Embedder
from rag.lexical import coverage, has_wide_script, query_keys
from rag.records import Passage

Span = tuple[int, int]


def sentence_spans(text: str) -> list[Span]:
    """The sentences of `text` as (start, end) offsets, whitespace trimmed."""
    return [(start, end) for start, end, _ in split_sentences(text, 0, len(text))]


def best_sentences(question: str, passages: Sequence[Passage], embedder: Embedder | None = None) -> list[Span | None]:
    """For each passage, the span (relative to `passage.text`) of its sentence that best matches `question`;
    None for a passage with a single sentence, where marking it would add nothing."""
    spans = [sentence_spans(p.text) for p in passages]
    keys = query_keys(question)
    texts = [p.text[s:e] for p, sentences in zip(passages, spans) for s, e in sentences]
    scores = np.array([coverage(keys, t) for t in texts], dtype=np.float32)
    if embedder is not None and texts and not has_wide_script(question):
        fits = [n <= embedder.max_tokens for n in embedder.count(texts)]
        inside = [t for t, ok in zip(texts, fits) if ok]
        if inside:
            similarity = embedder.encode(inside) @ embedder.encode_query(question)[0]
            scores[np.flatnonzero(fits)] += similarity
    best: list[Span | None] = []
    at = 0
    for sentences in spans:
        if len(sentences) < 2:
            best.append(None)
        else:
            best.append(sentences[int(np.argmax(scores[at : at + len(sentences)]))])
        at += len(sentences)
    return best
