"""One search request, built where a caller's values come in (the CLI, the chat, the Python and HTTP APIs) and
passed down whole: the question analysed once, the filter, `k` and the mode.

Every value is checked here and nowhere below, and a wrong one is an `InvalidQueryError` that names the field
the way its caller knows it (`--since` on the command line, *Published from* in the browser, `since` in Python
and over HTTP). "No filter" is `None` in every field: a blank string from a form or a query means the same.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from rag.errors import InvalidQueryError
from rag.index import DocFilter
from rag.text import (
    bigram_query,
    broken_character,
    content_words,
    has_wide_script,
    language_of,
    query_keys,
    with_pairs,
)

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")
MAX_QUERY_CHARS = 2000
MAX_K = 100
DEFAULT_K = 5

AnswerType = Literal["number", "date", "name", "none"]
_NUMBER_Q = re.compile(
    r"^\s*(?:how\s+(?:many|much|old|long|tall|far|big|large|high|often|fast|deep|heavy)\b|"
    r"(?:what|which)\s+(?:percentage|percent|number|amount|proportion|share|age|size)\b)|"
    r"\bhow\s+(?:many|much)\b|몇|얼마",
    re.IGNORECASE,
)
_DATE_Q = re.compile(
    r"^\s*when\b|\b(?:what|which)\s+(?:year|date|day|month|decade|century|time)\b|\bin\s+what\s+year\b|언제|몇\s*년|연도",
    re.IGNORECASE,
)
_NAME_Q = re.compile(r"^\s*(?:who|whom|whose|where)\b|\b(?:who|whom|whose)\b|누구|누가|어디", re.IGNORECASE)


def answer_type(question: str) -> AnswerType:
    """The kind of thing a question asks for, from its question words; "none" when it asks for no kind."""
    if _DATE_Q.search(question):
        return "date"
    if _NUMBER_Q.search(question):
        return "number"
    if _NAME_Q.search(question):
        return "name"
    return "none"


@dataclass(frozen=True)
class Question:
    """A question analysed once, for every arm and for the score: its content words (the stemmed and plain
    fields), those words with each neighbouring pair as a phrase, its two-character pieces (Hangul/CJK, the
    plain fields), the keys whose presence in a passage counts as evidence, the kind of answer it asks for, and
    whether it is written in a wide script."""

    text: str
    words: tuple[str, ...]
    pairs: tuple[str, ...]
    bigrams: tuple[str, ...]
    keys: tuple[str, ...]
    kind: AnswerType
    wide: bool
    language: str | None = None  # `rag.text.language_of`: what a passage in another language is matched across

    @classmethod
    def of(cls, text: str) -> Question:
        words = content_words(text)
        wide = has_wide_script(text)
        return cls(
            text=text,
            words=tuple(words),
            pairs=tuple(with_pairs(words)),
            bigrams=tuple(bigram_query(text)) if wide else (),
            keys=tuple(query_keys(text)),
            kind=answer_type(text),
            wide=wide,
            language=language_of(text),
        )


@dataclass(frozen=True)
class FieldNames:
    """How a caller names each value of a request, so an error speaks the caller's language."""

    question: str = "the question"
    k: str = "k"
    mode: str = "mode"
    source: str = "source"
    since: str = "since"
    until: str = "until"


API_NAMES = FieldNames()
CLI_NAMES = FieldNames(k="--k", mode="--mode", source="--source", since="--since", until="--until")


