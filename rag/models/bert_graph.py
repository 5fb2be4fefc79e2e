"""A BERT sentence encoder as an ONNX graph, written from its safetensors weights with the `onnx` package.

Embedding passages is nearly all of a build, and torch was needed only to run the packaged model's graph. This
writes the same computation (embeddings, the encoder layers, mean pooling, normalisation) as ONNX nodes, so
ONNX Runtime runs it with no torch installed: token ids and their mask in, unit vectors out. The attention is
ONNX Runtime's fused `Attention` kernel (com.microsoft), which takes the padding mask as it is; torch's own
export spent a quarter of its time on masking nodes (`Where`, `IsNaN`) around a generic attention.

`int8_graph` quantizes the graph's matrix products to 8 bits (weights per output channel, activations per
call), keeping the most sensitive ones in float: measured against the float graph in `bench/encode.py`.

Only what `rag.models.onnx_encoder.bert_pipeline` accepts is written: a BERT `model_type`, absolute positions,
GELU, and a Transformer → mean Pooling → Normalize pipeline.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17
MS_DOMAIN = "com.microsoft"
GRAPH_INPUTS = ("input_ids", "attention_mask")  # int64, (batch, tokens); token types are all 0 for one text
GRAPH_OUTPUT = "embedding"  # float32, (batch, dimension), unit length


def float_graph(folder: Path, config: dict[str, Any]) -> bytes:
    """The model in `folder` (its `model.safetensors` and `config.json` read as `config`) as a serialised ONNX
    graph in float32."""
    from onnx import TensorProto, helper, numpy_helper
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="np") as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    prefix = "bert." if any(k.startswith("bert.") for k in weights) else ""
    heads, layers = int(config["num_attention_heads"]), int(config["num_hidden_layers"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    nodes: list[Any] = []
    initializers: list[Any] = []

    named: set[str] = set()

    def const(name: str, value: np.ndarray) -> str:
        if name not in named:  # a scalar shared by every layer is stored once
            named.add(name)
            initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def w(name: str) -> np.ndarray:
        return weights[prefix + name].astype(np.float32)

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def dense(x: str, name: str, out: str) -> str:
        """x @ W.T + b, with W stored as torch's (out, in)."""
        product = node("MatMul", [x, const(name + ".weight.T", w(name + ".weight").T)], out + "/matmul")
        return node("Add", [product, const(name + ".bias", w(name + ".bias"))], out)

    def norm(x: str, name: str, out: str) -> str:
        scale, bias = const(name + ".weight", w(name + ".weight")), const(name + ".bias", w(name + ".bias"))
        return node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=eps)

    e = "embeddings."
    # Token type 0 for every token: its row is folded into the position table.
    positions = w(e + "position_embeddings.weight") + w(e + "token_type_embeddings.weight")[0]
    words = node("Gather", [const("word_embeddings", w(e + "word_embeddings.weight")), "input_ids"], "words")
    shape = node("Shape", ["input_ids"], "ids_shape")
    first, second = const("first", np.array([0], np.int64)), const("second", np.array([1], np.int64))
    length = node("Slice", [shape, second, const("third", np.array([2], np.int64))], "length")  # (1,)
    placed = node("Slice", [const("position_table", positions), first, length, first], "placed")  # (tokens, width)
    x = norm(node("Add", [words, placed], "embedded"), e + "LayerNorm", "layer_in_0")
    mask = node("Cast", ["attention_mask"], "mask_int32", to=TensorProto.INT32)
    for n in range(layers):
        p = f"encoder.layer.{n}."
        a = p + "attention.self."
        qkv = np.concatenate([w(a + part + ".weight").T for part in ("query", "key", "value")], axis=1)
        bias = np.concatenate([w(a + part + ".bias") for part in ("query", "key", "value")])
        attended = node(
            "Attention",
            [x, const(f"{a}qkv.weight", qkv), const(f"{a}qkv.bias", bias), mask],
            f"attended_{n}",
            domain=MS_DOMAIN,
            num_heads=heads,
        )
        projected = dense(attended, p + "attention.output.dense", f"projected_{n}")
        x = norm(node("Add", [projected, x], f"residual_a_{n}"), p + "attention.output.LayerNorm", f"mid_{n}")
        inner = dense(x, p + "intermediate.dense", f"inner_{n}")
        # BERT's exact GELU: x * (1 + erf(x / sqrt 2)) / 2
        scaled = node("Mul", [inner, const("inv_sqrt2", np.array(1 / np.sqrt(2), np.float32))], f"scaled_{n}")
        erf = node("Add", [node("Erf", [scaled], f"erf_{n}"), const("one_f", np.array(1, np.float32))], f"erf1_{n}")
        half = const("half", np.array(0.5, np.float32))
        gelu = node("Mul", [node("Mul", [inner, erf], f"gelu2_{n}"), half], f"gelu_{n}")
        out = dense(gelu, p + "output.dense", f"ffn_{n}")
        x = norm(node("Add", [out, x], f"residual_f_{n}"), p + "output.LayerNorm", f"layer_in_{n + 1}")
    # Mean over the real tokens, then unit length.
    token_axis = const("token_axis", np.array([1], np.int64))
    real = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    real = node("Unsqueeze", [real, const("last_axis", np.array([-1], np.int64))], "mask_3d")
    total = node("ReduceSum", [node("Mul", [x, real], "masked"), token_axis], "total", keepdims=0)
    count = node("ReduceSum", [real, token_axis], "count", keepdims=0)
    count = node("Max", [count, const("tiny", np.array(1e-9, np.float32))], "count_safe")
    mean = node("Div", [total, count], "mean")
    size = node("ReduceL2", [mean], "size", axes=[-1], keepdims=1)
    size = node("Max", [size, const("tiny_norm", np.array(1e-12, np.float32))], "size_safe")
    node("Div", [mean, size], GRAPH_OUTPUT)

    batch_tokens = ["batch", "tokens"]
    graph = helper.make_graph(
        nodes,
        "sentence_encoder",
        [helper.make_tensor_value_info(name, TensorProto.INT64, batch_tokens) for name in GRAPH_INPUTS],
        [helper.make_tensor_value_info(GRAPH_OUTPUT, TensorProto.FLOAT, ["batch", int(config["hidden_size"])])],
        initializers,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="verbatim")
    model.ir_version = 8
    return model.SerializeToString()


