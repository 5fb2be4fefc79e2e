"""Answers and articles as chat markup that shows article text literally, whatever the article contains.

Passages are other people's text: a saved page may hold `<script>`, `<img onerror=…>`, a markdown link or a
row of `**`. The chat renders Markdown with inline HTML, so every character of article text (passages, titles,
sources, URLs) goes through `literal()`: every ASCII punctuation mark that Markdown or HTML could read as
syntax where it stands is written as a numeric character reference, which the browser shows as the same
character. Marks that are never syntax where they stand stay as they are ("4,812", "Moon-soo", "said:"), so
the Markdown a screen reader or a copy button gets reads as text. Only markup written here (`<mark>`, the
attribution) is live. The Gradio sanitizer stays on as a second wall. Programs get plain text (`answer_text`).
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from rag.citations import NO_DATE, NO_SITE, UNTITLED, citation
from rag.records import Answer, Document, Passage
from rag.serve.highlight import Span
from rag.text import LANGUAGE_NAMES, visible

LIKELY = 0.5  # a passage is said to answer only when it is at least as likely to as not

_PUNCTUATION = {c: f"&#{ord(c)};" for c in string.punctuation}
# Never syntax anywhere: , ; ? % ' " / ! and (. Syntax only in some places, so referenced only there: a hyphen
# that is not inside a word (lists, rules, tables), a full stop after a digit or before a word character
# (numbered lists, web addresses), a colon before "/" (links), ")" after a digit (numbered lists).
_ALWAYS_PLAIN = set(",;?%'\"/!(")
_SYNTAX = re.compile(
    "(?<![A-Za-z0-9])-|-(?![A-Za-z0-9])|(?<=[0-9])\\.|\\.(?=\\w)|:(?=/)|(?<=[0-9])\\)|["
    + re.escape("".join(c for c in string.punctuation if c not in _ALWAYS_PLAIN | set("-.:)")))
    + "]"
)
_LEADING_SPACE = re.compile(r"^[ \t]+", re.MULTILINE)
PASSAGE_ANCHOR = "verbatim-passage"
READ_LINK = "#verbatim-read-"  # + "doc-start-end": the page's script opens that passage in the reading panel
AS_WRITTEN_LINK = "#verbatim-as-written"  # the page's script asks the question again, dates not read from it
EDIT_SEARCH_LINK = "#verbatim-edit-search"  # the page's script puts the searched text in the question box
CITE_LINK = "#verbatim-cite"  # the page's script copies the card's citation (`rag.citations.citation`)


def literal(text: str) -> str:
    """`text` as Markdown/HTML source that displays exactly `text` and carries no markup of its own."""
    return _keep_indent(_escape(text))


def _escape(text: str) -> str:
    return _SYNTAX.sub(lambda m: _PUNCTUATION[m.group()], text)


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
    """A passage as the chat shows it: which sentence to mark, how strong a match, how long its article is,
    and the publication it comes from (the document's site: a name the page gave, or its web host)."""

    passage: Passage
    mark: Span | None
    relevance: float
    article_chars: int
    site: str | None = None


def below_weak_bar(probability: float, relevance: float) -> bool:
    """Whether a passage is "unlikely to answer" (●○○): under 50% and under the bar that `found` uses."""
    return probability < LIKELY and relevance < 1.0


def relevance_label(probability: float, relevance: float) -> str:
    """Words that say what the number says. "likely answers" only at 50% or more (and at or above the bar that
    `found` uses); "may answer" from that bar up; "unlikely to answer" below it. `relevance` is the probability
    over the bar; "unlikely" is said only under 50%."""
    if probability >= LIKELY and relevance >= 1.0:
        return "●●● likely answers"
    if not below_weak_bar(probability, relevance):
        return "●●○ may answer"
    return "●○○ unlikely to answer"


def quoted(text: str, mark: Span | None) -> str:
    """The passage as a Markdown blockquote, line breaks kept, the marked sentence in <mark>."""
    if mark is None:
        body = literal(text)
    else:
        start, end = mark
        body = _keep_indent(
            _escape(text[:start]) + "<mark>" + _escape(text[start:end]) + "</mark>" + _escape(text[end:])
        )
    return "\n".join(f"> {isolated(line)}" if line.strip() else ">" for line in body.split("\n"))


def isolated(source: str) -> str:
    """`source` in its own bidi isolate (`<bdi>`): a right-to-left override or embedding inside it (U+202E in an
    article) ends with it, and never reverses the next line, the attribution or the next passage."""
    return f"<bdi>{source}</bdi>"


def location(passage: Passage, article_chars: int) -> str:
    """Where in the article the passage sits, in characters and as a share of the article."""
    where = f"characters {passage.start:,}–{passage.end:,} of {article_chars:,}"
    if article_chars:
        where += f" ({100 * passage.start // article_chars}–{-(-100 * passage.end // article_chars)}%)"
    return where


def display_title(passage: Passage) -> str:
    """The article's title, or that it has none: a file name is not a title anyone can cite."""
    return passage.title or UNTITLED


def byline(passage: Passage, site: str | None) -> list[str]:
    """What a reader asks of a quote, after its title: the publication, the author, the date, the page; a
    missing publication or date is said to be missing (`rag info` lists such articles)."""
    parts = [site] if site and site.lower() not in display_title(passage).lower() else []
    if not site:
        parts.append(NO_SITE)
    if passage.author:
        parts.append("by " + passage.author)
    parts.append(passage.published or NO_DATE)
    if passage.crawled:  # from a web archive: the day it was saved, never shown as a publication date
        parts.append(f"crawled {passage.crawled}")
    if passage.page:
        parts.append(f"page {passage.page}")
    return parts


def copies_line(passage: Passage) -> str | None:
    """The other files that hold the same story, as text, or None when there are none."""
    if not passage.copies:
        return None
    return "Same story also in: " + ", ".join(
        c.source + ("" if c.exact else " (near-duplicate)") for c in passage.copies
    )


def across_languages(passage: Passage) -> str | None:
    """One line saying that the passage matched a question in another language, or None, with the names it
    shares with the question spelt in both scripts (what placed it). The passage itself stays as written:
    nothing is translated."""
    if passage.asked_in is None or passage.language is None:
        return None
    asked = LANGUAGE_NAMES.get(passage.asked_in, passage.asked_in)
    written = LANGUAGE_NAMES.get(passage.language, passage.language)
    line = f"Matched across languages: a {asked} question, a passage in {written} (shown as written)"
    if passage.names_across:
        line += "; named in both: " + ", ".join(f"{hangul} = {latin}" for hangul, latin in passage.names_across)
    return line + "."


def file_details(passage: Passage, article_chars: int) -> str:
    """The machinery, for whoever checks a quote: the file, the exact offsets and the passage's language."""
    language = LANGUAGE_NAMES.get(passage.language or "")
    return f"{passage.source} · {location(passage, article_chars)}" + (f" · in {language}" if language else "")


def attribution(item: ShownPassage) -> str:
    """One line for the reader (title, publication, author, date, page, link), then the file and offsets
    folded away, then other copies of the story."""
    passage = item.passage
    parts = [f"<strong>{isolated(literal(display_title(passage)))}</strong>"]
    parts += [isolated(literal(x)) for x in byline(passage, item.site)]
    if passage.url:
        parts.append(url_html(passage.url, isolated(literal(passage.url))))
    read = f"{READ_LINK}{passage.doc_id}-{passage.start}-{passage.end}"
    parts.append(f'<a href="{read}" class="verbatim-read">Read in its article</a>')
    parts.append(f'<a href="{CITE_LINK}" class="verbatim-cite">Copy citation</a>')
    line = '<span class="verbatim-attribution">' + " · ".join(parts) + "</span>"
    line += (
        '<details class="verbatim-details"><summary>File and position</summary>'
        f"{isolated(literal(file_details(passage, item.article_chars)))}</details>"
    )
    # The citation the link copies (the page's script reads this element's text), there to read or select too.
    # Its line breaks are character references: Markdown leaves them alone, and the text holds them as "\n".
    cited = literal(citation(passage)).replace("\n", "&#10;")
    line += (
        '<details class="verbatim-details"><summary>Citation</summary>'
        f'<pre class="verbatim-cite-text">{cited}</pre></details>'
    )
    copies = copies_line(passage)
    if copies:
        line += f'<span class="verbatim-copies">{isolated(literal(copies))}</span>'
    crossed = across_languages(passage)
    if crossed:
        line += f'<span class="verbatim-language">{literal(crossed)}</span>'
    return line


def verdict(answer: Answer, shown: Sequence[ShownPassage]) -> tuple[str, str]:
    """The reply's opening, (headline, what it means): the same words in the browser, over HTTP and in the
    terminal."""
    if not shown and answer.emptied:
        fix = "Ask about other dates, or without them." if answer.understood else "Widen the dates or clear them."
        return f"Nothing to search: {answer.emptied}.", fix
    if not shown:
        return "Nothing in the indexed articles matches this question.", "Try other words, or add articles."
    if answer.found:
        articles = len({s.passage.doc_id for s in shown})
        many = f"{len(shown)} passage{'s' * (len(shown) != 1)} from {articles} article{'s' * (articles != 1)}"
        return f"{many}, best first, quoted exactly:", ""
    return (
        "The articles do not answer this.",
        "These are the closest passages, shown for what they are worth; none of them matches the question well.",
    )


def weaker_from(shown: Sequence[ShownPassage]) -> int:
    """Where the passages under the weak bar begin: the rank after which every passage is ●○○, when at least
    one passage above it comes first (they are then folded away, "N weaker passages"); `len(shown)` when
    there are none to fold. When no passage clears the bar they all stay in view: the verdict already says
    they are only the closest."""
    cut = len(shown)
    while cut > 0 and below_weak_bar(shown[cut - 1].passage.score, shown[cut - 1].relevance):
        cut -= 1
    return cut if cut > 0 else len(shown)


def weaker_heading(count: int) -> str:
    return f"{count} weaker passage{'s' * (count != 1)}"


def strength(item: ShownPassage) -> str:
    return f"{relevance_label(item.passage.score, item.relevance)} ({item.passage.score:.0%} chance)"


def answer_markdown(answer: Answer, shown: Sequence[ShownPassage], searched_for: str | None = None) -> str:
    """The bot's reply: a plain verdict first, then each passage as a card: the quote with its marked
    sentence, then its attribution. `searched_for` is shown when the search text differs from what the user
    typed (a follow-up with its context)."""
    lines: list[str] = []
    if searched_for:
        lines.append(
            f'<small>Searched for: <span class="verbatim-searched">{literal(searched_for)}</span> · '
            f'<a href="{EDIT_SEARCH_LINK}" class="verbatim-edit-search">Edit and ask again</a></small>\n'
        )
    if answer.understood:  # removable: the link asks the same question again with every date
        lines.append(
            f'<small class="verbatim-dates">{literal(answer.understood)}. '
            f'<a href="{AS_WRITTEN_LINK}" class="verbatim-as-written">Ask without this</a></small>\n'
        )
    headline, meaning = verdict(answer, shown)
    lines.append(f"**{literal(headline)}**" + (f" {literal(meaning)}" if meaning else ""))
    if answer.note:
        lines.append(f"\n{literal(answer.note)}")
    fold = weaker_from(shown)
    for rank, item in enumerate(shown, start=1):
        if rank == fold + 1:  # unlikely to answer: folded, one click away
            summary = f"{weaker_heading(len(shown) - fold)} (unlikely to answer)"
            lines += ["", f'<details class="verbatim-weaker"><summary>{summary}</summary>']
        lines += ["", '<div class="verbatim-card">', "", f"**{rank}.** <small>{strength(item)}</small>", ""]
        lines.append(quoted(item.passage.text, item.mark))
        lines += ["", attribution(item), "</div>"]
    if fold < len(shown):
        lines += ["", "</details>"]
    return "\n".join(lines)


def answer_text(
    answer: Answer,
    shown: Sequence[ShownPassage],
    searched_for: str | None = None,
    marked: tuple[str, str] = ("", ""),
    terminal: bool = False,
) -> str:
    """The same reply as plain text, for programs reading `/chat` and for `rag chat`: the passages exactly
    as the article has them, each line of a quote opened by "> ". `marked` wraps the marked sentence
    (a terminal's bold, say); by default nothing is added to the text. For a `terminal`, every piece of an
    article and of the question is printed as `rag.text.visible` shows it: nothing in it acts on the terminal."""

    def shown_as(text: str, newlines: bool = False) -> str:
        return visible(text, newlines) if terminal else text

    lines = [f"Searched for: {shown_as(searched_for)}", ""] if searched_for else []
    if answer.understood:
        lines += [f"{shown_as(answer.understood)}.", ""]
    lines.append(" ".join(x for x in verdict(answer, shown) if x))
    if answer.note:
        lines += ["", answer.note]
    fold = weaker_from(shown)
    for rank, item in enumerate(shown, start=1):
        text = item.passage.text
        if item.mark is not None and any(marked):
            start, end = item.mark
            text = (
                shown_as(text[:start], newlines=True)
                + marked[0]
                + shown_as(text[start:end], newlines=True)
                + marked[1]
                + shown_as(text[end:], newlines=True)
            )
        else:
            text = shown_as(text, newlines=True)
        if rank == fold + 1:
            lines += ["", f"{weaker_heading(len(shown) - fold)}, unlikely to answer:"]
        lines += ["", f"{rank}. {strength(item)}"]
        lines += [f"> {line}" if line.strip() else ">" for line in text.split("\n")]
        source = [display_title(item.passage), *byline(item.passage, item.site)]
        lines.append("— " + shown_as(" · ".join(source + ([item.passage.url] if item.passage.url else []))))
        lines.append(f"  {shown_as(file_details(item.passage, item.article_chars))}")
        copies = copies_line(item.passage)
        if copies:
            lines.append(f"  {shown_as(copies)}")
        crossed = across_languages(item.passage)
        if crossed:
            lines.append(f"  {shown_as(crossed)}")
    return "\n".join(lines)


def error_markdown(message: str) -> str:
    return f"**Cannot search:** {literal(message)}"


def article_html(document: Document, start: int | None = None, end: int | None = None) -> str:
    """A whole article for reading a passage in context: its title and attribution first, then the text
    (escaped) with the passage marked by an anchor the panel scrolls to. Shown in an HTML component, so
    nothing here is Markdown."""
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
    meta = [isolated(html.escape(document.site))] if document.site else []
    if document.author:
        meta.append("by " + isolated(html.escape(document.author)))
    if document.published:
        meta.append(isolated(html.escape(document.published)))
    if document.url:
        meta.append(url_html(document.url, isolated(html.escape(document.url))))
    meta.append(f"<code>{isolated(html.escape(document.source))}</code>")
    if start is not None and end is not None:
        meta.append(f"quote at characters {start:,}–{end:,} of {len(text):,}")
    return (
        '<div class="verbatim-article">'
        '<div class="verbatim-article-head">'
        '<button type="button" class="verbatim-close" aria-label="Close the article">Close</button>'
        f"<h3>{isolated(html.escape(document.title or document.source))}</h3>"
        f'<p class="verbatim-meta">{" · ".join(meta)}</p>'
        "</div>"
        f'<div class="verbatim-text" tabindex="0">{body}</div>'
        "</div>"
    )
