"""MuLaN: music audio and text in one embedding space (Huang et al. 2022, "MuLan: A Joint Embedding of
Music Audio and Natural Language", arXiv 2208.12415), and `MuLaNEmbedQuantizer`, which turns a MuLaN
embedding into conditioning tokens for MusicLM (Agostinelli et al. 2023, arXiv 2301.11325).

    audio (B, T) @ sample_rate --log-mel--> (B, F, frames) --16x16 patches--> AST --mean pool--> (B, dim_a)
    text  str / ids (B, L) --------------------------------> text tower --pool--------------> (B, dim_t)
    each --Linear--> (B, dim_latent) --l2 normalise--> one space; trained with a contrastive loss

Towers:
- `AudioSpectrogramTransformer` (AST): log-mel front end (soundweave.audio.MelSpectrogram), 2-D patch
  embedding, fixed 2-D sin-cos positions (defined for any grid, so lengths never seen in training work),
  SpecAugment (time stretch, frequency and time masks) and patch dropout in training mode only, padding
  masks for variable-length audio, SDPA attention, masked mean pooling.
- `TextTransformer`: a transformer trained from scratch over our own tokenizer (byte-level by default, or
  a BPE trained on captions; no downloaded vocabulary), rotary positions, a CLS token.
- `PretrainedTextTransformer`: any Hugging Face text encoder (hub id or folder; default the offline
  all-MiniLM-L6-v2), optionally frozen, mean- or CLS-pooled. Saved folders hold its HF config (in
  config.json) and tokenizer files (in `text_tokenizer/`), so loading never needs the hub.

Input policies (tested): silence and clipped noise embed normally (finite, unit norm); audio shorter than
one patch (`min_samples`) raises ShapeError; audio longer than `max_seconds` is cropped to its start by
the AST and `MuLaN.forward`, while `get_audio_latents` (default `long_audio="window"`) embeds
consecutive `max_seconds` windows and averages them; empty captions raise ShapeError; captions longer
than the tower's `max_seq_len` tokens are truncated (the start is kept).

Modules: `audio_tower` (AST), `text_towers` (TextTransformer, PretrainedTextTransformer), `model` (MuLaN),
`quantizer` (MuLaNEmbedQuantizer), `common` (shared helpers); every public name is importable from here.
"""

from .audio_tower import ASTConfig, AudioSpectrogramTransformer
from .common import l2norm, sincos_2d
from .model import MuLaN
from .quantizer import MuLaNEmbedQuantizer
from .text_towers import PretrainedTextTransformer, TextTransformer, TextTransformerConfig

__all__ = [
    "ASTConfig",
    "AudioSpectrogramTransformer",
    "MuLaN",
    "MuLaNEmbedQuantizer",
    "PretrainedTextTransformer",
    "TextTransformer",
    "TextTransformerConfig",
    "l2norm",
    "sincos_2d",
]
