"""Word files and mail (.eml, .mbox), built here with python-docx and the standard library's email and mailbox
modules: one article per file or message, attachments as their own articles, every bad one named."""

from __future__ import annotations

import email.utils
import io
import mailbox
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import docx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag import Index
from rag.errors import IngestError
from rag.ingest.exports import RecordFields
from rag.ingest.files import read_documents

STRIKE = [
    "Dockworkers at Busan returned to work on Monday after union leaders accepted a 6.2 percent wage rise, "
    "the port authority said.",
    "Shipping lines said the backlog of idle containers would take two weeks to clear.",
]


def word_file(title: str = "Busan port strike ends after nine days") -> bytes:
    """A .docx with a heading, paragraphs and a table, and properties a template would leave."""
    document = docx.Document()
    document.core_properties.title = "Normal template"
    document.core_properties.author = "Newsroom template"
    document.core_properties.created = datetime(2019, 5, 1, tzinfo=timezone.utc)
    document.add_heading(title, level=1)
    document.add_paragraph(STRIKE[0])
    table = document.add_table(rows=2, cols=2)
    for row, (label, value) in enumerate([("Containers idle", "41,000"), ("Ships delayed", "118")]):
        table.cell(row, 0).text, table.cell(row, 1).text = label, value
    document.add_paragraph(STRIKE[1])
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def newsletter(attachment: bytes | None = None, html_only: bool = False) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "=?utf-8?b?7KO86rCEIOuJtOyKpA==?= Weekly brief: Jeju ferry fares rise"
    message["From"] = "Min-ji Park <editor@brief.example>"
    message["Date"] = "Tue, 04 Mar 2025 08:00:00 +0900"
    plain = "Ferry operators serving Jeju will raise fares by 8 percent from April, citing fuel costs.\n"
    page = (
        "<html><body><nav><a href='/'>Home</a> | <a href='/subscribe'>Subscribe</a></nav><article>"
        "<h1>Weekly brief</h1><p>Ferry operators serving Jeju will raise fares by 8 percent from April, citing "
        "fuel costs, the operators' association said on Monday.</p><p>The transport ministry approved the rise "
        "on Friday after two months of talks with the island's tourism board.</p></article></body></html>"
    )
    if html_only:
        message.set_content(page, subtype="html")
    else:
        message.set_content(plain)
        message.add_alternative(page, subtype="html")
    if attachment is not None:
        message.add_attachment(
            attachment,
            maintype="application",
            subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
            filename="strike report.docx",
        )
    return message


def test_a_word_file_gives_its_text_in_reading_order_and_no_template_properties(tmp_path: Path):
    path = tmp_path / "strike.docx"
    path.write_bytes(word_file())
    doc = read_documents(path, "strike.docx").documents[0]
    assert doc.title == "Busan port strike ends after nine days"
    assert (doc.author, doc.published) == (None, None)  # the template's, so not taken unasked
    assert doc.text.index(STRIKE[0]) < doc.text.index("Containers idle") < doc.text.index("41,000")
    assert doc.text.index("Ships delayed") < doc.text.index(STRIKE[1])
    asked = read_documents(path, "strike.docx", RecordFields(word_properties=True)).documents[0]
    assert (asked.title, asked.author, asked.published) == ("Normal template", "Newsroom template", "2019-05-01")


def test_a_message_is_an_article_with_subject_sender_date_and_its_attachment_another(tmp_path: Path):
    path = tmp_path / "brief.eml"
    path.write_bytes(bytes(newsletter(attachment=word_file())))
    found = read_documents(path, "brief.eml")
    assert found.problems == []
    message, attached = found.documents
    assert message.title == "주간 뉴스 Weekly brief: Jeju ferry fares rise"
    assert (message.source, message.author, message.published) == ("brief.eml", "Min-ji Park", "2025-03-04")
    assert message.text.startswith("Ferry operators serving Jeju") and "<" not in message.text
    assert attached.source == "brief.eml/strike report.docx" and STRIKE[0] in attached.text


