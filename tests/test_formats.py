"""Mixed real-world collections: saved web pages, PDFs, JSON exports, legacy encodings, copies of stories,
and files that are not what they claim, indexed together and searched with filters."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfWriter

from rag import Index
from rag.errors import IngestError, InvalidQueryError
from rag.ingest.exports import RecordFields
from rag.ingest.files import read_documents
from tests.conftest import CORPUS, DATA

FORMATS = DATA / "formats"

PDF_PAGES = [
    "Annual report of the Gangneung Coffee Festival\n"
    "The 2024 festival drew 310,000 visitors over four days, up from 280,000 the year before.\n"
    "Roasters from 14 countries took part, and the city counted 1.2 billion won in local spending.",
    "Plans for 2025\n"
    "Next year the festival will move to the Anmok beach promenade, where a tent village will hold 90 stalls.\n"
    "Organisers will ban single-use cups and ask visitors to bring their own tumblers.",
]


def write_pdf(path: Path, pages: list[str], title: str = "Festival report", author: str = "Gangneung City") -> Path:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_creation_date(datetime(2024, 11, 30, 9, 0, tzinfo=timezone.utc))
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
        else:
            pdf.rect(20, 20, 100, 60, style="F")  # a "scan": marks on the page, no text layer
    pdf.output(str(path))
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Path, list[tuple[str, str]]]:
    """One folder of everything, indexed once; returns the index, the folder and what was skipped."""
    folder = tmp_path_factory.mktemp("mixed") / "news"
    (folder / "web").mkdir(parents=True)
    shutil.copy(FORMATS / "coastal_times_busan.html", folder / "web" / "busan_port.html")
    shutil.copy(FORMATS / "wire_export.jsonl", folder / "wire_export.jsonl")
    shutil.copy(CORPUS / "001_33dd8276e80e8104.txt", folder / "dpk.txt")
    shutil.copy(CORPUS / "001_33dd8276e80e8104.txt", folder / "dpk_saved_again.txt")  # same bytes, other file
    shutil.copy(FORMATS / "rail_wire_story.txt", folder / "rail.txt")
    shutil.copy(FORMATS / "rail_republished.txt", folder / "rail_republished.txt")  # new headline and footer
    shutil.copy(FORMATS / "busan_metro_line5.txt", folder / "busan_metro.txt")
    write_pdf(folder / "festival.pdf", PDF_PAGES)
    korean = "부산항 물동량 역대 최대\n부산항의 2월 컨테이너 물동량이 221만 개로 같은 달 기준 역대 최대를 기록했다.\n"
    (folder / "busan_korean.txt").write_bytes(korean.encode("cp949"))
    (folder / "cafe.txt").write_bytes(
        "Café culture in Seoul\nThe café owner said crème brûlée sells out by noon.\n".encode("latin-1")
    )
    index = Index(tmp_path_factory.mktemp("mixed-index"))
    report = index.add([folder])
    return index, folder, report.skipped


def test_saved_news_page_gives_the_article_and_its_metadata_without_page_furniture():
    doc = read_documents(FORMATS / "coastal_times_busan.html", "busan.html").documents[0]
    assert doc.title == "Busan port sets container record as shippers reroute"
    assert doc.author == "Park Min-ji"
    assert doc.published == "2025-03-14"
    assert doc.url == "https://www.coastaltimes.example/business/2025/03/14/busan-port-record"
    assert doc.site == "Coastal Times"
    assert "2.21 million twenty-foot containers" in doc.text and "automated terminal" in doc.text
    for furniture in ("Advertisement", "Subscribe", "Incheon airport cargo dips", "fake news", "All rights reserved"):
        assert furniture not in doc.text


def test_pdf_pages_are_kept_for_attribution(tmp_path: Path):
    doc = read_documents(write_pdf(tmp_path / "report.pdf", PDF_PAGES), "report.pdf").documents[0]
    assert doc.title == "Festival report" and doc.author == "Gangneung City" and doc.published == "2024-11-30"
    assert len(doc.pages) == 2
    at = doc.text.index("Anmok beach")
    assert doc.page_at(at) == 2 and doc.page_at(doc.text.index("310,000 visitors")) == 1
    assert all(doc.page_at(s) == doc.page_at(e - 1) for s, e in doc.segments), "a segment never spans two pages"


def test_jsonl_export_records_become_articles_and_bad_records_are_named():
    ingested = read_documents(FORMATS / "wire_export.jsonl", "wire.jsonl")
    docs = {d.source: d for d in ingested.documents}
    assert sorted(docs) == ["wire.jsonl#1", "wire.jsonl#2", "wire.jsonl#5"]
    ferry = docs["wire.jsonl#1"]
    assert ferry.title == "Jeju ferry service suspended as typhoon nears"
    assert ferry.author == "Choi Eun-ha, Lim Tae-yang" and ferry.published == "2025-08-07"
    assert ferry.url == "https://wire.example/2025/08/07/jeju-ferry" and ferry.site == "Wire Korea"
    assert docs["wire.jsonl#5"].published == "2025-05-21"
    problems = dict(ingested.problems)
    assert problems["wire.jsonl#3"].startswith("no text")
    assert problems["wire.jsonl#4"].startswith("not JSON")


def test_record_field_names_are_configurable(tmp_path: Path):
    path = tmp_path / "cms.json"
    path.write_text(
        json.dumps(
            {
                "items": [
                    {
                        "story_html_text": "Gwangju opens a tram line along its old rail bed.",
                        "hed": "Gwangju tram opens",
                        "when": "2025-09-01",
                    }
                ]
            }
        )
    )
    fields = RecordFields().with_override("text=story_html_text").with_override("title=hed")
    fields = fields.with_override("date=when")
    doc = read_documents(path, "cms.json", fields).documents[0]
    assert (doc.title, doc.published, doc.source) == ("Gwangju tram opens", "2025-09-01", "cms.json#1")


def test_cp949_and_latin1_files_decode(mixed):
    index, _, _ = mixed
    korean = index.search("부산항 컨테이너 물동량", k=1).passages[0]
    assert korean.source == "busan_korean.txt" and "221만 개" in korean.text
    cafe = index.search("When does the crème brûlée sell out?", k=1).passages[0]
    assert cafe.source == "cafe.txt" and "crème brûlée sells out by noon" in cafe.text


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("locked.pdf", "encrypted", "encrypted PDF that needs a password"),
        ("scan.pdf", "image_only", "no text layer in 1 page(s)"),
        ("huge.txt", "sparse_200mb", "too large (210 MB; limit 52 MB)"),
        ("photo.txt", "png", "the file is a PNG image, not a .txt article"),
        ("report.pdf", "not_pdf", "not a PDF"),
        ("page.html", "truncated_nav_only", "no article text found"),
        ("slides.pptx", "text", "unsupported file type '.pptx'"),
    ],
)
def test_bad_files_get_one_line_reasons(tmp_path: Path, name, make, reason):
    path = tmp_path / name
    if make == "encrypted":
        writer = PdfWriter(clone_from=write_pdf(tmp_path / "plain.pdf", PDF_PAGES))
        writer.encrypt(user_password="secret", algorithm="RC4-128")
        writer.write(path)
    elif make == "image_only":
        write_pdf(path, [""])
    elif make == "sparse_200mb":
        with path.open("wb") as f:
            f.truncate(210 * 1000 * 1000)
    elif make == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    elif make == "not_pdf":
        path.write_text("Meeting notes, not a PDF at all.")
    elif make == "truncated_nav_only":
        page = (FORMATS / "coastal_times_busan.html").read_text()
        path.write_text(page[: page.index("<article>")])  # cut off before the article body
    else:
        path.write_text("text")
    with pytest.raises(IngestError) as info:
        read_documents(path, name)
    message = str(info.value)
    assert message.startswith(f"{name}: ") and reason in message and "\n" not in message


def test_a_pdf_saved_with_an_html_name_is_read_as_a_pdf(tmp_path: Path):
    path = tmp_path / "download.html"
    path.write_bytes(write_pdf(tmp_path / "x.pdf", PDF_PAGES).read_bytes())
    doc = read_documents(path, "download.html").documents[0]
    assert len(doc.pages) == 2 and "310,000 visitors" in doc.text


def test_truncated_html_keeps_what_arrived(tmp_path: Path):
    page = (FORMATS / "coastal_times_busan.html").read_text()
    path = tmp_path / "cut.html"
    path.write_text(page[: page.index("Analysts warned")])
    doc = read_documents(path, "cut.html").documents[0]
    assert "automated terminal" in doc.text and doc.title.startswith("Busan port sets container record")


def test_korean_page_in_euc_kr_declares_its_charset(tmp_path: Path):
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=euc-kr">'
        "<title>대구 금호강 공원 개장</title></head><body><article><h1>대구 금호강 공원 개장</h1>"
        "<p>대구시는 수요일 옛 섬유공장 부지에 27헥타르 규모의 강변 공원을 열었다고 밝혔다.</p>"
        "<p>시는 나무 1만2천 그루를 심기 전에 토양 정화에 410억 원을 썼다.</p></article></body></html>"
    )
    path = tmp_path / "daegu.html"
    path.write_bytes(html.encode("cp949"))
    doc = read_documents(path, "daegu.html").documents[0]
    assert "27헥타르" in doc.text and "410억 원" in doc.text


def test_mixed_folder_indexes_every_good_file_and_names_every_bad_record(mixed):
    index, _, skipped = mixed
    assert dict(skipped) == {
        "wire_export.jsonl#3": "no text (looked for text, body, content, article, maintext; "
        "set one with --field text=KEY)",
        "wire_export.jsonl#4": "not JSON (Expecting value at column 1)",
    }
    sources = {d["source"] for d in index.info().to_dict()["documents"]}
    assert {"web/busan_port.html", "festival.pdf", "wire_export.jsonl#1", "dpk_saved_again.txt"} <= sources


def test_answers_carry_metadata_from_each_format(mixed):
    index, _, _ = mixed
    web = index.search("How many containers did Busan port handle in February?", k=1).passages[0]
    assert (web.source, web.author, web.published, web.page) == (
        "web/busan_port.html",
        "Park Min-ji",
        "2025-03-14",
        None,
    )
    pdf = next(
        p for p in index.search("Where will the coffee festival move next year?", k=2).passages if "Anmok" in p.text
    )
    assert (pdf.source, pdf.page, pdf.author) == ("festival.pdf", 2, "Gangneung City")
    record = index.search("How many passengers were stranded at Jeju port?", k=1).passages[0]
    assert record.source == "wire_export.jsonl#1" and record.author == "Choi Eun-ha, Lim Tae-yang"
    payload = next(
        p
        for p in index.search("Which cups will the coffee festival ban?", k=2).to_dict()["passages"]
        if "single-use" in p["text"]
    )
    assert (payload["page"], payload["author"], payload["published"]) == (2, "Gangneung City", "2024-11-30")


def test_every_passage_is_an_exact_slice_of_its_document(mixed):
    index, _, _ = mixed
    for question in ("Busan port record", "coffee festival tumblers", "typhoon ferry", "KTX trains Gangneung"):
        for p in index.search(question, k=5).passages:
            assert index.document(p.doc_id).text[p.start : p.end] == p.text


def test_the_same_article_saved_twice_is_indexed_once_with_both_sources(mixed):
    index, _, _ = mixed
    docs = {d["source"]: d for d in index.info().to_dict()["documents"]}
    assert docs["dpk_saved_again.txt"]["copy_of"] == "dpk.txt" and docs["dpk_saved_again.txt"]["chunks"] == 0
    top = index.search("What did the DPK leader say about US-North Korea talks?", k=5).passages
    assert top[0].source == "dpk.txt"
    assert [(c.source, c.exact) for c in top[0].copies] == [("dpk_saved_again.txt", True)]
    assert all(p.source != "dpk_saved_again.txt" for p in top)
    only_copy = index.search("DPK leader US-North Korea talks", k=1, source="dpk_saved_again.txt").passages
    assert only_copy and only_copy[0].doc_id == top[0].doc_id, "filtering on the copy finds the shared text"


def test_a_republished_wire_story_is_one_result_listing_its_copy(mixed):
    index, _, _ = mixed
    passages = index.search("How many KTX trains will run to Gangneung each day?", k=5).passages
    rail = [p for p in passages if p.source in ("rail.txt", "rail_republished.txt")]
    assert len(rail) == 1
    other = ({"rail.txt", "rail_republished.txt"} - {rail[0].source}).pop()
    assert [(c.source, c.exact) for c in rail[0].copies] == [(other, False)]
    stories = [p.doc_id for p in passages]
    assert len(stories) == len(set(stories)), "the top five are five different stories"
    assert any(p.source == "busan_metro.txt" for p in index.search("new train and subway lines", k=10).passages)


def test_date_and_site_filters(mixed):
    index, _, _ = mixed
    march = index.search("port containers record", k=5, since="2025-03", until="2025-03")
    assert march.passages and all(p.published.startswith("2025-03") for p in march.passages)
    summer = index.search("typhoon ferry passengers", k=5, since="2025-06-01", until="2025-12-31")
    assert {p.source for p in summer.passages} <= {"wire_export.jsonl#1", "wire_export.jsonl#2"}
    assert all(p.published for p in summer.passages), "undated articles are left out of a date range"
    by_site = index.search("port", k=5, source="coastaltimes.example")
    assert {p.source for p in by_site.passages} == {"web/busan_port.html"}
    assert {p.source for p in index.search("trains", k=5, source="Wire Korea").passages} <= {
        "wire_export.jsonl#1",
        "wire_export.jsonl#2",
        "wire_export.jsonl#5",
    }
    with pytest.raises(InvalidQueryError, match="YYYY, YYYY-MM or YYYY-MM-DD"):
        index.search("port", since="last week")


def test_cli_filters_and_json_metadata(mixed, tmp_path: Path):
    import subprocess
    import sys

    index, _, _ = mixed
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "rag",
            "ask",
            "Where will the coffee festival move?",
            "--index",
            str(index.path),
            "--since",
            "2024",
            "--until",
            "2024-12",
            "--json",
            "--k",
            "2",
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=True,
    )
    passages = json.loads(run.stdout)["passages"]
    assert {p["source"] for p in passages} == {"festival.pdf"}, "only the 2024 article"
    top = next(p for p in passages if "single-use cups" in p["text"])
    assert (top["source"], top["page"], top["published"], top["author"]) == (
        "festival.pdf",
        2,
        "2024-11-30",
        "Gangneung City",
    )


FURNITURE = [
    "ADVERTISEMENT",
    "Article continues below advertisement",
    "Sign up for our morning newsletter",
    "Get our free weekly newsletter in your inbox",
    "Share on Facebook",
    "Follow us on Twitter @harbourgazette",
    "View 12 comments",
    "Join the conversation",
]
BODY = (
    "Harbour pilots in Busan stopped work on Monday over night-shift pay.\n"
    "{}\n"
    "Forty container ships waited outside the breakwater until the evening, the port authority said.\n"
    "{}\n"
    "The union said talks would resume on Wednesday."
)


def furniture_left(index: Index) -> list[str]:
    """Furniture lines that any passage of `index` holds."""
    passages = index.search("Busan harbour pilots container ships union talks", k=20, mode="keyword").passages
    return [line for p in passages for line in FURNITURE if line in p.text]


def test_export_records_and_pdf_pages_fence_furniture_as_text_files_do(tmp_path: Path):
    """Newsletter sign-ups, "Article continues below" and share and comment prompts inside a JSONL record's
    body or on a PDF page are no passage's text, as in a text file; the article's own lines all are, and the
    stored text stays whole (offsets exact)."""
    folder = tmp_path / "articles"
    folder.mkdir()
    records = [
        {"title": "Busan pilots strike", "text": BODY.format(FURNITURE[2 * n], FURNITURE[2 * n + 1])} for n in range(4)
    ]
    (folder / "wire.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:2]))
    write_pdf(folder / "report.pdf", [records[2]["text"], records[3]["text"]], title="Busan pilots strike")
    (folder / "only.jsonl").write_text(json.dumps({"title": "x", "text": "ADVERTISEMENT\nShare on Facebook"}) + "\n")
    skipped: dict[str, str] = {}
    index = Index(tmp_path / "idx", model="hashing")
    index.add([folder], on_skip=lambda name, why: skipped.setdefault(name, why))
    assert skipped == {"only.jsonl#1": "nothing but page boilerplate"}
    assert furniture_left(index) == []
    for p in index.search("container ships breakwater union talks", k=20, mode="keyword").passages:
        assert index.document(p.doc_id).text[p.start : p.end] == p.text
    texts = " ".join(p.text for p in index.search("pilots ships union", k=20, mode="keyword").passages)
    assert "Forty container ships waited" in texts and "talks would resume on Wednesday" in texts
    stored = " ".join(index.document(d.doc_id).text for d in index.documents()[0])
    assert all(line in stored for line in FURNITURE), "the stored text is whole: only passages leave furniture out"
