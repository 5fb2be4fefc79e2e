"""Citations that travel: a passage as a Markdown quote a journalist can paste anywhere, and a whole answer as
Markdown, JSON or CSL-JSON (the format Zotero, Mendeley and pandoc import) with every passage and its source.

The quote is the passage's text exactly, line for line; what the article does not say about itself (no title,
no publication, no date) is written as missing rather than replaced by a file name, and the file and the
character offsets come last, where whoever checks the quote looks for them.
"""

from __future__ import annotations

import json
from typing import Any

from rag.records import Answer, Passage
from rag.text import day_in_words

UNTITLED = "Untitled article"
NO_SITE = "publication unknown"
NO_DATE = "date unknown"


def date_in_words(published: str | None) -> str | None:
    """An ISO date as "23 January 2025"; a year or a month alone as it is; None when there is none."""
    if not published:
        return None
    return day_in_words(published) or published


def position(passage: Passage) -> str:
    """Where the quote sits: "characters 120–480 of 4,035", with the page of a PDF."""
    where = f"characters {passage.start:,}–{passage.end:,}"
    if passage.article_length:
        where += f" of {passage.article_length:,}"
    return f"page {passage.page}, {where}" if passage.page else where


def article_words(passage: Passage) -> str:
    """The article a passage comes from, as a reader names it: title, publication, author, date, each said to
    be missing where the article does not give it."""
    parts = [f"“{passage.title}”" if passage.title else UNTITLED, passage.site or NO_SITE]
    if passage.author:
        parts.append(passage.author)
    parts.append(date_in_words(passage.published) or NO_DATE)
    if passage.crawled:  # a page from a web archive: the day it was saved, said as such
        parts.append(f"crawled {date_in_words(passage.crawled)}")
    return ", ".join(parts)


def source_line(passage: Passage) -> str:
    """The attribution of a quote in one line: the article, its link, then file and position."""
    line = article_words(passage) + (f". <{passage.url}>" if passage.url else "")
    return f"{line} ({passage.source}, {position(passage)})"


def citation(passage: Passage) -> str:
    """The passage as a Markdown quote, its text exactly, followed by its attribution."""
    quote = "\n".join(f"> {line}" if line.strip() else ">" for line in passage.text.split("\n"))
    return f"{quote}\n>\n> — {source_line(passage)}"


def answer_markdown_export(answer: Answer, asked_on: str | None = None) -> str:
    """The whole answer as a Markdown file: the question, the verdict, each passage as a citation with its
    score, and the sources it quotes."""
    lines = [f"# {answer.query}", ""]
    if asked_on:
        lines += [f"Asked of Verbatim on {asked_on}. Passages are quoted exactly.", ""]
    if answer.emptied:
        lines += [f"Nothing to search: {answer.emptied}.", ""]
    elif not answer.passages:
        lines += ["Nothing in the indexed articles matches this question.", ""]
    elif not answer.found:
        lines += ["The articles do not answer this; the closest passages follow, for what they are worth.", ""]
    for n, passage in enumerate(answer.passages, 1):
        lines += [f"## {n}. {passage.title or UNTITLED} ({passage.score:.0%} chance it answers)", ""]
        lines += [citation(passage), ""]
    sources = _articles(answer)
    if sources:
        lines += ["## Sources", ""]
        lines += [f"- {article_words(p)}" + (f". <{p.url}>" if p.url else f" (file {p.source})") for p in sources]
        lines.append("")
    return "\n".join(lines)


def answer_json_export(answer: Answer) -> str:
    return json.dumps(answer.to_dict(), ensure_ascii=False, indent=2) + "\n"


def csl_items(answer: Answer) -> list[dict[str, Any]]:
    """One CSL-JSON item per article the answer quotes (a reference manager cites articles, not passages),
    the quoted positions in its note."""
    items = []
    for first in _articles(answer):
        quoted = [p for p in answer.passages if p.doc_id == first.doc_id]
        item: dict[str, Any] = {
            "id": first.source,
            "type": "article-newspaper" if first.site or first.url else "article",
            "title": first.title or UNTITLED,
        }
        if first.site:
            item["container-title"] = first.site
        if first.author:
            item["author"] = [{"literal": first.author}]
        if first.published:
            item["issued"] = csl_date(first.published)
        if first.url:
            item["URL"] = first.url
        if first.crawled:  # the day the page was saved is the day it was seen: CSL's "accessed"
            item["accessed"] = csl_date(first.crawled)
        item["note"] = "Quoted: " + "; ".join(position(p) for p in quoted) + f" (file {first.source})"
        items.append(item)
    return items


def csl_date(iso: str) -> dict[str, Any]:
    """A date as CSL-JSON writes it: date-parts for a whole day, else the text as it is."""
    if not day_in_words(iso):
        return {"raw": iso}
    year, month, day = (int(x) for x in iso[:10].split("-"))
    return {"date-parts": [[year, month, day]]}


def csl_json_export(answer: Answer) -> str:
    return json.dumps(csl_items(answer), ensure_ascii=False, indent=2) + "\n"


def _articles(answer: Answer) -> list[Passage]:
    """The first passage of each article the answer quotes, in the answer's order."""
    seen: dict[int, Passage] = {}
    for passage in answer.passages:
        seen.setdefault(passage.doc_id, passage)
    return list(seen.values())


EXPORTS = {"markdown": answer_markdown_export, "json": answer_json_export, "csl-json": csl_json_export}
SUFFIXES = {"markdown": ".md", "json": ".json", "csl-json": ".csl.json"}


def export(answer: Answer, kind: str = "markdown") -> str:
    """The answer as a file to keep or share, with every passage and its source: "markdown" (each passage a
    quote with its attribution), "json" (`Answer.to_dict`) or "csl-json" (the quoted articles, for a
    reference manager)."""
    if kind not in EXPORTS:
        raise ValueError(f"unknown export {kind!r}: choose one of {', '.join(EXPORTS)}")
    return EXPORTS[kind](answer)
