"""Answers and articles as chat markup that shows article text literally, whatever the article contains.

Passages are other people's text: a saved page may hold `<script>`, `<img onerror=…>`, a markdown link or a
row of `**`. The chat renders Markdown with inline HTML, so every character of article text (passages, titles,
sources, URLs) goes through `literal()`: HTML-escaped, and every ASCII punctuation mark written as a numeric
character reference, which Markdown never reads as syntax but the browser shows as the same character. Only
markup written here (`<mark>`, the attribution line) is live. The Gradio sanitizer stays on as a second wall.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from rag.highlight import Span
from rag.records import Answer, Document, Passage

STRONG = 1.0  # relevance (score over the calibrated `found` bar) at or above the bar
PARTIAL = 0.5

_PUNCTUATION = {c: f"&#{ord(c)};" for c in string.punctuation}
_LEADING_SPACE = re.compile(r"^[ \t]+", re.MULTILINE)
PASSAGE_ANCHOR = "verbatim-passage"


def literal(text: str) -> str:
    """`text` as Markdown/HTML source that displays exactly `text` and carries no markup of its own."""
    return _keep_indent(_escape(text))


def _escape(text: str) -> str:
    return "".join(_PUNCTUATION.get(c, c) for c in text)


def _keep_indent(source: str) -> str:
    """Spaces opening a line would make Markdown start a code block; as references they are just spaces."""
    return _LEADING_SPACE.sub(lambda m: m.group().replace(" ", "&#32;").replace("\t", "&#9;"), source)


def url_html(url: str, shown: str) -> str:
    """A link for http(s) URLs only, opening in a new tab; `javascript:` and friends stay text. `shown` is
    the already-escaped link text."""
    if re.match(r"https?://[^\s<>\"']+$", url, re.IGNORECASE):
        href = html.escape(url, quote=True)
        return f'<a href="{href}" target="_blank" rel="noopener noreferrer nofollow">{shown}</a>'
    return shown


@dataclass(frozen=True)
class ShownPassage:
    """A passage as the chat shows it: which sentence to mark, how strong a match, how long its article is."""

    passage: Passage
    mark: Span | None
    relevance: float
    article_chars: int


def relevance_label(relevance: float) -> str:
    if relevance >= STRONG:
        return "●●● strong match"
    if relevance >= PARTIAL:
        return "●●○ partial match"
    return "●○○ weak match"


def quoted(text: str, mark: Span | None) -> str:
    """The passage as a Markdown blockquote, line breaks kept, the marked sentence in <mark>."""
    if mark is None:
        body = literal(text)
    else:
        start, end = mark
        body = _keep_indent(
            _escape(text[:start]) + "<mark>" + _escape(text[start:end]) + "</mark>" + _escape(text[end:])
        )
    return "\n".join(f"> {line}" if line.strip() else ">" for line in body.split("\n"))


def location(passage: Passage, article_chars: int) -> str:
    """Where in the article the passage sits, in characters and as a share of the article."""
    where = f"characters {passage.start:,}–{passage.end:,} of {article_chars:,}"
    if article_chars:
        where += f" ({100 * passage.start // article_chars}–{-(-100 * passage.end // article_chars)}%)"
    return where


def attribution(passage: Passage, article_chars: int) -> str:
    """Title, source file, URL (a link when it is http/https), date and position, as one line."""
    parts = [f"<strong>{literal(passage.title or passage.source)}</strong>", f"<code>{literal(passage.source)}</code>"]
    if passage.url:
        parts.append(url_html(passage.url, literal(passage.url)))
    if passage.author:
        parts.append("by " + literal(passage.author))
    if passage.published:
        parts.append(literal(passage.published))
    if passage.page:
        parts.append(f"page {passage.page}")
    parts.append(location(passage, article_chars))
    line = "— " + " · ".join(parts)
    if passage.copies:
        named = ", ".join(
            f"<code>{literal(c.source)}</code>" + ("" if c.exact else " (near-duplicate)") for c in passage.copies
        )
        line += f"<br>Same story also in: {named}"
    return line


def answer_markdown(answer: Answer, shown: Sequence[ShownPassage], searched_for: str | None = None) -> str:
    """The bot's reply: a plain verdict first, then each passage quoted with its attribution. `searched_for`
    is shown when the search text differs from what the user typed (a follow-up with its context)."""
    lines: list[str] = []
    if searched_for:
        lines.append(f"<small>Searched for: {literal(searched_for)}</small>\n")
    note = [f"\n{literal(answer.note)}"] if answer.note else []
    if not shown:
        lines.append("**Nothing in the indexed articles matches this question.** Try other words, or add articles.")
        return "\n".join(lines + note)
    if answer.found:
        articles = len({s.passage.doc_id for s in shown})
        lines.append(
            f"**{len(shown)} passage{'s' * (len(shown) != 1)}** from {articles} article"
            f"{'s' * (articles != 1)}, best first, quoted exactly:"
        )
    else:
        lines.append(
            "**The articles do not answer this.** These are the closest passages, shown for what they are worth; "
            "none of them matches the question well."
        )
    lines += note
    for rank, item in enumerate(shown, start=1):
        label = f"{relevance_label(item.relevance)} · {item.passage.score:.0%} likely to answer"
        lines += ["", f"**{rank}.** <small>{label}</small>", ""]
        lines.append(quoted(item.passage.text, item.mark))
        lines += ["", attribution(item.passage, item.article_chars)]
    return "\n".join(lines)


def error_markdown(message: str) -> str:
    return f"**Cannot search:** {literal(message)}"


def article_html(document: Document, start: int | None = None, end: int | None = None) -> str:
    """A whole article for reading a passage in context: text escaped, the passage marked with an anchor the
    page scrolls to. Shown in an HTML component, so nothing here is Markdown."""
    text = document.text
    if start is None or end is None:
        body = html.escape(text)
    else:
        body = (
            html.escape(text[:start])
            + f'<mark id="{PASSAGE_ANCHOR}">'
            + html.escape(text[start:end])
            + "</mark>"
            + html.escape(text[end:])
        )
    meta = [f"<code>{html.escape(document.source)}</code>"]
    if document.url:
        meta.append(url_html(document.url, html.escape(document.url)))
    if document.published:
        meta.append(html.escape(document.published))
    return (
        '<div class="verbatim-article">'
        f"<h3>{html.escape(document.title or document.source)}</h3>"
        f'<p class="verbatim-meta">{" · ".join(meta)}</p>'
        f'<div class="verbatim-text">{body}</div>'
        "</div>"
    )
