from pathlib import Path

import pytest

from rag.errors import IngestError
from rag.ingest.dates import parse_date
from rag.ingest.files import Decoded, decode, read_documents
from rag.ingest.plaintext import is_boilerplate, parse_articles, parse_document
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


def test_decoding_fallbacks_say_which_encoding_they_chose(tmp_path: Path):
    korean = "이재명 후보가 여론조사에서 앞섰다."
    assert decode(korean.encode("cp949"), "k.txt") == Decoded(korean, "not UTF-8: read as cp949")
    assert decode("Café au lait".encode("cp1252"), "f.txt") == Decoded("Café au lait", "not UTF-8: read as cp1252")
    assert decode("\ufeffHello".encode(), "bom.txt") == Decoded("Hello")
    assert decode("Café 서울".encode(), "u.txt") == Decoded("Café 서울")


def test_a_utf8_article_with_a_stray_byte_stays_utf8():
    """One bad byte in an article of accents and Hangul is damage, not another encoding: it is replaced, the
    rest read as written, and the note says how many bytes and where."""
    good = "Café naïve résumé\nZürich … 서울 시청\n".encode()
    damaged = decode(good[:5] + b"\xff" + good[5:], "x.txt")
    assert damaged.text == "Café\ufffd naïve résumé\nZürich … 서울 시청\n"
    assert damaged.note == "1 byte not UTF-8 replaced by U+FFFD (at byte 5)"
    many = decode(b"\xfe".join([good] * 5), "y.txt")
    assert many.text.count("\ufffd") == 4 and "Zürich" in many.text
    assert many.note == "4 bytes not UTF-8 replaced by U+FFFD (at bytes 48, 97, 146 and 1 more)"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b"   \n\n", "empty file"),
        ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "the file is a PNG image, not a .txt article"),
        ("nul.txt", b"text\x00with NUL bytes", "binary file"),
        ("photo.jpg", b"\xff\xd8\xff\xe0", "unsupported file type"),
        ("broken.docx", b"PK\x03\x04" + b"\x00" * 200, "not a readable Word file"),
        ("notes.docx", b"Just some text saved with the wrong name.", "not a Word file"),
        ("empty.mbox", b"", "no messages in the mailbox"),
        ("noise.eml", b"\n\nno headers, just words", "not an e-mail message"),
        ("broken.rss", b"\x00\x01 not XML at all", "not a readable feed"),
        ("config.xml", b"<?xml version='1.0'?><settings><colour>blue</colour></settings>", "not an RSS or Atom feed"),
        (
            "empty.rss",
            b"<rss version='2.0'><channel><title>Nothing yet</title></channel></rss>",
            "the feed has no items",
        ),
    ],
)
def test_bad_files_raise_with_name_and_reason(tmp_path: Path, name, data, reason):
    """One line naming the file, whatever the format (Word files, mail and feeds included)."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(IngestError, match=reason) as info:
        read_documents(path, name)
    assert str(info.value).startswith(f"{name}: ") and "\n" not in str(info.value)


def test_dates_parsed_only_when_unambiguous():
    assert parse_date("Posted January. 23, 2025 07:40") == "2025-01-23"
    assert parse_date("Published 5 March 2024") == "2024-03-05"
    assert parse_date("2023-11-02T10:00") == "2023-11-02"
    assert parse_date("3 hours ago") is None
    assert parse_date("February 30, 2024") is None


SPLIT_PAGE = """Harbour city opens floating solar farm
Posted March 4, 2025
The port authority switched on a floating solar farm on Tuesday. It is the largest in the country.
Advertisement
Why float the panels
Engineers chose a floating design because the water keeps the panels cool.
Share
Comments
Related Articles
Coastal Daily
3 hours ago
- Coastal Daily
Gunsan starts offshore wind auction
The city of Gunsan opened bids for a 1.2-gigawatt offshore wind farm on Monday, officials said.
"""


def test_a_file_of_several_stories_becomes_one_document_each():
    docs = read_documents(CORPUS / "002_4545c625dd368776.txt", "002.txt").documents
    assert [d.title for d in docs] == [
        "Kim Kyoung-soo enters race championing Roh's Sejong-centered vision",
        "PM nominee stresses stronger Seoul-Tokyo ties in meeting with Japanese PM adviser",
        "Lee calls on S. Korea, Japan to join hands for future ahead of 60th anniv. of ties",
        "Lee heads to G7 Summit to manifest Seoul's stability, integrity",
    ]
    assert [d.source for d in docs] == ["002.txt", "002.txt#2", "002.txt#3", "002.txt#4"]
    whole = (CORPUS / "002_4545c625dd368776.txt").read_text()
    assert "".join(d.text for d in docs) == whole, "the articles are consecutive exact slices of the file"
    assert all(d.published is None for d in docs), "'3 hours ago' and dates inside stories are not dates"


def test_a_subhead_after_an_ad_stays_in_its_story_and_a_related_story_splits():
    docs = parse_articles(SPLIT_PAGE, "page.txt")
    assert [(d.source, d.title) for d in docs] == [
        ("page.txt", "Harbour city opens floating solar farm"),
        ("page.txt#2", "Gunsan starts offshore wind auction"),
    ]
    assert docs[0].published == "2025-03-04" and docs[1].published is None
    assert "Why float the panels" in docs[0].text


def test_hard_wrapped_lines_do_not_split_a_story():
    text = (
        "Ferry returns to Ulleungdo\nPosted June 2, 2025\nThe ferry to Ulleungdo resumed on Monday,\n"
        "after a week of storms, the operator said.\nShare\nTickets sold out within an hour,\n"
        "and extra sailings were added for Tuesday.\n"
    )
    assert len(parse_articles(text, "wrapped.txt")) == 1


PAGE_WITH_HEADLINE_RUNS = """Harbour city opens its first floating solar farm
Posted March 4, 2025
By Min-ji Park

