"""Search: a request checked and analysed once (`SearchRequest`), the dense and BM25 arms run under its
filter, fused, overlapping hits merged into passages, and each passage scored with a calibrated probability
that decides `found`."""

from rag.search.fusion import convex_fusion
from rag.search.relevance import Calibration, RelevanceModel, load_calibration
from rag.search.request import (
    API_NAMES,
    CLI_NAMES,
    DEFAULT_K,
    MAX_K,
    MODES,
    FieldNames,
    Mode,
    Question,
    SearchRequest,
)
from rag.search.searcher import Searcher

__all__ = [
    "API_NAMES",
    "CLI_NAMES",
    "DEFAULT_K",
    "MAX_K",
    "MODES",
    "Calibration",
    "FieldNames",
    "Mode",
    "Question",
    "RelevanceModel",
    "SearchRequest",
    "Searcher",
    "convex_fusion",
    "load_calibration",
]
