"""The relevance score: the estimated probability that a passage answers the question.

A fused rank only says which passage beat which for one question; a reader needs a number that means the
same for every question, mode and `k`. So each passage is scored from evidence about that passage alone:
its cosine similarity to the question, its BM25 score relative to what the question's words could score at
most in this collection, its coverage of the question's key terms, and whether it holds the kind of thing
asked for (a number for "how many", a date for "when", a name for "who"). A logistic model turns these
into a probability; its weights and the one `found` threshold were fitted by leave-one-dataset-out over
SQuAD, KorQuAD, SciFact and a news question set (`bench/fit_relevance.py`, figures in bench/RESULTS.md).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import resources

from rag.search.request import AnswerType, Question
from rag.search.rerank import ReaderCalibration
from rag.text import coverage, has_wide_script

FEATURES = (
    "similarity",
    "lexical",
    "coverage",
    "type_found",
    "type_missing",
    "wide",
    "wide_similarity",
    "wide_coverage",
    "wide_lexical",
)
LEXICAL_CAP = 2.0  # a passage repeating the question's words can pass the one-mention ceiling; cap the excess

_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|thousand|million|billion|dozen|half|once|twice)\b",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"\b(?:1[0-9]{3}|20[0-9]{2})\b|\b(?:jan(?:uary)?|feb(?:ruary)?|march|april|june|july|aug(?:ust)?|"
    r"sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|yesterday|today|century|decade)\b|\d+\s*(?:년|월|일)",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'’-]+")


def holds_answer_type(kind: AnswerType, question: str, text: str) -> bool:
    """Whether `text` holds something of the kind asked for: a number, a date, or a name that the question
    does not already contain (the name asked for is not the name asked about)."""
    if kind == "number":
        return bool(_NUMBER.search(text))
    if kind == "date":
        return bool(_DATE.search(text))
    if kind == "name":
        asked = {w.lower() for w in re.findall(r"\w+", question)}
        return any(m.group().lower() not in asked for m in _CAPITALISED.finditer(text)) or (
            has_wide_script(text) and not has_wide_script(question)
        )
    return False


def features(question: Question, passage_text: str, similarity: float | None, lexical: float) -> list[float]:
    """The model's inputs for one passage (title line included in `passage_text`). `similarity` is None
    when the search did not encode the question (keyword mode); `lexical` is the passage's best BM25 score
    over the query's ceiling (`LexicalIndex.ceiling`)."""
    kind_found = question.kind != "none" and holds_answer_type(question.kind, question.text, passage_text)
    return feature_vector(
        0.0 if similarity is None else similarity,
        lexical,
        coverage(list(question.keys), passage_text),
        kind_found,
        question.kind != "none" and not kind_found,
        question.wide,
    )


def feature_vector(
    similarity: float, lexical: float, key_coverage: float, type_found: bool, type_missing: bool, wide: bool
) -> list[float]:
    """The model's inputs in FEATURES order. Korean/CJK questions get slopes of their own: bigram coverage
    and bigram BM25 are not on the scale of English word coverage, and the English model's cosine means
    little there."""
    w = 1.0 if wide else 0.0
    lex = min(max(lexical, 0.0), LEXICAL_CAP)
    return [
        similarity,
        lex,
        key_coverage,
        1.0 if type_found else 0.0,
        1.0 if type_missing else 0.0,
        w,
        w * similarity,
        w * key_coverage,
        w * lex,
    ]


@dataclass(frozen=True)
class RelevanceModel:
    """A logistic model over `FEATURES`, and the probability at which a passage counts as an answer."""

    weights: tuple[float, ...]
    bias: float
    threshold: float

    def probability(self, x: list[float]) -> float:
        z = self.bias + math.fsum(w * v for w, v in zip(self.weights, x))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass(frozen=True)
