"""Follow-up questions are searched with the question they lean on; standalone questions are left alone."""

from __future__ import annotations

import pytest

from rag.serve.conversation import is_follow_up, search_text

EARLIER = ["Which summit is Lee attending in Canada?"]


@pytest.mark.parametrize(
    ("question", "searched"),
    [
        ("and what about Japan?", f"{EARLIER[0]} and what about Japan?"),  # the earlier question, of a new name
        ("How about Moon Jae-in?", f"{EARLIER[0]} How about Moon Jae-in?"),
        ("Why?", f"{EARLIER[0]} Why?"),  # nothing of its own
        ("What about the tariffs?", "Lee Canada What about the tariffs?"),  # the earlier names, its own words
        ("When did he leave?", "Lee Canada When did he leave?"),
        ("그럼 일본은?", "Lee Canada 그럼 일본은?"),
        ("and what did Trump say?", "and what did Trump say?"),  # a new subject with its own predicate
    ],
)
def test_follow_ups_lean_on_the_last_standalone_question_and_weigh_more_than_it(question, searched):
    assert is_follow_up(question)
    assert search_text(question, EARLIER) == searched


@pytest.mark.parametrize(
    "question",
    [
        "Who was Kim Kyoung-soo's political mentor?",
        "What did Lee say about tariffs?",
        "이재명은 누구인가?",
        "Why does Kim want to move the presidential office out of Yongsan?",
    ],
)
def test_standalone_questions_are_searched_as_typed(question):
    assert not is_follow_up(question)
    assert search_text(question, EARLIER) == question


def test_the_anchor_is_the_last_standalone_question_not_an_earlier_follow_up():
    earlier = ["Who is Kim Moon-soo?", "and his party?", "Which summit is Lee attending?", "and when?"]
    assert search_text("what about Japan?", earlier) == "Which summit is Lee attending? what about Japan?"
    assert search_text("and when was he pardoned?", earlier) == "Lee and when was he pardoned?"


def test_a_follow_up_with_nothing_before_it_is_searched_alone():
    assert search_text("and what about Japan?", []) == "and what about Japan?"
