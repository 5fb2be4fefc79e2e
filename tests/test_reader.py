"""The reader: the packaged cross-encoder that rescores the fused top passages, decides `found` and marks the
answer words. Its scores are deterministic and bounded, its span always lies inside the passage, and a
question whose answer is taken out of the collection is refused (articles written for this test)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag import Index
from rag.models.reader import MAX_TOKENS, PassageReader, reader_folder
from rag.records import Passage
from rag.search.relevance import load_calibration
from rag.search.rerank import reread

CALIBRATION = load_calibration("all-MiniLM-L6-v2").reader

TRAM = """Riverton council approves tram line to the harbour

Riverton's city council voted 31 to 12 on Tuesday to build a tram line from the central station to the harbour
district, ending a decade of argument over how to connect the two.

The line will cost 412 million euros, of which the national government has promised to pay 60 percent. The
rest will come from a new levy on parking spaces in the city centre, which the council also approved.

Construction is due to start in March and the first trams should carry passengers in 2029. The route runs
for 7.4 kilometres and will have eleven stops, including one at the university hospital.

Opposition councillors said the city could not afford the project and proposed express buses instead.
"""

TRAM_WITHOUT_COST = TRAM.replace(
    """The line will cost 412 million euros, of which the national government has promised to pay 60 percent. The
rest will come from a new levy on parking spaces in the city centre, which the council also approved.

""",
    "",
)

LIBRARY = """Riverton's central library reopens after flood repairs

The central library in Riverton reopened on Saturday, fourteen months after a flood filled its basement and
destroyed about 30,000 books. Librarians said most of the lost collection has been replaced with donations from
other libraries and from readers.

The rebuilt basement now holds a children's reading room and a small cafe. The library will stay open until
nine in the evening on weekdays, two hours later than before the flood.
"""

FERRY = """Ferry strike ends after pay deal

