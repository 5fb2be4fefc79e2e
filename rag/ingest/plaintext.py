"""Plain-text news files: title, URL and date from the text, boilerplate fenced off, one document per article.

Saved pages carry navigation, comment boxes, runs of related headlines and "Powered by WordPress" footers.
Those lines stay in the document text (so offsets remain exact) but fall outside its content segments, so
they never come back as an answer. A file often holds several articles: the story, then a "Related
Articles" list whose entries are whole stories of their own ("Korea Herald / 3 hours ago / - Korea Herald /
<headline> / <body>"). A new article starts at a headline line that follows page boilerplate and is
followed by body text; a subhead inside a story follows body text, so it does not split the story.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from rag.errors import IngestError
from rag.ingest.dates import parse_date
from rag.records import Document
from rag.text import LINE_END, has_wide_script, is_headline

_BOILERPLATE = re.compile(
    r"""^(?:
        comments?|post\ a\ comment|leave\ a\ (?:reply|comment)|no\ comments(?:\ yet)?\W*|hashtags|
        related\ (?:articles|stories|posts)|try\ our\ ai\ features|explore\ what\ .{1,40}\ can\ do\ for\ you:?|
        powered\ by\ wordpress.*|you\ can\ leave\ a\ response.*|go\ to\ contents|skip\ to\ (?:main\ )?content|
        share(?:\ this(?:\ article|\ story)?)?|print|tweet|advertisement|read\ more|subscribe.{0,60}|sign\ up.{0,60}|
        article\ continues\ (?:below|after)(?:\ (?:this\ |the\ )?(?:advertisement|ad))?|continue\ reading.{0,40}|
        (?:get|receive)\ (?:our|the)\ .{0,40}newsletter.{0,40}|.{0,40}\bnewsletter\ sign[-\ ]?up.{0,20}|
        share\ (?:on|via)\ .{1,30}|follow\ us\ on\ .{1,40}|(?:view|show|read|see)\ (?:all\ )?(?:\d+\ )?comments?|
        \d+\ comments?|join\ the\ (?:conversation|discussion)|click\ here\ to\ .{1,60}|
        log\ ?in|한국어|english|\d+\ (?:seconds?|minutes?|hours?|days?|weeks?)\ ago|
        source\ article\ from\ .*|(?:posted|updated|published)\b.{0,60}|copyright\ .*|©.*|all\ rights\ reserved.*|
        -\ .{1,60}
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_URL_LINE = re.compile(
    r"^\s*(?:source(?:\s+article)?(?:\s+from)?|original(?:ly)?(?:\s+published)?(?:\s+at)?|url|link)\b", re.IGNORECASE
)
# Boilerplate that ends a story (a related list, a comment box, a byline tag or timestamp of the next
# item), as opposed to furniture that sits inside one ("Advertisement", "Share"): only the former splits.
_STORY_END = re.compile(
    r"^(?:related\ (?:articles|stories|posts)|comments?|post\ a\ comment|leave\ a\ (?:reply|comment)|"
    r"no\ comments.*|read\ more|more\ (?:stories|news).*|\d+\ (?:seconds?|minutes?|hours?|days?|weeks?)\ ago|"
    r"(?:posted|updated|published)\b.*|-\ .{1,60}|copyright\ .*|©.*|all\ rights\ reserved.*)$",
    re.IGNORECASE,
)
# Page furniture: a run of headlines or links (a related-stories list, a "most read" box, navigation) is not
# an article, whatever its language. A listing line is short, does not end like a sentence and reads like a
# title: bracketed or quoted, mostly capitalised words, a bullet, or a bare link.
LISTING_MAX_CHARS = 220
LISTING_RUN = 3
_LISTING_OPEN = re.compile(r"^(?:[\[(\"“‘'«•·▶►▸*|>]|[-–—]\s)")
_LISTING_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_INNER_SENTENCE = re.compile(r"[a-z0-9%)][.!?]\s+[A-Z\"“]")
_QUOTED = re.compile(r"[\"“”‘’\[\]「」『』]")
_DATE_LINE = re.compile(r"^\s*(?:posted|published|updated|date|dated)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Line:
    start: int
    end: int
    text: str


def is_listing_line(text: str) -> bool:
    """A line that reads like an entry of a list of headlines or links rather than a line of an article: a
    short unfinished line (`is_unfinished_line`) that is bracketed, quoted, a bullet, a bare link, or mostly
    capitalised words, and holds no sentence of its own ("... Unite. Presidential ..." is a teaser)."""
    if not is_unfinished_line(text) or _INNER_SENTENCE.search(text):
        return False
    if _LISTING_OPEN.match(text) or _URL.fullmatch(text):
        return True
    if has_wide_script(text) and _QUOTED.search(text):  # a Korean/CJK headline quotes its subject
        return True
    words = [w for w in _LISTING_WORD.findall(text) if not has_wide_script(w)]
    capitalised = sum(1 for w in words if w[0].isupper())
    return len(words) >= 3 and capitalised >= 0.6 * len(words)


def states(text: str) -> bool:
    """Whether a line states something: it ends like a sentence or runs long, or holds a sentence of its own."""
    return not is_unfinished_line(text) or bool(_INNER_SENTENCE.search(text))


def is_unfinished_line(text: str) -> bool:
    return bool(text) and len(text) <= LISTING_MAX_CHARS and not LINE_END.search(text)


def furniture(lines: list[Line], content: list[bool]) -> set[int]:
    """Indexes of lines (into `lines`) that are page furniture: the listing lines of a run of short
    unfinished lines holding LISTING_RUN or more of them, after the article's first body text (a headline,
    a standfirst and a byline at the top stay the article's own). A teaser line inside such a run, which
    states something in a sentence of its own, stays content, and so does its Korean/CJK twin beside it."""
    fenced: set[int] = set()
    run: list[int] = []
    filled = [i for i, ln in enumerate(lines) if ln.text]
    place = {i: n for n, i in enumerate(filled)}

    def twin(j: int) -> bool:
        """A Korean/CJK line beside a content line of the other script that states something (`states`): the
        same teaser in the page's other language, which states the same facts."""
        if not has_wide_script(lines[j].text):
            return False
        n = place[j]
        beside = [filled[m] for m in (n - 1, n + 1) if 0 <= m < len(filled)]
        return any(content[k] and not has_wide_script(lines[k].text) and states(lines[k].text) for k in beside)

    def close_run() -> None:
        listing = [j for j in run if is_listing_line(lines[j].text)]
        if len(listing) >= LISTING_RUN:  # a twin counts toward the run, and stays content
            fenced.update(j for j in listing if not twin(j))
        run.clear()

    seen_body = False
    for i, ln in enumerate(lines):
        if not ln.text:
            continue
        if content[i] and seen_body and is_unfinished_line(ln.text):
            run.append(i)
            continue
        close_run()
        seen_body = seen_body or (content[i] and not is_headline(ln.text))
    close_run()
    return fenced


def content_lines(lines: list[Line], site_names: frozenset[str] | set[str] = frozenset()) -> list[Line]:
    """The lines of an article that hold its content: not boilerplate (a comment box, "Advertisement",
    "Article continues below", a newsletter sign-up, share and comment prompts), not in a run of listing
    lines."""
    kept = [bool(ln.text) and not is_boilerplate(ln.text, site_names) for ln in lines]
    fenced = furniture(lines, kept)
    return [ln for i, ln in enumerate(lines) if kept[i] and i not in fenced]


def body_segments(text: str) -> tuple[tuple[int, int], ...]:
    """The content ranges of an article body read by the rules a text file's article follows
    (`content_lines`): what export records and PDF pages are chunked from. Empty when nothing is content."""
    lines = split_lines(text)
    return _segments(lines, content_lines(lines))


def content_segments(text: str) -> tuple[tuple[int, int], ...]:
    """The ranges of `text` (an extracted article) left once page furniture is fenced off."""
    lines = split_lines(text)
    fenced = furniture(lines, [bool(ln.text) for ln in lines])
    return _segments(lines, [ln for i, ln in enumerate(lines) if ln.text and i not in fenced])


def parse_articles(text: str, source: str, content_hash: str = "") -> list[Document]:
    """One Document per article in the file. The first keeps the file's name as its source; the others are
    `name#2`, `name#3`… in file order. Each document's text is an exact slice of the file."""
    lines = split_lines(text)
    site_names = _site_names(lines)
    starts = article_starts(lines, site_names)
    if not starts:
        raise IngestError(f"{source}: nothing but page boilerplate")
    file_hash = content_hash or hashlib.sha256(text.encode()).hexdigest()
    bounds = [0] + [lines[i].start for i in starts[1:]] + [len(text)]
    documents = []
    for n, (a, b) in enumerate(zip(bounds, bounds[1:]), start=1):
        name = source if n == 1 else f"{source}#{n}"
        part_hash = file_hash if len(starts) == 1 else hashlib.sha256(f"{file_hash}:{a}:{b}".encode()).hexdigest()
        documents.append(parse_document(text[a:b], name, part_hash, site_names))
    return documents


def article_starts(lines: list[Line], site_names: frozenset[str] | set[str] = frozenset()) -> list[int]:
    """Indexes (into `lines`) of the first line of each article. A line opens a new article when it reads
    like a headline, follows boilerplate that ends a story (a related list, a comment box, the next item's
    byline or timestamp; not an "Advertisement" inside the story), is followed by body text, and the article
    before it already has body text of its own (so a headline followed by its dateline does not split)."""
    filled = [i for i, ln in enumerate(lines) if ln.text]
    kinds = {i: is_boilerplate(lines[i].text, site_names) for i in filled}
    content = [i for i in filled if not kinds[i]]
    if not content:
        return []
    starts = [content[0]]
    has_body = story_ended = False
    for pos, i in enumerate(filled):
        text = lines[i].text
        if kinds[i]:
            story_ended = story_ended or bool(_STORY_END.match(text)) or text.lower() in site_names
            continue
        if i == content[0]:
            continue
        after_boilerplate = kinds[filled[pos - 1]] and story_ended
        nxt = filled[pos + 1] if pos + 1 < len(filled) else None
        body_follows = nxt is not None and not kinds[nxt] and not is_headline(lines[nxt].text)
        if has_body and after_boilerplate and body_follows and _opens_like_headline(text):
            starts.append(i)
            has_body = False
        elif not is_headline(text):
            has_body = True
        story_ended = False
    return starts


def _opens_like_headline(text: str) -> bool:
    """A headline, not a hard-wrapped line of a sentence: capital, digit or quote first, no trailing comma."""
    return (
        is_headline(text)
        and (text[0].isupper() or text[0].isdigit() or text[0] in "\"'“‘[(")
        and not (text.endswith((",", ";", ":")))
    )


def parse_document(text: str, source: str, content_hash: str = "", site_names: set[str] | None = None) -> Document:
    """One article: title (its first content line), URL and date as the text states them, content segments."""
    lines = split_lines(text)
    content = content_lines(lines, _site_names(lines) if site_names is None else site_names)
    if not content:
        raise IngestError(f"{source}: nothing but page boilerplate")
    return Document(
        source=source,
        text=text,
        title=headline(content[0].text)[:200],
        url=find_url(lines),
        published=find_date(lines),
        segments=_segments(lines, content),
        content_hash=content_hash or hashlib.sha256(text.encode()).hexdigest(),
    )


def headline(line: str) -> str:
    """A title as a reader writes it: a Markdown heading's "# " and closing "#"s are its markup, not its words.
    The text itself (and every offset into it) keeps them."""
    return _HEADING.sub("", line).strip() or line


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+|\s+#+\s*$")


def _site_names(lines: list[Line]) -> set[str]:
    """Names that a page uses as a byline tag ("- Korea Herald"); the bare name is boilerplate there too."""
    return {ln.text[2:].strip().lower() for ln in lines if ln.text.startswith("- ")}


def split_lines(text: str) -> list[Line]:
    """Lines with offsets; `text` is stripped of surrounding whitespace, offsets point at the stripped text."""
    lines = []
    for match in re.finditer(r"[^\r\n]*", text):
        raw = match.group()
        stripped = raw.strip()
        lead = len(raw) - len(raw.lstrip())
        start = match.start() + lead
        lines.append(Line(start, start + len(stripped), stripped))
    return lines


def is_boilerplate(line: str, site_names: frozenset[str] | set[str] = frozenset()) -> bool:
    return bool(_BOILERPLATE.match(line)) or line.lower() in site_names


def _segments(lines: list[Line], content: list[Line]) -> tuple[tuple[int, int], ...]:
    """Merge consecutive content lines (blank lines between them allowed) into ranges."""
    keep = {id(ln) for ln in content}
    segments: list[list[int]] = []
    open_segment = False
    for ln in lines:
        if not ln.text:
            continue
        if id(ln) in keep:
            if open_segment:
                segments[-1][1] = ln.end
            else:
                segments.append([ln.start, ln.end])
                open_segment = True
        else:
            open_segment = False
    return tuple((s, e) for s, e in segments)


def find_url(lines: list[Line]) -> str | None:
    """The URL the text itself states: a "Source ... https://" line first, else the first URL at all."""
    first = None
    for ln in lines:
        match = _URL.search(ln.text)
        if not match:
            continue
        url = match.group().rstrip(".,;:")
        if _URL_LINE.match(ln.text):
            return url
        first = first or url
    return first


DATELINE_MAX_CHARS = 60


def find_date(lines: list[Line], head: int = 10) -> str | None:
    """An unambiguous publication date: a "Posted ..." line first, else a short line near the top that is
    mostly a date ("March 14, 2025", "By Kim Ji-ho | 2025-03-14"). A date inside a body sentence ("the
    treaty of Dec. 18, 1965") is what the story is about, not when it was published."""
    filled = [ln.text for ln in lines if ln.text]
    candidates = [text for text in filled if _DATE_LINE.match(text)]
    candidates += [text for text in filled[:head] if len(text) <= DATELINE_MAX_CHARS]
    for text in candidates:
        found = parse_date(text)
        if found:
            return found
    return None
