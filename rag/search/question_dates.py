"""Dates said in a question become the date filter: "in March 2025", "last week", "since January", "this year",
"published after 26 September 2024", "between May and July 2024", "2025년 1월", "지난주".

The phrases are found here (a preposition, or "published"/"posted", and a period: a day, a month, a year, or a
relative period), and taken out of the text that is searched: they say when, not what. Each period is resolved
by dateparser (its calendar, its month names, its relative periods in English and Korean), relative to a given
day: today, or the collection's newest date when that is older, so that "last week" asked of an archive means
the archive's last week and the reply says so. A year with no preposition ("the 2022 election") is a topic,
not a filter, and is left as words; so is anything that names no period ("before the election").
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d{2}"
_RELATIVE = r"(?:(?:last|this|past|previous)\s+(?:week|month|year)|yesterday|today)"
_KOREAN = (
    r"(?:\d{4}\s*년(?:\s*\d{1,2}\s*월(?:\s*\d{1,2}\s*일)?)?|\d{1,2}\s*월|지난\s*주|이번\s*주|지난\s*달|이번\s*달|"
    r"올해|작년|지난해|어제|오늘)"
)
_PERIOD = (
    rf"(?:{_DAY}\s+{_MONTH},?\s+{_YEAR}|{_MONTH}\s+{_DAY},?\s+{_YEAR}|{_YEAR}-\d{{1,2}}-\d{{1,2}}|"
    rf"{_MONTH},?\s+{_YEAR}|{_YEAR}|{_MONTH}(?!\w)(?!\s*\d)|{_RELATIVE})"
)
_VERB = r"(?:(?:published|posted|written|reported|dated|released)\s+)?"
_BETWEEN = re.compile(rf"\b{_VERB}between\s+(?P<a>{_PERIOD})\s+and\s+(?P<b>{_PERIOD})(?![\w-])")
_PREPOSITION = re.compile(
    rf"\b{_VERB}(?P<how>since|after|from|before|until|till|prior\s+to|up\s+to|in|during|on|of|as\s+of)\s+"
    rf"(?:the\s+)?(?P<a>{_PERIOD})(?![\w-])"
)
_BARE_RELATIVE = re.compile(rf"\b(?P<a>{_RELATIVE})\b", re.IGNORECASE)
_SPAN = re.compile(
    r"\b(?:in\s+)?(?:the\s+)?(?:past|last)\s+(?P<n>\d{1,3})\s+(?P<unit>days?|weeks?|months?|years?)\b", re.IGNORECASE
)
_KOREAN_PHRASE = re.compile(rf"(?P<a>{_KOREAN})\s*(?P<how>이후|부터|이전|전에|까지|에|동안)?")
_LATEST = re.compile(r"\b(?:latest|most\s+recent(?:ly)?|newest)\b|최신|가장\s*최근", re.IGNORECASE)
_SINCE = {"since", "from", "부터", "이후"}
_AFTER = {"after"}
_BEFORE = {"before", "prior to", "이전", "전에"}
_UNTIL = {"until", "till", "up to", "as of", "까지"}


@dataclass(frozen=True)
class DateReading:
    """What a question's words say about dates: the filter (inclusive ISO bounds, either may be open), the
    words it was read from, the question without them, the day relative periods were read against, and
    whether newer passages are wanted first ("latest")."""

    since: str | None
    until: str | None
    phrase: str
    text: str
    relative_to: date | None = None  # set when a relative period was read against a day other than today
    latest: bool = False

    def describe(self) -> str:
        """The filter in words, for the reply's line: "published from 1 March 2025 to 31 March 2025"."""
        from rag.index.facets import date_span  # the same words the empty-filter explanation uses

        said = f"published {date_span(self.since, self.until)}"
        if self.relative_to is not None:
            said += f" (“{self.phrase}” counted back from {self.relative_to.day} "
            said += f"{calendar.month_name[self.relative_to.month]} {self.relative_to.year}, the newest article's date)"
        return said


def wants_latest(question: str) -> bool:
    return bool(_LATEST.search(question))


