"""Saved RSS/Atom feeds and sitemaps (.rss, .atom, .xml): one article per feed item, read with feedparser
(every RSS and Atom version, RDF, bad encodings and the malformed feeds found in the wild, which a parser of
ours would not survive).

An item's article is the page it links when that page is saved beside the feed; else, with `fetch_links`, that
page fetched and read as a saved page (trafilatura), each page that could not be fetched named in the run's
notes; else the item's full content when the feed carries it, else its summary. A sitemap only lists pages, so
it is read only with `fetch_links`. Fetching is the command line's choice, never the chat's: a file uploaded
in a browser must not make the server request addresses of the uploader's choosing.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import feedparser
import lxml.etree
import lxml.html

from rag.errors import IngestError, in_one_line
from rag.ingest.dates import parse_date
from rag.ingest.plaintext import body_segments
from rag.records import Document, Ingested

FEED_SUFFIXES = frozenset({".rss", ".atom", ".xml"})
FETCH_TIMEOUT_SECONDS = 15
FETCH_MAX_BYTES = 10 * 1024 * 1024
USER_AGENT = "Verbatim (news archive indexer)"
_SPACES = re.compile(r"\s+")
_SITEMAP_ROOT = re.compile(rb"<(?:\w+:)?(urlset|sitemapindex)\b")
# Reads a fetched page's bytes as a saved page (given by files.py, which knows charsets: no import back).
ReadPage = Callable[[bytes, str], Document]
# The article of the page an item links, when that page is saved beside the feed: (link, source) -> it or None.
SavedPage = Callable[[str, str], Document | None]
_PAGE_ADDRESS = re.compile(
    rb"""<(?:link[^>]+rel=["']canonical["'][^>]+href|meta[^>]+property=["']og:url["'][^>]+content)=["']([^"']+)["']""",
    re.IGNORECASE,
)
_BLOCKS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "section", "article"}


def is_sitemap(data: bytes) -> bool:
    return _SITEMAP_ROOT.search(data[:4096]) is not None


def parse_feed(data: bytes, source: str, read_page: ReadPage | None = None, saved: SavedPage | None = None) -> Ingested:
    """The articles of a saved feed or sitemap: an item's page when `saved` has it (saved beside the feed),
    else, with `read_page`, the page fetched and read by it, else the item's own text."""
    if is_sitemap(data):
        return parse_sitemap(data, source, read_page)
    parsed = feedparser.parse(data)
    if not parsed.entries:
        if parsed.bozo:
            raise IngestError(f"{source}: not a readable feed ({_reason(parsed.bozo_exception)})")
        if not parsed.get("version"):
            raise IngestError(f"{source}: not an RSS or Atom feed, nor a sitemap")
        raise IngestError(f"{source}: the feed has no items")
    site = _field(parsed.feed, "title")
    result = Ingested()
    if parsed.bozo:  # truncated or malformed: feedparser recovers what it can, and the run says so
        result.notes.append(
            (
                source,
                f"not a well-formed feed ({_reason(parsed.bozo_exception)}): read the items that could be recovered",
            )
        )
    summaries_only = 0
    for number, entry in enumerate(parsed.entries, start=1):
        name = f"{source}#{number}"
        link = _web_link(entry.get("link"))
        page = saved(link, name) if saved and link else None
        if page is None and read_page and link:
            page = _fetched(link, name, result, read_page)
        try:
            result.documents.append(_with_entry(page, entry, site) if page else item_document(entry, name, site, link))
        except IngestError as exc:
            result.problems.append((name, str(exc).removeprefix(f"{name}: ")))
            continue
        full_text = any(c.get("value") for c in entry.get("content", []) or [])
        summaries_only += page is None and read_page is None and link is not None and not full_text
    if summaries_only:  # said without a flag's name: the chat shows this line too
        result.notes.append(
            (
                source,
                f"{summaries_only} of its {len(parsed.entries)} items gave only a summary (the pages they link were "
                "not fetched)",
            )
        )
    return result


def pages_saved_in(folder: Path, read_page: ReadPage) -> SavedPage:
    """Finds, by its address, a page saved in `folder` (its canonical or og:url address), and reads its article;
    the folder is looked through once, at the first question, a page's first 64 kB each."""
    found: dict[str, Path] | None = None

    def saved(link: str, source: str) -> Document | None:
        nonlocal found
        if found is None:
            found = _addresses(folder)
        path = found.get(_same_page(link))
        if path is None:
            return None
        try:
            return read_page(path.read_bytes(), source)
        except (IngestError, OSError):
            return None

    return saved


def _addresses(folder: Path) -> dict[str, Path]:
    pages: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in (".html", ".htm") or path.is_symlink():
            continue  # a link is never followed here: it may lead out of the corpus folder
        try:
            with path.open("rb") as f:
                head = f.read(65536)
        except OSError:
            continue
        match = _PAGE_ADDRESS.search(head)
        if match:
            pages.setdefault(_same_page(match.group(1).decode("utf-8", "replace")), path)
    return pages


def _same_page(url: str) -> str:
    """An address as compared with another: no fragment, no trailing slash, http as https, case-blind host."""
    url = url.strip().split("#", 1)[0].rstrip("/")
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    return f"https://{host.lower()}/{path}" if scheme.lower() in ("http", "https") else url


