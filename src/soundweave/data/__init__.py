"""Data: caption manifests, datasets and collation, and the synthetic captioned-music corpus."""

from .dataset import CaptionedAudioDataset, SkippedFile, collate_audio, window
from .hf import HFAudioDataset
from .manifest import CaptionRecord, parse_filter, read_manifest, write_manifest
from .shards import HFStream, ShardStream, is_stream, open_stream, write_shards

__all__ = [
    "CaptionRecord", "CaptionedAudioDataset", "HFAudioDataset", "HFStream", "ShardStream", "SkippedFile",
    "collate_audio", "parse_filter",
    "is_stream", "open_stream", "read_manifest", "window", "write_manifest", "write_shards",
]
