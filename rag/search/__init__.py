"""Search: a request checked and analysed once (`SearchRequest`), the dense and BM25 arms run under its
filter, fused, overlapping hits merged into passages, and each passage scored with a calibrated probability
that decides `found`."""

from rag.search.call import FOUND_DEPTH, SearchCall
from rag.search.fusion import Arms, convex_fusion, fuse_arms
from rag.search.merge import Candidate, Hit, merge_hits
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
    "FOUND_DEPTH",
    "Arms",
    "Candidate",
    "Hit",
    "SearchCall",
    "fuse_arms",
    "merge_hits",
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
