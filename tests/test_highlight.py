"""The marked sentence is the one holding the answer, on the seed articles and their questions."""

from __future__ import annotations

from conftest import load_questions

from rag.serve.highlight import best_sentences, sentence_spans


def test_sentence_spans_are_exact_trimmed_slices():
    text = "  First one here. Second, with Dr. Kim in it!\nThird line without a stop\n"
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "First one here.",
        "Second, with Dr. Kim in it!",
        "Third line without a stop",
    ]


def test_marked_sentence_holds_the_evidence_for_most_seed_questions(seed_index):
    held = total = 0
    for row in load_questions("seed_questions.jsonl", "seed_questions_extra.jsonl"):
        if not row["evidence"]:
            continue
        answer = seed_index.search(row["q"], k=1)
        top = answer.passages[0]
        mark = best_sentences(answer.query, [top])[0]
        if row["evidence"] not in top.text or mark is None:
            continue
        total += 1
        held += row["evidence"] in top.text[mark[0] : mark[1]]
    # Measured: 41 of 47 (the misses mark a neighbouring sentence of the same statement).
    assert total >= 40 and held / total >= 0.85, (held, total)


def test_single_sentence_passages_are_not_marked(seed_index):
    answer = seed_index.search("Who was Kim Kyoung-soo's political mentor?", k=3)
    one = [p for p in answer.passages if len(sentence_spans(p.text)) == 1]
    assert all(m is None for m in best_sentences(answer.query, one))
