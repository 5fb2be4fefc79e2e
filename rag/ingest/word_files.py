"""Word files (.docx): the body's paragraphs and table cells in reading order, read with python-docx.

A .docx's own title, author and dates are often its template's (python-docx's blank document says it was
written by "python-docx" in 2013), so they are taken only when the user asks (`word_properties`); otherwise
the title is the first heading or line, and author and date stay unknown rather than wrong.
"""

from __future__ import annotations

import io
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from rag.errors import IngestError
from rag.ingest.plaintext import body_segments
from rag.records import Document


def parse_docx(data: bytes, source: str, content_hash: str, properties: bool = False) -> Document:
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise IngestError(f"{source}: not a readable Word file (damaged, or not a .docx)") from exc
    lines: list[str] = []
    heading: str | None = None
    for block in document.iter_inner_content():
        for paragraph in _paragraphs(block):
            text = " ".join(paragraph.text.split())
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            if heading is None and (style == "Title" or style.startswith("Heading")):
                heading = text
            lines.append(text)
    text = "\n\n".join(lines)
    segments = body_segments(text)
    if not segments:
        raise IngestError(f"{source}: no text in the Word file")
    core = document.core_properties
    title = (core.title or "").strip() if properties else ""
    date = core.created or core.modified if properties else None
    return Document(
        source=source,
        text=text,
        title=(title or heading or lines[0])[:200],
        published=date.date().isoformat() if date is not None else None,
        segments=segments,
        content_hash=content_hash,
        author=((core.author or "").strip() or None) if properties else None,
    )


def _paragraphs(block: Paragraph | Table) -> list[Paragraph]:
    """A body block's paragraphs: itself, or a table's cells row by row (a merged cell once)."""
    if isinstance(block, Paragraph):
        return [block]
    seen: set[int] = set()
    found: list[Paragraph] = []
    for row in block.rows:
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            for inner in cell.iter_inner_content():
                found.extend(_paragraphs(inner))
    return found
