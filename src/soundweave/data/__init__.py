"""Data: caption manifests, datasets and collation, and the synthetic captioned-music corpus."""

from .dataset import CaptionedAudioDataset, SkippedFile, collate_audio, window
from .hf import HFAudioDataset
from .manifest import CaptionRecord, parse_filter, read_manifest, write_manifest

__all__ = [
    "CaptionRecord", "CaptionedAudioDataset", "HFAudioDataset", "SkippedFile", "collate_audio", "parse_filter",
    "read_manifest", "window", "write_manifest",
]
