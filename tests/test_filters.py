"""A filter is applied inside each arm: what it gives must be exactly the unfiltered ranking with the documents
the filter leaves out taken away, whichever way the arm applies it (a short id list or a deep prefix for the
lexical arms, a FAISS bitmap for the dense one), and it must follow the index's writes.
Its cost is measured by bench/filters.py, not here."""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
import tantivy
from conftest import CORPUS

import rag.index.vectors
import rag.index.write
from rag import Index
from rag.errors import UnknownSourceError
from rag.index import DocFilter, lexical_views
from rag.index import lexical as lexical_index
from rag.index.facet_terms import day_number
from rag.index.facets import Kept
from rag.index.lexical_views import FilteredViews
from rag.search.request import Question, date_bound

pytestmark = pytest.mark.slow  # indexes of synthetic archives, IVF among them

SITES = ["Harbour Gazette", "Capital Wire", "Valley Times"]
FILTERS = [
    {"source": "Harbour Gazette"},
    {"since": "2020", "until": "2020"},
    {"until": "2016-06"},
    {"source": "archive-1.jsonl"},
    {"source": "archive-*.jsonl", "since": "2023-07"},
    {"source": "harbour.example.org"},
    {"source": "nowhere.txt"},
    {"since": "2014"},  # most of the collection: the dense arm filters a deeper plain search
    {"since": "2019-03-15", "until": "2021-02-10"},  # as facet words: single days, whole months, a whole year
    {"source": "Capital Wire", "since": "2018-05-20", "until": "2019"},
]
QUESTIONS = ["When did the president meet the party leader?", "Which talks did the senator welcome in Seoul?"]


