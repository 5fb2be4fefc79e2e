"""Passages per second on a GPU for the packaged encoder, by batch size and number format, beside the CPU.

    python bench/encode_gpu.py --passages F [--sample 4096]

Why a script of its own: the GPU machine that the `device` tool lends has torch with CUDA but not the
product's other dependencies (FAISS, tantivy, ...) nor onnxruntime-gpu, so this measures the model itself with
torch and transformers: the packaged all-MiniLM-L6-v2 weights (`rag/models/minilm`), its tokenizer, mean
pooling and normalisation as the product computes them, on real passages (`--passages`: the gzip JSON that
`bench/train_reader.py prepare` writes; its passages are training text of about 130 words). It prints, with
the load average beside every timing: passages/s in float32, float16 and bfloat16 at each batch size
(passages sorted by length, as a build on a GPU sends them), the cosine of each variant's vectors to the CPU
float32 ones (mean, min), tokenizing's share of the time, and the CPU's own figure for the ratio.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "rag" / "models" / "minilm"
WINDOW = 256


def batches(encodings: list, size: int):
    for i in range(0, len(encodings), size):
        chunk = encodings[i : i + size]
        width = max(len(e.ids) for e in chunk)
        ids = np.zeros((len(chunk), width), np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(chunk):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        yield torch.from_numpy(ids), torch.from_numpy(mask)


def embed(model, encodings: list, size: int, device: str, dtype) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for ids, mask in batches(encodings, size):
            ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
            with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                h = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))[0]
            m = mask.unsqueeze(-1).to(torch.float32)
            pooled = (h.float() * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
    return torch.cat(out).numpy()


def timed(run, repeats: int) -> tuple[float, np.ndarray]:
    vectors = run()  # warm-up (kernels chosen, memory taken)
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        began = time.perf_counter()
        vectors = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return best, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=4096)
    parser.add_argument("--cpu-sample", type=int, default=256)
    parser.add_argument("--batches", default="32,64,128,256,512,1024")
    args = parser.parse_args()
    from tokenizers import Tokenizer
    from transformers import BertModel

    with gzip.open(args.passages, "rt") as f:
        texts = [t for t in json.load(f)["passages"] if len(t) > 400][: args.sample]
    tokenizer = Tokenizer.from_file(str(BASE / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(WINDOW)
    began = time.perf_counter()
    encodings = sorted(tokenizer.encode_batch(texts), key=lambda e: -len(e.ids))
    tokenize_s = time.perf_counter() - began
    tokens = sum(len(e.ids) for e in encodings) / len(encodings)
    print(f"{len(texts)} passages, {tokens:.0f} tokens each on average; tokenizing {len(texts) / tokenize_s:.0f}/s")
    model = BertModel.from_pretrained(str(BASE), add_pooling_layer=False, dtype=torch.float32).eval()

    torch.set_num_threads(os.cpu_count() or 1)
    cpu_part = encodings[: args.cpu_sample]
    cpu_s, reference = timed(lambda: embed(model, cpu_part, 32, "cpu", torch.float32), 1)
    cpu_rate = len(cpu_part) / cpu_s
    print(f"cpu float32 ({os.cpu_count()} cores, batches of 32): {cpu_rate:.1f} passages/s  load {os.getloadavg()}")
    if not torch.cuda.is_available():
        print("no GPU: torch sees no CUDA device")
        return
    print(f"GPU: {torch.cuda.get_device_name()}")
    model = model.to("cuda")
    rows = []
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for size in (int(b) for b in args.batches.split(",")):
            seconds, vectors = timed(lambda size=size, dtype=dtype: embed(model, encodings, size, "cuda", dtype), 3)
            rate = len(encodings) / seconds
            cos = (vectors[: len(cpu_part)] * reference).sum(1)
            rows.append((str(dtype).split(".")[1], size, rate, cos.mean(), cos.min()))
            print(
                f"cuda {rows[-1][0]:9s} batch {size:5d}: {rate:9.0f} passages/s ({rate / cpu_rate:6.1f}x the cpu), "
                f"cosine to cpu float32 mean {cos.mean():.7f} min {cos.min():.7f}  load {os.getloadavg()}",
                flush=True,
            )
    best = max(rows, key=lambda r: r[2])
    print(
        f"fastest: {best[0]} batch {best[1]}: {best[2]:.0f} passages/s; tokenizing alone runs at "
        f"{len(texts) / tokenize_s:.0f}/s on one call of the tokenizer"
    )


if __name__ == "__main__":
    main()
