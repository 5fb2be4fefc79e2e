"""Another sentence-transformers model runs the whole pipeline unchanged (the way a multilingual one is used).

No model can be downloaded here, so "another model" is the packaged one copied to a folder of its own: to the
pipeline it is a different model (its own name, no calibration entry), which is the path a user's
multilingual model takes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag import Index, ModelMismatchError
from rag.models.embed import default_model_path
from tests.conftest import DATA

pytestmark = pytest.mark.slow

KOREAN = "부산항 물동량 역대 최대\n부산항의 2월 컨테이너 물동량이 221만 개로 같은 달 기준 역대 최대를 기록했다.\n"
ENGLISH = "Busan port sets record\nBusan port handled 2.21 million containers in February, a record for the month.\n"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "my-multilingual-model"
    shutil.copytree(default_model_path(), path)
    return path


def test_index_and_search_with_a_model_given_by_path(tmp_path: Path, other_model: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ko.txt").write_text(KOREAN)
    (corpus / "en.txt").write_text(ENGLISH)
    index = Index(tmp_path / "idx", model=str(other_model))
    assert index.add([corpus]).added == 2
    assert index.info().model == str(other_model.resolve())
    searcher = index.searcher
    assert searcher.calibration.dense_wide_script, "an uncalibrated model keeps its dense arm for Korean"
    korean = index.search("부산항 컨테이너 물동량", k=2)
    assert korean.passages[0].source == "ko.txt" and korean.passages[0].similarity > 0
    assert index.search("How many containers did Busan handle?", k=1).passages[0].source == "en.txt"
    with pytest.raises(ModelMismatchError):
        Index(tmp_path / "idx", model="all-MiniLM-L6-v2")


def test_rag_eval_with_another_model(tmp_path: Path, other_model: Path, rag_eval):
    squad = str(DATA / "eval" / "tiny_squad.json")
    run = rag_eval(squad, "--model", str(other_model), "--modes", "hybrid", "--json", cache=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["model"] == str(other_model.resolve()) and result["modes"]["hybrid"]["recall@5"] == 1.0
