"""PDFs: text page by page, so every passage can say which page it is on.

The document text is the pages' text joined by blank lines; `Document.pages` records where each page
begins and each page is its own content segment, so no passage straddles two pages. Encrypted files that
open with an empty password are read; others, and PDFs with no text layer (scans), are refused with the
reason and what to do about it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any

from rag.errors import IngestError
from rag.ingest.dates import parse_date
from rag.ingest.plaintext import body_segments
from rag.records import Document

PAGE_SEPARATOR = "\n\n"


def parse_pdf(data: bytes, source: str, content_hash: str) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged-but-readable files warn on every object
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _unlocked(reader):
            raise IngestError(f"{source}: encrypted PDF that needs a password; save an unencrypted copy")
        texts = [(page.extract_text() or "").strip() for page in reader.pages]
        info: Mapping[str, Any] = reader.metadata or {}
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise IngestError(f"{source}: damaged PDF ({exc})") from exc
    if not any(texts):
        raise IngestError(f"{source}: no text layer in {len(texts)} page(s) (a scan?); run OCR on it first")
    parts, pages, segments, at = [], [], [], 0
    for text in texts:
        pages.append(at)
        segments += [(at + start, at + end) for start, end in body_segments(text)] if text else []
        parts.append(text)
        at += len(text) + len(PAGE_SEPARATOR)
    if not segments:
        raise IngestError(f"{source}: nothing but page boilerplate on {len(texts)} page(s)")
    full = PAGE_SEPARATOR.join(parts)
    first_line = next(line.strip() for line in full.splitlines() if line.strip())
    title = str(info.get("/Title") or "").strip() or first_line[:200]
    published = None
    for key in ("/CreationDate", "/ModDate"):
        if info.get(key):
            published = parse_date(str(info[key]))
            if published:
                break
    return Document(
        source=source,
        text=full,
        title=title,
        published=published,
        segments=tuple(segments),
        content_hash=content_hash,
        author=str(info.get("/Author") or "").strip() or None,
        pages=tuple(pages),
    )


def _unlocked(reader) -> bool:
    try:
        return bool(reader.decrypt(""))
    except Exception:  # pypdf raises DependencyError for AES without `cryptography`: still a locked file
        return False
