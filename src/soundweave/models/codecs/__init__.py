"""Neural audio codecs behind one interface (`Codec`), and `load_codec` to load any of them.

    codec = load_codec("runs/codec")               # a folder written by any soundweave codec
    codec = load_codec("facebook/encodec_24khz")    # or a transformers EnCodec / DAC / Mimi (hub id or folder)
    codes = codec.encode(audio, sample_rate=sr)     # (B, N, Q) int64
    audio = codec.decode(codes)                     # (B, N * hop) at codec.sample_rate

Kinds: `SoundStream` (ours, trained from scratch), `SpectralCodec` (the fast offline default), and the
transformers adapters `EncodecCodec`, `DacCodec`, `MimiCodec` (pretrained weights from the Hub).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...errors import CheckpointError
from ..base import _REGISTRY, CONFIG_NAME, resolve_pretrained
from .base import Codec
from .soundstream import CodecLoss, SoundStream, SoundStreamConfig

# modules that define codec classes besides SoundStream (imported by load_codec, so their classes register)
CODEC_MODULES: tuple[str, ...] = ("spectral", "pretrained")
# transformers model_type -> the adapter class name in .pretrained
TRANSFORMERS_KINDS = {"encodec": "EncodecCodec", "dac": "DacCodec", "mimi": "MimiCodec"}


def _import_codec_modules() -> None:
    """Register every codec class (they live in modules imported on demand)."""
    import importlib

    for module in CODEC_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def load_codec(path_or_id: str | os.PathLike, *, revision: str | None = None, device=None, **kwargs) -> Codec:
    """Load any codec from a local folder or a Hugging Face hub id, whichever library wrote it.

    A folder with soundweave's config.json (`_class`) loads that class; one with a transformers config
    (`model_type` encodec / dac / mimi) loads the matching adapter. `kwargs` go to the class's
    `from_pretrained` (e.g. `bandwidth=6.0` for EnCodec).
    """
    try:
        folder = resolve_pretrained(path_or_id, revision=revision, allow_patterns=[CONFIG_NAME])
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc}. To use a pretrained codec offline, download it once while online "
            f"(`hf download {path_or_id}`; with huggingface_hub < 1.0 `huggingface-cli download {path_or_id}`; or "
            f"load_codec({str(path_or_id)!r}) with network) or pass "
            "a local folder written by save_pretrained") from exc
    file = folder / CONFIG_NAME
    if not file.is_file():
        raise CheckpointError(f"{str(folder)!r} has no {CONFIG_NAME}; is it a codec folder?")
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{str(file)!r} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{str(file)!r} does not hold a JSON object")
    _import_codec_modules()
    name = config.get("_class")
    if name is None:
        name = TRANSFORMERS_KINDS.get(str(config.get("model_type", "")))
        if name is None:
            raise CheckpointError(
                f"{str(folder)!r} is not a codec soundweave knows: its config.json has no soundweave '_class' and "
                f"model_type {config.get('model_type')!r} is not one of {sorted(TRANSFORMERS_KINDS)}")
    cls = _REGISTRY.get(name)
    if cls is None or not issubclass(cls, Codec):
        raise CheckpointError(f"{str(folder)!r} holds a {name}, which is not a codec")
    source = path_or_id if not Path(str(path_or_id)).expanduser().is_dir() else folder
    return cls.from_pretrained(source, revision=revision, device=device, **kwargs)


__all__ = ["Codec", "CodecLoss", "SoundStream", "SoundStreamConfig", "TRANSFORMERS_KINDS", "load_codec"]
