"""soundweave: generate sound, and steer other generators with sound.

Public names are imported lazily (on first use), so `import soundweave` stays fast and a capability's
heavy dependencies load only when it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "SoundweaveError": "soundweave.errors",
    "MelImageCodec": "soundweave.audio.mel_image",
    "MelSpectrogram": "soundweave.audio.mel",
    "load_pretrained": "soundweave.models.base",
    "Trainer": "soundweave.training.trainer",
    "TrainerConfig": "soundweave.training.trainer",
    # capability 1: MuLaN
    "AudioSpectrogramTransformer": "soundweave.models.mulan",
    "TextTransformer": "soundweave.models.mulan",
    "PretrainedTextTransformer": "soundweave.models.mulan",
    "MuLaN": "soundweave.models.mulan",
    "MuLaNEmbedQuantizer": "soundweave.models.mulan",
    # capability 2 and 3: SoundStream, SoundStorm
    "SoundStream": "soundweave.models.codecs",
    "load_codec": "soundweave.models.codecs",
    "SpectralCodec": "soundweave.models.codecs.spectral",
    "EncodecCodec": "soundweave.models.codecs.pretrained",
    "DacCodec": "soundweave.models.codecs.pretrained",
    "MimiCodec": "soundweave.models.codecs.pretrained",
    "Conformer": "soundweave.nn.conformer",
    "ConformerWrapper": "soundweave.models.conformer_wrapper",
    "SoundStorm": "soundweave.models.soundstorm",
    "ContinuationPipeline": "soundweave.pipelines.continuation",
    # capability 4: MusicLM
    "SemanticTokenizer": "soundweave.models.semantic_tokenizer",
    "SemanticTransformer": "soundweave.models.semantic_transformer",
    "SemanticTransformerTrainer": "soundweave.training.semantic",
    "AudioLM": "soundweave.pipelines.audiolm",
    "MusicLM": "soundweave.pipelines.musiclm",
    "ClapMuLaN": "soundweave.models.clap",
    "TextToSemantic": "soundweave.models.text_to_semantic",
    # capability 5: mel diffusion
    "MelDiffusionPipeline": "soundweave.pipelines.mel_diffusion",
    # capability 6: audio to image
    "AudioCLIPAligner": "soundweave.models.aligner",
    "Audio2ImagePipeline": "soundweave.pipelines.audio2img",
    "contrastive_loss": "soundweave.nn.losses",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'soundweave' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover
    from .audio.mel_image import MelImageCodec  # noqa: F401
    from .errors import SoundweaveError  # noqa: F401