The city of Gunsan switched on a floating solar farm on its reservoir on Tuesday, the first of its kind in
the province. The panels cover 40 hectares and will supply about 30,000 homes, the city said.
Officials said the project cost 120 billion won and took two years to build.

Most Read
Seoul Subway Fares Rise for the First Time in Eight Years
[Analysis] What the New Tariffs Mean for Korean Carmakers
"We Will Not Back Down," Says Union Leader After Strike Vote
서울시 "대중교통 요금 인상 불가피"
https://example.com/news/2025/03/04/solar
Home | World | Business | Sport | Culture
"""


def test_runs_of_headlines_and_links_are_fenced_off_with_offsets_kept():
    (doc,) = parse_articles(PAGE_WITH_HEADLINE_RUNS, "page.txt")
    content = "".join(doc.text[a:b] for a, b in doc.segments)
    assert "floating solar farm on its reservoir" in content and "120 billion won" in content
    for furniture in ("Subway Fares", "[Analysis]", "Union Leader", "요금 인상", "example.com/news", "Business"):
        assert furniture in doc.text and furniture not in content
    assert doc.title == "Harbour city opens its first floating solar farm"
    assert all(doc.text[a:b] == PAGE_WITH_HEADLINE_RUNS.strip()[a:b] for a, b in doc.segments)


def test_a_headline_standfirst_and_byline_at_the_top_are_not_furniture():
    text = (
        "Ferry Returns to Ulleungdo After Storms\nOperators Add Extra Sailings for the Holiday\nBy Kim Ji-ho\n"
        "The ferry to Ulleungdo resumed on Monday after a week of storms, the operator said.\n"
    )
    (doc,) = parse_articles(text, "ferry.txt")
    assert "".join(doc.text[a:b] for a, b in doc.segments).startswith("Ferry Returns to Ulleungdo")


def test_a_headline_list_kept_by_html_extraction_is_fenced_off_too():
    from rag.ingest.html_pages import parse_html

    body = (
        "The city of Gunsan switched on a floating solar farm on its reservoir on Tuesday, the first in the province. "
    )
    page = (
        "<html><head><title>Harbour city opens floating solar farm</title></head><body><article>"
        f"<h1>Harbour city opens floating solar farm</h1><p>{body * 3}</p>"
        "<p>Officials said the project cost 120 billion won and the panels would supply about 30,000 homes.</p>"
        "<p>Seoul Subway Fares Rise for the First Time in Eight Years</p>"
        "<p>[Analysis] What the New Tariffs Mean for Korean Carmakers</p>"
        '<p>"We Will Not Back Down," Says Union Leader After Strike Vote</p>'
        "</article></body></html>"
    )
    doc = parse_html(page, "solar.html", "hash")
    content = "".join(doc.text[a:b] for a, b in doc.segments)
    assert "Tariffs" in doc.text and "Subway Fares" in doc.text, "extraction kept the list: the fence must act"
    assert "30,000 homes" in content and "Tariffs" not in content and "Subway Fares" not in content


def test_a_markdown_heading_gives_its_words_as_the_title_and_the_text_keeps_its_marks(tmp_path: Path):
    (tmp_path / "solar.md").write_text(
        "# Mokpo floating solar farm opens #\n\nThe 40-megawatt farm on the Yeongsan river will supply 18,000 "
        "households, the city said.\n\n## C# tooling, and #hashtags, stay as written\n"
    )
    (doc,) = read_documents(tmp_path / "solar.md", "solar.md").documents
    assert doc.title == "Mokpo floating solar farm opens"
    assert doc.text.startswith("# Mokpo floating solar farm opens #\n")  # offsets point into the file as it is
    assert parse_document("C# 12 released today\nThe compiler is faster.", "c.txt").title == "C# 12 released today"
