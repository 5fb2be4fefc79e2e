"""Saved RSS/Atom feeds and sitemaps, written here; linked pages served by a web server this test starts on
127.0.0.1 (the machine is offline, as many newsrooms' indexing machines are)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import Index
from rag.errors import IngestError
from rag.ingest.exports import RecordFields
from rag.ingest.files import read_documents
from tests.conftest import DATA, free_port

FETCH = RecordFields(fetch_links=True)
REQUESTED: list[str] = []  # every path the test site was asked for
BUSAN_PAGE = (DATA / "formats" / "coastal_times_busan.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """A news site on 127.0.0.1 serving one article page; every other path is a 404."""

    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            REQUESTED.append(self.path)
            if self.path in ("/busan-port.html", "/feed.xml"):
                body = BUSAN_PAGE.encode() if self.path == "/busan-port.html" else rss(self.site).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        site = ""

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Pages)
    Pages.site = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def rss(base: str) -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Coastal Times</title><link>{base}/</link>
<item><title>Busan port handles record containers</title><link>{base}/busan-port.html</link>
  <pubDate>Fri, 14 Mar 2025 08:00:00 +0900</pubDate><dc:creator>Park Min-ji</dc:creator>
  <description>Busan port had its busiest February.</description></item>
<item><title>Jeju ferry fares rise</title><link>{base}/gone.html</link>
  <pubDate>Tue, 04 Mar 2025 07:30:00 +0900</pubDate>
  <content:encoded><![CDATA[<p>Ferry operators serving Jeju will raise fares by <b>8 percent</b> from April,
  citing fuel costs.</p><script>alert(1)</script><p>The transport ministry approved the rise on Friday.</p>]]>
  </content:encoded></item>
<item><title>An item with nothing in it</title><link>{base}/empty.html</link></item>
</channel></rss>"""


def test_feed_items_become_articles_with_their_metadata_and_the_empty_one_is_named(tmp_path: Path, site):
    path = tmp_path / "coastal.rss"
    path.write_text(rss(site), encoding="utf-8")
    found = read_documents(path, "coastal.rss")  # no fetching unless asked
    busan, ferry = found.documents
    assert (busan.source, busan.title, busan.url) == (
        "coastal.rss#1",
        "Busan port handles record containers",
        f"{site}/busan-port.html",
    )
    assert (busan.published, busan.author, busan.site) == (
        "2025-03-14",
        "Park Min-ji",
        "Coastal Times",
    )  # the publisher's day
    assert busan.text == "Busan port had its busiest February."
    assert ferry.text == (
        "Ferry operators serving Jeju will raise fares by 8 percent from April, citing fuel costs.\n"
        "The transport ministry approved the rise on Friday."
    )
    assert found.problems == [("coastal.rss#3", "the item has no text (no content or summary)")]
    only_summary = "1 of its 3 items gave only a summary (the pages they link were not fetched)"
    assert found.notes == [("coastal.rss", only_summary)]


def test_with_fetch_links_an_item_is_its_pages_article_and_an_unreachable_page_is_named(tmp_path: Path, site):
    path = tmp_path / "coastal.rss"
    path.write_text(rss(site), encoding="utf-8")
    found = read_documents(path, "coastal.rss", FETCH)
    busan, ferry = found.documents
    assert busan.text.startswith(
        "Busan port sets container record as shippers reroute\nBusan port handled 2.21 million"
    )
    assert (busan.source, busan.author, busan.site) == ("coastal.rss#1", "Park Min-ji", "Coastal Times")
    assert busan.url == "https://www.coastaltimes.example/business/2025/03/14/busan-port-record"  # the page's own
    assert ferry.text.startswith("Ferry operators serving Jeju")  # its page is gone: the feed's own text stays
    notes = dict(found.notes)
    assert notes["coastal.rss#2"] == f"could not fetch {site}/gone.html (HTTP 404); its summary was indexed"


