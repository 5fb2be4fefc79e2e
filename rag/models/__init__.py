"""Encoders: the packaged all-MiniLM-L6-v2 through sentence-transformers for passages, the same model in numpy
or ONNX Runtime for questions, and the hashing stand-in for tests that do not measure retrieval. Everything
above this package sees one `Encoder`."""

from rag.models.embed import DEFAULT_MODEL, Embedder, Encoder, get_embedder, passage_input, resolve_model
from rag.models.hashing import HASHING_MODEL, HashingEmbedder

__all__ = [
    "DEFAULT_MODEL",
    "HASHING_MODEL",
    "Embedder",
    "Encoder",
    "HashingEmbedder",
    "get_embedder",
    "passage_input",
    "resolve_model",
]