def write_archive(folder: Path, articles: int, seed: int) -> None:
    """Short made-up articles in the seed corpus's words, spread over sites, years and four export files."""
    words = re.findall(r"[A-Za-z][a-z]+", " ".join(p.read_text() for p in CORPUS.glob("*.txt")))
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[int, list[str]] = {}
    for n in range(articles):
        sentences = [" ".join(rng.choices(words, k=rng.randint(10, 20))).capitalize() + "." for _ in range(12)]
        site = rng.choice(SITES)
        record = {
            "title": f"{' '.join(rng.choices(words, k=5)).capitalize()} {n}",
            "text": "\n\n".join(" ".join(sentences[i : i + 4]) for i in range(0, 12, 4)),
            "site": site,
            "url": f"https://{'www.' if n % 2 else ''}{site.split()[0].lower()}.example.org/{n}",
        }
        if n % 7:  # every seventh article has no date, and no date filter keeps it
            record["date"] = f"{rng.randint(2014, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        files.setdefault(n % 4, []).append(json.dumps(record))
    for k, lines in files.items():
        (folder / f"archive-{k}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Path]:
    corpus = tmp_path_factory.mktemp("filters") / "corpus"
    write_archive(corpus, 240, seed=5)
    index = Index(tmp_path_factory.mktemp("filters-index"), model="hashing")
    index.add([corpus])
    return index, corpus


def kept_by_hand(index: Index, chunk_ids: list[int], filters: dict) -> list[int]:
    """The chunks whose document (or an exact copy of it) the filter keeps, worked out from each document's
    own metadata, one by one."""
    since, until = date_bound(filters.get("since"), "since"), date_bound(filters.get("until"), "until")
    name = filters.get("source")
    with index.searcher.store.read() as reader:
        hits = reader.chunk_hits(chunk_ids)
        out = []
        for cid in chunk_ids:
            doc = reader.document(hits[cid].doc_id)
            host = re.sub(r"^https?://(www\.)?([^/]+)/.*", r"\2", doc.url or "")
            named = name is None or (
                any(
                    re.fullmatch(name.replace(".", r"\.").replace("*", ".*"), s)
                    for s in (doc.source, doc.source.split("#")[0])  # the record, or the file that holds it
                )
                or (doc.site or "").lower() == name.lower()
                or host == name
            )
            dated = (since is None and until is None) or (
                doc.published is not None and (since or "") <= doc.published[:10] <= (until or "9999")
            )
            if named and dated:
                out.append(cid)
        return out


def kept_chunks(index: Index, filters: dict) -> Kept:
    f = DocFilter(
        filters.get("source"), date_bound(filters.get("since"), "since"), date_bound(filters.get("until"), "until")
    )
    with index.searcher.store.read() as reader:
        kept = index.searcher.kept_chunks(reader, f)
    assert kept is not None
    return kept


def filtered_arms(index: Index, question: str, filters: dict, n: int) -> tuple[list, list]:
    keep = kept_chunks(index, filters)
    q_vec = index.embedder.encode_query(question)
    return index.searcher.lexical_arms(Question.of(question), n, keep), index.searcher.dense(q_vec, n, keep)


def apply_lexical_filters(way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the lexical arms apply every filter they can in `way`."""
    monkeypatch.setattr(lexical_index, "LISTED_BEFORE_FACETS", 10**9 if way == "documents-listed" else 0)
    for limit in ("ONE_FACET_MAX_SHARE", "FACETED_MAX_SHARE", "STREWN_FACETED_MAX_SHARE"):
        monkeypatch.setattr(lexical_index, limit, 1.0 if way == "facet-words" else -1.0)
    if way == "ranking-prefix":  # as where no view with deletions can be made
        monkeypatch.setattr(FilteredViews, "searcher", lambda *_: None)


@pytest.mark.parametrize("way", ["documents-listed", "ranking-prefix", "facet-words", "deleted-view"])
def test_a_filtered_ranking_is_the_whole_ranking_less_what_the_filter_leaves_out(
    archive: tuple[Index, Path], way: str, monkeypatch: pytest.MonkeyPatch
):
    index, _ = archive
    apply_lexical_filters(way, monkeypatch)
    everything = index.info().chunks
    searcher = index.searcher
    for question in QUESTIONS:
        whole_lexical = searcher.lexical_arms(Question.of(question), everything)
        whole_dense = searcher.dense(index.embedder.encode_query(question), everything)
        for filters in FILTERS:
            lexical, dense = filtered_arms(index, question, filters, 20)
            for (ranking, ceiling), (whole, whole_ceiling) in zip(lexical, whole_lexical):
                kept = kept_by_hand(index, [cid for cid, _ in whole], filters)
                scores = dict(whole)
                # Every passage is a kept one with its own unfiltered score, and the scores run as those of the
                # best 20 kept: the same ranking, but for the order of equal scores.
                assert set(cid for cid, _ in ranking) <= set(kept), filters
                got = [s for _, s in ranking]
                assert got == pytest.approx([scores[c] for c, _ in ranking], abs=1e-5), "scores moved"
                assert got == pytest.approx([scores[c] for c in kept[:20]], abs=1e-5), filters
                assert ceiling == whole_ceiling
            expected = kept_by_hand(index, [cid for cid, _ in whole_dense], filters)[:20]
            assert sorted(cid for cid, _ in dense) == sorted(expected), filters
    assert [f for f in FILTERS if kept_chunks(index, f).facets is None] == []
    lexical = searcher.lexical
    for filters in FILTERS if way == "deleted-view" else ():  # made, not given up for another way
        assert lexical.view(kept_chunks(index, filters).chunks)
    assert kept_by_hand(index, [cid for cid, _ in whole_dense], {"source": "nowhere.txt"}) == []


def test_the_lexical_index_keeps_each_sites_passages_together_in_date_order(archive: tuple[Index, Path]):
    """What makes a filtered query read fewer postings than the unfiltered one: in every segment, a site's
    passages form one run, in date order, whatever order the articles were written in."""
    index, _ = archive
    searcher = index.searcher.lexical._searcher
    hits = searcher.search(tantivy.Query.all_query(), 10_000, count=False).hits
    addresses = sorted((a for _, a in hits), key=lambda a: (a.segment_ord, a.doc))
    with index.searcher.store.read() as reader:
        rows = {row.id: row for row in reader.passages()}
    segments: dict[int, list[tuple[str, int]]] = {}
    for address, cid in zip(addresses, searcher.fast_field_values("cid", addresses)):
        if cid is not None:  # the commit marker
            row = rows[cid]
            segments.setdefault(address.segment_ord, []).append(((row.site or "").lower(), day_number(row.published)))
    written = [((row.site or "").lower(), day_number(row.published)) for _, row in sorted(rows.items())]
    assert len({site for site, _ in written}) == len(SITES) and written != sorted(written)
    for places in segments.values():
        runs = [site for i, (site, _) in enumerate(places) if i == 0 or places[i - 1][0] != site]
        assert len(runs) == len(set(runs))
        assert all(
            day <= next_day for (site, day), (next_site, next_day) in zip(places, places[1:]) if site == next_site
        )


def test_filters_follow_writes(archive: tuple[Index, Path], tmp_path: Path):
    index, corpus = archive
    searcher = index.searcher
    before = index.search("harbour pilots strike", k=3, mode="keyword", source="Valley Times")
    (corpus / "pilots.jsonl").write_text(
        json.dumps(
            {
                "title": "Harbour pilots strike",
                "text": "Harbour pilots stopped work on Monday over pay, and forty ships waited outside.",
                "site": "Valley Times",
                "date": "2021-03-04",
            }
        )
        + "\n"
    )
    (corpus / "archive-3.jsonl").unlink()
    Index(index.path).add([corpus])  # another writer: the open index follows its commit
    after = index.search("harbour pilots strike", k=3, mode="keyword", source="Valley Times", since="2021-03")
    assert after.passages[0].source == "pilots.jsonl#1"
    assert "pilots.jsonl#1" not in {p.source for p in before.passages}
    with pytest.raises(UnknownSourceError, match="archive-3.jsonl"):  # the file is gone from the collection
        index.search("harbour pilots strike", k=50, mode="keyword", source="archive-3.jsonl")
    assert searcher is index.searcher


def test_a_view_with_deletions_holds_exactly_the_kept_passages_after_records_are_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A rewritten record's old passages, and each earlier commit's marker, stay in their segments as deleted
    ones: the view keeps them deleted, whatever the filter keeps, and tells its commit by the one live marker."""
    apply_lexical_filters("deleted-view", monkeypatch)
    corpus = tmp_path / "corpus"
    write_archive(corpus, 120, seed=11)
    index = Index(tmp_path / "index", model="hashing")
    index.add([corpus])
    lines = (corpus / "archive-1.jsonl").read_text().splitlines()
    record = json.loads(lines[3])
    record["text"] += "\n\nThe breakwater pilots were paid on Friday, after nine weeks."
    lines[3] = json.dumps(record)
    (corpus / "archive-1.jsonl").write_text("\n".join(lines) + "\n")
    Index(index.path).add([corpus])
    lexical = index.searcher.lexical
    index.search("pilots", k=1)  # follows the other writer's commit
    assert list(lexical.path.glob("*.del")), "the rewrite left deleted passages in the segments"
    glob = {"source": "archive-[12].jsonl"}
    keep = kept_chunks(index, glob)
    view = lexical.view(keep.chunks)
    assert view is not None and view.num_docs == keep.count + 1  # the kept passages and the commit marker
    question = "When were the breakwater pilots paid?"
    found = index.search(question, k=3, mode="keyword", **glob)
    assert "paid on Friday, after nine weeks" in found.passages[0].text
    whole = index.searcher.lexical_arms(Question.of(question), index.info().chunks)
    for (ranking, _), (everything, _) in zip(index.searcher.lexical_arms(Question.of(question), 20, keep), whole):
        kept = [(cid, score) for cid, score in everything if keep.chunks[cid]][:20]
        assert [s for _, s in ranking] == pytest.approx([s for _, s in kept], abs=1e-5)
        assert all(keep.chunks[cid] for cid, _ in ranking)


def test_a_view_is_made_only_of_the_commit_the_searcher_shows_and_the_newest_few_are_kept(
    archive: tuple[Index, Path], tmp_path: Path
):
    """Another writer's commit on disk that the searcher has not followed yet gives no view (the filter is
    applied another way meanwhile); views past VIEWS_KEPT, and all of them at the next commit, are removed,
    leaving nothing behind."""
    index, _ = archive
    late = tmp_path / "late"
    late.mkdir()
    (late / "late.jsonl").write_text(json.dumps({"title": "Late", "text": "Pilots were paid.", "date": "2024-01-02"}))
    lexical = Index(index.path).searcher.lexical  # a reader of its own, following no commit after this one
    lexical.views.parent = tmp_path  # its views only: another thread's filtered search must not count here
    views = lambda: [p for p in tmp_path.iterdir() if p != late]  # noqa: E731
    kept = [kept_chunks(index, {"source": site}) for site in SITES] + [
        kept_chunks(index, {"since": str(year), "until": str(year)}) for year in range(2014, 2026)
    ]
    for keep in kept:
        assert lexical.view(keep.chunks) is not None
        assert len(views()) <= lexical_views.VIEWS_KEPT
    assert len(views()) == lexical_views.VIEWS_KEPT
    before = lexical.seq
    Index(index.path).add([late])
    fresh = kept_chunks(index, {"source": "Valley Times"})  # the main index follows at its next search
    assert lexical.view(fresh.chunks) is None
    lexical.follow(lexical.seq + 1)
    assert lexical.seq == before + 1 and views() == []
    assert lexical.view(fresh.chunks) is not None
    assert len(views()) == 1


def test_an_index_in_a_format_whose_deletions_are_not_written_here_gets_no_view(
    archive: tuple[Index, Path], monkeypatch: pytest.MonkeyPatch
):
    """A tantivy that writes another index format gets no view written in this one: the filter is applied
    another way, with the same ranking."""
    apply_lexical_filters("deleted-view", monkeypatch)
    index, _ = archive
    lexical, question, filters = index.searcher.lexical, QUESTIONS[0], {"since": "2016"}
    keep = kept_chunks(index, filters)
    lexical.views.clear()
    viewed = index.searcher.lexical_arms(Question.of(question), 20, keep)
    monkeypatch.setattr(lexical_views, "INDEX_FORMATS", ())
    lexical.views.clear()
    assert lexical.view(keep.chunks) is None
    assert index.searcher.lexical_arms(Question.of(question), 20, keep) == viewed


def test_a_filter_matching_an_exact_copy_keeps_the_text_its_holder_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The holder's passages carry the holder's facet words: a filter that only a copy matches cannot be said in
    them, and is applied another way."""
    monkeypatch.setattr(lexical_index, "LISTED_BEFORE_FACETS", 0)
    text = "Harbour pilots stopped work on Monday over pay, and forty ships waited outside the breakwater."
    corpus = tmp_path / "corpus"
    write_archive(corpus, 40, seed=9)
    stories = [
        {"title": "Pilots strike", "text": text, "site": "Harbour Gazette", "date": "2020-01-02"},
        {"title": "Pilots strike", "text": text, "site": "Capital Wire", "date": "2021-05-06"},
    ]
    (corpus / "pilots.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stories))
    index = Index(tmp_path / "index", model="hashing")
    index.add([corpus])
    for filters in ({"source": "Capital Wire"}, {"since": "2021-05"}, {"source": "Harbour Gazette", "until": "2020"}):
        keep = kept_chunks(index, filters)
        held_by_copy = filters != {"source": "Harbour Gazette", "until": "2020"}
        assert (keep.facets is None) == held_by_copy, filters
        found = index.search("Why did forty ships wait outside the breakwater?", k=3, mode="keyword", **filters)
        assert found.passages and text in found.passages[0].text, filters


@pytest.fixture
def ivf_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Index, Path]:
    """The archive at about 2,400 passages with IVF from 1,000 on: 256 lists of about nine vectors."""
    monkeypatch.setattr(rag.index.write, "ANN_MIN_ROWS", 1_000)
    corpus = tmp_path / "corpus"
    write_archive(corpus, 1_200, seed=7)
    index = Index(tmp_path / "index", model="hashing")
    index.add([corpus])
    assert index.searcher.dense_index().approximate
    return index, corpus


def list_places(index: Index) -> list[list[tuple[str, int]]]:
    """(site, day) of the passages of each IVF list, in the order the list holds them."""
    dense = index.searcher.dense_index()
    lists = dense.index.invlists
    with index.searcher.store.read() as reader:
        rows = {row.id: row for row in reader.passages()}
    places = []
    for number in range(lists.nlist):
        ids = faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).tolist()
        places.append([((rows[cid].site or "").lower(), day_number(rows[cid].published)) for cid in ids])
    return places


def test_each_ivf_list_keeps_a_sites_vectors_together_in_date_order_after_writes(ivf_archive: tuple[Index, Path]):
    """What makes a site or date filter cheap in the dense arm: it keeps a few runs of each list, not vectors
    strewn over it (bench/filters.py)."""
    index, corpus = ivf_archive
    write_archive(corpus / "late", 300, seed=8)  # appended to the lists, then each touched list sorted again
    (corpus / "archive-2.jsonl").unlink()  # gaps filled by each list's last vector, then sorted again
    index.add([corpus])
    places = list_places(index)
    assert sum(map(len, places)) == index.info().chunks and max(map(len, places)) > 9
    for held in places:
        runs = [site for i, (site, _) in enumerate(held) if i == 0 or held[i - 1][0] != site]
        assert len(runs) == len(set(runs)), held
        assert all(day <= later for (site, day), (other, later) in zip(held, held[1:]) if site == other), held


@pytest.mark.parametrize("way", ["bitmap", "plain"])
def test_a_filtered_ivf_search_is_the_exact_ranking_of_what_the_filter_keeps(
    ivf_archive: tuple[Index, Path], way: str, monkeypatch: pytest.MonkeyPatch
):
    """Probing every list, the dense arm under any filter gives exactly the best kept vectors, whether it tests
    the filter's bitmap inside the search or drops what it leaves out from a deeper plain one."""
    if way == "bitmap":
        monkeypatch.setattr(rag.index.vectors, "PLAIN_MIN_SHARE", 2.0)
    else:
        monkeypatch.setattr(rag.index.vectors, "PLAIN_MIN_SHARE", 0.0)
        monkeypatch.setattr(rag.index.vectors, "TEST_COST", 100.0)
    index, _ = ivf_archive
    dense = index.searcher.dense_index()
    dense.index.nprobe = dense.index.nlist
    with index.searcher.store.read() as reader:
        ids = np.sort(reader.live_chunk_ids())
    vectors = dense.vectors.read(ids)
    for question in QUESTIONS:
        q_vec = index.embedder.encode_query(question)
        exact = dict(zip(ids.tolist(), (vectors @ q_vec[0]).tolist()))
        for filters in FILTERS:
            keep = kept_chunks(index, filters)
            best = sorted((exact[cid] for cid in ids[keep.chunks[ids]].tolist()), reverse=True)[:20]
            got = index.searcher.dense(q_vec, 20, keep)
            assert all(keep.chunks[cid] for cid, _ in got), filters
            # the same vectors but for the order of near-equal scores (IVF scores float16 residuals)
            assert [exact[cid] for cid, _ in got] == pytest.approx(best, abs=1e-3), filters


def test_a_filtered_keyword_search_does_not_wait_for_the_vectors_to_load(
    ivf_archive: tuple[Index, Path], monkeypatch: pytest.MonkeyPatch
):
    """At a large index's first start the vectors take seconds to load; a keyword search with a filter needs
    none of them and is answered meanwhile (the load is held open here until the search is back)."""
    index, _ = ivf_archive
    searcher = index.searcher
    searcher._dense = None  # as at a fresh start
    loading, loaded = threading.Event(), threading.Event()
    load = rag.index.vectors.DenseIndex.__init__

    def held_open(dense: rag.index.vectors.DenseIndex, *args, **kwargs) -> None:
        loading.set()
        loaded.wait(60)
        load(dense, *args, **kwargs)

    monkeypatch.setattr(rag.index.vectors.DenseIndex, "__init__", held_open)
    loader = threading.Thread(target=searcher.dense_index)
    loader.start()
    answers: list = []
    try:
        assert loading.wait(60)
        asker = threading.Thread(
            target=lambda: answers.append(index.search("senator", k=3, mode="keyword", source="Valley Times"))
        )
        asker.start()
        asker.join(20)
        assert answers and answers[0].passages, "the filtered keyword search waited for the vectors"
        assert all("valley.example.org" in (p.url or "") for p in answers[0].passages)
    finally:
        loaded.set()
        loader.join()
    assert searcher.dense_index().ntotal == index.info().chunks
