"""The cross-language question sets as `Benchmark`s, built from the ITN blurbs (CC BY-SA 3.0) that
`bench/news.py` reads, for developing the multilingual arm:

- `ko-en-news`: Korean questions about English news (`crosslang/ko-questions-en-news.jsonl`, 44 questions,
  ours: each is one of the English news questions of `news/questions.jsonl` asked as a Korean reader would,
  names in their Korean spelling), over the English blurbs alone, so that nothing in the collection shares a
  word with a question;
- `en-ko-news`: the English news questions whose event has a Korean blurb (23), over the Korean blurbs and the
  English blurbs of the other events; a question's relevant document is its event's Korean blurb (its English
  blurb is left out).

    from crosslang import load_ko_en, load_en_ko
"""

from __future__ import annotations

from pathlib import Path

from news import DEFAULT_CLONE, HERE, _corpus, english_documents, latest_blurbs, question_set

from rag.evaluate import Benchmark, make_document

CROSS = Path(__file__).resolve().parent / "crosslang"


def load_ko_en(path: Path = DEFAULT_CLONE) -> Benchmark:
    english = latest_blurbs(_corpus(path), "en")
    documents, by_text = english_documents(english)
    queries, qrels = question_set(CROSS / "ko-questions-en-news.jsonl", lambda row: by_text[english[row["doc"]]])
    return Benchmark("ko-en-news", documents, queries, qrels)


def load_en_ko(path: Path = DEFAULT_CLONE) -> Benchmark:
    corpus = _corpus(path)
    english, korean = latest_blurbs(corpus, "en"), latest_blurbs(corpus, "ko")
    documents, _ = english_documents(english, leave_out=frozenset(korean))
    documents += [make_document(f"{item}-ko", "", text) for item, text in korean.items()]
    queries, qrels = question_set(
        HERE / "questions.jsonl", lambda row: f"{row['doc']}-ko" if row["doc"] in korean else None
    )
    return Benchmark("en-ko-news", documents, queries, qrels)


def load_mixed(squad: Benchmark, korquad: Benchmark) -> tuple[Benchmark, Benchmark]:
    """SQuAD's and KorQuAD's paragraphs in one collection, asked SQuAD's English questions and KorQuAD's Korean
    ones: what the arm costs (or gives) questions in the passages' language when the collection holds another
    language too."""
    documents = squad.documents + korquad.documents
    topics = {**squad.topics, **korquad.topics}
    return (
        Benchmark("mixed-en", documents, squad.queries, squad.qrels, topics),
        Benchmark("mixed-ko", documents, korquad.queries, korquad.qrels, topics),
    )