def item_document(entry: Any, source: str, site: str | None, link: str | None) -> Document:
    """A feed item as an article: its full content, else its summary, as plain text."""
    bodies = [c.get("value", "") for c in entry.get("content", []) or []] + [entry.get("summary", "") or ""]
    text = max((fragment_text(b) for b in bodies), key=len, default="")
    if not text:
        raise IngestError(f"{source}: the item has no text (no content or summary)")
    segments = body_segments(text)
    if not segments:
        raise IngestError(f"{source}: nothing but page boilerplate")
    title = _field(entry, "title") or ""
    return Document(
        source=source,
        text=text,
        title=(title or text.split("\n", 1)[0])[:200],
        url=link,
        published=_entry_date(entry),
        segments=segments,
        content_hash=hashlib.sha256(f"{link}\n{title}\n{text}".encode()).hexdigest(),
        author=_field(entry, "author"),
        site=site,
    )


def parse_sitemap(data: bytes, source: str, read_page: ReadPage | None) -> Ingested:
    """The pages a sitemap (or a news sitemap) lists, fetched and read as saved pages are."""
    if read_page is None:
        raise IngestError(
            f"{source}: a sitemap lists pages without their text; fetch them with `rag index --fetch-links`"
        )
    try:
        root = lxml.etree.fromstring(data, parser=lxml.etree.XMLParser(resolve_entities=False, no_network=True))
    except lxml.etree.XMLSyntaxError as exc:
        raise IngestError(f"{source}: not a readable sitemap ({_reason(exc)})") from exc
    result = Ingested()
    for number, (link, title, date) in enumerate(_sitemap_pages(root), start=1):
        name = f"{source}#{number}"
        page = _fetched(link, name, result, read_page, instead="not indexed")
        if page is not None:
            result.documents.append(replace(page, title=page.title or title or link, published=page.published or date))
    if not result.documents and not result.notes:
        raise IngestError(f"{source}: the sitemap lists no pages")
    return result


def _sitemap_pages(root: Any) -> Iterator[tuple[str, str | None, str | None]]:
    for url in root.iter("{*}url", "{*}sitemap"):
        link = _web_link(url.findtext("{*}loc"))
        if link:
            title = url.findtext(".//{*}news/{*}title")
            date = url.findtext(".//{*}news/{*}publication_date")
            yield link, (title or "").strip() or None, parse_date(date) if date else None


def save_feed(url: str, folder: Path) -> Path:
    """Fetch the feed or sitemap at `url` and keep it in `folder` (under a name made from its address, replaced
    when fetched again), where it is indexed like a saved one; IngestError naming the address when it cannot
    be fetched or is not a feed."""
    try:
        data = fetch_page(url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise IngestError(f"{url}: cannot fetch it ({_reason(exc)})") from exc
    if not is_sitemap(data) and not feedparser.parse(data).entries:
        raise IngestError(f"{url}: not an RSS or Atom feed with items, nor a sitemap")
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", url.split("://", 1)[1]).strip("_.")[:150] or "feed"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.xml"
    partial = target.with_name(f".{target.name}.partial")  # hidden: never read while it is being written
    partial.write_bytes(data)
    partial.replace(target)
    return target


def fetch_page(url: str) -> bytes:
    """The page at `url` (http/https only), up to FETCH_MAX_BYTES; URLError/OSError/ValueError when it cannot be."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only
        data = response.read(FETCH_MAX_BYTES + 1)
    if len(data) > FETCH_MAX_BYTES:
        raise ValueError(f"larger than {FETCH_MAX_BYTES // 1_000_000} MB")
    return bytes(data)


def _fetched(
    link: str, source: str, result: Ingested, read_page: ReadPage, instead: str = "its summary was indexed"
) -> Document | None:
    """The linked page's article, or None with a note saying why it could not be had (and what was done
    `instead`)."""
    try:
        page = read_page(fetch_page(link), source)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        result.notes.append((source, f"could not fetch {link} ({_reason(exc)}); {instead}"))
        return None
    except IngestError as exc:
        result.notes.append((source, f"{link} has no article text ({str(exc).removeprefix(f'{source}: ')}); {instead}"))
        return None
    return replace(page, url=page.url or link)


def _with_entry(page: Document, entry: Any, site: str | None) -> Document:
    """The fetched page, with what the feed says of its item where the page did not say it."""
    return replace(
        page,
        title=page.title or _field(entry, "title") or "",
        published=page.published or _entry_date(entry),
        author=page.author or _field(entry, "author"),
        site=page.site or site,
    )


def fragment_text(fragment: str) -> str:
    """The text of an HTML fragment (a feed item's content), a line per block, scripts and styles dropped."""
    if not fragment.strip():
        return ""
    if "<" not in fragment:
        return "\n".join(" ".join(line.split()) for line in fragment.splitlines() if line.strip())
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return ""
    for bad in root.xpath("//script|//style"):
        bad.drop_tree()
    for element in root.iter():  # the source's own line breaks are spaces, as a browser shows them
        element.text = _SPACES.sub(" ", element.text) if element.text else element.text
        element.tail = _SPACES.sub(" ", element.tail) if element.tail else element.tail
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCKS:
            element.tail = "\n" + (element.tail or "")
            element.text = "\n" + (element.text or "")
    lines = (" ".join(line.split()) for line in root.text_content().split("\n"))
    return "\n".join(line for line in lines if line)


def _entry_date(entry: Any) -> str | None:
    """The item's day as written (the publisher's own day, not converted to UTC), else feedparser's reading."""
    for key in ("published", "updated"):
        written = entry.get(key)
        if written:
            day = parse_date(str(written))
            if day:
                return day
        parsed = entry.get(f"{key}_parsed")
        if parsed:
            return time.strftime("%Y-%m-%d", parsed)
    return None


def _field(item: Any, key: str) -> str | None:
    """A feed's or item's field on one line; None when it is missing or blank."""
    return " ".join(str(item.get(key, "") or "").split()) or None


def _web_link(link: object) -> str | None:
    text = str(link or "").strip()
    return text if text.startswith(("http://", "https://")) else None


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return in_one_line(exc)
