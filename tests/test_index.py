from pathlib import Path

import pytest

from rag import Index, ModelMismatchError
from rag.errors import PathNotFoundError
from rag.ingest.plaintext import parse_document


def test_incremental_reindex_reuses_everything(tmp_path: Path, corpus_copy: Path):
    index = Index(tmp_path / "idx", model="hashing")
    first = index.add([corpus_copy])
    assert (first.added, first.embedded) == (7, first.chunks)  # 4 files, one holding 4 articles and first.chunks > 20
    again = index.add([corpus_copy])
    assert (again.added, again.updated, again.removed, again.unchanged, again.embedded) == (0, 0, 0, 7, 0)
    assert again.chunks == first.chunks
    assert again.seconds < first.seconds


def test_changed_document_reembeds_only_new_passages(tmp_path: Path, corpus_copy: Path):
    index = Index(tmp_path / "idx", model="hashing")
    first = index.add([corpus_copy])
    path = corpus_copy / "001_33dd8276e80e8104.txt"
    path.write_text(path.read_text() + "\nThe ambassador later toured the Gyeongbokgung palace with a zither player.\n")
    report = index.add([corpus_copy])
    assert (report.added, report.updated, report.unchanged) == (0, 1, 6)
    assert 0 < report.embedded < 4
    answer = index.search("Who toured the palace with a zither player?", k=1)
    assert "zither player" in answer.passages[0].text
    assert index.info().chunks >= first.chunks


def test_deleted_document_disappears(tmp_path: Path, corpus_copy: Path):
    index = Index(tmp_path / "idx", model="hashing")
    index.add([corpus_copy])
    (corpus_copy / "003_a37b0dba77dbb840.txt").unlink()
    report = index.add([corpus_copy])
    assert report.removed == 1
    assert {d["source"] for d in index.info().to_dict()["documents"]} == {
        "000_594d65cdc1b20141.txt",
        "001_33dd8276e80e8104.txt",
        "002_4545c625dd368776.txt",
        "002_4545c625dd368776.txt#2",
        "002_4545c625dd368776.txt#3",
        "002_4545c625dd368776.txt#4",
    }
    answer = index.search("Which senator from Vermont did Kim Jong-hoon meet?", k=10)
    assert all(p.source != "003_a37b0dba77dbb840.txt" for p in answer.passages)
    assert all("Bernie Sanders" not in p.text for p in answer.passages)