def read_dates(question: str, today: date, newest: date | None = None) -> DateReading | None:
    """The date filter `question` states, or None when it states none. Relative periods count back from
    `today`, or from `newest` (the collection's newest publication date) when that is older."""
    base = min(today, newest) if newest is not None else today
    for reader in (_between, _prepositional, _span, _korean, _bare_relative):
        found = reader(question, base)
        if found is not None:
            since, until, match = found
            phrase = match.group(0).strip()
            text = _without(question, match)
            relative = base if base != today and not re.search(r"\d{4}", phrase) else None
            return DateReading(since, until, phrase, text, relative, wants_latest(question))
    return None


def _between(question: str, base: date) -> tuple[str | None, str | None, re.Match[str]] | None:
    match = _BETWEEN.search(question)
    if not match:
        return None
    first, last = period(match.group("a"), base), period(match.group("b"), base)
    if first is None or last is None:
        return None
    return first[0].isoformat(), last[1].isoformat(), match


def _prepositional(question: str, base: date) -> tuple[str | None, str | None, re.Match[str]] | None:
    for match in _PREPOSITION.finditer(question):
        how = " ".join(match.group("how").lower().split())
        span = period(match.group("a"), base)
        if span is not None:
            return (*_bounds(how, span), match)
    return None


def _bare_relative(question: str, base: date) -> tuple[str | None, str | None, re.Match[str]] | None:
    match = _BARE_RELATIVE.search(question)
    span = period(match.group("a"), base) if match else None
    if match is None or span is None:
        return None
    return span[0].isoformat(), span[1].isoformat(), match


def _span(question: str, base: date) -> tuple[str | None, str | None, re.Match[str]] | None:
    """ "in the past 3 weeks", "last 10 days": from that long before the base day up to it."""
    match = _SPAN.search(question)
    if not match:
        return None
    n, unit = int(match.group("n")), match.group("unit").lower().rstrip("s")
    days = {"day": 1, "week": 7, "month": 30, "year": 365}[unit] * n
    return (base - timedelta(days=days)).isoformat(), base.isoformat(), match


def _korean(question: str, base: date) -> tuple[str | None, str | None, re.Match[str]] | None:
    for match in _KOREAN_PHRASE.finditer(question):
        span = period(match.group("a"), base)
        if span is not None:
            return (*_bounds(match.group("how") or "in", span), match)
    return None


def _bounds(how: str, span: tuple[date, date]) -> tuple[str | None, str | None]:
    first, last = span
    if how in _SINCE:
        return first.isoformat(), None
    if how in _AFTER:
        return (last + timedelta(days=1)).isoformat(), None
    if how in _BEFORE:
        return None, (first - timedelta(days=1)).isoformat()
    if how in _UNTIL:
        return None, last.isoformat()
    return first.isoformat(), last.isoformat()


def period(words: str, base: date) -> tuple[date, date] | None:
    """The first and last day of the period `words` name (a day, a week, a month, a year), read by dateparser
    relative to `base`, preferring the past ("January" in December is this year's); None when it names none."""
    korean_year = re.fullmatch(r"(\d{4})\s*년", words.strip())
    if korean_year:  # dateparser reads a Korean year alone as year 1
        year = int(korean_year.group(1))
        return date(year, 1, 1), date(year, 12, 31)
    data = _parser(base).get_date_data(words)
    when: datetime | None = data.date_obj
    if when is None:
        return None
    day = when.date()
    if data.period == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    if data.period == "month":
        return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])
    if data.period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    return day, day


@lru_cache(maxsize=4)
def _parser(base: date) -> Any:
    from dateparser.date import DateDataParser  # type: ignore[import-untyped]  # locale data: loaded on first use

    settings = {"RELATIVE_BASE": datetime(base.year, base.month, base.day), "PREFER_DATES_FROM": "past"}
    return DateDataParser(languages=["en", "ko"], settings=settings)


def _without(question: str, match: re.Match[str]) -> str:
    """The question with the date words taken out, spaces and a dangling comma tidied."""
    text = question[: match.start()] + " " + question[match.end() :]
    text = re.sub(r"\s*,?\s*([?.!])|\s+(,)", r"\1\2", re.sub(r"\s{2,}", " ", text)).strip()
    return text or question
