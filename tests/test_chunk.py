import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.chunk import ChunkPlan, chunk_document, split_sentences
from rag.ingest.files import read_documents
from rag.ingest.plaintext import parse_document
from rag.models.embed import passage_input
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


KOREAN_PARAGRAPH = (
    "정부는 올해 하반기부터 전국 모든 초등학교에 돌봄 교실을 확대 운영한다고 밝혔다. "
    "교육부는 이를 위해 예산 삼천억 원을 추가로 편성했으며, 지방자치단체와 협력해 운영 인력을 늘릴 계획이다. "
    "학부모 단체는 환영의 뜻을 밝히면서도 교사의 업무 부담이 커질 수 있다고 우려했다. "
    "교원 단체는 돌봄 업무를 별도 인력이 맡아야 한다고 주장했다. "
)


def test_korean_passages_are_sized_like_english_ones(embedder):
    """The English tokenizer cuts Hangul into many pieces; counted by its tokens a Korean passage would be a
    sliver. Budgets count a Hangul character as half a token, so a passage holds a few hundred characters."""
    text = "\n".join(KOREAN_PARAGRAPH * 2 for _ in range(6))
    doc = parse_document(text, "korean.txt")
    chunks = chunk_document(doc, embedder, ChunkPlan())
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)
    sizes = sorted(len(c.text) for c in chunks)
    assert sizes[len(sizes) // 2] >= 250, sizes
    assert len(chunks) <= 12


def test_hard_wrapped_short_lines_are_not_headlines(embedder):
    """A PDF page or OCR text: every line short and unfinished. None of them opens a new passage."""
    words = (
        "The committee met on Tuesday to review the budget and the schedule for the new harbour "
        "terminal, which has been delayed by two years because of rising costs and a dispute over "
        "the contract with the builder. Members asked the port authority to publish the figures. "
    ) * 4
    lines, line = [], ""
    for word in words.split():
        if len(line) + len(word) > 60:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    lines.append(line)
    doc = parse_document("Harbour terminal delayed again\n" + "\n".join(lines), "wrapped.txt")
    chunks = chunk_document(doc, embedder, ChunkPlan())
    assert len(chunks) <= 3, [c.text[:40] for c in chunks]
