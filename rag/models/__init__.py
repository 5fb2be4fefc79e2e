"""Encoders: the packaged all-MiniLM-L6-v2 (and BERT encoders like it) through ONNX Runtime, in float32 or int8;
other sentence-transformers models through torch (an extra); the multilingual arm's encoder; and the hashing
stand-in for tests that do not measure retrieval. Everything above this package sees one `Encoder`."""

from rag.models.embed import DEFAULT_MODEL, Encoder, get_embedder, passage_input, resolve_model
from rag.models.hashing import HASHING_MODEL, HashingEmbedder

__all__ = [
    "DEFAULT_MODEL",
    "HASHING_MODEL",
    "Encoder",
    "HashingEmbedder",
    "get_embedder",
    "passage_input",
    "resolve_model",
]
