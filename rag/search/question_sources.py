"""A publication named as a question's source ("according to the Herald", "as Reuters reported") favours that
publication's passages when the collection holds it; the words are taken out of the searched text, since they
say who reported, not what. A name the collection does not hold stays in the question as words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_NAME = r"(?:the\s+)?(?P<name>[A-Z][\w.&'-]*(?:\s+[A-Z][\w.&'-]*){0,3}|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,})"
_NAMED = [
    re.compile(rf"\b(?:according\s+to|as\s+reported\s+by|reported\s+by|says?|said)\s+{_NAME}"),
    re.compile(rf"\bas\s+{_NAME}\s+(?:reported|reports|wrote|put\s+it)\b"),
]


@dataclass(frozen=True)
class NamedSite:
    """The collection's site a question names, the words that name it, and the question without them."""

    site: str
    phrase: str
    text: str


def named_site(question: str, sites: Iterable[str]) -> NamedSite | None:
    """The site of `sites` (publication names or web hosts) that the question names as its source, or None.
    "the Herald" names "The Korea Herald" and "koreaherald.com"; the first site that holds every word wins."""
    known = list(sites)
    for pattern in _NAMED:
        for match in pattern.finditer(question):
            words = [w for w in re.findall(r"\w+", match.group("name").lower()) if w != "the"]
            site = next((s for s in known if words and _names(words, s.lower())), None)
            if site is not None:
                text = question[: match.start()] + question[match.end() :]
                text = re.sub(r"\s*,?\s*([?.!])|\s+(,)", r"\1\2", re.sub(r"\s{2,}", " ", text)).strip(" ,")
                return NamedSite(site, match.group(0), text or question)
    return None


def _names(words: list[str], site: str) -> bool:
    site_words = set(re.findall(r"\w+", site))
    return set(words) <= site_words or "".join(words) in site.replace(".", " ").split()[0]
