"""A question's vector without torch: the default model's forward pass in numpy, for one-shot commands.

`rag ask` spent 6-19 s of a call importing torch and sentence-transformers to encode one short question,
which is a few million multiply-adds. This reads the same weights (`model.safetensors` in the packaged
model) and the same tokenizer (`tokenizer.json`, through `tokenizers`, which transformers uses too) and runs
the BERT encoder, mean pooling and normalisation in numpy: the vector agrees with sentence-transformers' to
float32 rounding (tested), so scores and thresholds mean the same. A server keeps the torch model, whose
batches are cheaper per question when many arrive together (`rag.models.embed.QueryBatch`).

Only models this reproduces exactly are served: a BERT `model_type`, absolute positions, GELU, and a
sentence-transformers pipeline of Transformer, mean Pooling and Normalize. Anything else returns None from
`light_encoder` and is encoded by the torch model as before.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PIPELINE = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


def light_encoder(location: str) -> NumpyBertEncoder | None:
    """The numpy encoder for the model folder at `location`, or None when it is not one it reproduces."""
    folder = Path(location)
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
    return NumpyBertEncoder(folder, config, window - 2)


class NumpyBertEncoder:
    """Loaded on first use (about 0.2 s: 90 MB of weights read from the page cache)."""

    def __init__(self, folder: Path, config: dict, max_tokens: int) -> None:
        self.folder = folder
        self.max_tokens = max_tokens  # pieces between [CLS] and [SEP], as `Embedder.max_tokens`
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self._weights: dict[str, np.ndarray] | None = None
        self._tokenizer: Tokenizer | None = None

    def _load(self) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        with safe_open(str(self.folder / "model.safetensors"), framework="np") as f:
            self._weights = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("pooler.")}  # noqa: SIM118 - not a dict
        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def encode(self, text: str, max_tokens: int) -> np.ndarray:
        """The unit vector of `text`, read as the model reads it: at most `max_tokens` pieces between
        [CLS] and [SEP]. Shape (1, dimension), float32."""
        if self._weights is None:
            self._load()
        tok = self._tokenizer
        assert tok is not None
        ids = tok.encode(text, add_special_tokens=False).ids[:max_tokens]
        first, last = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        assert first is not None and last is not None  # a BERT vocabulary's
        ids = [first, *ids, last]
        hidden = self._forward(np.asarray(ids))
        vector = hidden.mean(axis=0)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        return vector[None, :].astype(np.float32)

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        w = self._weights
        assert w is not None
        e = "embeddings."
        x = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][: len(ids)]
        x = self._norm(x + w[e + "token_type_embeddings.weight"][0], e + "LayerNorm")
        for n in range(self.layers):
            p = f"encoder.layer.{n}."
            x = self._norm(x + self._attention(x, p + "attention."), p + "attention.output.LayerNorm")
            inner = _gelu(self._dense(x, p + "intermediate.dense"))
            x = self._norm(x + self._dense(inner, p + "output.dense"), p + "output.LayerNorm")
        return x

    def _attention(self, x: np.ndarray, p: str) -> np.ndarray:
        tokens, width = x.shape
        size = width // self.heads

        def heads(name: str) -> np.ndarray:
            return self._dense(x, p + f"self.{name}").reshape(tokens, self.heads, size).transpose(1, 0, 2)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(tokens, width)
        return self._dense(context, p + "output.dense")

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        w = self._weights
        assert w is not None
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        w = self._weights
        assert w is not None
        return (x - mean) / np.sqrt(var + self.eps) * w[name + ".weight"] + w[name + ".bias"]


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x·Φ(x), with erf from Abramowitz and Stegun 7.1.26 (error below 1.5e-7, under
    float32 rounding of the activations it multiplies)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return 0.5 * x * (1.0 + erf)
