"""Memory of `rag index` on web archives of growing size: a crawl is read a record at a time and committed a
batch at a time, so the peak resident memory should not grow with the file.

    python bench/warc_memory.py --mb 100 1000

Writes crawls of ~100 KB pages (an article inside a page of scripts, as real pages are) with warcio, indexes
each in a fresh child process with the hashing stand-in encoder (the model's memory is not what is measured),
and prints pages/s, MB/s and the child's peak RSS, with the load average beside each timing.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

PAGE_KB = 100
CHILD = """
import resource, sys
from rag.serve.cli import main
code = main(sys.argv[1:])
print("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
sys.exit(code)
"""


def page(n: int) -> bytes:
    script = "<script>var tracking = '" + ("x" * (PAGE_KB * 1024 - 1200)) + "';</script>"
    return (
        f"<html><head><title>Harbour report {n}</title>{script}</head><body><article><h1>Harbour report {n}</h1>"
        f"<p>The harbour at Busan loaded {n * 7 + 3} container ships on day {n % 31} of month {n % 12}, the port "
        f"authority said, a figure its officials called steady for the season of {n}.</p><p>Shipping lines said "
        f"berth number {n % 97} would stay open through the night to clear the queue of {n % 13} vessels.</p>"
        "</article></body></html>"
    ).encode()


def write_crawl(path: Path, megabytes: int) -> int:
    pages = megabytes * 1024 // PAGE_KB
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=True)
        for n in range(pages):
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            url = f"https://coastal.example/harbour/{n}"
            record = writer.create_warc_record(url, "response", payload=io.BytesIO(page(n)), http_headers=http)
            writer.write_record(record)
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, nargs="+", default=[100, 1000], help="uncompressed crawl sizes in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for megabytes in args.mb:
            folder = Path(tmp) / f"crawl{megabytes}"
            folder.mkdir()
            pages = write_crawl(folder / "crawl.warc.gz", megabytes)
            size = (folder / "crawl.warc.gz").stat().st_size
            os.utime(folder / "crawl.warc.gz", (time.time() - 60, time.time() - 60))
            load = os.getloadavg()
            started = time.perf_counter()
            child = subprocess.run(
                [sys.executable, "-c", CHILD, "index", str(folder), "--index", str(folder / "idx")]
                + ["--model", "hashing", "--quiet"],
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - started
            peak = next(line.split()[1] for line in child.stderr.splitlines() if line.startswith("peak_rss_mb"))
            print(
                f"{megabytes:>6} MB of pages ({size / 1e6:.0f} MB gzipped, {pages:,} pages): {seconds:.1f} s, "
                f"{pages / seconds:.0f} pages/s, {megabytes / seconds:.1f} MB/s, peak RSS {float(peak):.0f} MB "
                f"(load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before)"
            )


if __name__ == "__main__":
    main()
