"""Follow-up questions: "and what about Japan?" means nothing to a search index on its own.

A question that leans on the conversation (it opens with "and", "what about", "how about"…, or has at most
one content word, or refers back with a pronoun and names nothing new) is searched together with the last
question that stood on its own. Nothing is rewritten by a model: the searched text is the two questions
joined, shown to the user, so they can see why a passage came back.
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


def search_text(question: str, earlier: Sequence[str]) -> str:
    """What to search for `question`, given the user's earlier questions (oldest first)."""
    question = question.strip()
    if not is_follow_up(question):
        return question
    anchor = next((q.strip() for q in reversed(earlier) if q.strip() and not is_follow_up(q)), None)
    return f"{anchor} {question}" if anchor else question
