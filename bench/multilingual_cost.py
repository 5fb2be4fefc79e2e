"""What the multilingual arm costs, measured in one run beside the index without it.

    python bench/multilingual_cost.py [--paragraphs N] [--itn PATH]

Builds the same English collection four times in this process, the arm off and on in turn after both models
are loaded, keeping the faster build of each (SQuAD dev paragraphs,
Wikipedia text of news length, and the ITN English news blurbs), and prints build time, disk per passage and
question time: English questions on the English collection (the arm stays out), Korean questions about it
(the arm runs), and English questions once Korean passages join the collection (the arm runs for them too),
each with the arm on also timed with no names counted across scripts. Ratios against the arm off, and the load
average beside every timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crosslang import load_ko_en  # noqa: E402
from news import DEFAULT_CLONE, load_news  # noqa: E402

from rag import Index  # noqa: E402
from rag.evaluate import load_benchmark  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
ROUNDS = 3


def p50_ms(index: Index, questions: list[str]) -> float:
    index.search(questions[0], k=5)  # the arm's index and encoder load once
    times = []
    for _ in range(ROUNDS):
        for q in questions:
            started = time.perf_counter()
            index.search(q, k=5)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def without_names(index: Index) -> Index:
    """The same index searched with no name bonus (what counting names across scripts costs), in a second
    `Index` over the same folder."""
    twin = Index(index.path)
    arm = twin.searcher.calibration.multilingual
    assert arm is not None
    twin.searcher.calibration = dataclasses.replace(
        twin.searcher.calibration, multilingual=dataclasses.replace(arm, name_bonus=0.0)
    )
    return twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paragraphs", type=int, default=600, help="SQuAD dev paragraphs in the collection")
    parser.add_argument("--itn", type=Path, default=DEFAULT_CLONE)
    args = parser.parse_args()
    squad = load_benchmark(SHARED / "squad-v1.1-dev.json")
    news = load_news(args.itn)
    english = squad.documents[: args.paragraphs] + [d for d in news.documents if d.source.endswith("-en")]
    korean = [d for d in news.documents if d.source.endswith("-ko")]
    english_questions = [q for _, q in news.queries[:40]]
    korean_questions = [q for _, q in load_ko_en(args.itn).queries[:40]]
    root = Path(tempfile.mkdtemp(prefix="multilingual-cost-"))
    try:
        Index(root / "warm", multilingual=True).add_documents(english[:20])  # both models loaded before timing
        builds: dict[bool, list[float]] = {False: [], True: []}
        for round_, arm in enumerate((False, True, False, True)):  # alternated: a drift in load hits both
            folder = root / f"build-{round_}"
            started = time.perf_counter()
            Index(folder, multilingual=arm).add_documents(english)
            builds[arm].append(time.perf_counter() - started)
            shutil.rmtree(folder)
        figures = {}
        for arm in (False, True):
            folder = root / ("on" if arm else "off")
            index = Index(folder, multilingual=arm)
            load = os.getloadavg()
            report = index.add_documents(english)
            seconds = min(builds[arm])
            disk = sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".f16")
            figures[arm] = {
                "build_s": seconds,
                "passages": report.chunks,
                "vector_bytes_per_passage": disk / report.chunks,
                "english_p50_ms": p50_ms(index, english_questions),
                "korean_p50_ms": p50_ms(index, korean_questions),
                "load": load,
            }
            if arm:
                figures[arm]["korean_unnamed_p50_ms"] = p50_ms(without_names(index), korean_questions)
            index.add_documents(korean)
            figures[arm]["english_mixed_p50_ms"] = p50_ms(index, english_questions)
            if arm:
                figures[arm]["english_mixed_unnamed_p50_ms"] = p50_ms(without_names(index), english_questions)
            figures[arm]["load_after"] = os.getloadavg()
        off, on = figures[False], figures[True]
        print(f"collection: {off['passages']} English passages (SQuAD dev paragraphs and ITN blurbs)")
        print(f"load average at the start of each build: off {off['load']}, on {on['load']}")
        print(f"builds (alternated, seconds): off {builds[False]}, on {builds[True]}; the faster of each:")
        print(
            f"build: off {off['build_s']:.1f} s, on {on['build_s']:.1f} s "
            f"(x{on['build_s'] / off['build_s']:.2f}, +{on['build_s'] / off['build_s'] - 1:.0%})"
        )
        extra = on["vector_bytes_per_passage"] - off["vector_bytes_per_passage"]
        print(f"vector files per passage: off {off['vector_bytes_per_passage']:.0f} B, on +{extra:.0f} B")
        for key, what in (
            ("english_p50_ms", "English questions, English collection (the arm stays out)"),
            ("korean_p50_ms", "Korean questions, English collection (the arm runs)"),
            ("english_mixed_p50_ms", "English questions once Korean passages are in (the arm runs)"),
        ):
            print(f"{what}: p50 off {off[key]:.1f} ms, on {on[key]:.1f} ms (+{on[key] - off[key]:.1f} ms)")
        for key, what in (("korean", "Korean questions"), ("english_mixed", "English questions, mixed collection")):
            unnamed = on[f"{key}_unnamed_p50_ms"]
            print(
                f"{what}, arm on, names across scripts not counted: p50 {unnamed:.1f} ms "
                f"(counting them: +{on[f'{key}_p50_ms'] - unnamed:.1f} ms)"
            )
        print(f"load average at the end: off {off['load_after']}, on {on['load_after']}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
