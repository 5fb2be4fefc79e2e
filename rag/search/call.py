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
from dataclasses import dataclass

import numpy as np

from rag.errors import UnknownSourceError
from rag.index import Reader
from rag.index.facet_terms import host_of
from rag.models.embed import passage_input
from rag.records import Answer, Passage, page_at
from rag.search.fusion import Ranking
from rag.search.merge import Candidate, Hit, merge_hits
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

    def score(self, cid: int, title: str, text: str, similarity: float) -> float:
        """The probability for a passage read as its title line and its own text (`passage_input`). A passage
        in another language than the question's is scored on its multilingual cosine too (the surface
        evidence cannot see a translation), and keeps the better of the two."""
        cosine = similarity if self.dense else None
        x = features(self.asked, passage_input(title, text), cosine, self.lexical.get(cid, 0.0))
        probability = self.model.probability(x)
        crossed = self.crossed or {}
        if self.multilingual is not None and cid in crossed and self.across(language_of(text)):
            probability = max(probability, self.multilingual.probability(crossed[cid], self.model.threshold))
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
        """Best passages for the request's question. Its filter keeps documents whose file or source matches
        `source` exactly or as a glob, or whose site (name or web host) it names, and documents published
        between `since` and `until` (inclusive), which leaves out documents with no known date; `exclude`
        leaves out documents by source.

        Each passage's `score` is the probability that it answers the question, worked out from that passage
        alone; `found` says whether one of the first FOUND_DEPTH passages clears the calibrated bar. Both are
        the same whatever `k` is."""
        searcher, request = self.searcher, self.request
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
            passage_reader = searcher.reader_for(asked, mode, request.rerank)
            reader_calibration = searcher.calibration.reader if passage_reader is not None else None
            depth = max(k, FOUND_DEPTH, reader_calibration.depth if reader_calibration else 0)
            hits = merge_hits(self._candidates(reader, fused, q_vec), depth)
            # Each scored chunk's multilingual cosine: the arm's search gave those of the other script's
            # passages; the fused hits' are read, and only theirs.
            crossed = dict(crossing)
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
        other-script passage compared by `MultilingualCalibration.placement`), except that a passage in the
        question's own language that clears the bar stays ahead (an answer in the language asked in comes
        first). A fused ranking's scale says nothing about the other script's
        cosines, a probability does."""
        taken = {h.row.id for h in hits}
        fresh = [(cid, score) for cid, score in crossing if cid not in taken]
        others = [h for h in merge_hits(self._candidates(reader, fresh, None), depth) if not _overlaps_any(h, hits)]
        texts.update(reader.document_texts({h.row.doc_id for h in others} - texts.keys()))
        other_passages = self._passages(reader, texts, others, scorer)
        joined: list[tuple[Hit, Passage]] = []
        mine, theirs = list(zip(hits, passages)), list(zip(others, other_passages))
        bar = scorer.model.threshold
        crossed, calibration = scorer.crossed or {}, scorer.multilingual

        def placement(hit: Hit, passage: Passage) -> float:
            cosine = crossed.get(hit.row.id)
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
                    page=page_at(h.row.pages, h.start),
                    copies=self.searcher.copies(reader, h.row.doc_id, h.row.cluster),
                    language=language,
                    asked_in=scorer.across(language) if scorer.crossed else None,
                    site=facts[h.row.doc_id].site or host_of(h.row.url) or None,
                    article_length=facts[h.row.doc_id].length,
                )
            )
        return passages


def _overlaps_any(hit: Hit, hits: list[Hit]) -> bool:
    return any(hit.overlaps(other) for other in hits)
