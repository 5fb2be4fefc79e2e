"""A JSON Lines export of many tiny records: wall time and peak memory of `rag index` as the export grows.

    python bench/exports.py [--sizes 100k,1M] [--work DIR]

Each size is a JSONL file of that many short records (about 38 bytes of text each, as a feed of one-line
items), indexed by `rag index` in a new process with the stand-in encoder (`--model hashing`, so reading,
grouping and storing show rather than the model). A file over `rag.build.update.STREAM_BYTES` is read and
committed EXPORT_BATCH records at a time: peak memory should not grow with the file. Prints wall time,
records a second and peak RSS per size, with the load average.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import load, rag, run  # noqa: E402

SIZES = {"10k": 10_000, "100k": 100_000, "300k": 300_000, "1M": 1_000_000}


def write_feed(path: Path, records: int) -> None:
    with path.open("w") as f:
        for i in range(records):
            f.write(
                json.dumps({"title": f"Item {i}", "text": f"Ship {i} left port on day {i % 31}.", "date": "2024-01-02"})
            )
            f.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100k,1M")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="verbatim-exports-"))
    for label in args.sizes.split(","):
        corpus, index = work / f"feed-{label}", work / f"index-{label}"
        shutil.rmtree(index, ignore_errors=True)
        corpus.mkdir(parents=True, exist_ok=True)
        write_feed(corpus / "feed.jsonl", SIZES[label])
        size_mb = (corpus / "feed.jsonl").stat().st_size / 1e6
        wall, peak, _ = run(rag("index", str(corpus), "--index", str(index), "--model", "hashing", "--quiet"))
        print(
            f"{label} records ({size_mb:.0f} MB): {wall:.0f} s, {SIZES[label] / wall:,.0f} records/s, "
            f"peak {peak} MB ({load()})",
            flush=True,
        )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
