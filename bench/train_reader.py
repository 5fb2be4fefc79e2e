"""Rebuild the packaged reader: a cross-encoder that reads a question with one passage, says how likely the
passage answers it, and points at the answer words.

Why a script of our own: no reranker we can install ships its weights offline (flashrank, rerankers and
mxbai-rerank download them at run time), so the model is trained here, from the packaged all-MiniLM-L6-v2
weights (`rag/models/minilm`), on openly licensed data only: `../shared/train/` (see its SOURCES.md) and the
fetched repositories named in `FETCHED` (their commits and licences are in the model card). Nothing under
`../shared/eval/` or `bench/news/` is read: those stay evaluation.

The examples multiply what few labels there are:
- a question with its own paragraph is a positive, and its answer's characters are the span target;
- the other paragraphs of the same article are on-topic negatives (the "on the topic, does not answer" case
  the product must refuse): the one sharing most of the question's words, and one at random;
- SQuAD 2.0's unanswerable questions with the paragraph they were written against are negatives;
- TyDi QA's English questions were written by people who had not seen the paragraph (SQuAD's were written
  looking at it): the product's hardest questions are of that kind. Their hard negatives are the paragraphs
  of other articles that share most of the question's rare words (`LexicalPool`);
- PubMedQA's questions are paper titles put as questions; the abstract's conclusion answers them, and its
  background section is on the topic without answering: the claim-and-abstract reading SciFact asks for;
- a paragraph of another article is an easy negative, so that off-topic passages stay low;
- COVID-QA's long articles are cut into passages by the product's own chunker, so that training passages
  look like the ones the reader will see.
A negative whose text holds the question's answer is dropped (it would teach the model to refuse answers).

Usage:
    python bench/train_reader.py                       # prepare the examples, train, write the reader
    python bench/train_reader.py prepare --data F      # the examples only (needs the product; CPU)
    python bench/train_reader.py train --data F ...    # train from them (torch, transformers, tokenizers)
It runs on a GPU when torch sees one (bf16 autocast; the shipped reader, 3 epochs at batch 64, took 76 s on an
H200) and on the CPU otherwise (2 cores: about 4 examples a second, so about 6 hours for those 93k examples).
The TyDi QA and PubMedQA files are read from their repositories' snapshots (`fetch`; RAG_MIRRORS names where).
It writes `reader.onnx` (int8 weights, dynamic quantization, per channel), `tokenizer.json` and `training.json`
(data counts, settings, monitoring figures) to --out; `--every-epoch` writes one such folder per epoch as well.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN = ROOT.parent / "shared" / "train"
MIRRORS = Path(os.environ.get("RAG_MIRRORS", "/work/.mirror"))  # where `fetch` leaves repositories
BASE = ROOT / "rag" / "models" / "minilm"  # the packaged encoder's weights: the reader starts from them
MAX_TOKENS = 256
MAX_QUESTION_TOKENS = 48
SEED = 13


@dataclass(frozen=True)
class Fetched:
    """A training file from a public repository: where it came from and under which licence."""

    repo: str
    commit: str
    path: str
    licence: str

    def read(self) -> bytes:
        """The file at its commit, from the repository's snapshot (`fetch github:<repo>`)."""
        clone = MIRRORS / self.repo.replace("/", "+") / "repo"
        shown = subprocess.run(["git", "-C", str(clone), "show", f"{self.commit}:{self.path}"], capture_output=True)
        if shown.returncode:
            sys.exit(f"{self.repo}@{self.commit[:7]}:{self.path} is not in {clone}: fetch github:{self.repo} first")
        return shown.stdout


TYDI = "sagorbrur/tydiqa-language-specific"  # TyDi QA GoldP split by language (Apache-2.0, as TyDi QA)
TYDI_COMMIT = "d69f645190ada17b3c01066e28ab3918f427928b"
FETCHED = {
    "tydiqa-train": Fetched(TYDI, TYDI_COMMIT, "language_data/english/english_tydiqa_train.json", "Apache-2.0"),
    "tydiqa-dev": Fetched(TYDI, TYDI_COMMIT, "language_data/english/english_tydiqa_dev.json", "Apache-2.0"),
    "pubmedqa": Fetched("pubmedqa/pubmedqa", "1f00b98d5cc626844bf8c4ca513b6e62c40071ec", "data/ori_pqal.json", "MIT"),
}


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


