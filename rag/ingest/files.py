"""Files on disk to Documents: decide what a file really is, decode it safely, hand it to its reader.

The extension says what a file should be; its first bytes say what it is. A PDF saved as `.html` is read
as a PDF; a PNG named `.txt` is refused as an image. Every refusal is an IngestError whose message names
the file and the reason, so a run can report it in one line and go on with the rest.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import IngestError
from rag.ingest.exports import RecordFields, parse_records
from rag.ingest.feeds import FEED_SUFFIXES, pages_saved_in, parse_feed
from rag.ingest.html_pages import declared_charset, parse_html
from rag.ingest.mail import MAIL_SUFFIXES, parse_mail
from rag.ingest.pdf_files import parse_pdf
from rag.ingest.plaintext import parse_articles
from rag.ingest.web_archives import WARC_SUFFIXES, ArchiveCounts, is_web_archive, stream_archive
from rag.ingest.word_files import parse_docx
from rag.records import Document, Ingested

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".text"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
RECORD_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
WORD_SUFFIXES = frozenset({".docx"})
SUPPORTED_SUFFIXES = (
    TEXT_SUFFIXES
    | HTML_SUFFIXES
    | PDF_SUFFIXES
    | RECORD_SUFFIXES
    | WORD_SUFFIXES
    | MAIL_SUFFIXES
    | FEED_SUFFIXES
    | frozenset(WARC_SUFFIXES)
)
MAX_FILE_BYTES = 50 * 1024 * 1024
FALLBACK_ENCODINGS = ("cp949", "cp1252")

_MAGIC = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or a Word/Excel file)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file"),
    (b"RIFF", "a media file"),
)
_HTML_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)


def iter_files(root: Path) -> Iterator[Path]:
    """Every non-hidden entry under `root` (or `root` itself) that is not a folder, in a stable order: files,
    and also links and pipes, which `not_a_plain_file` then names rather than pass over in silence."""
    if not root.is_dir():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink() or not path.is_dir():
            yield path


def not_a_plain_file(path: Path, root: Path) -> str | None:
    """Why `path` is not read, or None for a regular file inside `root`: a link that leads out of the corpus
    folder (to /etc/passwd, say) is never followed, nor a broken or looping one, a pipe or a device."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "a broken or looping link; not read"
    if path.is_symlink() and not target.is_relative_to(root):
        return "a link to something outside the corpus folder; not read"
    if target.is_dir():
        return "a link to a folder; not read"
    if not target.is_file():
        return "not a regular file (a pipe, socket or device); not read"
    return None


def file_suffix(name: str) -> str:
    """What a file name says it is: its last suffix, or `.warc.gz` (which a crawl's file ends in)."""
    return ".warc.gz" if name.lower().endswith(".warc.gz") else Path(name).suffix.lower()


def read_documents(path: Path, source: str, fields: RecordFields | None = None) -> Ingested:
    """Read one file into its documents, or raise IngestError naming the file and the reason."""
    suffix = file_suffix(path.name)
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(f"{source}: unsupported file type '{suffix or '(none)'}'")
    if is_web_archive(path.name):  # read a record at a time, whatever its size
        return read_archive(path, source)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise IngestError(f"{source}: too large ({size / 1e6:.0f} MB; limit {MAX_FILE_BYTES / 1e6:.0f} MB)")
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{source}: unreadable ({exc.strerror or exc})") from exc
    try:
        return parse_bytes(data, source, suffix, fields or RecordFields(), beside=path.parent)
    except IngestError:
        raise
    except RecursionError as exc:
        raise IngestError(f"{source}: nested too deeply to read") from exc
    except Exception as exc:  # a reader's own failure on a hostile file stops this file only, never the run
        raise IngestError(f"{source}: could not be read ({type(exc).__name__}: {str(exc)[:200]})") from exc


def parse_bytes(data: bytes, source: str, suffix: str, fields: RecordFields, beside: Path | None = None) -> Ingested:
    """What `data` holds, read as `suffix` says (or as its first bytes say); `beside` is the folder the file is
    in, where a feed's linked pages may be saved."""
    digest = hashlib.sha256(data).hexdigest()
    kind = sniff(data)
    if suffix in WORD_SUFFIXES:
        if not data.startswith(b"PK\x03\x04"):
            raise IngestError(f"{source}: not a Word file (a .docx is a ZIP archive, and this is not one)")
        return Ingested([parse_docx(data, source, digest, fields.word_properties)])
    if suffix in MAIL_SUFFIXES and kind is None:
        return parse_mail(data, source, suffix, lambda d, name: _attachment(d, name, fields))
    if suffix in FEED_SUFFIXES and kind is None:
        saved = pages_saved_in(beside, read_page) if beside is not None else None
        return parse_feed(data, source, read_page if fields.fetch_links else None, saved)
    if kind == "pdf":
        return Ingested([parse_pdf(data, source, digest)])
    if kind is not None:
        raise IngestError(f"{source}: the file is {kind}, not a {suffix} article")
    if suffix in PDF_SUFFIXES:
        raise IngestError(f"{source}: not a PDF (it does not start with %PDF)")
    if suffix in HTML_SUFFIXES or _HTML_START.match(data[:2048]):
        page = decode(data, source, declared_charset(data))
        return Ingested([parse_html(page.text, source, digest)], notes=_noted(source, page))
    decoded = decode(data, source)
    if suffix in RECORD_SUFFIXES:
        records = parse_records(decoded.text, source, jsonl=suffix != ".json", fields=fields)
        return Ingested(records.documents, records.problems, _noted(source, decoded))
    return Ingested(parse_articles(decoded.text, source, digest), notes=_noted(source, decoded))