def test_an_html_only_newsletter_is_read_as_a_page_is_without_its_navigation(tmp_path: Path):
    path = tmp_path / "brief.eml"
    path.write_bytes(bytes(newsletter(html_only=True)))
    doc = read_documents(path, "brief.eml").documents[0]
    assert "transport ministry approved the rise" in doc.text
    assert "Subscribe" not in doc.text and "<p>" not in doc.text


def test_a_mailbox_gives_one_article_per_message_and_names_the_one_it_cannot_read(tmp_path: Path):
    path = tmp_path / "letters.mbox"
    box = mailbox.mbox(path)
    bodies = [
        "The Gwangju city library reopens on 2 June with longer hours.\n",
        "",  # a message with no text at all
        "From the desk: the Daegu tram budget is 412 million won.\n",  # the mailbox writes it as >From
    ]
    for number, body in enumerate(bodies, start=1):
        message = EmailMessage()
        message["Subject"], message["From"] = f"Letter {number}", "desk@news.example"
        message["Date"] = email.utils.format_datetime(datetime(2025, 3, number, 10, tzinfo=timezone.utc))
        message.set_content(body)
        box.add(message)
    box.flush()
    assert b"\n>From the desk" in path.read_bytes()
    found = read_documents(path, "letters.mbox")
    assert [(d.source, d.title, d.published) for d in found.documents] == [
        ("letters.mbox#1", "Letter 1", "2025-03-01"),
        ("letters.mbox#3", "Letter 3", "2025-03-03"),
    ]
    assert found.documents[1].text.startswith("From the desk:")  # its own words, not the mailbox's quoting
    assert found.documents[0].author == "desk@news.example"
    assert found.problems == [("letters.mbox#2", "no text in the message")]


@pytest.mark.slow  # the real model
def test_word_and_mail_articles_are_indexed_answered_and_sliced_exactly(tmp_path: Path):
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "strike.docx").write_bytes(word_file())
    (folder / "brief.eml").write_bytes(bytes(newsletter()))
    (folder / "corrupt.docx").write_bytes(b"PK\x03\x04 not really a zip")
    index = Index(tmp_path / "index")
    report = index.add([folder])
    assert [name for name, _ in report.skipped] == ["corrupt.docx"]
    strike = index.search("How big a wage rise did Busan dockworkers accept?", k=1).passages[0]
    fares = index.search("By how much will Jeju ferry fares rise?", k=1).passages[0]
    assert strike.source == "strike.docx" and "6.2 percent" in strike.text
    assert (fares.source, fares.author, fares.published) == ("brief.eml", "Min-ji Park", "2025-03-04")
    for p in (strike, fares):
        assert index.document(p.doc_id).text[p.start : p.end] == p.text


WHOLE = {"docx": word_file(), "mail": bytes(newsletter(attachment=word_file()))}  # made once: both draw random


@settings(max_examples=60, deadline=None)
@given(
    suffix=st.sampled_from([".docx", ".eml", ".mbox"]),
    data=st.one_of(
        st.binary(max_size=400),
        st.integers(0, len(WHOLE["mail"])).map(lambda cut: WHOLE["mail"][:cut]),
        st.integers(0, len(WHOLE["docx"])).map(lambda cut: WHOLE["docx"][:cut]),
    ),
)
def test_any_bytes_as_word_or_mail_give_articles_or_one_named_error(tmp_path_factory, suffix, data):
    """Truncated messages and Word files, and noise: never another exception, never a range outside the text."""
    path = tmp_path_factory.mktemp("any") / f"file{suffix}"
    path.write_bytes(data)
    try:
        found = read_documents(path, path.name)
    except IngestError as exc:
        assert str(exc).startswith(f"{path.name}: ") and "\n" not in str(exc)
        return
    for doc in found.documents:
        assert doc.text and all(0 <= a < b <= len(doc.text) for a, b in doc.segments)