def squad_examples(rng: random.Random, data: list[dict]) -> list[list[Example]]:
    """SQuAD 2.0's articles (`data`, its "data" list)."""
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
    from rag.models.embed import get_embedder

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


def _chunked(article: dict, counter) -> tuple[str, list[tuple[int, int]]]:
    from rag.ingest.chunk import ChunkPlan, chunk_document
    from rag.records import Document

    text = article["paragraphs"][0]["context"]
    doc = Document(source="covid", text=text, title="", segments=((0, len(text)),))
    return text, [(c.start, c.end) for c in chunk_document(doc, counter, ChunkPlan())]


class LexicalPool:
    """Paragraphs searched by the question's rare words (IDF-weighted overlap): the hard negatives a keyword
    arm would put first. Words in more than 2% of the pool are not looked up (they name no topic)."""

    def __init__(self, passages: list[str]) -> None:
        self.passages = passages
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, text in enumerate(passages):
            for w in _words(text):
                self.postings[w].append(i)
        n = len(passages)
        self.idf = {w: math.log(n / len(ids)) for w, ids in self.postings.items() if len(ids) <= max(2, n // 50)}

    def nearest(self, question: str, k: int) -> list[int]:
        scores: Counter[int] = Counter()
        for w in sorted(_words(question)):  # a fixed order: ties between paragraphs fall the same way every run
            weight = self.idf.get(w)
            if weight:
                for i in self.postings[w]:
                    scores[i] += weight
        return [i for i, _ in scores.most_common(k)]


def tydi_examples(rng: random.Random, pool: LexicalPool, data: list[dict]) -> list[list[Example]]:
    """TyDi QA GoldP English (`data`, a split's "data" list): one paragraph per question, written without seeing
    it. Negatives: a paragraph of the same Wikipedia article asked about by another question, the pool's nearest
    paragraph that is not the question's own, and (40%) one at random."""
    by_title: dict[str, list[str]] = defaultdict(list)
    for a in data:
        by_title[a["title"]].append(a["paragraphs"][0]["context"])
    groups = []
    for a in data:
        p = a["paragraphs"][0]
        own = p["context"]
        for qa in p["qas"]:
            first = qa["answers"][0]
            start = first["answer_start"]
            if own[start : start + len(first["text"])] != first["text"]:
                continue  # an offset that does not point at its answer teaches the span head nothing
            answers = [x["text"] for x in qa["answers"]]
            group = f"tydi:{qa['id']}"
            out = [Example(qa["question"], own, 1.0, (start, start + len(first["text"])), group)]
            same = [t for t in by_title[a["title"]] if t != own and not _holds_answer(t, answers)]
            if same:
                out.append(Example(qa["question"], rng.choice(same), 0.0, None, group))
            near = [pool.passages[i] for i in pool.nearest(qa["question"], 8)]
            near = [t for t in near if t != own and t not in same and not _holds_answer(t, answers)]
            if near:
                out.append(Example(qa["question"], near[0], 0.0, None, group))
            if rng.random() < 0.4:
                out.append(Example(qa["question"], rng.choice(pool.passages), 0.0, None, group))
            groups.append(out)
    return groups


def pubmedqa_examples(rng: random.Random, data: dict) -> list[list[Example]]:
    """PubMedQA's 1,000 expert-labelled questions (`data`, by PubMed id): the abstract's conclusion (its long
    answer, a verbatim part of the paper) is a positive; the background section, on the topic but written
    before the finding, is a negative; so is the conclusion of the paper nearest by rare words, and (40%) one
    at random."""
    conclusions = [v["LONG_ANSWER"] for v in data.values()]
    pool = LexicalPool(conclusions)
    groups = []
    for pmid, v in data.items():
        question, group = v["QUESTION"], f"pubmedqa:{pmid}"
        out = [Example(question, v["LONG_ANSWER"], 1.0, None, group)]
        background = [c for c, label in zip(v["CONTEXTS"], v["LABELS"]) if label in ("BACKGROUND", "OBJECTIVE")]
        if background:
            out.append(Example(question, background[0], 0.0, None, group))
        near = [pool.passages[i] for i in pool.nearest(question, 4)]
        near = [t for t in near if t != v["LONG_ANSWER"] and t in conclusions]
        if near:
            out.append(Example(question, near[0], 0.0, None, group))
        if rng.random() < 0.4:
            out.append(Example(question, rng.choice(conclusions), 0.0, None, group))
        groups.append(out)
    return groups


def prepare(path: Path) -> dict:
    """Every example, train and monitoring, written to `path` (gzip JSON): training then needs no product
    code and no data files, only this file (what travels to a GPU machine)."""
    rng = random.Random(SEED)
    squad_data = json.loads((TRAIN / "squad-v2.0-train-first10.json").read_text())["data"]
    squad = squad_examples(rng, squad_data)
    covid = covid_examples(rng)
    tydi_train, tydi_dev_data = (json.loads(FETCHED[f"tydiqa-{part}"].read())["data"] for part in ("train", "dev"))
    squad_paragraphs = [p["context"] for a in squad_data for p in a["paragraphs"]]
    pool = LexicalPool([a["paragraphs"][0]["context"] for a in tydi_train] + squad_paragraphs)
    tydi = tydi_examples(rng, pool, tydi_train)
    tydi_dev = tydi_examples(rng, pool, tydi_dev_data)
    pubmed = pubmedqa_examples(rng, json.loads(FETCHED["pubmedqa"].read()))
    # Monitoring only: SQuAD's last article, every tenth COVID article, TyDi's dev split and every tenth
    # PubMedQA question are kept out of training.
    dev = squad[-1] + [e for n, a in enumerate(covid) if n % 10 == 9 for e in a]
    dev += [e for g in tydi_dev for e in g] + [e for n, g in enumerate(pubmed) if n % 10 == 9 for e in g]
    train = [e for a in squad[:-1] for e in a] + [e for n, a in enumerate(covid) if n % 10 != 9 for e in a]
    train += [e for g in tydi for e in g] + [e for n, g in enumerate(pubmed) if n % 10 != 9 for e in g]
    rng.shuffle(train)
    dev = rng.sample(dev, min(len(dev), 1500))
    sources = {
        "squad": sum(len(a) for a in squad[:-1]),
        "covid-qa": sum(len(a) for n, a in enumerate(covid) if n % 10 != 9),
        "tydiqa": sum(len(g) for g in tydi),
        "pubmedqa": sum(len(g) for n, g in enumerate(pubmed) if n % 10 != 9),
    }
    texts: dict[str, int] = {}  # each passage once: the file is what travels to a GPU machine
    rows = {
        part: [[e.question, texts.setdefault(e.passage, len(texts)), e.label, e.answer, e.group] for e in examples]
        for part, examples in (("train", train), ("dev", dev))
    }
    made = {"passages": list(texts), **rows, "sources": sources}
    with gzip.open(path, "wt") as f:
        json.dump(made, f)
    print(f"prepared {len(train)} training examples {sources}, {len(dev)} for monitoring: {path}", flush=True)
    return made


def _examples(made: dict, part: str) -> list[Example]:
    passages = made["passages"]
    return [
        Example(question, passages[at], label, tuple(answer) if answer else None, group)
        for question, at, label, answer, group in made[part]
    ]


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
    _check_graph(model, tokenizer, full)
    quantize_dynamic(str(full), str(out / "reader.onnx"), weight_type=QuantType.QInt8, per_channel=True)


def _check_graph(model, tokenizer, graph: Path) -> None:
    """The float graph must give the model's numbers for a padded batch: the exporter traces one input, and a
    library that decides on padding in Python would freeze that decision into the graph."""
    import onnxruntime

    batch = [
        Example("Who built the tram?", "The city's tram line was built by a consortium in 2019 for 412 million.", 1),
        Example("When?", "A short passage.", 0),
    ]
    ids, mask, types, _, _ = encode(tokenizer, batch)
    with torch.no_grad():
        want = [t.numpy() for t in model(ids, mask, types)]
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()})
    for w, g, m in zip(want, got, ([1, 1], mask.numpy(), mask.numpy())):
        keep = np.asarray(m, bool)
        if not np.allclose(np.asarray(w)[keep], np.asarray(g)[keep], atol=1e-3):
            sys.exit(f"the exported graph differs from the model on a padded batch ({graph})")


