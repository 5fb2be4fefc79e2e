"""One search: a request answered from one committed state of the index. The question is encoded (in every
mode but keyword: its cosine is evidence for the score even where the dense arm stays out of the ranking),
the arms run under the request's filter, their rankings are fused, hits are merged into passages, and each
passage is scored with the calibrated probability that it answers; `found` says whether one of the first
FOUND_DEPTH passages clears the bar.

Scores and `found` come from `rag.search.relevance`: a probability per passage, fitted on benchmark data by
leave-one-dataset-out (`rag/search/calibration.json`, `bench/fit_relevance.py`). When the request reads
(`SearchRequest.rerank`, or the calibration's default), the reader rescores the first passages
(`rag.search.rerank`) and its bar decides `found`; `Answer.bar` says which bar did.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from rag.errors import UnknownSourceError
from rag.index import Reader
from rag.index.facet_terms import host_of
from rag.models.embed import passage_input
from rag.records import Answer, Passage, page_at
from rag.search.fusion import NamePairs, Ranking
from rag.search.merge import Candidate, Hit, merge_hits
from rag.search.question_dates import read_dates, wants_latest
from rag.search.question_sources import named_site
from rag.search.relevance import MultilingualCalibration, RelevanceModel, features
from rag.search.request import Question, SearchRequest
from rag.search.rerank import reread
from rag.search.searcher import Searcher
from rag.text import language_of

FOUND_DEPTH = 3  # `found` looks at the passages a reader sees first; calibration uses the same depth
CANDIDATE_BATCH = 50  # fused hits whose rows are read at a time: a search stops reading at its k-th passage


@dataclass(frozen=True)
class Scorer:
    """Scores passages for one question with one calibrated model."""

    asked: Question
    model: RelevanceModel
    lexical: dict[int, float]
    dense: bool  # whether the question was encoded, so that a passage's cosine is evidence
    multilingual: MultilingualCalibration | None = None  # with the multilingual arm's cosines when it ran
    crossed: dict[int, float] | None = None
    names: dict[int, NamePairs] | None = None  # the names other-script passages share with the question

    def score(self, cid: int, title: str, text: str, similarity: float) -> float:
        """The probability for a passage read as its title line and its own text (`passage_input`). A passage
        in another language than the question's is scored on its multilingual cosine too (the surface
        evidence cannot see a translation), and keeps the better of the two."""
        cosine = similarity if self.dense else None
        x = features(self.asked, passage_input(title, text), cosine, self.lexical.get(cid, 0.0))
        probability = self.model.probability(x)
        crossed = self.crossed or {}
        if self.multilingual is not None and cid in crossed and self.across(language_of(text)):
            cut = self.multilingual.found_cut(self.asked.wide)
            probability = max(probability, self.multilingual.probability(crossed[cid], self.model.threshold, cut))
        return probability

    def across(self, written: str | None) -> str | None:
        """The question's language when a text is in another one (`written`, `rag.text.language_of`): a
        cross-language match."""
        asked = self.asked.language
        return asked if asked is not None and written is not None and written != asked else None


class SearchCall:
    """What one request needs while it is answered: the long-lived `searcher` it runs on, and the request."""

    def __init__(self, searcher: Searcher, request: SearchRequest) -> None:
        self.searcher = searcher
        self.request = request

    def answer(self) -> Answer:
        """`search` for the request, after reading what its question says about where to look, when the
        request leaves it open: the dates it states become the filter (`rag.search.question_dates`), and a
        publication it names as its source ("according to the Herald") puts that site's answering passages
        first (`rag.search.question_sources`), those words taken out of the searched text; "latest" puts the
        newest of the passages that answer first. The answer says what was read (`Answer.understood`).

        A date in a question may be the time of an event rather than of publication ("exercises scheduled to
        begin on April 1", "the anniversary marked this year"): when nothing published in the period read
        answers, the question is searched again, whole, over every date, and the answer says so."""
        request, said, named, reading = self.request, [], None, None
        asked = request.question.text
        if request.read_question:
            dated = bool(request.filter.since or request.filter.until)  # the caller's own dates win
            with self.searcher.store.read() as reader:
                span = None if dated else self.searcher.dated_span(reader)
                sites = [] if request.filter.source else self.searcher.site_names(reader)
            reading = None if dated else read_dates(asked, date.today(), span[1] if span else None)
            if reading is not None and span is None:
                said.append(f"“{reading.phrase}” was searched as words: no article in this collection has a date")
                reading = None
            elif reading is not None:
                request = replace(
                    request,
                    question=Question.of(reading.text),
                    filter=replace(request.filter, since=reading.since, until=reading.until),
                )
                said.append(f"Only articles {reading.describe()}, read from “{reading.phrase}” in the question")
            named = named_site(request.question.text, sites)
            if named is not None:
                request = replace(request, question=Question.of(named.text))
        answer = self.search(request)
        if reading is not None and request.filter.since == reading.since and not answer.found:
            wide = self.search(replace(request, question=self.request.question, filter=self.request.filter))
            if wide.found:
                answer = wide
                said[-1] = (
                    f"Nothing published {reading.describe().removeprefix('published ')} answers this (read from "
                    f"“{reading.phrase}”), so every date was searched"
                )
        if named is not None:
            from_site = self.search(replace(request, filter=replace(request.filter, source=named.site)))
            answer = replace(
                answer,
                passages=favoured(from_site.passages, answer.passages, answer.bar, request.k),
                found=answer.found or from_site.found,
            )
            said.append(f"passages from {named.site} first among those that answer (“{named.phrase}”)")
        if request.read_question and wants_latest(asked) and any(p.published for p in answer.passages):
            answer = replace(answer, passages=newest_first(answer.passages, answer.bar))
            said.append("newest first among the passages that answer (“latest”)")
        understood = "; ".join(said)
        return replace(answer, query=asked, understood=understood[:1].upper() + understood[1:] or None)

    def search(self, request: SearchRequest) -> Answer:
        """Best passages for the request's question. Its filter keeps documents whose file or source matches
        `source` exactly or as a glob, or whose site (name or web host) it names, and documents published
        between `since` and `until` (inclusive), which leaves out documents with no known date; `exclude`
        leaves out documents by source.

        Each passage's `score` is the probability that it answers the question, worked out from that passage
        alone; `found` says whether one of the first FOUND_DEPTH passages clears the calibrated bar. Both are
        the same whatever `k` is."""
        searcher = self.searcher
        asked, k, mode = request.question, request.k, request.mode
        searcher.catch_up()  # another writer's commits (`rag index`, an upload) are answered from at once
        q_vec = searcher.embedder.encode_query(asked.text) if mode != "keyword" else None
        ranks_dense = q_vec if searcher.uses_dense(asked, mode) else None
        with searcher.store.read() as reader:
            keep = searcher.kept_chunks(reader, request.filter, request.exclude)
            if keep is not None and keep.emptied is not None:
                if keep.emptied.unknown_source:
                    raise UnknownSourceError(keep.emptied.reason)
                return Answer(query=asked.text, found=False, emptied=keep.emptied.reason)
            m_vec = searcher.multilingual_vector(asked) if searcher.uses_multilingual(asked, mode, reader) else None
            arms = searcher.arms(asked, max(100, k * 10), ranks_dense, keep, m_vec)
            dense = q_vec is not None
            fused = searcher.fuse(arms, mode)
            crossing = arms.crossing or []
            if crossing:  # placed by the multilingual arm alone: the other arms read no passage in another script
                elsewhere = {cid for cid, _ in crossing}
                fused = [(cid, score) for cid, score in fused if cid not in elsewhere]
            passage_reader = searcher.reader_for(asked, mode, request.rerank)
            reader_calibration = searcher.calibration.reader if passage_reader is not None else None
            depth = max(k, FOUND_DEPTH, reader_calibration.depth if reader_calibration else 0)
            hits = merge_hits(self._candidates(reader, fused, q_vec), depth)
            # Each scored chunk's multilingual cosine: the arm's search gave those of the other script's
            # passages; the fused hits' are read, and only theirs. Names shared across scripts order and place
            # a passage (`crossing`), but whether it answers rests on its cosine alone: a passage naming the
            # same person need not answer (measured: counting them for `found` too raised the wrongly
            # answered of Korean questions about English news from 14% to 34%).
            crossed = dict(arms.crossing_cosines or {})
            crossed.update(
                searcher.multilingual_similarities([h.row.id for h in hits if h.row.id not in crossed], m_vec)
            )
            scorer = Scorer(
                asked,
                searcher.calibration.model(dense),
                arms.lexical_strengths,
                dense,
                searcher.calibration.multilingual if m_vec is not None else None,
                crossed,
                arms.crossing_names,
            )
            texts = reader.document_texts({h.row.doc_id for h in hits})
            passages = self._passages(reader, texts, hits, scorer)
            if crossing:
                hits, passages = self._join_other_script(reader, texts, hits, passages, crossing, depth, scorer)
            bar = scorer.model.threshold
            if passage_reader is not None and reader_calibration is not None:
                evidence = [(texts[h.row.doc_id][h.row.start : h.row.end], h.row.start) for h in hits]
                passages = reread(passage_reader, reader_calibration, asked.text, passages, evidence)
                bar = reader_calibration.threshold
        found = any(p.score >= bar for p in passages[:FOUND_DEPTH])
        return Answer(
            query=asked.text,
            found=found,
            passages=passages[:k],
            note=searcher.script_note(asked, m_vec is not None),
            bar=bar,
        )

    def _join_other_script(
        self,
        reader: Reader,
        texts: dict[int, str],
        hits: list[Hit],
        passages: list[Passage],
        crossing: Ranking,
        depth: int,
        scorer: Scorer,
    ) -> tuple[list[Hit], list[Passage]]:
        """The passages in another script than the question's (which only the multilingual arm ranks) joined to
        the fused ones by probability: each list keeps its own order, and the better head goes first (the
        other-script passage compared by `MultilingualCalibration.placement` of its credited cosine), except
        that a passage in the question's own language that clears the bar stays ahead (an answer in the
        language asked in comes first). A fused ranking's scale says nothing about the other script's cosines,
        a probability does."""
        others = [h for h in merge_hits(self._candidates(reader, crossing, None), depth) if not _overlaps_any(h, hits)]
        texts.update(reader.document_texts({h.row.doc_id for h in others} - texts.keys()))
        other_passages = self._passages(reader, texts, others, scorer)
        joined: list[tuple[Hit, Passage]] = []
        mine, theirs = list(zip(hits, passages)), list(zip(others, other_passages))
        bar = scorer.model.threshold
        credited, calibration = dict(crossing), scorer.multilingual

        def placement(hit: Hit, passage: Passage) -> float:
            cosine = credited.get(hit.row.id)
            return passage.score if calibration is None or cosine is None else calibration.placement(cosine, bar)

        while (mine or theirs) and len(joined) < depth:
            take_theirs = bool(theirs) and (
                not mine or (mine[0][1].score < bar and placement(*theirs[0]) > mine[0][1].score)
            )
            joined.append((theirs if take_theirs else mine).pop(0))
        return [h for h, _ in joined], [p for _, p in joined]

    def _candidates(self, reader: Reader, fused: Ranking, q_vec: np.ndarray | None) -> Iterator[Candidate]:
        """The fused hits with their rows and cosines, read a batch at a time as the merge asks for more."""
        for start in range(0, len(fused), CANDIDATE_BATCH):
            batch = fused[start : start + CANDIDATE_BATCH]
            rows = reader.chunk_hits([cid for cid, _ in batch])
            similarities = self.searcher.similarities([cid for cid, _ in batch if cid in rows], q_vec)
            for cid, score in batch:
                row = rows.get(cid)
                if row is not None:
                    yield Candidate(row, score, similarities.get(cid, 0.0))

    def _passages(self, reader: Reader, texts: dict[int, str], hits: list[Hit], scorer: Scorer) -> list[Passage]:
        """Passages with their scores and languages. A passage is scored on the chunk that brought it in (its
        text before neighbours merged into it), so the score of the n-th passage does not depend on how many
        follow."""
        passages = []
        facts = {doc_id: reader.article_facts(doc_id) for doc_id in {h.row.doc_id for h in hits}}
        for h in hits:
            text = texts[h.row.doc_id][h.start : h.end]
            language = language_of(text)
            head = texts[h.row.doc_id][h.row.start : h.row.end]
            passages.append(
                Passage(
                    text=text,
                    score=scorer.score(h.row.id, h.row.title, head, h.head_similarity),
                    doc_id=h.row.doc_id,
                    title=h.row.title,
                    source=h.row.source,
                    url=h.row.url,
                    start=h.start,
                    end=h.end,
                    published=h.row.published,
                    chunk_id=h.row.id,
                    similarity=h.similarity,
                    author=h.row.author,
                    crawled=h.row.crawled,
                    page=page_at(h.row.pages, h.start),
                    copies=self.searcher.copies(reader, h.row.doc_id, h.row.cluster),
                    language=language,
                    asked_in=scorer.across(language) if scorer.crossed else None,
                    names_across=(scorer.names or {}).get(h.row.id, ()),
                    site=facts[h.row.doc_id].site or host_of(h.row.url) or None,
                    article_length=facts[h.row.doc_id].length,
                )
            )
        return passages


def favoured(first: list[Passage], rest: list[Passage], bar: float, k: int) -> list[Passage]:
    """The passages of `first` that clear `bar`, then those of `rest` not among them, `k` in all."""
    chosen = [p for p in first if p.score >= bar]
    seen = {(p.doc_id, p.start, p.end) for p in chosen}
    return (chosen + [p for p in rest if (p.doc_id, p.start, p.end) not in seen])[:k]


def newest_first(passages: list[Passage], bar: float) -> list[Passage]:
    """The passages that clear `bar`, newest publication date first (undated ones after, each group in its
    order), then the others as they were."""
    answering = [p for p in passages if p.score >= bar]
    rest = [p for p in passages if p.score < bar]
    dated = sorted((p for p in answering if p.published), key=lambda p: p.published or "", reverse=True)
    return dated + [p for p in answering if not p.published] + rest


def _overlaps_any(hit: Hit, hits: list[Hit]) -> bool:
    return any(hit.overlaps(other) for other in hits)