class MultilingualCalibration:
    """The multilingual arm's share of the fusion among passages in the question's own script (for questions
    in Korean, Chinese or Japanese: for others it ranks below the first model and stays out), and what a
    passage in another script, which no other arm can see, is worth: a probability from the arm's cosine (a
    logistic `slope`, placed so that the passage clears the bar for `found` at cosine `cut`), and its place
    among the fused passages, decided by the same curve placed at `rank_cut`. Two cosines, because where such
    a passage is shown and whether it answers were chosen on different evidence: ranking on nDCG, the bar on
    `found`'s errors, with no same-language set allowed to lose on either (`bench/fit_multilingual.py`)."""

    weight: float
    slope: float
    cut: float  # for a question in a Latin script and a passage in Hangul/CJK
    rank_cut: float
    name_bonus: float = 0.0  # added to the cosine per name the passage shares with the question across scripts
    cut_wide: float | None = None  # for a question in Hangul/CJK and a Latin passage (None: `cut`)

    def found_cut(self, wide_question: bool) -> float:
        """The cosine at which a passage in the other script clears the bar, by the question's script: each
        direction was chosen on its own sets (English questions about Korean news, Korean questions about
        English news), since what goes wrong differs (unrelated Korean blurbs answering English news
        questions; English passages answering Korean ones)."""
        return self.cut_wide if wide_question and self.cut_wide is not None else self.cut

    def probability(self, cosine: float, bar: float, cut: float | None = None) -> float:
        bar = min(max(bar, 1e-6), 1 - 1e-6)
        z = self.slope * (cosine - (self.cut if cut is None else cut)) + math.log(bar / (1 - bar))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def placement(self, cosine: float, bar: float) -> float:
        """What a passage in another script is compared with the fused passages' probabilities on."""
        return self.probability(cosine, bar, self.rank_cut)

    @classmethod
    def from_dict(cls, entry: dict) -> MultilingualCalibration:
        return cls(
            entry["weight"],
            entry["slope"],
            entry["cut"],
            entry["rank_cut"],
            entry.get("name_bonus", 0.0),
            entry.get("cut_wide"),
        )


@dataclass(frozen=True)
class Calibration:
    """One model per kind of search: with the question's embedding (hybrid, semantic) and without
    (keyword), so a keyword search's score is a probability too, not a hybrid score missing a term."""

    dense: RelevanceModel
    lexical_only: RelevanceModel
    lexical_weight: tuple[float, float]  # fusion weight of the lexical arms when they match well / poorly
    lexical_strength: float  # the top lexical feature at which the arms count as matching well
    dense_wide_script: bool
    reader: ReaderCalibration | None = None  # None: the reader was not calibrated for this encoder
    multilingual: MultilingualCalibration | None = None  # None: the multilingual arm stays out

    def model(self, dense: bool) -> RelevanceModel:
        return self.dense if dense else self.lexical_only


def _model(entry: dict) -> RelevanceModel:
    return RelevanceModel(tuple(entry["weights"]), entry["bias"], entry["threshold"])


def load_calibration(model: str) -> Calibration:
    """The model's calibration; a model nobody has calibrated gets the default model's, and keeps its dense
    arm for Korean (it may be a multilingual model: the reason to choose another one)."""
    table = json.loads(resources.files("rag.search").joinpath("calibration.json").read_text())
    entry = table["models"].get(model)
    uncalibrated = entry is None
    entry = entry or table["models"][table["fallback"]]
    return Calibration(
        dense=_model(entry["dense"]),
        lexical_only=_model(entry["lexical_only"]),
        lexical_weight=(entry["lexical_weight"]["strong"], entry["lexical_weight"]["weak"]),
        lexical_strength=entry["lexical_strength"],
        dense_wide_script=True if uncalibrated else entry["dense_wide_script"],
        reader=ReaderCalibration.from_dict(entry["reader"]) if "reader" in entry else None,
        multilingual=MultilingualCalibration.from_dict(table["multilingual"]) if "multilingual" in table else None,
    )
