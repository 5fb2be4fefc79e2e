"""Rescoring the fused top passages with the reader (`rag.models.reader`).

The fused ranking and the surface-feature probability decide which passages the reader sees: the first
`depth` of them. The reader reads each with the question; a logistic model over its logit and the surface
probability's log-odds gives the passage's calibrated probability, which becomes its `score`, orders the
passages it read, and decides `found` against the reader's own bar. Passages below the depth keep their
order, and a score no higher than the lowest read one, so that no number contradicts the order shown.

Depth, weights and bar were chosen by leave-one-dataset-out over SQuAD, KorQuAD, SciFact and the news set
(`bench/fit_reader.py`; figures in bench/RESULTS.md). Questions in a script the reader was not trained on
(Korean, Chinese, Japanese) keep the surface score unless the calibration says the reader helps there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from rag.models.reader import PassageReader
from rag.records import Passage


@dataclass(frozen=True)
class ReaderCalibration:
    """How the reader's logit and the surface probability make one probability, how many fused passages the
    reader reads, the bar for `found`, and whether wide-script questions are read."""

    reader_weight: float
    span_weight: float
    surface_weight: float
    bias: float
    threshold: float
    depth: int
    wide: bool
    default: bool  # whether a search reads unless told otherwise: only if the reader won on the left-out sets

    def probability(self, logit: float, span_score: float, surface: float) -> float:
        z = (
            self.bias
            + self.reader_weight * logit
            + self.span_weight * span_score
            + self.surface_weight * log_odds(surface)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def from_dict(cls, entry: dict) -> ReaderCalibration:
        return cls(
            reader_weight=entry["reader_weight"],
            span_weight=entry["span_weight"],
            surface_weight=entry["surface_weight"],
            bias=entry["bias"],
            threshold=entry["threshold"],
            depth=entry["depth"],
            wide=entry["wide"],
            default=entry["default"],
        )


def log_odds(p: float) -> float:
    """The surface probability as the reader's model takes it (clipped, so 0 and 1 stay finite)."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def reread(
    reader: PassageReader,
    calibration: ReaderCalibration,
    question: str,
    passages: Sequence[Passage],
    evidence: Sequence[tuple[str, int]],
) -> list[Passage]:
    """`passages` (fused order, surface scores) with the first `calibration.depth` read and reordered by their
    new probability, each with the answer span the reader marks. `evidence[i]` is the text the reader reads for
    passage i (the chunk that brought it in) and that text's offset in the document."""
    n = min(calibration.depth, len(passages))
    readings = reader.read(question, [text for text, _ in evidence[:n]])
    read: list[Passage] = []
    for passage, reading, (_, offset) in zip(passages, readings, evidence):
        answer = None
        if reading.span is not None:
            start, end = offset + reading.span[0], offset + reading.span[1]
            if passage.start <= start < end <= passage.end:
                answer = (start, end)
        score = calibration.probability(reading.logit, reading.span_score, passage.score)
        read.append(dataclasses.replace(passage, score=score, answer=answer))
    read.sort(key=lambda p: -p.score)  # stable: ties keep the fused order
    floor = min((p.score for p in read), default=1.0)
    rest = [dataclasses.replace(p, score=min(p.score, floor)) for p in passages[n:]]
    return read + rest
