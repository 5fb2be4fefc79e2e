"""Web archives written for the tests with warcio's own writer: article pages, and the records a crawl holds
besides them."""

from __future__ import annotations

import io
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

CRAWLED = "2026-11-30T08:00:00Z"


def article_page(n: int, dated: bool = True) -> bytes:
    day = f"2025-03-{n % 28 + 1:02d}T09:00:00+09:00"
    date = f'<meta property="article:published_time" content="{day}">' if dated else ""
    return (
        f"<html><head><title>Harbour report {n}</title>{date}</head><body><nav><a href='/'>Home</a></nav><article>"
        f"<h1>Harbour report {n}</h1><p>The harbour at Busan loaded {n * 7 + 3} container ships on day {n} of the "
        "month, the port authority said, a figure its officials called steady for the season.</p><p>Shipping lines "
        f"said berth number {n % 9 + 1} would stay open through the night to clear the queue of waiting vessels.</p>"
        "</article></body></html>"
    ).encode()


def write_crawl(path: Path, pages: int, extras: bool = True, gzip: bool = True) -> None:
    """`pages` article pages, each with its request; with `extras`, an image, a revisit, a 404 and a section
    front without an article among them."""
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=gzip)

        def response(url: str, body: bytes, content_type: str = "text/html; charset=utf-8", status: str = "200 OK"):
            http = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
            headers = {"WARC-Date": CRAWLED}
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), http_headers=http, warc_headers_dict=headers
            )
            writer.write_record(record)

        for n in range(pages):
            url = f"https://coastal.example/harbour/{n}"
            request = writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"))
            writer.write_record(request)
            response(url, article_page(n, dated=n % 2 == 0))
        if extras:
            response("https://coastal.example/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png")
            response("https://coastal.example/gone", b"<html><body><p>Not found</p></body></html>", status="404 X")
            response("https://coastal.example/section", b"<html><body><ul><li><a href='/a'>A</a></li></ul></body>")
            revisit = writer.create_revisit_record(
                "https://coastal.example/harbour/0",
                digest="sha1:AAAA",
                refers_to_uri="https://coastal.example/harbour/0",
                refers_to_date=CRAWLED,
            )
            writer.write_record(revisit)