def test_bad_files_are_skipped_with_reasons_and_the_rest_indexed(tmp_path: Path, corpus_copy: Path):
    (corpus_copy / "empty.txt").write_bytes(b"")
    (corpus_copy / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    (corpus_copy / "garbage.md").write_bytes(b"abc \x80\x80\x80 \x9d\x9d def")
    (corpus_copy / "notes.pdf").write_bytes(b"%PDF-1.4 not really")
    (corpus_copy / "korean.txt").write_bytes("서울 시장은 오늘 새 도서관 개관식에 참석했다.\n".encode("cp949"))
    index = Index(tmp_path / "idx", model="hashing")
    report = index.add([corpus_copy])
    reasons = dict(report.skipped)
    assert reasons["empty.txt"] == "empty file"
    assert reasons["image.txt"] == "the file is a PNG image, not a .txt article"
    assert reasons["garbage.md"].startswith("cannot decode")
    assert reasons["notes.pdf"].startswith("damaged PDF")
    assert report.added == 8
    assert "도서관" in index.search("도서관 개관식", k=1).passages[0].text


def test_a_file_turned_unreadable_keeps_its_previous_version(tmp_path: Path, corpus_copy: Path):
    index = Index(tmp_path / "idx", model="hashing")
    index.add([corpus_copy])
    (corpus_copy / "003_a37b0dba77dbb840.txt").write_bytes(b"\x00\x01binary now")
    report = index.add([corpus_copy])
    assert report.removed == 0 and len(report.skipped) == 1
    assert len(index.info().to_dict()["documents"]) == 7


def test_missing_path_removes_nothing(tmp_path: Path, corpus_copy: Path):
    index = Index(tmp_path / "idx", model="hashing")
    index.add([corpus_copy])
    with pytest.raises(PathNotFoundError, match="typo"):  # an error, not a skip: nothing else is read either
        index.add([corpus_copy, tmp_path / "typo"])
    assert len(index.info().to_dict()["documents"]) == 7


def test_opening_with_another_model_is_a_clear_error(seed_index: Index):
    with pytest.raises(ModelMismatchError, match="built with model 'all-MiniLM-L6-v2'"):
        Index(seed_index.path, model="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2")


def test_documents_added_from_memory(tmp_path: Path):
    index = Index(tmp_path / "idx", model="hashing")
    doc = parse_document("Harbour news\nThe ferry to Jeju was cancelled because of typhoon Khanun.", "memo/1")
    assert index.add_documents([doc]).added == 1
    top = index.search("Why was the Jeju ferry cancelled?", k=1).passages[0]
    assert top.source == "memo/1" and "typhoon Khanun" in top.text
    assert index.add_documents([doc]).unchanged == 1


def test_one_hostile_file_is_a_named_skip_and_the_run_goes_on(tmp_path: Path):
    """A 100k-deep nested JSON array, a JSONL line nested 50k deep beside a good record, and a file whose name
    is not UTF-8 each become one named skip; the good files of the same run are indexed and `rag index`
    exits 0 without a traceback."""
    import os
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a_good.txt").write_text("Harbour exports rise\nThe port said exports rose by a tenth in March.\n")
    (corpus / "nested.json").write_text("[" * 100_000 + "]" * 100_000)
    deep = '{"a": ' * 50_000 + "1" + "}" * 50_000
    (corpus / "records.jsonl").write_text(deep + "\n" + '{"title": "Ferry back", "text": "The ferry sailed."}\n')
    with open(os.path.join(os.fsencode(corpus), b"bad\xffname.txt"), "w") as f:
        f.write("Bad name\nA file whose name is not UTF-8.\n")
    (corpus / "z_good.txt").write_text("Ferry returns to Ulleungdo\nThe ferry resumed on Monday after storms.\n")
    run = subprocess.run(
        [sys.executable, "-m", "rag", "index", str(corpus), "--index", str(tmp_path / "idx"), "--model", "hashing"],
        capture_output=True,
        text=True,
        errors="replace",
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "skipped nested.json: nested too deeply to read" in run.stderr
    assert "skipped records.jsonl#1: nested too deeply to read" in run.stderr
    assert "skipped bad\\xffname.txt: the file name is not valid UTF-8" in run.stderr
    sources = {d.source for d in Index(tmp_path / "idx", model="hashing").documents(0, 50)[0]}
    assert sources == {"a_good.txt", "records.jsonl#2", "z_good.txt"}


def test_links_out_of_the_corpus_pipes_and_loops_are_named_and_not_read(tmp_path: Path):
    import os

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("Harbour exports rise\nThe port said exports rose by a tenth in March.\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("Private notes\nThe password is swordfish, and nobody may read this file.\n")
    (corpus / "secret.txt").symlink_to(secret)
    (corpus / "inside.txt").symlink_to(corpus / "good.txt")
    (corpus / "loop1.txt").symlink_to(corpus / "loop2.txt")
    (corpus / "loop2.txt").symlink_to(corpus / "loop1.txt")
    os.mkfifo(corpus / "pipe.txt")
    skipped: dict[str, str] = {}
    index = Index(tmp_path / "idx", model="hashing")
    report = index.add([corpus], on_skip=lambda name, why: skipped.setdefault(name, why))
    assert skipped["secret.txt"] == "a link to something outside the corpus folder; not read"
    assert skipped["loop1.txt"] == skipped["loop2.txt"] == "a broken or looping link; not read"
    assert skipped["pipe.txt"].startswith("not a regular file")
    assert report.added >= 1
    assert all("swordfish" not in p.text for p in index.search("password swordfish", mode="keyword").passages)


@pytest.mark.slow
def test_an_open_index_answers_from_what_another_process_wrote(tmp_path: Path):
    """The app keeps one Index open; `rag index` run beside it must not leave it answering from the past."""
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Harbour exports rise\nThe port said exports rose by a tenth in March.\n")
    index = Index(tmp_path / "idx", model="hashing")
    index.add([corpus])
    assert not index.search("Ulleungdo ferry storms", mode="keyword").found
    (corpus / "b.txt").write_text("Ferry returns to Ulleungdo\nThe ferry to Ulleungdo resumed after storms.\n")
    subprocess.run(
        [sys.executable, "-m", "rag", "index", str(corpus), "--index", str(tmp_path / "idx"), "--model", "hashing"],
        check=True,
        capture_output=True,
    )
    for mode in ("keyword", "hybrid"):
        answer = index.search("Ulleungdo ferry storms", mode=mode)
        assert answer.passages[0].source == "b.txt", mode


def hostile_pdf(objects: list[bytes]) -> bytes:
    """A PDF whose cross-reference table is right, so that the reader gets as far as the objects' content."""
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    table = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    return out + f"trailer << /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{table}\n%%EOF\n".encode()


@pytest.mark.slow
def test_hostile_pages_and_pdfs_are_each_one_line_and_the_run_goes_on(tmp_path: Path):
    """A truncated PDF, a page tree that loops, a decompression bomb, a 45 MB one-line page, a page nested
    100,000 deep and a name with a newline in it: one line each, the good files indexed, memory bounded."""
    import resource
    import subprocess
    import sys
    import zlib

    from fpdf import FPDF

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    report = FPDF()
    report.add_page()
    report.set_font("Helvetica", size=12)
    for i in range(30):
        report.cell(
            0, 8, f"Line {i}: container ships waited outside the breakwater at Busan.", new_x="LMARGIN", new_y="NEXT"
        )
    good = bytes(report.output())
    (corpus / "good.pdf").write_bytes(good)
    (corpus / "truncated.pdf").write_bytes(good[: len(good) // 2])
    catalog = b"<< /Type /Catalog /Pages 2 0 R >>"
    (corpus / "loop.pdf").write_bytes(hostile_pdf([catalog, b"<< /Type /Pages /Kids [2 0 R] /Count 1000000000 >>"]))
    bomb = zlib.compress(b"BT /F1 12 Tf (A) Tj ET\n" * 40_000_000, 9)  # 2 MB that inflate to 920 MB
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"
    stream = f"<< /Length {len(bomb)} /Filter /FlateDecode >>\nstream\n".encode() + bomb + b"\nendstream"
    (corpus / "bomb.pdf").write_bytes(
        hostile_pdf([catalog, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page, stream])
    )
    (corpus / "oneline.html").write_text("<html><body><p>" + "word " * 9_000_000 + "</p></body></html>")
    (corpus / "deep.html").write_text(
        "<html><body>" + "<div>" * 100_000 + "Deep." + "</div>" * 100_000 + "</body></html>"
    )
    (corpus / "ferry\nnews.txt").write_text("Ferry returns\n\nThe ferry to Ulleungdo resumed on Monday after storms.\n")
    run = subprocess.run(
        [sys.executable, "-m", "rag", "index", str(corpus), "--index", str(tmp_path / "idx"), "--model", "hashing"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)),  # a bomb would hit this
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    skipped = sorted(line.split(":")[0] for line in run.stderr.splitlines() if line.startswith("skipped "))
    hostile = ["bomb.pdf", "deep.html", "loop.pdf", "oneline.html", "truncated.pdf"]
    assert skipped == [f"skipped {name}" for name in hostile], run.stderr
    sources = {d.source for d in Index(tmp_path / "idx", model="hashing").documents(0, 50)[0]}
    assert sources == {"good.pdf", "ferry\nnews.txt"}
