"""The words a passage's document is filtered by (its source and file, site, web host and day), as the lexical
index stores them in a field of their own, so that a filter runs inside the BM25 query (`rag.index.lexical`)
instead of as a list of ids beside it; and the passage's place in that index (`order_key`).

A filter becomes the set of words its passages hold one or more of: a day range is cut into whole years,
whole months and single days (the fewest words), a glob into the names it matches, a name and a day range
into the name joined to each of those. `kept_depth` says how deep every arm reads a ranking under a filter.
"""

from __future__ import annotations

import hashlib
import math
from urllib.parse import urlsplit


def day_number(value: str | None) -> int:
    """YYYY-MM-DD (or the start of a longer ISO date) as the integer YYYYMMDD; 0 when there is none."""
    digits = (value or "")[:10].replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isdigit() else 0


def host_of(url: str | None) -> str:
    """A URL's host in lower case without "www.", "" when there is none."""
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        return ""


def _digest(value: str, size: int) -> bytes:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=size).digest()


def name_word(kind: str, value: str) -> str:
    """A name as one facet word: its kind ("e" a source or file name matched exactly, "s" a site name in lower
    case, "h" a web host) and a hash of the value, so any text becomes a plain word."""
    return f"{kind}{_digest(value, 8).hex()}"


def order_key(site: str | None, url: str | None, published: str | None) -> int:
    """Where a passage sits in the lexical index: grouped by site (its web host when it names none), then by
    day. The passages a site filter keeps then lie in one run of the index, and those a date range keeps in
    one run per site, so a filtered query skips the rest a block at a time (`rag.index.lexical`). Sites are
    placed by a hash of their name: two sharing a place only share a run."""
    return place_key((site or "").lower() or host_of(url)) + day_number(published)


def in_order_runs(word: str) -> bool:
    """Whether the passages holding a facet word lie in runs of the lexical index's order (`order_key`): a
    site's, a web host's and a period's do; a source's or a file's ("e" words) are strewn over it, unless it
    holds one site's articles of one period."""
    return not word.startswith("e")


def place_key(place: str) -> int:
    """The high part of `order_key`: a site name in lower case, or a web host."""
    return int.from_bytes(_digest(place, 3), "big") << 32


def year_word(year: int) -> str:
    return f"y{year}"


def month_word(month: int) -> str:
    """`month` as YYYYMM."""
    return f"m{month}"


def day_word(day: int) -> str:
    """`day` as YYYYMMDD."""
    return f"d{day}"


def date_words(day: int) -> list[str]:
    return [year_word(day // 10_000), month_word(day // 100), day_word(day)] if day else []


def facet_text(source: str, file: str, site: str | None, url: str | None, published: str | None) -> str:
    """The facet field of a passage of this document: its date words, its names, and each name joined to each
    date word."""
    names = list(dict.fromkeys([name_word("e", source), name_word("e", file)]))
    if site:
        names.append(name_word("s", site.lower()))
    if host := host_of(url):
        names.append(name_word("h", host))
    dates = date_words(day_number(published))
    return " ".join(dates + names + [name + date for name in names for date in dates])


def kept_depth(n: int, share: float) -> int:
    """How deep to read a ranking to find `n` hits that a filter keeping `share` of the collection keeps: the
    kept among the first d hits counted as a binomial draw, with three standard deviations to spare, so that a
    filter keeping most passages reads hardly deeper than the unfiltered search (bench/filters.py). A caller
    that finds too few reads deeper."""
    return max(n, math.ceil((n + 3 * math.sqrt(n * (1 - share)) + 5) / share))
