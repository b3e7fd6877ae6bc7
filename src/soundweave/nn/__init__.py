"""Building blocks shared by the models: attention, conformer, transformer, losses."""

from .attention import Attention, FeedForward, RotaryEmbedding, Transformer, TransformerBlock, apply_rotary

__all__ = ["Attention", "FeedForward", "RotaryEmbedding", "Transformer", "TransformerBlock", "apply_rotary"]
