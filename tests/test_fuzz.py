"""Whatever a user types, a question gets an answer or one of our typed errors, never a traceback: control
characters, NUL, emoji, right-to-left text, query syntax of search engines, broken characters, huge input."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag import RagError
from rag.records import Answer

NASTY = [
    '"',
    "'",
    "NEAR(",
    "NEAR(a b, 3)",
    "*",
    "a*",
    "AND OR NOT",
    "^",
    "{",
    "}",
    "title:Lee",
    "Lee AND (Kim OR",
    "\x00",
    "Lee\x00Jae",
    "\u202eLee Jae-myung\u202c",
    "مرحبا بالعالم",
    "שלום",
    "🇰🇷🎉 summit",
    "\ufeffG7",
    "\u200b\u200b",
    "Lee\ud83dJae",
    "\udcff\udcfe",
    "x" * 100_000,
    "G7 " * 700,
    "\r\n\t\x0b\x0c",
    "-",
    "+G7 -Canada",
    "[a-z]+",
    "%s %d {0}",
    "'; DROP TABLE chunks; --",
]
questions = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec=None, categories=["Cc", "Cf", "Cs", "Zs", "Po", "Sm", "So"]), max_size=50),
    st.lists(st.sampled_from(NASTY + ["Lee", "summit", "Canada", "이재명"]), max_size=8).map(" ".join),
)


def _ask(index, question: str, mode: str) -> None:
    try:
        answer = index.search(question, k=5, mode=mode)
    except RagError as exc:
        assert str(exc), "a typed error carries a message"
        return
    assert isinstance(answer, Answer)
    for p in answer.passages:
        assert 0.0 < p.score < 1.0
        assert p.text == index.document(p.doc_id).text[p.start : p.end]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=questions)
def test_any_question_gets_an_answer_or_a_typed_error_keyword(seed_index, question):
    _ask(seed_index, question, "keyword")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=questions)
def test_any_question_gets_an_answer_or_a_typed_error_hybrid(seed_index, question):
    _ask(seed_index, question, "hybrid")


def test_the_command_line_answers_nasty_questions_in_one_line(seed_index):
    for question in ["\"NEAR( * AND OR NOT ^ { '", "\udcff\udcfe broken bytes"]:
        run = subprocess.run(
            [sys.executable, "-m", "rag", "ask", question, "--mode", "keyword", "--index", str(seed_index.path)],
            capture_output=True,
            text=True,
            errors="replace",
        )
        assert "Traceback" not in run.stderr, run.stderr
        assert run.returncode in (0, 2)
        if run.returncode == 2:
            assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
