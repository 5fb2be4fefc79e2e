"""A crash mid-index must leave the previous index fully usable."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rag import Index

CHILD = """
import sys
from rag import Index
Index(sys.argv[1]).add([sys.argv[2]])
"""


def test_killed_indexer_leaves_previous_index_intact(tmp_path: Path, corpus_copy: Path):
    idx = tmp_path / "idx"
    before = Index(idx)
    before.add([corpus_copy])
    counts = before.info()["chunks"]
    expected = before.search("Who was Kim Kyoung-soo's political mentor?").passages[0].text

    for n in range(30):
        for src in sorted(Path(corpus_copy).glob("00*.txt"))[:2]:
            (corpus_copy / f"copy{n:02d}_{src.name}").write_text(f"Copy {n} of an article\n" + src.read_text())
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(idx), str(corpus_copy)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not list(idx.glob(".staging-*")) and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)
    assert child.poll() is None, "the indexer finished before it could be killed; give it more work"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    after = Index(idx)
    assert after.info()["chunks"] == counts
    assert len(after.info()["documents"]) == 7
    assert after.search("Who was Kim Kyoung-soo's political mentor?").passages[0].text == expected

    report = after.add([corpus_copy])
    assert report.added == 60
    assert not list(idx.glob(".staging-*"))
    assert len(after.info()["documents"]) == 67