def int8_graph(graph: bytes, **options: Any) -> bytes:
    """`graph` with its matrix products in 8 bits (weights quantized per output channel once, activations per
    call: ONNX Runtime's dynamic quantization), except the feed-forward output products of the first half of
    the layers, which stay in float32. Those read the GELU's output, whose few large values a per-call 8-bit
    range flattens most: measured on 512 passages, every product in 8 bits kept a cosine of 0.9946 to the
    float vectors (SQuAD dense R@1 -0.0032), these three in float 0.9971 (-0.0013) at 85% of the speed
    (bench/encode.py). `options` go to `quantize_dynamic` as they are (the bench tries other settings)."""
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [n.name for n in onnx.load_from_string(graph).graph.node]
    layers = sum(1 for name in nodes if name.startswith("ffn_") and name.endswith("/matmul"))
    kept_in_float = [f"ffn_{n}/matmul" for n in range(layers // 2) if f"ffn_{n}/matmul" in nodes]
    with tempfile.TemporaryDirectory() as tmp, _quiet_root_logger():
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph)
        # The fused attention kernel's output type is unknown to ONNX's shape inference: it is float.
        extra = {"DefaultTensorType": TensorProto.FLOAT}
        settings = {
            "per_channel": True,
            "weight_type": QuantType.QInt8,
            "extra_options": extra,
            "nodes_to_exclude": kept_in_float,
            **options,
        }
        quantize_dynamic(source, target, **settings)
        return target.read_bytes()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantizer advises "pre-processing" on the root logger at every call; it has nothing to pre-process
    here (shapes are known and the graph is already fused where it matters)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
