"""Choose the multilingual arm's settings by leave-one-dataset-out, and print the left-out figures.

    python bench/fit_multilingual.py [--limit N] [--itn PATH] [--write]

The settings, chosen on different sets because they serve different passages:
- `weight`, the arm's share of the fusion among passages in the question's own script, for questions in Korean
  (for English ones the first model ranks English passages better, so the arm stays out of their fusion):
  KorQuAD alone, and KorQuAD's paragraphs mixed with SQuAD's (`mixed-ko`);
- for a passage in another script than the question, which only this arm sees, a logistic `slope` over its
  cosine placed at two cosines: `rank_cut`, where it goes among the fused passages (chosen on nDCG@10 over
  Korean questions about English news `ko-en`, English questions about Korean news `en-ko` (bench/crosslang/),
  the English news set, whose collection holds Korean blurbs, and SQuAD's English and KorQuAD's Korean
  questions over their mixed paragraphs); and where it clears the bar for `found`, by the question's script:
  `cut` for English questions (chosen on found's errors over en-ko and the news set), `cut_wide` for Korean
  ones (over ko-en, and KorQuAD's questions over its paragraphs mixed with SQuAD's, where an English passage
  must not answer);
- `name_bonus`, what each name an other-script passage shares with the question adds to its cosine for its
  order and place (not for `found`), chosen on the rank_cut group at the rank cut calibrated before it; the
  rank cut and found's cut are then chosen again at the bonus chosen.
SQuAD and SciFact alone hold no Korean/CJK passage: their questions never meet the arm.

Each setting is run through the product's own search (`Index.ask`, the calibration swapped in memory). For
each set in turn, the setting is chosen on the other sets of its group and the set left out is measured. The
rule: the best mean nDCG@10 over the fitting sets (for `cut`: the fewest found errors over the fitting
cross-language sets), among settings that cost no fitting set whose questions share their passages' language
more than MAX_SAME_LANGUAGE_DROP (against the arm off, or no such passage placed first or answering).
The slope is a one-feature logistic fit of relevance on the arm's cosine of the other-script passages among
the first ten of both cross-language sets.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crosslang import load_en_ko, load_ko_en, load_mixed  # noqa: E402
from news import DEFAULT_CLONE, load_news  # noqa: E402

from rag.evaluate import (  # noqa: E402
    Benchmark,
    benchmark_index,
    default_cache,
    found_errors,
    load_benchmark,
    run_mode,
)
from rag.search.request import Question, SearchRequest  # noqa: E402
from rag.text import language_of  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
CALIBRATION = Path(__file__).resolve().parent.parent / "rag" / "search" / "calibration.json"
WEIGHTS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5)
RANK_CUTS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 1.0)  # 1.0: no other-script passage ever goes first
NAME_BONUSES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)  # added to the cosine per name shared across scripts
FOUND_CUTS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 1.0)  # 1.0: no other-script passage ever answers
FOUND_SETS = ("en-ko", "news")  # where passages in Hangul can answer English questions (`cut`)
FOUND_SETS_WIDE = ("ko-en", "mixed-ko")  # where English passages can answer Korean questions (`cut_wide`)
MAX_SAME_LANGUAGE_DROP = 0.005
SAME_LANGUAGE = {"korquad", "news", "mixed-en", "mixed-ko"}  # questions in the language of their passages
GROUPS = {"weight": ("korquad", "mixed-ko"), "rank_cut": ("ko-en", "en-ko", "news", "mixed-en", "mixed-ko")}
GROUPS["name_bonus"] = GROUPS["rank_cut"]


def with_setting(index, base, **setting: float) -> None:
    index.searcher.calibration = dataclasses.replace(
        base, multilingual=dataclasses.replace(base.multilingual, **setting)
    )


def ranking(index, bench: Benchmark) -> dict[str, float]:
    """nDCG@10 and Recall@1/5 of `bench` in hybrid mode."""
    result, _ = run_mode(index, bench, "hybrid", False)
    return {k: round(result.metrics[k], 4) for k in ("ndcg@10", "recall@1", "recall@5")}


def found(index, bench: Benchmark) -> dict[str, float]:
    """`found`'s two errors on `bench`: answerable questions refused, and questions asked without their
    relevant documents answered."""
    _, answered = run_mode(index, bench, "hybrid", False)
    errors = found_errors(index, bench, answered, 1000, False)
    return {k: errors[k] for k in ("wrongly_refused", "wrongly_answered")}


def sweep(
    bench: Benchmark, name: str, values: tuple[float, ...], known: dict, figures_of: Callable, **fixed: float
) -> dict:
    """`figures_of(index, bench)` for each value of the setting `name` (those in `known` are kept)."""
    index = benchmark_index(bench, None, default_cache(), True)
    base = index.searcher.calibration
    out = dict(known)
    for value in values:
        if str(value) in out:
            continue
        with_setting(index, base, **fixed, **{name: value})
        out[str(value)] = figures_of(index, bench)
        print(bench.name, name, value, out[str(value)], file=sys.stderr, flush=True)
    index.searcher.calibration = base
    return out


def sweep_group(
    figures: dict,
    key: str,
    sets: tuple[str, ...],
    benches: dict,
    values: tuple[float, ...],
    figures_of: Callable,
    cache: Path,
    setting: str | None = None,
    **fixed: float,
) -> dict:
    """`sweep` of the setting (`key` unless `setting` names it) over each set of a group, kept in
    `figures[key]` and written to `cache` after each set; the group's figures."""
    swept = figures.setdefault(key, {})
    for name in sets:
        swept[name] = sweep(benches[name], setting or key, values, swept.get(name, {}), figures_of, **fixed)
        cache.write_text(json.dumps(figures))
    return swept


