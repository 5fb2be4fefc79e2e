"""Dates, "latest" and a publication named in a question's words set where to look: read with a fixed today,
then applied by a real index to articles with dates and sites."""

from __future__ import annotations

import json
from datetime import date

import pytest

from rag import Index
from rag.search.question_dates import read_dates
from rag.search.question_sources import named_site

TODAY = date(2026, 12, 3)  # a Thursday


@pytest.mark.parametrize(
    ("question", "since", "until", "searched"),
    [
        ("What did Lee say last week?", "2026-11-23", "2026-11-29", "What did Lee say?"),
        ("What did Lee say in March 2025?", "2025-03-01", "2025-03-31", "What did Lee say?"),
        ("Which polls were published after 26 September 2024?", "2024-09-27", None, "Which polls were?"),
        ("What has Kim promised since January?", "2026-01-01", None, "What has Kim promised?"),
        ("What did Kim say this year?", "2026-01-01", "2026-12-31", "What did Kim say?"),
        ("Who led the polls before March 2025?", None, "2025-02-28", "Who led the polls?"),
        ("Polls between May 2024 and July 2024", "2024-05-01", "2024-07-31", "Polls"),
        ("What did he say in the past 3 weeks?", "2026-11-12", "2026-12-03", "What did he say?"),
        ("2025년 1월 여론조사 결과는?", "2025-01-01", "2025-01-31", "여론조사 결과는?"),
        ("이재명이 지난주에 한 말은?", "2026-11-23", "2026-11-29", "이재명이 한 말은?"),
        ("What did Lee say on May 3, 2025?", "2025-05-03", "2025-05-03", "What did Lee say?"),
    ],
)
def test_dates_in_words_become_the_filter_and_leave_the_searched_text(question, since, until, searched):
    reading = read_dates(question, TODAY)
    assert reading is not None
    assert (reading.since, reading.until, reading.text) == (since, until, searched)
    assert reading.relative_to is None


@pytest.mark.parametrize(
    "question",
    [
        "Who won the 2022 election?",  # a year that names the topic, not when it was published
        "What did Lee say before the election?",  # no date known for the election
        "Which exercises were scheduled to begin on April 1?",  # a day of the event
        "What may happen next?",  # "may", not May
        "What is the latest poll?",
    ],
)
def test_words_that_name_no_publication_period_stay_words(question):
    assert read_dates(question, TODAY) is None


def test_relative_periods_count_back_from_an_older_collections_newest_date():
    reading = read_dates("What did Lee say last week?", TODAY, newest=date(2025, 1, 23))
    assert reading is not None and (reading.since, reading.until) == ("2025-01-13", "2025-01-19")
    assert reading.relative_to == date(2025, 1, 23)
    assert "counted back from 23 January 2025, the newest article's date" in reading.describe()
    absolute = read_dates("What did Lee say in March 2024?", TODAY, newest=date(2025, 1, 23))
    assert absolute is not None and absolute.relative_to is None


def test_a_named_publication_is_found_among_the_collections_sites():
    sites = ["Busan Daily", "Gyeongnam Herald", "reuters.com"]
    named = named_site("What did the pilots do, according to the Herald?", sites)
    assert named is not None and named.site == "Gyeongnam Herald" and named.text == "What did the pilots do?"
    reported = named_site("What happened at the port, as Reuters reported?", sites)
    assert reported is not None and reported.site == "reuters.com"
    assert named_site("What did the pilots do, according to the Times?", sites) is None


ARTICLES = [
    (
        "Harbour pilots walk out",
        "2024-11-04",
        "Gyeongnam Herald",
        "Harbour pilots in Busan stopped work on Monday over pay, and forty ships waited outside the breakwater.",
    ),
    (
        "Harbour pilots strike drags on",
        "2025-03-10",
        "Busan Daily",
        "The harbour pilots' strike entered its fifth month as talks on pay broke down again, the union said.",
    ),
    (
        "Harbour pilots return to work",
        "2025-06-20",
        "Busan Daily",
        "Harbour pilots returned to work on Friday after the port authority agreed to a pay rise of nine percent.",
    ),
]


@pytest.fixture(scope="module")
def dated_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Index:
    folder = tmp_path_factory.mktemp("dated")
    rows = [{"title": t, "date": d, "site": s, "text": x} for t, d, s, x in ARTICLES]
    (folder / "port.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index = Index(tmp_path_factory.mktemp("dated-index"))
    index.add([folder])
    return index


def test_a_question_with_a_month_searches_that_month_and_says_so(dated_index: Index):
    answer = dated_index.search("What did the harbour pilots do in March 2025?")
    assert answer.passages and {p.published for p in answer.passages} == {"2025-03-10"}
    assert answer.understood is not None and "published in March 2025" in answer.understood
    assert answer.query == "What did the harbour pilots do in March 2025?"
    assert answer.to_dict()["understood"] == answer.understood
    as_written = dated_index.ask(_request("What did the harbour pilots do in March 2025?", read_question=False))
    assert len({p.published for p in as_written.passages}) == 3 and as_written.understood is None


def test_latest_puts_the_newest_answering_passage_first(dated_index: Index):
    answer = dated_index.search("What is the latest on the harbour pilots' strike over pay?")
    answering = [p for p in answer.passages if p.score >= answer.bar]
    assert len(answering) >= 2, "several articles answer"
    assert [p.published for p in answering] == sorted((p.published for p in answering), reverse=True)
    assert answer.understood is not None and "Newest first among the passages that answer" in answer.understood


def test_a_named_publication_puts_its_passages_first(dated_index: Index):
    answer = dated_index.search("What did the harbour pilots do, according to the Herald?")
    assert answer.passages[0].site == "Gyeongnam Herald"
    assert answer.understood is not None and "Passages from Gyeongnam Herald first" in answer.understood


def _request(question: str, read_question: bool):
    from rag.search.request import SearchRequest

    return SearchRequest.build(question, read_question=read_question)
