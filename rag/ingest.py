"""Turn files on disk into Documents: decode safely, find title, URL and date, and fence off boilerplate.

Saved news pages carry navigation, comment boxes and "Powered by WordPress" footers. Those lines stay in
the document text (so offsets remain exact) but fall outside the document's content segments, so they can
never come back as an answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rag.errors import IngestError
from rag.records import Document

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".text"})
MAX_FILE_BYTES = 50 * 1024 * 1024
FALLBACK_ENCODINGS = ("cp949", "cp1252")

_BOILERPLATE = re.compile(
    r"""^(?:
        comments?|post\ a\ comment|leave\ a\ (?:reply|comment)|no\ comments(?:\ yet)?\W*|hashtags|
        related\ (?:articles|stories|posts)|try\ our\ ai\ features|explore\ what\ .{1,40}\ can\ do\ for\ you:?|
        powered\ by\ wordpress.*|you\ can\ leave\ a\ response.*|go\ to\ contents|skip\ to\ (?:main\ )?content|
        share(?:\ this(?:\ article)?)?|print|tweet|advertisement|read\ more|subscribe.{0,60}|sign\ up.{0,60}|
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
_MONTHS = {
    m: i
    for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
_DATE_MDY = re.compile(
    r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})\b", re.IGNORECASE
)
_DATE_DMY = re.compile(
    r"\b(\d{1,2})\s+(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?,?\s+(\d{4})\b", re.IGNORECASE
)
_DATE_ISO = re.compile(r"\b(\d{4})[-./](\d{1,2})[-./](\d{1,2})(?!\d)")
_DATE_LINE = re.compile(r"^\s*(?:posted|published|updated|date|dated)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Line:
    start: int
    end: int
    text: str


def iter_files(root: Path) -> Iterator[Path]:
    """Every non-hidden file under `root` (or `root` itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file():
            yield path


def decode(data: bytes, name: str) -> str:
    """UTF-8 first (BOM tolerated), then the legacy encodings common in Korean and European news."""
    if not data.strip():
        raise IngestError(f"{name}: empty file")
    if b"\x00" in data[:8192]:
        raise IngestError(f"{name}: binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for encoding in FALLBACK_ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_like_text(text):
            return text
    raise IngestError(f"{name}: cannot decode as UTF-8, {', '.join(FALLBACK_ENCODINGS)}")


def _looks_like_text(text: str) -> bool:
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    return controls <= len(text) * 0.01


def read_document(path: Path, source: str) -> Document:
    """Read one file into a Document, or raise IngestError naming the file and the reason."""
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise IngestError(f"{source}: unsupported file type '{path.suffix or '(none)'}'")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise IngestError(f"{source}: too large ({size / 1e6:.0f} MB; limit {MAX_FILE_BYTES / 1e6:.0f} MB)")
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{source}: unreadable ({exc.strerror or exc})") from exc
    text = decode(data, source)
    if not text.strip():
        raise IngestError(f"{source}: no text after decoding")
    return parse_document(text, source, content_hash=hashlib.sha256(data).hexdigest())


def parse_document(text: str, source: str, content_hash: str = "") -> Document:
    lines = split_lines(text)
    site_names = {ln.text[2:].strip().lower() for ln in lines if ln.text.startswith("- ")}
    content = [ln for ln in lines if ln.text and not is_boilerplate(ln.text, site_names)]
    if not content:
        raise IngestError(f"{source}: nothing but page boilerplate")
    return Document(
        source=source,
        text=text,
        title=content[0].text[:200],
        url=find_url(lines),
        published=find_date(lines),
        segments=_segments(lines, content),
        content_hash=content_hash or hashlib.sha256(text.encode()).hexdigest(),
    )


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


def is_boilerplate(line: str, site_names: set[str] = frozenset()) -> bool:
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


def find_date(lines: list[Line], head: int = 20) -> str | None:
    """An unambiguous publication date as ISO 8601: a "Posted ..." line first, else the top of the page."""
    candidates = [ln.text for ln in lines if _DATE_LINE.match(ln.text)]
    candidates += [ln.text for ln in lines[:head] if ln.text]
    for text in candidates:
        found = parse_date(text)
        if found:
            return found
    return None


def parse_date(text: str) -> str | None:
    for pattern, order in ((_DATE_MDY, "mdy"), (_DATE_DMY, "dmy"), (_DATE_ISO, "ymd")):
        match = pattern.search(text)
        if not match:
            continue
        a, b, c = match.groups()
        try:
            if order == "mdy":
                value = date(int(c), _MONTHS[a[:3].lower()], int(b))
            elif order == "dmy":
                value = date(int(c), _MONTHS[b[:3].lower()], int(a))
            else:
                value = date(int(a), int(b), int(c))
        except ValueError:
            continue
        return value.isoformat()
    return None
