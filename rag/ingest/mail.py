"""Newsletters and mail (.eml, one message; .mbox, many): each message an article, read with the standard
library's email parser (RFC 5322 and MIME, encoded headers, every charset Python knows).

Subject is the title, the sender the author (their name, else their address), the Date header the date. The
body is the message's plain-text part, or its HTML part read through trafilatura as a saved page is. An
attachment in a format we read (a PDF, a Word file, a page, a text file...) becomes its own article, named
`message/attachment`. A message with nothing readable is one named problem; the rest of the mailbox is read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses

import trafilatura

from rag.errors import IngestError
from rag.ingest.dates import parse_date
from rag.ingest.plaintext import body_segments
from rag.records import Document, Ingested

MAIL_SUFFIXES = frozenset({".eml", ".mbox"})
_MBOX_FROM = re.compile(rb"^From [^\r\n]*\r?\n", re.MULTILINE)
_FROM_QUOTED = re.compile(rb"^>(>*From )", re.MULTILINE)  # a body line "From ..." as the mailbox quoted it

# The reader of an attachment's bytes: (data, `message/filename`) -> what it gave. Given by files.py, which
# knows every format, so that this module need not import it back.
ReadAttachment = Callable[[bytes, str], Ingested]


def mbox_messages(data: bytes) -> list[bytes]:
    """The messages of an mbox file: each begins at a line starting "From "; a body line that did was written
    ">From " by the mail program, and is given back its own words."""
    lines = list(_MBOX_FROM.finditer(data))
    if not lines:
        return [data] if data.strip() else []
    ends = [m.start() for m in lines[1:]] + [len(data)]
    return [_FROM_QUOTED.sub(rb"\1", data[m.end() : end]) for m, end in zip(lines, ends)]


def parse_mail(data: bytes, source: str, suffix: str, read_attachment: ReadAttachment) -> Ingested:
    """The articles of an .eml or .mbox file, and the messages or attachments that could not be read."""
    if suffix == ".mbox":
        raw = mbox_messages(data)
        if not raw:
            raise IngestError(f"{source}: no messages in the mailbox")
        named = [(f"{source}#{n}", message) for n, message in enumerate(raw, start=1)]
    else:
        named = [(source, data)]
    found = Ingested()
    for name, raw_message in named:
        try:
            message = message_from_bytes(raw_message, policy=policy.default)
            if not isinstance(message, EmailMessage) or not message.keys():
                raise IngestError(f"{name}: not an e-mail message (no headers)")
            body = message_document(message, name, hashlib.sha256(raw_message).hexdigest())
            if body is not None:
                found.documents.append(body)
            for filename, content in attachments(message):
                attached = read_attachment(content, f"{name}/{filename}")
                found.documents += attached.documents
                found.problems += attached.problems
            if body is None and not any(d.source.startswith(f"{name}/") for d in found.documents):
                raise IngestError(f"{name}: no text in the message")
        except IngestError as exc:
            found.problems.append((name, str(exc).removeprefix(f"{name}: ")))
    if len(named) == 1 and not found.documents and found.problems:
        raise IngestError(f"{source}: {found.problems[0][1]}")
    return found


def message_document(message: EmailMessage, source: str, content_hash: str) -> Document | None:
    """The message as an article, or None when it has no text of its own (only attachments)."""
    text = body_text(message)
    if not text:
        return None
    segments = body_segments(text)
    if not segments:
        return None
    subject = " ".join(str(message.get("subject", "") or "").split())
    return Document(
        source=source,
        text=text,
        title=(subject or text.split("\n", 1)[0])[:200],
        published=parse_date(str(message.get("date", "") or "")),  # the day as the sender's clock wrote it
        segments=segments,
        content_hash=content_hash,
        author=_sender(message),
    )


def body_text(message: EmailMessage) -> str:
    """The plain-text body, or the HTML body's article text; "" when there is neither."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken transfer encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        content = trafilatura.extract(content, include_comments=False, include_tables=True, deduplicate=False) or ""
    return "\n".join(line.rstrip() for line in content.replace("\r\n", "\n").strip().split("\n"))


def attachments(message: EmailMessage) -> list[tuple[str, bytes]]:
    """Each attachment with a file name, and its bytes."""
    found = []
    for part in message.iter_attachments():
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        if filename and isinstance(payload, bytes) and payload:
            found.append((filename.replace("/", "_").strip() or "attachment", payload))
    return found


def _sender(message: EmailMessage) -> str | None:
    addresses = getaddresses([str(message.get("from", "") or "")])
    if not addresses:
        return None
    name, address = addresses[0]
    return (name or address).strip() or None
