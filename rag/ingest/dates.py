"""Publication dates as ISO 8601 (YYYY-MM-DD), read only where they are unambiguous.

"Posted January. 23, 2025", "5 March 2024", "2025-01-23T07:40:00+09:00" and "2025.01.23" are dates;
"3 hours ago" is not (ago from when?), and neither is "03/04/2025", which means March or April depending on
who wrote it. Every reader (plain text, HTML metadata, JSON exports, PDF info) goes through here, so the
date filters compare like with like.
"""

from __future__ import annotations

import re
from datetime import date

_MONTHS = {
    m: i
    for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
_DATE_MDY = re.compile(
    r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})\b", re.IGNORECASE
)
_DATE_DMY = re.compile(
    r"\b(\d{1,2})\s+(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?,?\s+(\d{4})\b", re.IGNORECASE
)
_DATE_ISO = re.compile(r"\b(\d{4})[-./](\d{1,2})[-./](\d{1,2})(?!\d)")
_DATE_KOREAN = re.compile(r"(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일")
_PDF_DATE = re.compile(r"^D:(\d{4})(\d{2})(\d{2})")


def parse_date(text: str) -> str | None:
    """The first unambiguous calendar date written in `text`, as YYYY-MM-DD."""
    match = _PDF_DATE.match(text.strip())
    if match:
        return _iso(*match.groups())
    for pattern, order in ((_DATE_MDY, "mdy"), (_DATE_DMY, "dmy"), (_DATE_ISO, "ymd"), (_DATE_KOREAN, "ymd")):
        for match in pattern.finditer(text):
            a, b, c = match.groups()
            if order == "mdy":
                found = _iso(c, _MONTHS[a[:3].lower()], b)
            elif order == "dmy":
                found = _iso(c, _MONTHS[b[:3].lower()], a)
            else:
                found = _iso(a, b, c)
            if found:
                return found
    return None


def _iso(year: str | int, month: str | int, day: str | int) -> str | None:
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None
