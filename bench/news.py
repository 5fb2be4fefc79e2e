"""The news question set as a `Benchmark`: ITN blurbs (CC BY-SA 3.0) and our questions about them.

    from news import load_news; bench = load_news(Path("/path/to/ITN-corpus"))

See bench/news/SOURCES.md for where the text comes from and how the set was written.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from rag.evaluate import Benchmark, make_document

HERE = Path(__file__).resolve().parent / "news"
COMMIT = "b6fb9b7"
DEFAULT_CLONE = Path("/work/.mirror/shizhao+ITN-corpus/repo")


def _corpus(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    shown = subprocess.run(
        ["git", "-C", str(path), "show", f"{COMMIT}:corpus/corpus.json"], capture_output=True, check=True
    )
    return json.loads(shown.stdout)


def _plain(blurb: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", blurb))).strip()


def latest_blurbs(corpus: dict, lang: str) -> dict[str, str]:
    """Wikidata item -> its last blurb in `lang`, as plain text."""
    out = {}
    for item, versions in corpus.items():
        for _, v in sorted(versions.items(), key=lambda kv: float(kv[0])):
            if v["lang"] == lang:
                out[item] = _plain(v["blurb"])
    return out


def english_documents(english: dict[str, str], leave_out: frozenset[str] = frozenset()) -> tuple[list, dict[str, str]]:
    """One document per distinct English blurb (items whose blurbs read the same are one document), leaving
    out the items in `leave_out`; and blurb -> the source of the document holding it."""
    by_text: dict[str, str] = {}  # blurb -> the document (first item) holding it
    for item, text in english.items():
        if item not in leave_out:
            by_text.setdefault(text, f"{item}-en")
    return [make_document(source, "", text) for text, source in by_text.items()], by_text


def question_set(
    file: Path, relevant: Callable[[dict], str | None]
) -> tuple[list[tuple[str, str]], dict[str, dict[str, int]]]:
    """The questions of a JSONL file (`id`, `q`, `doc`: the Wikidata item asked about) with the document each
    is about, `relevant(row)`; a question it gives None is left out."""
    queries, qrels = [], {}
    for line in file.read_text().splitlines():
        row = json.loads(line)
        source = relevant(row)
        if source is not None:
            queries.append((row["id"], row["q"]))
            qrels[row["id"]] = {source: 1}
    return queries, qrels


def load_news(path: Path = DEFAULT_CLONE) -> Benchmark:
    corpus = _corpus(path)
    english = latest_blurbs(corpus, "en")
    documents, by_text = english_documents(english)
    documents += [make_document(f"{item}-ko", "", text) for item, text in latest_blurbs(corpus, "ko").items()]
    queries, qrels = question_set(HERE / "questions.jsonl", lambda row: by_text[english[row["doc"]]])
    return Benchmark("news-itn", documents, queries, qrels)