def train(args: argparse.Namespace) -> None:
    from transformers import BertModel

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    with gzip.open(args.data, "rt") as f:
        made = json.load(f)
    train_set, dev = _examples(made, "train"), _examples(made, "dev")
    if args.limit:
        train_set = train_set[: args.limit]
    print(f"train {len(train_set)} (positives {sum(e.label for e in train_set):.0f}), dev {len(dev)}", flush=True)
    tokenizer = load_tokenizer(BASE)
    bert = BertModel.from_pretrained(str(BASE), add_pooling_layer=False, dtype=torch.float32)
    if args.layers < len(bert.encoder.layer):
        bert.encoder.layer = bert.encoder.layer[: args.layers]
        bert.config.num_hidden_layers = args.layers
    model = Reader(bert).to(device)
    if args.resume:
        model.load_state_dict(torch.load(args.resume, map_location=device))
    model.train()
    rng = random.Random(SEED)
    per_epoch = math.ceil(len(train_set) / args.batch)
    steps = math.ceil(len(train_set) * args.epochs / args.batch)
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
    first = round(len(train_set) * args.start)  # a resumed run goes on where the earlier one stopped
    epoch_examples = [train_set[(first + i) % len(train_set)] for i in range(steps * args.batch)]
    for w in range(0, len(epoch_examples), args.batch * 50):
        window = sorted(epoch_examples[w : w + args.batch * 50], key=lambda e: len(e.question) + len(e.passage))
        batches = [window[i : i + args.batch] for i in range(0, len(window), args.batch)]
        rng.shuffle(batches)
        order += batches
    running = 0.0
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    for step, batch in enumerate(order):
        ids, mask, types, starts, ends = (t.to(device) for t in encode(tokenizer, batch))
        labels = torch.tensor([e.label for e in batch], dtype=torch.float32, device=device)
        with autocast:
            rel, s, e = model(ids, mask, types)
        rel, s, e = rel.float(), s.float(), e.float()
        loss = bce(rel, labels)
        if (starts >= 0).any():
            loss = loss + 0.5 * (ce(s, starts) + ce(e, ends))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 100 == 0:
            rate = (step + 1) * args.batch / (time.time() - began)
            print(f"step {step}/{len(order)} loss {running:.3f} {rate:.1f} ex/s load {os.getloadavg()}", flush=True)
        epoch_end = (step + 1) % per_epoch == 0 or step + 1 == len(order)
        if epoch_end:
            figures = evaluate(model, tokenizer, dev, device)
            seen = (step + 1) / per_epoch
            print(f"epoch {seen:.2f} dev {figures} {time.time() - began:.0f} s", flush=True)
            log.append({"epoch": round(seen, 2), "dev": figures, "seconds": round(time.time() - began)})
            if args.every_epoch and step + 1 < len(order):
                write_reader(model, tokenizer, args, made, log, args.out / f"epoch-{round(seen)}", device)
                model.to(device).train()
    write_reader(model, tokenizer, args, made, log, args.out, device)