def choose(figures: dict, fitting: list[str], off: str) -> str:
    """The value with the best mean nDCG@10 over `fitting`, among those that cost no same-language set there
    more than MAX_SAME_LANGUAGE_DROP against `off`."""

    def allowed(key: str) -> bool:
        return all(
            figures[n][key]["ndcg@10"] >= figures[n][off]["ndcg@10"] - MAX_SAME_LANGUAGE_DROP
            for n in fitting
            if n in SAME_LANGUAGE
        )

    keys = [k for k in figures[fitting[0]] if allowed(k)]
    return max(keys, key=lambda k: sum(figures[n][k]["ndcg@10"] for n in fitting))


def lodo(figures: dict, names: tuple[str, ...], off: str, chooser: Callable | None = None) -> str:
    """Each set's figures with the value `chooser` (default `choose`) picks on the others, then the value
    picked on all."""
    chooser = chooser or choose
    for left_out in names:
        key = chooser(figures, [n for n in names if n != left_out], off)
        print(
            json.dumps(
                {
                    "left_out": left_out,
                    "chosen": key,
                    "left_out_figures": figures[left_out][key],
                    "off": figures[left_out][off],
                }
            )
        )
    chosen = chooser(figures, list(names), off)
    print(json.dumps({"fitted_on_all": chosen, **{n: figures[n][chosen] for n in names}}))
    return chosen


def choose_found(figures: dict, fitting: list[str], off: str) -> str:
    """The cut with the fewest errors (both kinds summed) over the fitting cross-language sets, among those
    that raise no same-language set's errors more than MAX_SAME_LANGUAGE_DROP against `off` (no such passage
    answering)."""

    def allowed(key: str) -> bool:
        return all(
            figures[n][key][kind] <= figures[n][off][kind] + MAX_SAME_LANGUAGE_DROP
            for n in fitting
            if n in SAME_LANGUAGE
            for kind in ("wrongly_refused", "wrongly_answered")
        )

    cross = [n for n in fitting if n not in SAME_LANGUAGE] or fitting
    keys = [k for k in figures[fitting[0]] if allowed(k)]
    return min(
        keys, key=lambda k: sum(figures[n][k]["wrongly_refused"] + figures[n][k]["wrongly_answered"] for n in cross)
    )


def cross_cosines(bench: Benchmark) -> list[tuple[float, bool]]:
    """(multilingual cosine, relevant) of each passage among the first ten in another script than the
    question, searched as configured now but with no name counted: the probability is of the cosine alone,
    and the fit must not move with the name bonus it is followed by (a second run would start elsewhere)."""
    index = benchmark_index(bench, None, default_cache(), False)
    with_setting(index, index.searcher.calibration, name_bonus=0.0)
    rows = []
    for qid, text in bench.queries:
        asked = Question.of(text)
        answer = index.ask(SearchRequest.build(text, 10, "hybrid"))
        crossed = index.searcher.multilingual_similarities(
            [p.chunk_id for p in answer.passages], index.searcher.multilingual_vector(asked)
        )
        for p in answer.passages:
            if language_of(p.text) not in (None, asked.language) and p.chunk_id in crossed:
                rows.append((crossed[p.chunk_id], p.source in bench.qrels[qid]))
    return rows


