"""Follow-up questions: "and what about Japan?" means nothing to a search index on its own.

A question that leans on the conversation (it opens with "and", "what about", "how about"…, or has at most
one content word, or refers back with a pronoun and names nothing new) is searched with what it leans on from
the last question that stood on its own, and no more, so that the new question weighs more than the old one:
the names that question gave ("Kim Kyoung-soo" for "and when was he pardoned?"), none when the follow-up names
its own subject without referring back ("and what did Sanders say?" after a question about Gabbard), the
whole question only when it named nothing. Nothing is rewritten by a model: the searched text is shown to the
user, who can edit it and ask again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.text import content_words

_OPENERS = re.compile(
    r"^\s*(and|but|also|or|so|then|what about|how about|what of|and what|and how|same for|and in|and for|"
    r"및|그리고|그럼|그러면)\b",
    re.IGNORECASE,
)
_BACK_REFERENCES = re.compile(
    r"\b(he|she|it|they|him|her|them|his|hers|its|their|theirs|this|that|these|those|there|then)\b", re.IGNORECASE
)
_WORD = re.compile(r"[\w'-]+")
_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*")
_FUNCTION = frozenset(
    "and but also or so then what how about of which who whom whose when where why did does do is are was were be "
    "the a an in on at for to with from by as it that this there any".split()
)
_PERSONAL = re.compile(r"\b(he|she|they|him|her|them|his|their|its)\b", re.IGNORECASE)  # refers back to someone


def is_follow_up(question: str) -> bool:
    """True when `question` cannot be understood without the one before it."""
    if _OPENERS.match(question):
        return True
    words = content_words(question)
    if len(words) <= 1:
        return True
    return bool(_BACK_REFERENCES.search(question)) and not _names_something(question)


def _names_something(question: str) -> bool:
    """A capitalised word other than the first ("Who", "What") reads as a name: the question brings its own
    subject. Korean and other scripts without case never look like names here; they rely on the openers."""
    words = _WORD.findall(question)
    return any(w[0].isupper() for w in words[1:])


def names_in(question: str) -> list[str]:
    """The names a question gives: runs of capitalised words after its first word, a possessive's "'s" left
    off ("Kim Kyoung-soo's mentor" gives "Kim Kyoung-soo")."""
    rest = question.strip().split(maxsplit=1)[1:]
    return [re.sub(r"['’]s$", "", m.group(0)) for m in _NAME.finditer(rest[0] if rest else "")]


def search_text(question: str, earlier: Sequence[str]) -> str:
    """What to search for `question`, given the user's earlier questions (oldest first)."""
    question = question.strip()
    if not is_follow_up(question):
        return question
    anchor = next((q.strip() for q in reversed(earlier) if q.strip() and not is_follow_up(q)), None)
    if anchor is None:
        return question
    own = names_in(question)
    if own and not _PERSONAL.search(question):
        # A new subject: with a predicate of its own ("and what did Sanders say?") it stands alone, since the
        # earlier subject would only outvote it; without one ("what about Japan?") it is the earlier question
        # asked of the new name.
        return question if _predicate(question, own) else f"{anchor} {question}"
    names = names_in(anchor)
    if not names or not content_words(question):  # "Why?": the whole earlier question is what it asks about
        return f"{anchor} {question}"
    return f"{' '.join(names)} {question}"


def _predicate(question: str, names: list[str]) -> bool:
    """Whether the question says something of its own beyond names and question words ("say" in "and what
    did Sanders say?"; nothing in "how about Moon Jae-in?")."""
    named = {w.lower() for n in names for w in _WORD.findall(n)}
    return any(w.lower() not in named and w.lower() not in _FUNCTION for w in _WORD.findall(question))