Ferry crews in Riverton ended a three-day strike on Friday after the operator agreed to raise wages by 6 percent
this year and 4 percent next year. Services to the islands resumed on Saturday morning, and the operator said
timetables would be back to normal by Monday.
"""

COST_QUESTION = "How much will the new tram line in Riverton cost?"


@pytest.fixture(scope="module")
def reader() -> PassageReader:
    return PassageReader()


def test_the_reader_ships_inside_the_package_and_is_small():
    folder = reader_folder()
    assert (folder / "reader.onnx").stat().st_size <= 30_000_000
    card = (folder / "README.md").read_text()
    assert "SQuAD" in card and "COVID-QA" in card and "licence" in card.lower()
    assert CALIBRATION is not None and CALIBRATION.depth >= 3
    assert (folder / "tokenizer.json").is_file()


def test_the_reader_marks_the_answer_words_and_tells_on_topic_from_off_topic(reader):
    paragraphs = [p for p in TRAM.split("\n\n")[1:] if p.strip()]
    answering = next(p for p in paragraphs if "412 million" in p)
    cost, library, ferry = reader.read(COST_QUESTION, [answering, LIBRARY.split("\n\n")[1], FERRY.split("\n\n")[1]])
    assert cost.span is not None and "412 million" in answering[cost.span[0] : cost.span[1]]
    assert cost.logit > library.logit and cost.logit > ferry.logit
    assert cost.span_score > library.span_score and cost.span_score > ferry.span_score
    stops = reader.read("How many stops will the tram line have?", paragraphs)
    best = max(range(len(paragraphs)), key=lambda i: stops[i].span_score)
    span = stops[best].span
    assert span is not None and "eleven" in paragraphs[best][span[0] : span[1]]


texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=900
)


@settings(max_examples=25, deadline=None)
@given(question=texts, passages=st.lists(texts, min_size=1, max_size=4))
def test_scores_are_deterministic_and_spans_lie_inside_their_passage(reader, question, passages):
    first = reader.read(question, passages)
    again = reader.read(question, list(reversed(passages)))[::-1]
    assert len(first) == len(passages)
    for one, other, passage in zip(first, again, passages):
        assert one.logit == pytest.approx(other.logit, abs=1e-4)  # the same whatever sits beside it in a batch
        assert -50 < one.logit < 50
        if one.span is not None:
            start, end = one.span
            assert 0 <= start < end <= len(passage)
        assert 0.0 <= CALIBRATION.probability(one.logit, one.span_score, 0.5) <= 1.0


def test_a_long_question_is_cut_so_that_the_passage_is_still_read(reader):
    question = "Tell me everything about " + "the council's many decisions and " * 40 + "the tram's cost?"
    paragraph = TRAM.split("\n\n")[2]
    reading = reader.read(question, [paragraph])[0]
    assert reading.span is not None
    assert len(reader._pair.encode(reader._cut_question(question), paragraph).ids) <= MAX_TOKENS


def test_reread_orders_by_probability_and_keeps_later_passages_below(reader):
    paragraphs = [p for p in TRAM.split("\n\n") if p.strip()]
    offsets = [TRAM.index(p) for p in paragraphs]
    passages = [
        Passage(p, 0.9 - 0.1 * i, 1, "Riverton", "tram.txt", None, o, o + len(p))
        for i, (p, o) in enumerate(zip(paragraphs, offsets))
    ]
    shallow = dataclasses.replace(CALIBRATION, depth=3)
    out = reread(reader, shallow, COST_QUESTION, passages, [(p.text, p.start) for p in passages])
    scores = [p.score for p in out]
    assert scores == sorted(scores, reverse=True)
    readings = reader.read(COST_QUESTION, [p.text for p in passages[:3]])
    expected = sorted(
        (CALIBRATION.probability(r.logit, r.span_score, p.score) for r, p in zip(readings, passages)), reverse=True
    )
    assert scores[:3] == pytest.approx(expected)
    assert [p.text for p in out[3:]] == [p.text for p in passages[3:]]  # below the depth: not read, order kept
    assert all(p.answer is None for p in out[3:])
    for p in out:
        if p.answer is not None:
            inside = p.answer_in_passage
            assert inside is not None and 0 <= inside[0] < inside[1] <= len(p.text)
            assert p.to_dict()["answer"]["text"] == TRAM[p.answer[0] : p.answer[1]]


def _collection(folder: Path, tram: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "tram.txt").write_text(tram)
    (folder / "library.txt").write_text(LIBRARY)
    (folder / "ferry.txt").write_text(FERRY)


@pytest.fixture(scope="module")
def tram_index(tmp_path_factory, embedder) -> tuple[Index, Path]:
    articles = tmp_path_factory.mktemp("riverton") / "articles"
    _collection(articles, TRAM)
    index = Index(tmp_path_factory.mktemp("riverton-index"))
    index.add([articles])
    return index, articles


def test_the_reader_marks_the_answer_in_the_passage_it_finds(tram_index):
    index, _ = tram_index
    answer = index.search(COST_QUESTION, rerank=True)
    assert answer.found and answer.bar == CALIBRATION.threshold
    first = answer.passages[0]
    assert "412 million euros" in first.text
    assert first.answer is not None and "412 million" in TRAM[first.answer[0] : first.answer[1]]
    assert first.score >= answer.bar

    plain = index.search(COST_QUESTION, rerank=False)
    assert all(p.answer is None for p in plain.passages)
    keyword = index.search(COST_QUESTION, mode="keyword", rerank=True)  # keyword mode stays model-free
    assert all(p.answer is None for p in keyword.passages)


@pytest.mark.xfail(
    strict=True,
    reason="issue 28, open: the reader trained so far does not tell an on-topic passage from one that answers "
    "well enough to refuse this (rag/models/reader/README.md); this test passes once one does",
)
def test_a_question_whose_answer_was_taken_out_is_refused(tram_index):
    index, articles = tram_index
    _collection(articles, TRAM_WITHOUT_COST)  # the article stays, on the same topic, without its figure
    index.add([articles])
    assert "412 million" not in index.search(COST_QUESTION, k=10, rerank=True).passages[0].text
    refused = index.search(COST_QUESTION, rerank=True)
    assert not refused.found