def fit_slope(rows: list[tuple[float, bool]]) -> float:
    """The slope of a one-feature logistic regression (Newton's method)."""
    x = np.array([c for c, _ in rows])
    y = np.array([1.0 if r else 0.0 for _, r in rows])
    design = np.stack([np.ones_like(x), x], axis=1)
    beta = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-(design @ beta)))
        hess = design.T @ (design * (p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        beta += np.linalg.solve(hess, design.T @ (y - p))
    return float(beta[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=200, help="SQuAD and KorQuAD questions (spread evenly)")
    parser.add_argument("--itn", type=Path, default=DEFAULT_CLONE, help="clone of shizhao/ITN-corpus")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fit-multilingual-3.json"))
    parser.add_argument("--write", action="store_true", help="write the settings fitted on all sets")
    args = parser.parse_args()
    korquad = load_benchmark(SHARED / "korquad-v1.0-dev.json").limited(args.limit)
    mixed_en, mixed_ko = load_mixed(load_benchmark(SHARED / "squad-v1.1-dev.json").limited(args.limit), korquad)
    benches = {
        "ko-en": load_ko_en(args.itn),
        "en-ko": load_en_ko(args.itn),
        "news": load_news(args.itn),
        "korquad": korquad,
        "mixed-en": mixed_en,
        "mixed-ko": mixed_ko,
    }
    original = CALIBRATION.read_text()
    table = json.loads(original)
    figures = json.loads(args.cache.read_text()) if args.cache.exists() else {}
    figures.setdefault("weight", {})
    figures.setdefault("rank_cut", figures.pop("cut", {}))
    figures.setdefault("found", {})
    for name in GROUPS["weight"]:
        figures["weight"][name] = sweep(
            benches[name], "weight", WEIGHTS, figures["weight"].get(name, {}), ranking, cut=1.0, rank_cut=1.0
        )
        args.cache.write_text(json.dumps(figures))
    weight = float(lodo(figures["weight"], GROUPS["weight"], "0.0"))
    table["multilingual"]["weight"] = weight
    CALIBRATION.write_text(json.dumps(table, indent=2) + "\n")  # what the cosines below are read with
    try:
        rows = cross_cosines(benches["ko-en"]) + cross_cosines(benches["en-ko"])
        slope = round(fit_slope(rows), 3)
        print(json.dumps({"slope": slope, "passages": len(rows), "relevant": sum(r for _, r in rows)}))
        if figures.get("slope") != slope:
            figures["name_bonus"], figures["rank_cut"], figures["found"], figures["found_wide"] = {}, {}, {}, {}
            figures["slope"] = slope
        # The bonus for names shared across scripts, at the rank cut calibrated before it; then the rank cut
        # and found's cut at the bonus chosen.
        before = table["multilingual"]["rank_cut"]
        swept = sweep_group(figures, "name_bonus", GROUPS["name_bonus"], benches, NAME_BONUSES, ranking, args.cache,
                            weight=weight, slope=slope, rank_cut=before)  # fmt: skip
        name_bonus = float(lodo(swept, GROUPS["name_bonus"], "0.0"))
        if figures.get("chosen_name_bonus") != name_bonus:
            figures["rank_cut"], figures["found"], figures["found_wide"] = {}, {}, {}
            figures["chosen_name_bonus"] = name_bonus
        swept = sweep_group(figures, "rank_cut", GROUPS["rank_cut"], benches, RANK_CUTS, ranking, args.cache,
                            weight=weight, slope=slope, name_bonus=name_bonus)  # fmt: skip
        rank_cut = float(lodo(swept, GROUPS["rank_cut"], "1.0"))
        cuts = {}
        for key, setting, sets in (("found", "cut", FOUND_SETS), ("found_wide", "cut_wide", FOUND_SETS_WIDE)):
            swept = sweep_group(figures, key, sets, benches, FOUND_CUTS, found, args.cache, setting=setting,
                                weight=weight, slope=slope, rank_cut=rank_cut, name_bonus=name_bonus)  # fmt: skip
            cuts[setting] = float(lodo(swept, sets, "1.0", choose_found))
        table["multilingual"].update({"slope": slope, **cuts, "rank_cut": rank_cut, "name_bonus": name_bonus})
        CALIBRATION.write_text(json.dumps(table, indent=2) + "\n")
    finally:
        if not args.write:
            CALIBRATION.write_text(original)
    print(("wrote " if args.write else "not written (--write): ") + json.dumps(table["multilingual"]))


if __name__ == "__main__":
    main()
