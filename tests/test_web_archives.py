"""Web archives (.warc, .warc.gz) written here with warcio: one article per HTML page, under the URL crawled,
dated only by the page itself; everything else in the crawl counted; a cut-off archive named."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from rag import Index
from rag.citations import citation, csl_items
from rag.ingest.files import read_documents
from rag.serve.render import ShownPassage, answer_text
from tests.warc_pages import write_crawl


def passed_over(pages: int) -> str:
    return (
        "passed over: 1 HTML page without article text, 2 responses that are not HTML pages, 1 revisit, "
        f"{pages} requests, metadata and other records"
    )


@pytest.mark.parametrize("name", ["crawl.warc.gz", "crawl.warc"])
def test_each_html_page_is_an_article_under_its_url_and_the_rest_is_counted(tmp_path: Path, name):
    path = tmp_path / name
    write_crawl(path, 6, gzip=name.endswith(".gz"))
    found = read_documents(path, name)
    assert [d.title for d in found.documents] == [f"Harbour report {n}" for n in range(6)]
    assert [d.url for d in found.documents] == [f"https://coastal.example/harbour/{n}" for n in range(6)]
    # Dated by the page when it says so; never by the day it was crawled (2026-11-30).
    assert [d.published for d in found.documents] == ["2025-03-01", None, "2025-03-03", None, "2025-03-05", None]
    assert all(d.source.startswith(f"{name}#") and d.source.rpartition("#")[2].isdigit() for d in found.documents)
    assert "Home" not in found.documents[0].text and "loaded 3 container ships" in found.documents[0].text
    assert found.problems == [] and found.notes == [(name, f"6 article pages read; {passed_over(6)}")]


def test_an_archive_cut_off_midway_gives_what_came_before_and_names_the_cut(tmp_path: Path):
    whole = tmp_path / "whole.warc.gz"
    write_crawl(whole, 10, extras=False)
    data = whole.read_bytes()
    # Cut in the middle of the 7th page's record, never at a record's edge (a cut at a fixed share of the
    # bytes sometimes fell on one, or on its last checksum byte, and the archive read as whole).
    with whole.open("rb") as f:
        records = ArchiveIterator(f)
        edges = [(records.get_record_offset(), records.get_record_length()) for _ in records]
    start, length = edges[13]  # requests and responses alternate: record 13 is page 6's response
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: start + length // 2])
    found = read_documents(cut, "cut.warc.gz")
    assert [d.title for d in found.documents] == [f"Harbour report {n}" for n in range(6)]
    [(name, why)] = found.problems
    assert name == "cut.warc.gz" and why.startswith("damaged or cut off after byte ") and "\n" not in why
    noise = tmp_path / "noise.warc"
    noise.write_bytes(b"not a WARC file at all\r\n" * 20)
    assert read_documents(noise, "noise.warc").problems[0][1].startswith("damaged or cut off")


@pytest.mark.slow  # the real model
def test_a_crawl_is_indexed_with_progress_answered_and_sliced_exactly(tmp_path: Path, capsys):
    from rag.serve.cli import main

    folder = tmp_path / "crawls"
    folder.mkdir()
    write_crawl(folder / "coastal.warc.gz", 12)
    os.utime(folder / "coastal.warc.gz", (time.time() - 60, time.time() - 60))  # settled: not still being written
    assert main(["index", str(folder), "--index", str(tmp_path / "index")]) == 0
    said = capsys.readouterr()
    assert "coastal.warc.gz" in said.err and "B/s" in said.err or "kB" in said.err  # a progress bar by bytes
    assert f"note: coastal.warc.gz: 12 article pages read; {passed_over(12)}" in said.err
    index = Index(tmp_path / "index")
    hit = index.search("How many container ships did the harbour at Busan load on day 7?", k=1).passages[0]
    assert hit.title == "Harbour report 7" and hit.url == "https://coastal.example/harbour/7" and hit.published is None
    assert index.document(hit.doc_id).text[hit.start : hit.end] == hit.text
    # The day of the crawl travels with the page, said as what it is: never as its publication date.
    assert hit.crawled == "2026-11-30" and index.document(hit.doc_id).crawled == "2026-11-30"
    assert main(["ask", "Harbour report 7 container ships on day 7", "--index", str(tmp_path / "index"), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["passages"][0]
    assert (first["published"], first["crawled"]) == (None, "2026-11-30")
    answer = index.search("How many container ships did the harbour at Busan load on day 7?", k=1)
    shown = answer_text(answer, [ShownPassage(hit, None, 1.0, 0)])
    assert "date unknown · crawled 2026-11-30" in shown
    assert "date unknown, crawled 30 November 2026" in citation(hit)
    [item] = csl_items(answer)
    assert item["accessed"] == {"date-parts": [[2026, 11, 30]]} and "issued" not in item
    assert main(["index", str(folder), "--index", str(tmp_path / "index"), "--quiet"]) == 0  # unchanged: not read
    assert "12 unchanged" in capsys.readouterr().out
