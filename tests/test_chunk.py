import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunk import ChunkPlan, chunk_document, split_sentences
from rag.embed import passage_input
from rag.ingest import read_documents
from rag.plaintext import parse_document
from tests.conftest import CORPUS


def seed_documents():
    return [doc for path in sorted(CORPUS.glob("*.txt")) for doc in read_documents(path, path.name).documents]


def test_chunks_are_exact_slices_within_the_token_limit(embedder):
    for doc in seed_documents():
        chunks = chunk_document(doc, embedder, ChunkPlan())
        assert chunks, doc.source
        for chunk in chunks:
            assert doc.text[chunk.start : chunk.end] == chunk.text
            assert chunk.text == chunk.text.strip()
            assert embedder.count([chunk.text])[0] <= ChunkPlan().max_tokens
            assert any(s <= chunk.start and chunk.end <= e for s, e in doc.segments)


def test_every_content_sentence_is_in_some_chunk(embedder):
    for doc in seed_documents():
        chunks = chunk_document(doc, embedder)
        for seg_start, seg_end in doc.segments:
            for s, e, _ in split_sentences(doc.text, seg_start, seg_end):
                assert any(c.start <= s and e <= c.end for c in chunks) or e - s > 500, doc.text[s:e]


def test_neighbouring_chunks_overlap(embedder):
    doc = read_documents(CORPUS / "002_4545c625dd368776.txt", "002").documents[-1]
    chunks = chunk_document(doc, embedder)
    overlapping = sum(1 for a, b in zip(chunks, chunks[1:]) if b.start < a.end)
    assert overlapping >= len(chunks) // 3


def test_overlong_sentence_is_split_not_truncated(embedder):
    sentence = " ".join(f"word{i}" for i in range(900)) + "."
    doc = parse_document("Title line\n" + sentence, "long.txt")
    chunks = chunk_document(doc, embedder, ChunkPlan(target_tokens=100, max_tokens=120, overlap_tokens=0))
    assert len(chunks) > 5
    covered = "".join(c.text for c in chunks if c.start > 10)
    assert covered.replace(" ", "") == sentence.replace(" ", "")
    assert all(c.n_tokens <= 120 for c in chunks)


def test_abbreviations_do_not_end_sentences():
    text = "U.S. President Trump met Rep. Kim on Dec. 3 in Seoul. Then he left."
    spans = split_sentences(text, 0, len(text))
    assert [text[s:e] for s, e, _ in spans] == [
        "U.S. President Trump met Rep. Kim on Dec. 3 in Seoul.",
        "Then he left.",
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abc XYZ.!?\n이재명", min_size=1, max_size=40), min_size=1, max_size=12))
def test_sentence_spans_are_ordered_slices(parts):
    text = "".join(parts)
    spans = split_sentences(text, 0, len(text))
    previous_end = 0
    for s, e, _ in spans:
        assert previous_end <= s < e <= len(text)
        assert text[s:e] == text[s:e].strip()
        previous_end = e


def test_the_model_reads_the_chunkers_tokens_and_gets_what_it_would_from_the_text(embedder):
    """Each passage is tokenised once, by the chunker; its ids give the vector the text gives."""
    doc = seed_documents()[0]
    title, title_ids = embedder.title_prefix(doc.title)
    chunks = chunk_document(doc, embedder, ChunkPlan())[:4]
    texts = [passage_input(title, c.text) for c in chunks]
    ids = [(*title_ids, *c.ids) for c in chunks]
    assert [len(i) for i in ids] == embedder.count(texts)
    assert np.allclose(embedder.encode_ids(ids), embedder.encode(texts), atol=1e-5)
