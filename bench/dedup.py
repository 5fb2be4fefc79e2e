"""Near-duplicate grouping on templated records: does the cost per added document stay flat as they pile up?

    python bench/dedup.py [--sizes 1000,2000,4000,8000] [--work DIR]

Writes JSON Lines exports of records made from one template (a market report whose figures and names change:
every record a near-duplicate of every other, all in the same LSH buckets, the worst case for grouping),
indexes each size with the stand-in encoder (`--model hashing`, so grouping rather than the model shows),
then adds one more file of 10 such records to the largest index. Prints wall times, the time per record
and its ratio to the smallest size's, and the number of clusters the records formed (1 is right), with the
load average beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEMPLATE = (
    "Harbour market report for {day}. Container volumes at the port of {port} reached {volume} units this week, "
    "the port authority said on {day}. Rates for a forty-foot box to Rotterdam stood at {rate} dollars, while "
    "feeder services to Busan and Kaohsiung ran on their usual schedules. Analysts at {firm} expect volumes to "
    "stay near this level until the end of the quarter, citing steady demand for electronics and car parts. "
    "Fuel surcharges were unchanged, and no vessel waited more than a day for a berth, the report added."
)
PORTS = ["Busan", "Incheon", "Ulsan", "Gwangyang", "Pyeongtaek", "Mokpo"]
FIRMS = ["Harbour Research", "Capital Shipping", "Valley Analytics", "Metro Freight"]


def write_records(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        text = TEMPLATE.format(
            day=day,
            port=rng.choice(PORTS),
            volume=rng.randint(10_000, 99_999),
            rate=rng.randint(900, 4_000),
            firm=rng.choice(FIRMS),
        )
        lines.append(json.dumps({"title": f"Market report {seed}-{i}", "text": text, "date": day}))
    path.write_text("\n".join(lines) + "\n")


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,2000,4000,8000")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    from rag import Index

    work = args.work or Path(tempfile.mkdtemp(prefix="verbatim-dedup-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    base = None
    index = None
    for n in sizes:
        corpus, folder = work / f"corpus-{n}", work / f"index-{n}"
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        corpus.mkdir(parents=True)
        write_records(corpus / "reports.jsonl", n, seed=n)
        index = Index(folder, model="hashing")
        started = time.perf_counter()
        index.add([corpus], progress=False)
        wall = time.perf_counter() - started
        per = wall / n * 1000
        base = base or per
        with index.searcher.store.read() as reader:
            clusters = len({c for _, _, c in reader.conn.execute("SELECT id, 0, cluster FROM documents")})
        print(
            f"{n:>6} records: {wall:6.1f} s, {per:5.2f} ms a record (x{per / base:.2f}), "
            f"{clusters} cluster(s) ({load()})",
            flush=True,
        )
    write_records(corpus / "more.jsonl", 10, seed=1)
    started = time.perf_counter()
    index.add([corpus], progress=False)
    print(f"add a file of 10 to the {sizes[-1]:,}: {time.perf_counter() - started:.2f} s ({load()})")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
