"""Mel-diffusion training items from a stream (WebDataset shards or an HF dataset in streaming mode).

`MelSliceStream` is the streaming sibling of `MelSliceDataset`: every clip of the stream gives one random,
non-silent spectrogram slice (`{"image": uint8 (H, W), "label": int}` + "audio" for a MuLaN encoder);
`open_stream_source` opens `--data` as a stream with the tag filter and reads the class names from the shards'
index (shards.json), since a stream cannot be scanned for them up front.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import IterableDataset

from ..audio.mel_image import MelImageCodec
from ..data.shards import ShardStream, open_stream
from ..errors import ConfigError


class MelSliceStream(IterableDataset):
    def __init__(self, stream, mel: MelImageCodec, *, class_tag: str | None = None,
                 class_names: Sequence[str] | None = None, null_class: int | None = None, silence_peak: float = 1e-4,
                 tries: int = 8, return_audio: bool = False):
        self.stream, self.mel = stream, mel
        self.class_tag, self.class_names, self.null_class = class_tag, list(class_names or []), null_class
        self.silence_peak, self.tries, self.return_audio = silence_peak, tries, return_audio

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)

    def skip_batches(self, batches: int, batch_size: int) -> None:
        self.stream.skip_batches(batches, batch_size)

    @property
    def slice_size(self) -> int:
        return self.mel.x_res * self.mel.hop_length - 1

    def label_of(self, tags: dict[str, Any]) -> int:
        if self.class_tag is None:
            return -1
        value = tags.get(self.class_tag)
        if value is None or str(value) not in self.class_names:
            return self.null_class if self.null_class is not None else -1
        return self.class_names.index(str(value))

    def __iter__(self):
        size = self.slice_size
        for item in self.stream:
            audio = item["audio"][item["mask"]] if "mask" in item else item["audio"]
            if audio.shape[-1] < size:
                audio = torch.nn.functional.pad(audio, (0, size - audio.shape[-1]))
            for _ in range(self.tries):
                start = int(torch.randint(0, audio.shape[-1] - size + 1, (1,)))
                piece = audio[start:start + size]
                if float(piece.abs().max()) < self.silence_peak:
                    continue
                image = self.mel.audio_to_images(piece)
                if MelImageCodec.is_silent_image(image):
                    continue
                out = {"image": image, "label": self.label_of(item["tags"])}
                if self.return_audio:
                    out["audio"] = piece
                yield out
                break


def open_stream_source(data: str, sample_rate: int, where: dict[str, list[str]], split: str,
                       class_tag: str | None, audio_column: str, seed: int) -> tuple[Any, list[str]]:
    """-> (stream of whole clips at `sample_rate`, class values of `class_tag` or [])."""
    def keep(meta) -> bool:
        return all(str(meta.get("tags", {}).get(k)) in values for k, values in where.items())

    extra: dict[str, Any] = {}
    if data.startswith("hf://"):
        columns = tuple(dict.fromkeys([*where, *([class_tag] if class_tag else [])]))
        extra = dict(audio_column=audio_column, caption_column=None, tag_columns=columns)
    stream = open_stream(data, split, sample_rate=sample_rate, seconds=None, seed=seed,
                         where=keep if where else None, **extra)
    values: list[str] = []
    if class_tag:
        if not isinstance(stream, ShardStream) or class_tag not in stream.tag_values:
            raise ConfigError(f"--class-tag {class_tag} on a stream needs its class names up front: shards written by "
                              "`soundweave data shard` list every tag's values in shards.json; this stream has none "
                              f"for {class_tag!r}")
        values = [v for v in stream.tag_values[class_tag] if not where or class_tag not in where
                  or v in where[class_tag]]
    return stream, values