def test_an_atom_feed_is_read_too(tmp_path: Path):
    path = tmp_path / "wire.atom"
    path.write_text(
        """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Wire</title>
<entry><title>Gwangju opens a tram line</title><link href="https://wire.example/tram"/>
<updated>2025-09-01T09:00:00+09:00</updated><author><name>Lim Tae-yang</name></author>
<content type="html">&lt;p&gt;Gwangju opened its first tram line along the old rail bed on Monday.&lt;/p&gt;</content>
</entry></feed>""",
        encoding="utf-8",
    )
    doc = read_documents(path, "wire.atom").documents[0]
    assert (doc.title, doc.url, doc.published, doc.author, doc.site) == (
        "Gwangju opens a tram line",
        "https://wire.example/tram",
        "2025-09-01",
        "Lim Tae-yang",
        "Wire",
    )
    assert doc.text == "Gwangju opened its first tram line along the old rail bed on Monday."


def test_a_sitemap_is_read_only_by_fetching_its_pages(tmp_path: Path, site):
    path = tmp_path / "sitemap.xml"
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>{site}/busan-port.html</loc><news:news><news:title>Busan record</news:title>
<news:publication_date>2025-03-14</news:publication_date></news:news></url>
<url><loc>{site}/missing.html</loc></url></urlset>""",
        encoding="utf-8",
    )
    with pytest.raises(IngestError, match="sitemap.xml: a sitemap lists pages without their text; fetch them with"):
        read_documents(path, "sitemap.xml")
    found = read_documents(path, "sitemap.xml", FETCH)
    assert [d.source for d in found.documents] == ["sitemap.xml#1"] and "2.21 million" in found.documents[0].text
    assert found.documents[0].published == "2025-03-14"
    assert dict(found.notes)["sitemap.xml#2"] == f"could not fetch {site}/missing.html (HTTP 404); not indexed"


@pytest.mark.slow  # the real model
def test_a_feed_is_indexed_answered_and_sliced_exactly(tmp_path: Path, site):
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "coastal.rss").write_text(rss(site), encoding="utf-8")
    index = Index(tmp_path / "index")
    report = index.add([folder])
    assert [name for name, _ in report.skipped] == ["coastal.rss#3"]
    fares = index.search("By how much will Jeju ferry fares rise?", k=1).passages[0]
    assert (fares.source, fares.site, fares.published) == ("coastal.rss#2", "Coastal Times", "2025-03-04")
    assert index.document(fares.doc_id).text[fares.start : fares.end] == fares.text and "alert" not in fares.text


def test_a_truncated_feed_gives_the_items_it_recovers_and_says_it_was_cut(tmp_path: Path):
    path = tmp_path / "cut.rss"
    path.write_bytes(
        b'<rss version="2.0"><channel><title>Wire</title><item><title>Ferry fares</title>'
        b"<description>Jeju ferry fares rise by 8 percent from April.</description></item><item><title>B</title><descr"
    )
    found = read_documents(path, "cut.rss")
    assert [d.text for d in found.documents] == ["Jeju ferry fares rise by 8 percent from April."]
    assert found.notes[0][0] == "cut.rss" and found.notes[0][1].startswith("not a well-formed feed (")
    assert found.problems == [("cut.rss#2", "the item has no text (no content or summary)")]


def test_an_entity_naming_a_file_outside_the_corpus_is_never_read(tmp_path: Path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("SECRET-OUTSIDE-THE-CORPUS")
    doctype = f'<!DOCTYPE rss [<!ENTITY leak SYSTEM "file://{secret}">]>'
    path = tmp_path / "corpus" / "evil.rss"
    path.parent.mkdir()
    path.write_text(
        f'<?xml version="1.0"?>{doctype}<rss version="2.0"><channel><title>T</title><item><title>A</title>'
        "<description>Before &leak; and after: the rest of the item's words.</description></item></channel></rss>"
    )
    sitemap = path.with_name("evil.xml")
    sitemap.write_text(
        f'<?xml version="1.0"?>{doctype.replace("rss", "urlset")}<urlset xmlns="http://www.sitemaps.org/schemas/'
        'sitemap/0.9"><url><loc>http://127.0.0.1:9/&leak;</loc></url></urlset>'
    )
    for file, fields in ((path, RecordFields()), (sitemap, FETCH)):
        try:
            found = read_documents(file, file.name, fields)
        except IngestError as exc:
            assert "SECRET" not in str(exc)
            continue
        everything = repr((found.documents, found.notes, found.problems))
        assert "SECRET" not in everything


@pytest.mark.slow  # the real model
def test_a_feed_added_in_the_chat_never_makes_the_server_fetch(tmp_path: Path, site):
    from rag.serve.chat_service import ChatService

    upload = tmp_path / "dropped" / "coastal.rss"
    upload.parent.mkdir()
    upload.write_text(rss(site), encoding="utf-8")
    asked_before = len(REQUESTED)
    service = ChatService(Index(tmp_path / "index"), tmp_path / "uploads")
    service.add_files([upload])
    assert len(REQUESTED) == asked_before
    fares = service.index.search("By how much will Jeju ferry fares rise?", k=1).passages[0]
    assert fares.source == "coastal.rss#2"


@pytest.mark.slow  # the real model
def test_rag_index_fetch_links_reads_the_pages_and_names_the_one_it_could_not_fetch(tmp_path: Path, site, capsys):
    from rag.serve.cli import main

    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "coastal.rss").write_text(rss(site), encoding="utf-8")
    assert main(["index", str(folder), "--index", str(tmp_path / "index"), "--fetch-links", "--quiet"]) == 0
    said = capsys.readouterr()
    assert f"coastal.rss#2: could not fetch {site}/gone.html (HTTP 404); its summary was indexed" in said.out + said.err
    busan = Index(tmp_path / "index").search("How many containers did Busan port handle in February?", k=1)
    assert busan.passages[0].source == "coastal.rss#1" and "2.21 million" in busan.passages[0].text


@pytest.mark.slow  # the real model
def test_rag_index_of_a_feed_address_keeps_the_feed_in_the_uploads_folder_and_indexes_it(
    tmp_path: Path, site, capsys, monkeypatch
):
    from rag.serve.cli import main

    monkeypatch.delenv("RAG_UPLOADS", raising=False)
    index = tmp_path / "index"
    assert main(["index", f"{site}/feed.xml", "--index", str(index), "--fetch-links", "--quiet"]) == 0
    said = capsys.readouterr().err
    kept = list((tmp_path / "index-uploads" / "feeds").iterdir())
    assert len(kept) == 1 and kept[0].read_text(encoding="utf-8") == rss(site)
    assert f"fetched {site}/feed.xml into {kept[0]}" in said
    busan = Index(index).search("How many containers did Busan port handle in February?", k=1).passages[0]
    assert busan.source == f"feeds/{kept[0].name}#1" and "2.21 million" in busan.text
    assert main(["index", f"{site}/feed.xml", "--index", str(index), "--quiet"]) == 0  # fetched again: the same
    assert main(["index", f"{site}/no-feed-here.xml", "--index", str(index), "--quiet"]) == 2
    assert f"error: {site}/no-feed-here.xml: cannot fetch it (HTTP 404)" in capsys.readouterr().err


def test_an_item_whose_page_is_saved_beside_the_feed_is_that_pages_article(tmp_path: Path):
    folder = tmp_path / "news"
    folder.mkdir()
    canonical = "https://www.coastaltimes.example/business/2025/03/14/busan-port-record"
    (folder / "coastal.rss").write_text(
        rss("http://unused.example").replace(
            "http://unused.example/busan-port.html", canonical.replace("https://", "http://") + "/"
        ),
        encoding="utf-8",
    )
    found = read_documents(folder / "coastal.rss", "coastal.rss")
    assert found.documents[0].text == "Busan port had its busiest February."  # no page saved yet: the summary
    (folder / "busan_port.html").write_text(BUSAN_PAGE, encoding="utf-8")
    (folder / ".hidden.html").write_text(BUSAN_PAGE.replace("2.21 million", "9.99 million"), encoding="utf-8")
    busan, ferry = read_documents(folder / "coastal.rss", "coastal.rss").documents
    assert busan.source == "coastal.rss#1" and "2.21 million" in busan.text and busan.url == canonical
    assert ferry.text.startswith("Ferry operators serving Jeju")  # its page is not saved: its own text
