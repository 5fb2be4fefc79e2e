"""The same story in several files: exact copies and near-duplicates (a wire story republished under another
headline or footer).

Exact copies have the same text once whitespace and case are set aside; the index keeps one of them and
remembers the others' sources. Near-duplicates are found with MinHash over word 4-shingles and
locality-sensitive hashing (32 bands of 4 rows, so pairs from about 0.4 Jaccard up are compared), confirmed
at an estimated Jaccard similarity of NEAR_DUPLICATE or more. They stay separate documents but form one
cluster, and search shows a cluster once, listing its copies, so the top five are five different stories.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

SHINGLE_WORDS = 4
PERMUTATIONS = 128
BANDS = 32
NEAR_DUPLICATE = 0.6
MIN_SHINGLES = 8  # below this, a few shared phrases would look like a copy
# Near-duplicate candidates looked at per LSH bucket: a new document is compared with the most recent members
# of each bucket it falls into, and a cluster with the first members of each, so that templated records (all
# in the same buckets) cost the same per document at any collection size. A cluster is found through any one
# of its members; one whose members are all older than a bucket's most recent ones can stay apart.
NEIGHBOURS_PER_BUCKET = 8

_rng = np.random.default_rng(20250123)  # fixed: signatures are stored in the index and must stay comparable
_A = (_rng.integers(1, 2**32, PERMUTATIONS, dtype=np.uint64) | np.uint64(1)).astype(np.uint64)
_B = _rng.integers(0, 2**32, PERMUTATIONS, dtype=np.uint64)
_MASK = np.uint64(0xFFFFFFFF)
_WORD = re.compile(r"\w+", re.UNICODE)


def text_fingerprint(text: str) -> str:
    """Equal for texts that differ only in whitespace and letter case."""
    return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()


def minhash(text: str) -> bytes:
    """A MinHash signature of the text's word shingles, as bytes for the index (empty for very short texts).
    A shingle's hash is a polynomial of its words' CRC-32s, computed for all shingles at once."""
    words = np.fromiter(
        (zlib.crc32(w.encode("utf-8", "surrogatepass")) for w in _WORD.findall(text.lower())), dtype=np.uint64
    )
    n = len(words) - SHINGLE_WORDS + 1
    if n < MIN_SHINGLES:
        return b""
    mixed = np.zeros(n, dtype=np.uint64)
    for offset in range(SHINGLE_WORDS):
        mixed = mixed * np.uint64(0x100000001B3) + words[offset : offset + n]
    hashes = np.unique((mixed ^ (mixed >> np.uint64(29))) & _MASK)
    if len(hashes) < MIN_SHINGLES:
        return b""
    signature = ((hashes[:, None] * _A[None, :] + _B[None, :]) & _MASK).min(axis=0)
    return signature.astype(np.uint32).tobytes()


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures."""
    if not a or not b:
        return 0.0
    return float(np.mean(np.frombuffer(a, dtype=np.uint32) == np.frombuffer(b, dtype=np.uint32)))


def lsh_keys(signature: bytes) -> list[int]:
    """The LSH bucket of each band of a signature, as signed 64-bit keys the index stores per document, so a new
    document meets its candidate near-duplicates with one lookup instead of a pass over every document."""
    if not signature:
        return []
    width = PERMUTATIONS // BANDS * 4
    keys = []
    for band in range(BANDS):
        digest = hashlib.blake2b(bytes([band]) + signature[band * width : (band + 1) * width], digest_size=8)
        keys.append(int.from_bytes(digest.digest(), "little", signed=True))
    return keys


def clusters(signatures: Iterable[tuple[int, bytes]]) -> dict[int, int]:
    """Document id -> cluster id (the smallest id among its near-duplicates; its own id when it has none)."""
    sigs = {doc_id: sig for doc_id, sig in signatures}
    parent = {doc_id: doc_id for doc_id in sigs}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rows = PERMUTATIONS // BANDS
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for doc_id, sig in sigs.items():
        if sig:
            for band in range(BANDS):
                buckets[(band, sig[band * rows * 4 : (band + 1) * rows * 4])].append(doc_id)
    checked: set[tuple[int, int]] = set()
    for members in buckets.values():
        for i, a in enumerate(members):
            for b in members[i + 1 : i + 1 + NEIGHBOURS_PER_BUCKET]:  # a window: chains join the rest
                pair = (a, b) if a < b else (b, a)
                if pair in checked:
                    continue
                checked.add(pair)
                if similarity(sigs[a], sigs[b]) >= NEAR_DUPLICATE:
                    ra, rb = find(a), find(b)
                    parent[max(ra, rb)] = min(ra, rb)
    return {doc_id: find(doc_id) for doc_id in sigs}