def write_reader(model, tokenizer, args, made: dict, log: list, out: Path, device) -> None:
    """reader.onnx (int8), tokenizer.json and training.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.work / "reader.pt")
    export(model, tokenizer, args.work)
    os.replace(args.work / "reader.onnx", out / "reader.onnx")
    (out / "tokenizer.json").write_text((BASE / "tokenizer.json").read_text())
    counts = {
        "train_examples": len(made["train"]),
        "train_positives": int(sum(r[2] for r in made["train"])),
        "sources": made["sources"],
        "dev_examples": len(made["dev"]),
    }
    settings = {k: v for k, v in vars(args).items() if not isinstance(v, Path) and k != "step"}
    settings |= {"max_tokens": MAX_TOKENS, "seed": SEED, "device": device.type}
    if device.type == "cuda":
        settings["gpu"] = torch.cuda.get_device_name()
    (out / "training.json").write_text(json.dumps({"counts": counts, "settings": settings, "log": log}, indent=1))
    print("wrote", out, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", choices=("prepare", "train", "all"), default="all")
    parser.add_argument("--data", type=Path, default=Path("/tmp/reader-work/examples.json.gz"))
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--every-epoch", action="store_true", help="also write each epoch's reader to OUT/epoch-N")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--out", type=Path, default=ROOT / "rag" / "models" / "reader")
    parser.add_argument("--work", type=Path, default=Path("/tmp/reader-work"))
    parser.add_argument("--limit", type=int, default=0, help="train on this many examples only (a smoke run)")
    parser.add_argument("--resume", type=Path, help="start from this state (reader.pt of an earlier run)")
    parser.add_argument("--start", type=float, default=0.0, help="the fraction of an epoch the resumed run had seen")
    args = parser.parse_args()
    if args.step in ("prepare", "all"):
        args.data.parent.mkdir(parents=True, exist_ok=True)
        prepare(args.data)
    if args.step in ("train", "all"):
        train(args)


if __name__ == "__main__":
    main()
