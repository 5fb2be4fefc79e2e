"""The real model's question vectors: encoding the questions of many concurrent users together must give
each user the vector of their own question, exactly as if it had been encoded alone."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rag.embed import QUERY_BATCH_MAX, QueryBatch, get_embedder

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