def _attachment(data: bytes, source: str, fields: RecordFields) -> Ingested:
    """A mail attachment (`source` ends in its file name) read as the file it is, when it is a format we read
    (not mail again, nor a web crawl, which is read a record at a time from a file of its own); else nothing."""
    suffix = file_suffix(source)
    if suffix not in SUPPORTED_SUFFIXES or suffix in MAIL_SUFFIXES or is_web_archive(source):
        return Ingested()
    try:
        found = parse_bytes(data, source, suffix, fields)
    except IngestError as exc:
        return Ingested(problems=[(source, str(exc).removeprefix(f"{source}: "))])
    return Ingested(found.documents, found.problems)


def read_page(data: bytes, source: str, charset: str | None = None) -> Document:
    """A fetched or archived web page read as a saved one: the charset its HTTP header gave, else the one the
    page declares; trafilatura for the article."""
    text = decode(data, source, charset or declared_charset(data)).text
    return parse_html(text, source, hashlib.sha256(data).hexdigest())


def read_archive(path: Path, source: str) -> Ingested:
    """A whole web archive's articles (`rag.build.update` streams them instead, a batch per commit)."""
    counts = ArchiveCounts()
    found = Ingested()
    for item in stream_archive(path, source, read_page, counts=counts):
        if isinstance(item, Document):
            found.documents.append(item)
        else:
            found.problems.append(item)
    found.notes.append((source, counts.line()))
    return found


def _noted(source: str, decoded: Decoded) -> list[tuple[str, str]]:
    return [(source, decoded.note)] if decoded.note else []


def sniff(data: bytes) -> str | None:
    """What the first bytes say the file is, for formats that are not text."""
    head = data[:16]
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


@dataclass(frozen=True)
class Decoded:
    """A file's text, and one line for the run when it was not plain UTF-8: the legacy encoding it was read as,
    or how many bytes were not UTF-8 and where."""

    text: str
    note: str | None = None


# A file is read as UTF-8 with its bad bytes replaced when it holds more UTF-8 characters beyond ASCII than
# bytes that are not UTF-8: one stray byte in an article of accents and Hangul is damage, not another encoding.
SHOWN_OFFSETS = 3


def decode(data: bytes, name: str, declared: str | None = None) -> Decoded:
    """The declared charset if any, then UTF-8 (BOM tolerated), then the legacy encodings common in Korean
    and European news (cp949 covers EUC-KR, cp1252 covers Latin-1), each only when the whole file reads as it.
    A file that is UTF-8 but for a few bad bytes stays UTF-8, those bytes replaced by U+FFFD."""
    if not data.strip():
        raise IngestError(f"{name}: empty file")
    if b"\x00" in data[:8192]:
        raise IngestError(f"{name}: binary file (contains NUL bytes)")
    if data.startswith(b"\xef\xbb\xbf"):
        declared = "utf-8-sig"
    repair_tried = False
    for encoding in dict.fromkeys(filter(None, (declared, "utf-8", *FALLBACK_ENCODINGS))):
        if encoding not in ("utf-8", "utf-8-sig") and encoding != declared and not repair_tried:
            # UTF-8 failed: before guessing a legacy encoding, see whether it is UTF-8 with a few bad bytes
            repair_tried = True
            damaged = _mostly_utf8(data)
            if damaged is not None:
                return damaged
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if encoding in ("utf-8", "utf-8-sig") or _looks_like_text(text):
            if not text.strip():
                raise IngestError(f"{name}: no text after decoding")
            plain = encoding in ("utf-8", "utf-8-sig") or encoding == (declared or "").lower()
            return Decoded(text, None if plain else f"not UTF-8: read as {encoding}")
    raise IngestError(f"{name}: cannot decode as UTF-8, {', '.join(FALLBACK_ENCODINGS)}")


_BAD_BYTES = threading.local()  # the offsets of the bytes `_COUNTED_REPLACE` replaced, for this thread's decode
_COUNTED_REPLACE = "verbatim-counted-replace"


def _count_and_replace(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    _BAD_BYTES.found.extend(range(error.start, error.end))
    return "\ufffd", error.end


codecs.register_error(_COUNTED_REPLACE, _count_and_replace)


def _mostly_utf8(data: bytes) -> Decoded | None:
    """UTF-8 with its bad bytes replaced, when the file holds more good UTF-8 characters beyond ASCII than bad
    bytes; None otherwise (valid UTF-8 included, which needs no replacing)."""
    bad = _BAD_BYTES.found = []
    text = data.decode("utf-8", errors=_COUNTED_REPLACE)
    if not bad:
        return None
    good = sum(1 for ch in text if ord(ch) > 127 and ch != "\ufffd")
    if good <= len(bad):
        return None
    where = ", ".join(f"{offset:,}" for offset in bad[:SHOWN_OFFSETS])
    more = f" and {len(bad) - SHOWN_OFFSETS:,} more" if len(bad) > SHOWN_OFFSETS else ""
    plural = "s" if len(bad) > 1 else ""
    return Decoded(text, f"{len(bad):,} byte{plural} not UTF-8 replaced by U+FFFD (at byte{plural} {where}{more})")


def _looks_like_text(text: str) -> bool:
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    return controls <= len(text) * 0.01
