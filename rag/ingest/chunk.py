"""Split a document's content into passages that fit the model and are exact slices of the source.

Sentences are the unit: a passage never ends mid-sentence unless one sentence alone exceeds the budget.
A headline opens a new passage so it travels with the story under it; a short line between two other short
lines (a hard-wrapped PDF page, OCR text) is a wrapped line, not a headline. Consecutive passages share up
to `overlap_tokens` of trailing sentences, so an answer that straddles a boundary is still whole in one.

Budgets are counted in English-token units. The English model's tokenizer cuts a Hangul syllable into
several pieces, so counting its tokens would make a Korean passage a quarter the size of an English one:
a Hangul/CJK character counts as WIDE_CHAR_COST units instead (what a syllable carries, compared with an
English word piece). The model reads the first window's worth of such a passage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.records import Chunk, Document
from rag.text import WIDE_CHARS, is_headline

WIDE_CHAR_COST = 0.5

_SENTENCE_END = re.compile(r"[.!?。？！…]+[\"'”’)\]]*(?=\s)|\n+")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "rep",
        "sen",
        "gov",
        "gen",
        "col",
        "lt",
        "sgt",
        "st",
        "jr",
        "sr",
        "vs",
        "etc",
        "no",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "inc",
        "corp",
        "co",
        "ltd",
        "u.s",
        "u.k",
        "u.n",
        "e.g",
        "i.e",
        "n",
        "s",
    ]
)


class TokenCounter(Protocol):
    """The model's own tokenizer, seen from the chunker. The token ids travel with each chunk, so the model
    reads them as they are and no passage is tokenised twice."""

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]: ...

    def token_spans(self, text: str) -> tuple[list[int], list[tuple[int, int]]]: ...


@dataclass(frozen=True)
class ChunkPlan:
    """Token budgets; `max_tokens` is a hard limit, `target_tokens` where a passage normally closes."""

    target_tokens: int = 160
    max_tokens: int = 224
    overlap_tokens: int = 32


@dataclass(frozen=True)
class _Sentence:
    start: int
    end: int
    ids: tuple[int, ...]
    paragraph_start: bool
    headline: bool
    tokens: int  # its size in budget units (`budget_units`)


def budget_units(text: str, n_tokens: int) -> int:
    """`text`'s size against the budget: its token count, with Hangul/CJK characters counted as
    WIDE_CHAR_COST each in place of the tokens they make."""
    wide = len(WIDE_CHARS.findall(text))
    if not wide:
        return n_tokens
    visible = sum(1 for c in text if not c.isspace())
    other = n_tokens * (visible - wide) / visible
    return max(1, round(other + WIDE_CHAR_COST * wide))


def chunk_document(doc: Document, counter: TokenCounter, plan: ChunkPlan = ChunkPlan()) -> list[Chunk]:
    chunks: list[Chunk] = []
    for seg_start, seg_end in doc.segments:
        sentences = _sentences(doc.text, seg_start, seg_end, counter, plan.max_tokens)
        chunks.extend(_pack(doc.text, sentences, plan))
    return chunks


def split_sentences(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """(start, end, opens_paragraph) for each sentence of text[start:end], whitespace trimmed."""
    spans: list[tuple[int, int, bool]] = []
    pos = start
    new_paragraph = True
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group().startswith("\n"):
            _add_span(text, pos, match.start(), new_paragraph, spans)
            new_paragraph = True
            pos = match.end()
            continue
        if _is_abbreviation(text, pos, match.start()) and match.group() == ".":
            continue
        if _add_span(text, pos, match.end(), new_paragraph, spans):
            new_paragraph = False
        pos = match.end()
    _add_span(text, pos, end, new_paragraph, spans)
    return spans


def _add_span(text: str, start: int, end: int, paragraph: bool, spans: list) -> bool:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return False
    lead = len(piece) - len(piece.lstrip())
    spans.append((start + lead, start + lead + len(stripped), paragraph))
    return True


def _is_abbreviation(text: str, sentence_start: int, dot: int) -> bool:
    word = re.search(r"([\w.]+)$", text[sentence_start:dot])
    if not word:
        return False
    token = word.group(1).lower()
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())


def _sentences(text: str, start: int, end: int, counter: TokenCounter, max_tokens: int) -> list[_Sentence]:
    spans = split_sentences(text, start, end)
    token_ids = counter.tokenize([text[s:e] for s, e, _ in spans]) if spans else []
    headlines = _headlines(text, spans)
    result: list[_Sentence] = []
    for (s, e, para), ids, headline in zip(spans, token_ids, headlines):
        units = budget_units(text[s:e], len(ids))
        if units <= max_tokens:
            result.append(_Sentence(s, e, tuple(ids), para, headline, units))
            continue
        window = max(1, max_tokens * len(ids) // units)  # tokens per piece that make max_tokens units
        for i, (ps, pe, piece_ids) in enumerate(_split_long(text, s, e, counter, window)):
            piece_units = min(max_tokens, budget_units(text[ps:pe], len(piece_ids)))
            result.append(_Sentence(ps, pe, piece_ids, para and i == 0, False, piece_units))
    return result


def _headlines(text: str, spans: list[tuple[int, int, bool]]) -> list[bool]:
    """Which sentences are headlines: a headline-like line that opens a paragraph, follows a finished
    sentence (or opens the text) and is followed by body text that does not continue it in lower case. In
    hard-wrapped text every line is short; a line whose neighbours are short lines too is a wrapped line."""
    lines = [text[s:e] for s, e, _ in spans]
    like = [is_headline(line) for line in lines] + [True]  # nothing after the last line: no body follows
    return [
        para and like[i] and (i == 0 or not like[i - 1]) and not like[i + 1] and not lines[i + 1][0].islower()
        for i, (_, _, para) in enumerate(spans)
    ]


def _split_long(
    text: str, start: int, end: int, counter: TokenCounter, max_tokens: int
) -> list[tuple[int, int, tuple[int, ...]]]:
    """Cut one over-long sentence at token boundaries, preferring the last space inside each window."""
    ids, spans = counter.token_spans(text[start:end])
    offsets = [(start + a, start + b) for a, b in spans]
    pieces = []
    i = 0
    while i < len(offsets):
        j = min(i + max_tokens, len(offsets))
        if j < len(offsets):
            for k in range(j - 1, i + max_tokens // 2, -1):
                if offsets[k][0] > offsets[k - 1][1]:  # whitespace before token k
                    j = k
                    break
        piece_end = offsets[j - 1][1] if j < len(offsets) else end
        pieces.append((offsets[i][0], piece_end, tuple(ids[i:j])))
        i = j
    return pieces


def _pack(text: str, sentences: list[_Sentence], plan: ChunkPlan) -> list[Chunk]:
    chunks: list[Chunk] = []
    current: list[_Sentence] = []
    tokens = 0
    for sent in sentences:
        starts_story = sent.headline and tokens >= plan.target_tokens // 4
        if current and (tokens + sent.tokens > plan.target_tokens or starts_story):
            chunks.append(_make_chunk(text, current))
            current = [] if starts_story else _overlap(current, plan.overlap_tokens)
            tokens = sum(s.tokens for s in current)
            while current and tokens + sent.tokens > plan.max_tokens:
                tokens -= current.pop(0).tokens
        current.append(sent)
        tokens += sent.tokens
    if current and not (chunks and current[-1].end <= chunks[-1].end):
        chunks.append(_make_chunk(text, current))
    return chunks


def _overlap(sentences: list[_Sentence], budget: int) -> list[_Sentence]:
    kept: list[_Sentence] = []
    used = 0
    for sent in reversed(sentences):
        if used + sent.tokens > budget:
            break
        kept.insert(0, sent)
        used += sent.tokens
    return kept


def _make_chunk(text: str, sentences: list[_Sentence]) -> Chunk:
    start, end = sentences[0].start, sentences[-1].end
    ids = tuple(i for s in sentences for i in s.ids)
    return Chunk(start=start, end=end, text=text[start:end], n_tokens=len(ids), ids=ids)
