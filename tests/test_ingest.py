from pathlib import Path

import pytest

from rag.dates import parse_date
from rag.errors import IngestError
from rag.ingest import decode, read_documents
from rag.plaintext import is_boilerplate, parse_document
from tests.conftest import CORPUS

BOILERPLATE = [
    "Comments",
    "Post a Comment",
    "Hashtags",
    "Try Our AI Features",
    "Leave a Reply",
    "Powered by WordPress | Designed by: Premium WordPress Themes",
    "3 hours ago",
    "Go to contents",
]


def test_seed_articles_get_title_url_and_date():
    docs = {d.source: d for p in sorted(CORPUS.glob("*.txt")) for d in read_documents(p, p.name).documents}
    assert docs["001_33dd8276e80e8104.txt"].title == "DPK leader welcomes US-N. Korea talks"
    assert docs["001_33dd8276e80e8104.txt"].published == "2025-01-23"
    assert docs["003_a37b0dba77dbb840.txt"].url == (
        "https://popularresistance.org/will-the-united-states-seek-peace-in-north-korea/"
    )
    assert docs["002_4545c625dd368776.txt"].title.startswith("Kim Kyoung-soo enters race")
    for doc in docs.values():
        assert doc.title and doc.title in doc.text


@pytest.mark.parametrize("line", BOILERPLATE)
def test_boilerplate_lines_fall_outside_content(line):
    assert is_boilerplate(line)
    text = f"Headline of the story\nA real sentence about the election.\n{line}\nAnother real sentence here."
    doc = parse_document(text, "x.txt")
    content = "".join(doc.text[s:e] for s, e in doc.segments)
    assert line not in content
    assert "A real sentence about the election." in content and "Another real sentence here." in content


def test_real_sentences_are_not_boilerplate():
    for line in ["Comments from the minister drew criticism.", "Lee said the summit was a success."]:
        assert not is_boilerplate(line)


def test_seed_boilerplate_never_in_segments():
    for doc in (d for p in CORPUS.glob("*.txt") for d in read_documents(p, p.name).documents):
        content = "\n".join(doc.text[s:e] for s, e in doc.segments)
        for line in content.splitlines():
            assert not is_boilerplate(line.strip()), (doc.source, line)


def test_decoding_fallbacks(tmp_path: Path):
    korean = "이재명 후보가 여론조사에서 앞섰다."
    assert decode(korean.encode("cp949"), "k.txt") == korean
    assert decode("Café au lait".encode("cp1252"), "f.txt") == "Café au lait"
    assert decode("\ufeffHello".encode(), "bom.txt") == "Hello"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b"   \n\n", "empty file"),
        ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "the file is a PNG image, not a .txt article"),
        ("nul.txt", b"text\x00with NUL bytes", "binary file"),
        ("photo.jpg", b"\xff\xd8\xff\xe0", "unsupported file type"),
    ],
)
def test_bad_files_raise_with_name_and_reason(tmp_path: Path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(IngestError, match=reason) as info:
        read_documents(path, name)
    assert str(info.value).startswith(name)


def test_dates_parsed_only_when_unambiguous():
    assert parse_date("Posted January. 23, 2025 07:40") == "2025-01-23"
    assert parse_date("Published 5 March 2024") == "2024-03-05"
    assert parse_date("2023-11-02T10:00") == "2023-11-02"
    assert parse_date("3 hours ago") is None
    assert parse_date("February 30, 2024") is None