@dataclass(frozen=True)
class SearchRequest:
    """Everything one search needs, checked. Build it with `SearchRequest.build` from a caller's raw values.

    `exclude` leaves out documents by source: evaluation asks questions whose answer is absent that way."""

    question: Question
    k: int = DEFAULT_K
    mode: Mode = "hybrid"
    filter: DocFilter = field(default_factory=DocFilter)
    exclude: frozenset[str] = frozenset()
    rerank: bool | None = None  # the reader rescores the fused top passages; None: as calibrated by default
    read_question: bool = True  # dates, "latest" and a named publication in the question's words act as filters

    @classmethod
    def build(
        cls,
        question: object,
        k: object = DEFAULT_K,
        mode: object = "hybrid",
        source: object = None,
        since: object = None,
        until: object = None,
        exclude: frozenset[str] | tuple[str, ...] = (),
        names: FieldNames = API_NAMES,
        rerank: bool | None = None,
        read_question: bool = True,
    ) -> SearchRequest:
        """A request from values as a caller gave them: a question to check, `k` as a number or digits, a
        blank filter as none. Raises `InvalidQueryError` naming the field in `names`. With `read_question`,
        what the question's words say of where to look (dates, "latest", a publication named as the source)
        is applied where the caller left it open (`rag.search.call.SearchCall.answer`)."""
        return cls(
            question=Question.of(checked_question(question, names)),
            k=checked_k(k, names),
            mode=checked_mode(mode, names),
            filter=DocFilter(
                _filter_text(source, names.source),
                date_bound(since, "since", names.since),
                date_bound(until, "until", names.until),
            ),
            exclude=frozenset(exclude),
            rerank=None if rerank is None else bool(rerank),
            read_question=bool(read_question),
        )

    def asking(self, text: str, names: FieldNames = API_NAMES) -> SearchRequest:
        """The same request for another question (a follow-up searched with the question it leans on)."""
        return replace(self, question=Question.of(checked_question(text, names)))


def checked_question(question: object, names: FieldNames = API_NAMES) -> str:
    if question is not None and not isinstance(question, str):
        raise InvalidQueryError(f"{names.question} must be text, not {type(question).__name__}")
    if not question or not question.strip():
        raise InvalidQueryError(f"{names.question} is empty: type a few words about what you are looking for")
    surrogate = broken_character(question)
    if surrogate is not None:
        raise InvalidQueryError(
            f"{names.question} holds a broken character at position {surrogate + 1} (half of an emoji or a byte "
            "that is not UTF-8): type or paste it again"
        )
    if len(question) > MAX_QUERY_CHARS:
        raise InvalidQueryError(
            f"{names.question} is {len(question):,} characters long; the limit is {MAX_QUERY_CHARS:,}"
        )
    return question.strip()


def checked_k(k: object, names: FieldNames = API_NAMES) -> int:
    """`k` as a whole number in range; a whole float (3.0) or digits ("5") from a form or HTTP count too."""
    value: int | None = None
    if isinstance(k, int) and not isinstance(k, bool):
        value = k
    elif isinstance(k, float) and k.is_integer():
        value = int(k)
    elif isinstance(k, str) and k.strip().isascii() and k.strip().isdigit():
        value = int(k.strip())
    if value is None or not 1 <= value <= MAX_K:
        raise InvalidQueryError(f"{names.k} must be a whole number between 1 and {MAX_K}, not {str(k)[:40]!r}")
    return value


def checked_mode(mode: object, names: FieldNames = API_NAMES) -> Mode:
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidQueryError(
            f"unknown search mode {str(mode)[:40]!r} for {names.mode}: choose one of {', '.join(MODES)}"
        )
    return mode  # type: ignore[return-value]  # one of MODES


def _filter_text(value: object, name: str) -> str | None:
    """An optional text filter as given (blank: none), or a typed error naming it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidQueryError(f"{name} must be text, not {type(value).__name__}")
    return value if value.strip() else None


_BOUND = re.compile(r"^([0-9]{4})(?:-([0-9]{1,2}))?(?:-([0-9]{1,2}))?$")


def date_bound(value: object, which: Literal["since", "until"], name: str | None = None) -> str | None:
    """YYYY, YYYY-MM or YYYY-MM-DD as an inclusive ISO bound: `until 2025-03` means up to 2025-03-31."""
    name = name or which
    text = _filter_text(value, name)
    if text is None:
        return None
    match = _BOUND.match(text.strip())
    if not match:
        raise InvalidQueryError(f"{name} '{text[:40]}': write a date as YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = int(match.group(1)), match.group(2), match.group(3)
    try:
        if day is not None:
            return date(year, int(month), int(day)).isoformat()
        if month is not None:
            last = calendar.monthrange(year, int(month))[1]
            return date(year, int(month), 1 if which == "since" else last).isoformat()
        return date(year, 1, 1).isoformat() if which == "since" else date(year, 12, 31).isoformat()
    except (ValueError, calendar.IllegalMonthError) as exc:
        raise InvalidQueryError(f"{name} '{text}': {exc}") from exc
