"""Saved news pages (.html/.htm): the article body and its metadata, without navigation, ads, comments or
related-article lists.

Extraction is trafilatura's (maintained, benchmarked on news pages), not rules of ours. The document's text
is the extracted article text, so passages are exact slices of what the reader would call the article. A
run of headlines or links that extraction kept is fenced off as in plain text (`plaintext.furniture`).
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import trafilatura
from trafilatura.settings import Document as TrafilaturaDocument

from rag.errors import IngestError
from rag.ingest.dates import parse_date
from rag.ingest.plaintext import content_segments
from rag.records import Document

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_ALIASES = {"euc-kr": "cp949", "ks_c_5601-1987": "cp949", "iso-8859-1": "cp1252", "latin-1": "cp1252"}
MIN_ARTICLE_CHARS = 200  # or two paragraphs: a nav bar or a lone ad line is neither


def declared_charset(data: bytes) -> str | None:
    """The charset a page declares in its first bytes, mapped to the superset codec browsers really use."""
    match = _META_CHARSET.search(data[:4096])
    if not match:
        return None
    return codec_for(match.group(1).decode("ascii", "replace"))


def codec_for(charset: str) -> str:
    """The codec browsers really use for a declared charset (EUC-KR pages are cp949, Latin-1 ones cp1252)."""
    name = charset.strip().strip('"').lower()
    return _ALIASES.get(name, name)


def parse_html(html: str, source: str, content_hash: str) -> Document:
    extracted = trafilatura.bare_extraction(
        html,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
        deduplicate=False,
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if not isinstance(extracted, TrafilaturaDocument):  # asked for a Document (the default): None or one
        extracted = None
    text = (extracted.text or "").strip() if extracted is not None else ""
    if extracted is None or (len(text) < MIN_ARTICLE_CHARS and text.count("\n") < 1):
        raise IngestError(f"{source}: no article text found in the page (truncated, or not an article)")
    url = extracted.url if extracted.url and extracted.url.startswith(("http://", "https://")) else None
    title = (extracted.title or "").strip() or text.split("\n", 1)[0][:200]
    return Document(
        source=source,
        text=text,
        title=title,
        url=url,
        published=parse_date(extracted.date) if extracted.date else None,
        segments=content_segments(text),
        content_hash=content_hash,
        author=(extracted.author or "").strip() or None,
        site=(extracted.sitename or "").strip() or (urlparse(url).hostname if url else None),
    )
